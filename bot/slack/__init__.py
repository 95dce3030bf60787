"""The inbound Slack surface: a Bolt ``AsyncApp`` with one module per surface.

``app`` builds the app and its ``POST /slack/events`` route; ``actions`` (the alert buttons),
``commands`` (``/runbook``, ``/alerts``, ``/slo``), ``silences`` (``/silence`` and the Silence 1h
button) and ``home`` (the App Home tab) each expose ``register(app, ...)``; ``messages`` holds every
sentence said to a person; ``after_ack`` runs what listeners do after their ack on a thread of its
own; ``running`` is the Slack part of the ASGI lifespan (that worker, and Socket Mode when an
app-level token is set).
"""

from __future__ import annotations

from bot.slack.app import SlackApp, build_slack_app, running, slack_routes

__all__ = ["SlackApp", "build_slack_app", "running", "slack_routes"]

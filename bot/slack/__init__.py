"""The inbound Slack surface: a Bolt ``AsyncApp`` with one module per surface.

``app`` builds the app and its ``POST /slack/events`` route (``gates`` holds the request checks:
size, signature, replay, workspace); ``actions`` (the alert buttons), ``commands`` (``/runbook``,
``/alerts``, ``/slo``), ``silences`` (``/silence`` and the Silence 1h buttons) and ``home`` (the App
Home tab), ``resolution_notes`` (the cause/fix modal) and ``timeline_marks`` (⏱ and **Add to
timeline**) each expose ``register(app, context)`` (:class:`~bot.slack.context.SlackContext`), whose
listeners are small named methods. ``payloads`` takes Slack's payloads apart (pure); ``access``
is the ``access:`` policy; ``clicks`` what every button does around its work; ``replies``,
``runbooks``, ``slo_replies``, ``silence_args`` and ``silence_replies`` are the commands' pure
grammar and answers; ``messages`` holds every sentence said to a person; ``after_ack`` runs what
listeners do after their ack on a thread of its own; ``running`` is the Slack part of the ASGI
lifespan (that worker, and Socket Mode when an app-level token is set).
"""

from __future__ import annotations

from bot.slack.app import SlackApp, build_slack_app, running, slack_routes

__all__ = ["SlackApp", "build_slack_app", "running", "slack_routes"]

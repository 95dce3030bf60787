"""Hostile input at every HTTP edge of the real app (``bot.app.build_bot``, SQLite file), issue 8.

What is tried where:

- ``test_slack_fuzz.py``: property-based (hypothesis) slash-command text, interaction payloads
  and garbage bodies, all correctly signed: never a 5xx, nothing stored, a readable answer;
- ``test_signatures.py``: forged, stale, future and replayed signatures (401), Slack retries,
  requests for another workspace (403, ``SLACK_TEAM_ID``), the replay cache's bounds;
- ``test_alertmanager_fuzz.py``: arbitrary JSON and bytes to the Alertmanager webhook with a
  valid token: never a 5xx, nothing recorded unless 200;
- ``test_limits.py``: oversized bodies (413 without reading them whole) and deeply nested JSON
  (4xx, fast, bounded memory) at the ingest API, the Alertmanager webhook and ``/slack/events``.

Covered elsewhere and not repeated here: the ingest API's property test
(``tests/metrics/test_api.py::test_no_body_gives_a_5xx_or_stores_on_refusal``), the access
policy's refusals of clicks from outside the channel or user group
(``tests/slack/test_requests.py``), and faults (``tests/reliability``).
"""

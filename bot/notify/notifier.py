"""The notifier interface and the two notifiers that need no outside service.

A notifier delivers one :class:`Notification` or raises :class:`~bot.errors.DeliveryError`
saying whether a retry can help. Retrying, backoff and bookkeeping live in the outbox, once,
so every notifier stays a thin translation to one remote API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    id: int
    channel: str
    kind: str
    alert_id: int | None
    payload: Mapping[str, Any]
    attempts: int = 0
    """Earlier attempts: when above 0, an earlier send may have gone out before its outcome was recorded."""


THREAD_NOTE = "slack.thread_note"
"""A line said in a Slack thread on a person's behalf (the "Silence 1h" note): queued like every
other post, so it is retried and sent once, after the root message it answers."""


@dataclass(frozen=True)
class ThreadNote:
    """What a :data:`THREAD_NOTE` says and under which message (channel ID, ts)."""

    channel: str
    thread_ts: str
    text: str
    incident_id: int | None = None
    alert_id: int | None = None


class Notifier(Protocol):
    channel: str

    def send(self, notification: Notification) -> None: ...


class LogNotifier:
    """Writes each notification to the log: the bot's voice when no Slack workspace is set up."""

    channel = "log"

    def send(self, notification: Notification) -> None:
        p = notification.payload
        if notification.kind == THREAD_NOTE:
            log.warning("[thread %s/%s] %s", p.get("channel"), p.get("thread_ts"), p.get("text"))
            return
        log.warning(
            "[%s] %s %s — %s (%s) %s",
            p.get("severity"),
            p.get("event"),
            p.get("key"),
            p.get("title"),
            p.get("state"),
            p.get("description"),
        )

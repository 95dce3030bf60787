"""The recording notifier: a channel the tests read back, and tell to fail."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bot.errors import DeliveryError
from bot.notify.notifier import Notification


@dataclass
class RecordingNotifier:
    """Keeps what it was given; can be told to fail, to exercise the outbox's retries."""

    channel: str = "recording"
    sent: list[Notification] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    attempts: int = 0
    """Earlier attempts: when above 0, an earlier send may have gone out before its outcome was recorded."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, error: DeliveryError, times: int = 1) -> None:
        with self._lock:
            self.failures.extend([error] * times)

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.attempts += 1
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(notification)

    def events(self) -> list[tuple[str, str]]:
        """``(event, dedup key)`` of each delivered notification, in order."""
        with self._lock:
            return [(str(n.payload["event"]), str(n.payload["key"])) for n in self.sent]

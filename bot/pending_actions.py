"""People's acknowledgements and resolutions that the database could not take, kept until it can.

A click is acknowledged to Slack before it is applied (Slack wants an answer within 3 s). When
the database is unreachable for longer than a click's patience, dropping the click meant the
alert went on to escalate and page although someone had acknowledged it. Instead the action is
appended to a local journal (JSON lines, flushed and fsynced before the person is told it was
kept) and applied when the database answers again, by the escalation job before it sweeps, so
no step runs on an incident someone took while the database was away. A restarted process finds
the journal and applies it too.

Each entry is applied at most once: an entry is removed once applied, or once it no longer
applies (the alert resolved meanwhile: the refusal is logged), and an entry applied but not yet
removed when the process died is refused the second time as "already acknowledged".

The journal is the process's own file: with replicas, the entry waits for the replica that took
the click (each replica's escalation job applies its own journal first). A ``serve --web-only``
process runs no escalation job and applies its own journal from a loop of its own
(:func:`bot.jobs.applying_kept_clicks`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

from sqlalchemy.exc import SQLAlchemyError

from bot.errors import ActionRefused, ConcurrentChange

log = logging.getLogger(__name__)

Subject = Literal["alert", "incident"]
Verb = Literal["acknowledge", "resolve", "release", "still_on_it"]
"""``release`` and ``still_on_it`` answer "Still on it?" (``settings.ack_reminder``), on incidents only."""


@dataclass(frozen=True)
class PendingAction:
    """A person's click, as the journal keeps it: who did what to which alert or incident, when."""

    subject: Subject
    target: int
    verb: Verb
    actor: str
    at: datetime

    def describe(self) -> str:
        return f"{self.verb} of {self.subject} {self.target} by {self.actor}"

    def to_line(self) -> str:
        return json.dumps(
            {
                "subject": self.subject,
                "target": self.target,
                "verb": self.verb,
                "actor": self.actor,
                "at": self.at.isoformat(),
            }
        )

    @staticmethod
    def from_line(line: str) -> PendingAction:
        data = json.loads(line)
        if data["subject"] not in ("alert", "incident") or data["verb"] not in ("acknowledge", "resolve"):
            raise ValueError(f"not an action: {line[:80]!r}")
        return PendingAction(
            subject=cast(Subject, data["subject"]),
            target=int(data["target"]),
            verb=cast(Verb, data["verb"]),
            actor=str(data["actor"]),
            at=datetime.fromisoformat(data["at"]),
        )


class PendingActions:
    """The journal. ``path=None`` keeps the entries in memory only (tests, and a bot that cannot
    write its working directory: then a crash during an outage loses the entries)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: list[PendingAction] = self._read() if path is not None else []

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[PendingAction]:
        with self._lock:
            return list(self._entries)

    def keep(self, action: PendingAction) -> None:
        """Append ``action``; when this returns it is on disk. Raises ``OSError`` if it cannot be."""
        with self._lock:
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as journal:
                    journal.write(action.to_line() + "\n")
                    journal.flush()
                    os.fsync(journal.fileno())
            self._entries.append(action)
        log.warning("database unavailable: the %s is kept and will be applied when it is back", action.describe())

    def replay(self, apply: Callable[[PendingAction], object]) -> int:
        """Apply the entries in the order they were kept; return how many were applied. Stops at
        the first database error, keeping that entry and the ones after it, and re-raises it."""
        with self._lock:
            if not self._entries:
                return 0
            applied = 0
            left: list[PendingAction] = []
            try:
                for i, action in enumerate(self._entries):
                    try:
                        apply(action)
                    except (ActionRefused, LookupError) as exc:
                        log.info("kept %s no longer applies: %s", action.describe(), exc)
                        continue
                    except ConcurrentChange:
                        left.append(action)  # the alert keeps changing: next time
                        continue
                    except SQLAlchemyError:
                        left.extend(self._entries[i:])
                        raise
                    applied += 1
                    log.info("kept %s applied now that the database is back", action.describe())
            finally:
                self._entries = left
                self._rewrite()
            return applied

    def _read(self) -> list[PendingAction]:
        assert self._path is not None
        if not self._path.exists():
            return []
        entries = []
        for number, line in enumerate(self._path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(PendingAction.from_line(line))
            except (ValueError, KeyError, TypeError) as exc:  # a torn last line after a crash mid-write
                log.warning("%s:%d: skipping an unreadable kept action: %s", self._path, number, exc)
        if entries:
            log.warning("%d action(s) clicked while the database was away wait in %s", len(entries), self._path)
        return entries

    def _rewrite(self) -> None:
        """Replace the journal with what is left (atomically), or remove it when nothing is."""
        if self._path is None:
            return
        if not self._entries:
            self._path.unlink(missing_ok=True)
            return
        fresh = self._path.with_name(self._path.name + ".tmp")
        with fresh.open("w", encoding="utf-8") as journal:
            journal.writelines(action.to_line() + "\n" for action in self._entries)
            journal.flush()
            os.fsync(journal.fileno())
        os.replace(fresh, self._path)

"""The exception tree of incident-bot.

    IncidentBotError
    ├── ConfigError            a rules/ or runbooks/ file is wrong; carries every problem found
    ├── ActionRefused          a person's click or command cannot change the alert (why is the message)
    ├── DeliveryError          a notifier could not deliver; says whether a retry may help
    └── MissingExtra           an optional feature's package is not installed; names the pip extra

Errors that reach a person (a CLI user, a Slack user, an API client) carry a message written
for that person; stack traces are for logs.
"""

from __future__ import annotations

from dataclasses import dataclass


class IncidentBotError(Exception):
    """Base of every error the bot raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one configuration file, located for the person who must fix it."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(IncidentBotError):
    """The configuration cannot be loaded; nothing of it was applied."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ActionRefused(IncidentBotError):
    """A person asked for a transition the alert cannot make (already resolved, ...)."""


class DeliveryError(IncidentBotError):
    """A notification did not go out.

    ``retryable`` separates outages (retry with backoff) from rejections (a 400: retrying
    the same payload cannot succeed). ``retry_after`` is the wait the remote side asked for.
    ``pauses`` says the failure is the notifier's, not the notification's (a revoked or rotated
    token): every other notification would fail the same way, so the whole channel waits and
    retries until it clears. ``code`` is the remote side's error code (Slack's ``error``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        pauses: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable or pauses
        self.retry_after = retry_after
        self.pauses = pauses
        self.code = code


class MissingExtra(IncidentBotError):
    """A feature of an optional extra (``pip install 'incident-bot[charts]'``) was asked for
    without it; the message names what is missing and the command that installs it."""


class RequestRefused(IncidentBotError):
    """A write request (push ingest, the Alertmanager webhook) is refused: ``status`` is the HTTP
    status, ``message`` is for the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConcurrentChange(Exception):
    """Someone else changed the row between our read and our write (two replicas, two clicks);
    re-read and decide again. Raised by the optimistic writes of :mod:`bot.storage.versioned`."""

"""The log of ``incident-bot serve``: one line per thing that happened, as text or JSON.

``LOG_LEVEL`` sets the level, ``LOG_FORMAT=json`` writes one JSON object per line for log
shippers (``time``, ``level``, ``logger``, ``message``, and ``exception`` with the traceback when
there is one). Libraries that log routine work at INFO -- APScheduler twice per job tick (about
seven lines a second), httpx once per request, slack_sdk once per retried call -- are held at
WARNING unless ``LOG_LEVEL=DEBUG`` asks for everything. Every line is searched for the secrets
the bot was given (tokens, signing secret, routing key; webhook secrets and URLs once the
configuration is read) and they are written as ``[redacted]``, and so are Slack's
``response_url``s: each is a bearer credential for answering in its channel for 30 minutes, and
slack_sdk's webhook client logs the URL it posts to at DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("apscheduler", "httpx", "slack_sdk.web.base_client", "slack_sdk.web.async_base_client")
"""Loggers whose INFO lines are routine work, not things that happened."""
MIN_SECRET_LENGTH = 8
"""Shorter values are not searched for: they would mangle ordinary words, and no issued token is that short."""
REDACTED = "[redacted]"
RESPONSE_URLS = (
    (re.compile(r"https://hooks\.slack(?:-gov)?\.com/[^\s\"'<>&,;)}\]]+"), REDACTED),
    (re.compile(r"(response_url['\"]?\s*[:=]\s*['\"]?)[^\s\"'&,;)}\]]+"), rf"\g<1>{REDACTED}"),
)
"""Slack's response URLs wherever they appear, and any value given for a ``response_url`` key
(a payload dumped as JSON, a dict or a form body)."""
WEBHOOK_LOGGERS = "slack_sdk.webhook"
"""The client the bot uses only for response URLs: every URL its lines name is one."""
WEBHOOK_URL = re.compile(r"(url: )[^\s,]+")


def configure_logging(
    *, level: str | int = logging.INFO, fmt: str = "text", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Make one handler (on stderr unless ``stream``) the root logger's only one; return it."""
    searched = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(searched) if fmt == "json" else TextFormatter(searched))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    return handler


def redact_also(secrets: Iterable[str]) -> None:
    """Redact these too on the handler :func:`configure_logging` installed: secrets that arrive
    after logging starts (webhook secrets, read with the configuration and again on each reload)."""
    added = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if added and isinstance(formatter, TextFormatter | JsonFormatter):
            formatter.secrets = sorted({*formatter.secrets, *added}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str], *, logger: str = "") -> str:
    """``text`` (a line of ``logger``) without the given secrets or any response URL."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in RESPONSE_URLS:
        text = pattern.sub(replacement, text)
    if logger.startswith(WEBHOOK_LOGGERS):
        text = WEBHOOK_URL.sub(rf"\g<1>{REDACTED}", text)
    return text


class TextFormatter(logging.Formatter):
    """``2026-01-05 09:00:00,000 INFO bot.service: alert 7 fired …``, secrets redacted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.secrets = list(secrets)
        """Longest first, so a secret containing another is redacted whole; replaced, never mutated."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets, logger=record.name)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback's newlines are escaped inside it)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        scrubbed = {key: redact(value, self.secrets, logger=record.name) for key, value in entry.items()}
        return json.dumps(scrubbed, ensure_ascii=False)

"""The ``webhooks:`` section of ``rules/*.yaml``: where outgoing webhooks go and what they hear.

Each entry is a receiver: ``url`` (http or https), ``secret`` (signs every request; see
:mod:`bot.notify.webhook_signature`) and the ``events`` it wants, from :data:`WEBHOOK_EVENTS`.
Lists merge across files; names must be distinct, since a webhook's name is its delivery channel
(``webhook:<name>``) and so must stay stable while rows wait in the outbox.

Secrets do not belong in git: ``secret: ${ORDERS_WEBHOOK_SECRET}`` is read from that environment
variable when the configuration loads (an unset one is a configuration error), and validation
messages never repeat a secret's value. This module must not import :mod:`bot.config.schema`
(that module imports this one).
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.config.fields import from_environment

WEBHOOK_EVENTS = ("fired", "acknowledged", "resolved", "escalated", "paged")
"""The events a webhook may ask for (the README's configuration reference says when each is sent)."""
WEBHOOK_CHANNEL_PREFIX = "webhook:"
"""A webhook's delivery channel is this and its name."""
MIN_SECRET_LENGTH = 16
"""A shorter secret could be guessed; ``openssl rand -hex 32`` makes a good one."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Fits the outbox's 40-character channel column as ``webhook:<name>``."""


def _event(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in WEBHOOK_EVENTS:
        return value.strip().lower()
    close = difflib.get_close_matches(str(value), WEBHOOK_EVENTS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown event {value!r}; {hint}the events are {', '.join(WEBHOOK_EVENTS)}")


def _secret(value: object) -> object:
    """``${NAME}`` becomes the environment variable's value; the value itself is never echoed."""
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("secret must be text; quote it, or write ${ENV_NAME} to read it from the environment")
    value = from_environment(value) or value
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"secret is shorter than {MIN_SECRET_LENGTH} characters; use a random one (openssl rand -hex 32), "
            "ideally as ${ENV_NAME}"
        )
    return SecretStr(value)


WebhookEvent = Annotated[str, BeforeValidator(_event)]


class Webhook(BaseModel):
    """One receiver of outgoing webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Default: the URL's host (``hooks-example-com``), which must then be unique among the webhooks."""
    url: str
    secret: Annotated[SecretStr, BeforeValidator(_secret)]
    events: list[WebhookEvent] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// address, e.g. https://hooks.example.com/incidents")
        return value.strip()

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="before")
    @classmethod
    def _name_from_host(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("url"), str):
            host = urlsplit(data["url"].strip()).hostname or ""
            return {**data, "name": re.sub(r"[^a-z0-9_-]+", "-", host).strip("-")[:32]}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(
                f"name {value!r} must be lower-case letters, digits, '-' or '_' (at most 32 characters); "
                "it names the webhook in logs and in the outbox"
            )
        return value

    @property
    def channel(self) -> str:
        """Its delivery channel: its own outbox lane, so one slow receiver never holds another's."""
        return WEBHOOK_CHANNEL_PREFIX + self.name

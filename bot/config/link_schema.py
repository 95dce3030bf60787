"""The ``links:`` of a rule or a model: extra buttons on its alerts (Slack) and pages (PagerDuty).

Each entry is ``{text, url}``. The URL may name the alert's model as ``{model}`` (a Grafana
variable, a log search), filled when the link is shown (:mod:`bot.notify.links`); any other
placeholder would reach people as a broken link, so it is a configuration error at load, as is
a URL that is not http(s) (Slack refuses a whole message over one bad button URL). This module
must not import :mod:`bot.config.schema` (that module imports this one).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config.fields import not_blank

LINK_PLACEHOLDERS = frozenset({"model"})
"""The placeholders a link's URL may hold."""
MAX_LINK_TEXT = 75
"""Slack's limit for a button's text."""
MAX_LINK_URL = 2000
"""Below Slack's 3000-character limit for a button's URL, leaving room for a filled ``{model}``."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Annotated[
        str, Field(min_length=1, max_length=MAX_LINK_TEXT), not_blank("a link needs a text: the words on its button")
    ]
    url: str = Field(max_length=MAX_LINK_URL)

    @field_validator("url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        value = value.strip()
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - LINK_PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} in a link's url; only {{model}} is filled")
        parts = urlsplit(value.replace("{model}", "m"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"a link's url must start with http:// or https://, not {value[:40]!r}")
        return value

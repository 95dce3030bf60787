"""The email keys of ``rules/*.yaml``: addresses (``email:`` on models and rules) and ``routing.reports``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL_ADDRESS = re.compile(rf"^[^@\s<>()\[\],;:\"]+@{_LABEL}(?:\.{_LABEL})+$")
"""A bare ``local@domain.tld``: no display name, spaces or separators (a list typed as one item)."""


def email_address(value: object) -> object:
    """A bare address (``oncall@example.com``): a display name or a typo'd list (``a@x.com b@x.com``)
    would be refused by the SMTP server at 3 a.m. instead of by ``check`` now."""
    if isinstance(value, str) and _EMAIL_ADDRESS.match(value.strip()):
        return value.strip()
    raise ValueError(f"{value!r} is not an email address; write one bare address per item, e.g. oncall@example.com")


EmailAddress = Annotated[str, BeforeValidator(email_address)]


class Reports(BaseModel):
    """Where the scheduled reports (the weekly alert review, the SLO summary) go besides Slack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: list[EmailAddress] = Field(default_factory=list)

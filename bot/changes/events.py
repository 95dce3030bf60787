"""Change events as the pure core sees them: parsing a push, and which changes precede a breach.

A push is one object or a list, read by the same strict rules as the metrics ingest
(:mod:`bot.metrics.json_body`)::

    {"model": "support-bot", "kind": "prompt", "version": "v42",
     "author": "dana", "link": "https://git.internal/prompts/pull/42",
     "description": "shorter system prompt", "timestamp": "2026-01-05T08:56:00Z"}

``model``, ``kind`` and ``version`` are required; ``timestamp`` defaults to the arrival.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.clock import ensure_utc
from bot.config.durations import humanize
from bot.metrics import json_body


class ChangeKind(StrEnum):
    MODEL_VERSION = "model_version"
    PROMPT = "prompt"
    DATASET = "dataset"
    FEATURE_PIPELINE = "feature_pipeline"
    CONFIG = "config"
    DEPLOY = "deploy"

    @property
    def words(self) -> str:
        """How a person says it: ``model version``, ``feature pipeline``."""
        return self.value.replace("_", " ")


EXAMPLE = '{"model": ..., "kind": ..., "version": ...}'
ALLOWED_KEYS = ("model", "kind", "version", "author", "link", "description", "timestamp")
LIMITS = {"version": 200, "author": 200, "link": 2000, "description": 2000}
"""The longest text each field may hold (its column's length)."""


@dataclass(frozen=True, slots=True)
class Change:
    model: str
    kind: ChangeKind
    version: str
    at: datetime
    author: str | None = None
    link: str | None = None
    description: str | None = None

    def said(self) -> str:
        """``prompt v42``: what changed, as one would say it in a sentence."""
        return f"{self.kind.words} {self.version}"


def parse_changes(
    body: bytes, *, known_models: Collection[str], accept_unknown: bool, now: datetime, max_items: int = 1000
) -> list[Change]:
    """The changes of a request body, or :class:`~bot.errors.RequestRefused` (422) naming every
    problem; a request is all or nothing, as a metrics push is."""
    now = ensure_utc(now)
    items = json_body.items_of(json_body.decode(body), max_items=max_items, example=EXAMPLE)
    problems: list[str] = []
    changes = [_change(item, f"item {i}", known_models, accept_unknown, now, problems) for i, item in enumerate(items)]
    json_body.refuse_if_any(problems)
    return [c for c in changes if c is not None]


def _change(
    item: Any, where: str, known: Collection[str], accept_unknown: bool, now: datetime, problems: list[str]
) -> Change | None:
    if not isinstance(item, dict):
        problems.append(f"{where}: must be an object like {EXAMPLE}, got {json_body.kind(item)}")
        return None
    known_problems = len(problems)
    json_body.unknown_keys(item, ALLOWED_KEYS, where, problems)
    model = json_body.model_field(item, where, known, accept_unknown, problems)
    at = json_body.timestamp_field(item, where, now, problems)
    change_kind = _kind_field(item, where, problems)
    texts = {name: _text(item, name, where, problems, required=name == "version") for name in LIMITS}
    if len(problems) > known_problems or model is None or at is None or change_kind is None or not texts["version"]:
        return None
    return Change(model, change_kind, texts["version"] or "", at, texts["author"], texts["link"], texts["description"])


def _kind_field(item: dict[str, Any], where: str, problems: list[str]) -> ChangeKind | None:
    known = ", ".join(k.value for k in ChangeKind)
    raw = item.get("kind")
    if raw is None:
        problems.append(f"{where}: field 'kind' is missing; one of {known}")
        return None
    try:
        return ChangeKind(raw)
    except ValueError:
        problems.append(f"{where}: field 'kind': {json_body.preview(raw)} is not a kind of change; one of {known}")
        return None


def _text(item: dict[str, Any], name: str, where: str, problems: list[str], *, required: bool) -> str | None:
    raw = item.get(name)
    if raw is None:
        if required:
            problems.append(f'{where}: field {name!r} is missing; say which one shipped, e.g. "v42"')
        return None
    if not isinstance(raw, str) or not raw.strip():
        got = f"{json_body.kind(raw)} {json_body.preview(raw)}"
        problems.append(f"{where}: field {name!r} must be a non-empty string, got {got}")
        return None
    if len(raw) > LIMITS[name]:
        problems.append(f"{where}: field {name!r} is {len(raw)} characters long; the limit is {LIMITS[name]}")
        return None
    if name == "link" and not raw.startswith(("https://", "http://")):
        problems.append(f"{where}: field 'link' must be an http(s) URL, got {json_body.preview(raw)}")
        return None
    return raw.strip()


def before(changes: Iterable[Change], at: datetime, window: timedelta) -> list[Change]:
    """The changes in the ``window`` before ``at`` (inclusive), newest first: what may have caused
    a breach that started at ``at``."""
    return sorted((c for c in changes if at - window <= c.at <= at), key=lambda c: c.at, reverse=True)


def how_long_before(change: Change, at: datetime) -> str:
    """``4 min before`` (or ``at the same time``, under a minute): how long before ``at`` it shipped."""
    gap = at - change.at
    return "at the same time" if gap < timedelta(minutes=1) else f"{humanize(gap)} before"


def changes_text(changes: Sequence[Change], now: datetime, *, model: str | None, window: timedelta) -> str:
    """The recent changes as lines a person scans (``/changes``, ``incident-bot changes``): newest
    first, each with how long ago, who and where to read more."""
    scope = model or "any model"
    if not changes:
        return f"No changes to {scope} in the last {humanize(window)}."
    lines = [f"Changes to {scope} in the last {humanize(window)}, newest first:"]
    for change in changes:
        who = f" by {change.author}" if change.author else ""
        about = f": {change.description}" if change.description else ""
        link = f" <{change.link}>" if change.link else ""
        ago = humanize(now - change.at) + " ago" if now - change.at >= timedelta(minutes=1) else "just now"
        lines.append(f"- {change.at:%Y-%m-%d %H:%M} UTC ({ago}) {change.model}: {change.said()}{who}{about}{link}")
    return "\n".join(lines)

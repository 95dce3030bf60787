"""Parsing and validating a push-ingest body (``POST /api/v1/metrics``) into storable points.

Pure: bytes in, points or an :class:`IngestError` out, no I/O and the clock passed in, so every
rejection rule is tested without a server. The parser is strict on purpose: a metric pipeline
that silently drops a field, coerces ``"6100"`` to a number or stores ``NaN`` produces alerts
nobody can trust. A request is all-or-nothing: one bad item rejects the whole batch, and the
error names every problem found (up to :data:`~bot.metrics.json_body.MAX_PROBLEMS`) by item index and field, so the
sender can fix them in one round trip.

Body shape (SPEC §2)::

    {"model": "fraud-detector-v2",
     "metrics": {"p99_latency_ms": 6100},
     "labels": {"top_drifted_features": "age,income"},   # optional, string values
     "timestamp": "2026-01-05T09:00:00Z"}                # optional, default: now

or a non-empty list of such objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from bot.clock import ensure_utc
from bot.errors import RequestRefused
from bot.metrics.json_body import (
    decode,
    items_of,
    kind,
    model_field,
    preview,
    refuse_if_any,
    timestamp_field,
    unknown_keys,
)
from bot.metrics.store import Point

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
"""Metric and label names: the identifiers rule conditions can name (``p99_latency_ms``)."""
ALLOWED_KEYS = ("model", "metrics", "labels", "timestamp")
MAX_LABEL_CHARS = 1000


IngestError = RequestRefused
"""A push-ingest request is refused (the HTTP edge's :class:`bot.errors.RequestRefused`)."""


def parse_batch(
    body: bytes,
    *,
    known_models: Collection[str],
    accept_unknown: bool,
    now: datetime,
    max_items: int = 10_000,
) -> list[Point]:
    """Turn a request body into points (one per metric and label of every item).

    ``now`` (aware) is the default timestamp and the reference for the future-timestamp check.
    Raises :class:`IngestError` (422) naming every problem; nothing is returned partly.
    """
    now = ensure_utc(now)
    items = items_of(decode(body), max_items=max_items, example='{"model": ..., "metrics": {...}}')
    problems: list[str] = []
    points: list[Point] = []
    for index, item in enumerate(items):
        points.extend(_parse_item(item, f"item {index}", known_models, accept_unknown, now, problems))
    refuse_if_any(problems)
    return points


def _parse_item(
    item: Any, where: str, known: Collection[str], accept_unknown: bool, now: datetime, problems: list[str]
) -> list[Point]:
    if not isinstance(item, dict):
        problems.append(f'{where}: must be an object like {{"model": ..., "metrics": {{...}}}}, got {kind(item)}')
        return []
    before = len(problems)
    unknown_keys(item, ALLOWED_KEYS, where, problems)
    model = model_field(item, where, known, accept_unknown, problems)
    at = timestamp_field(item, where, now, problems)
    values = _metrics(item, where, problems)
    labels = _labels(item, where, problems)
    for name in sorted(values.keys() & labels.keys()):
        problems.append(f"{where}: {name!r} is both a metric and a label; use one name for one thing")
    if len(problems) > before or model is None or at is None:
        return []
    points: list[Point] = [(model, name, at, number) for name, number in values.items()]
    points.extend((model, name, at, text) for name, text in labels.items())
    return points


def _metrics(item: dict[str, Any], where: str, problems: list[str]) -> dict[str, float]:
    if "metrics" not in item:
        problems.append(f"{where}: field 'metrics' is missing; send at least one metric such as {{\"accuracy\": 0.93}}")
        return {}
    metrics = item["metrics"]
    if not isinstance(metrics, dict):
        problems.append(f"{where}: field 'metrics' must be an object of name → number, got {kind(metrics)}")
        return {}
    if not metrics:
        problems.append(f"{where}: field 'metrics' is empty; send at least one metric")
        return {}
    out: dict[str, float] = {}
    for name, value, field in _named(metrics, "metrics", "metric", where, problems):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{field} must be a number, got {kind(value)} {preview(value)}")
            continue
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            problems.append(f"{field}: the number is too large to store (it overflows to infinity)")
            continue
        out[name] = number
    return out


def _labels(item: dict[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    if "labels" not in item:
        return {}
    labels = item["labels"]
    if not isinstance(labels, dict):
        problems.append(f"{where}: field 'labels' must be an object of name → string, got {kind(labels)}")
        return {}
    out: dict[str, str] = {}
    for name, value, field in _named(labels, "labels", "label", where, problems):
        if not isinstance(value, str):
            problems.append(f"{field} must be a string, got {kind(value)}; numbers belong in 'metrics'")
            continue
        if len(value) > MAX_LABEL_CHARS:
            problems.append(f"{field} is {len(value)} characters long; the limit is {MAX_LABEL_CHARS}")
            continue
        out[name] = value
    return out


def _named(
    entries: dict[Any, Any], section: str, what: str, where: str, problems: list[str]
) -> Iterator[tuple[str, Any, str]]:
    """The entries of ``metrics`` or ``labels`` whose names rule conditions can name, each with how
    a problem with its value starts; a bad name is a problem here, so both sections word it alike."""
    for name, value in entries.items():
        if not METRIC_NAME.fullmatch(name):
            problems.append(
                f"{where}: field {section!r}: invalid {what} name {preview(name)}; use lower-case letters, "
                "digits and '_', starting with a letter, at most 100 characters"
            )
            continue
        yield name, value, f"{where}: field '{section}.{name}'"

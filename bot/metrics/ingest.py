"""Parsing and validating a push-ingest body (``POST /api/v1/metrics``) into storable points.

Pure: bytes in, points or an :class:`IngestError` out, no I/O and the clock passed in, so every
rejection rule is tested without a server. The parser is strict on purpose: a metric pipeline
that silently drops a field, coerces ``"6100"`` to a number or stores ``NaN`` produces alerts
nobody can trust. A request is all-or-nothing: one bad item rejects the whole batch, and the
error names every problem found (up to :data:`MAX_PROBLEMS`) by item index and field, so the
sender can fix them in one round trip.

Body shape (SPEC §2)::

    {"model": "fraud-detector-v2",
     "metrics": {"p99_latency_ms": 6100},
     "labels": {"top_drifted_features": "age,income"},   # optional, string values
     "timestamp": "2026-01-05T09:00:00Z"}                # optional, default: now

or a non-empty list of such objects.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.clock import ensure_utc
from bot.config.durations import humanize
from bot.errors import RequestRefused
from bot.metrics.store import Point
from bot.safe_text import first_unstorable, unstorable

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
"""Metric and label names: the identifiers rule conditions can name (``p99_latency_ms``)."""
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""The shape of a model name in ``rules/`` (accepted unknown models must fit the same column)."""
ALLOWED_KEYS = ("model", "metrics", "labels", "timestamp")
MAX_LABEL_CHARS = 1000
MAX_FUTURE = timedelta(minutes=5)
"""Clock skew tolerated for an explicit timestamp; later than this is a sender's bug."""
MAX_INT_DIGITS = 400
MAX_PROBLEMS = 10
"""Problems listed in one error; beyond that the message says how many more there were."""


IngestError = RequestRefused
"""A push-ingest request is refused (the HTTP edge's :class:`bot.errors.RequestRefused`)."""


class _DuplicateKey(ValueError):
    """Raised from the JSON object hook: ``{"a": 1, "a": 2}`` silently keeps one value otherwise."""


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
    data = _decode(body)
    if isinstance(data, dict):
        items: list[Any] = [data]
    elif isinstance(data, list):
        if not data:
            raise IngestError(422, 'empty list: send at least one {"model": ..., "metrics": {...}} object')
        if len(data) > max_items:
            raise IngestError(422, f"too many items: {len(data)} in one request, the limit is {max_items}; split it")
        items = data
    else:
        raise IngestError(
            422, f"the body must be a JSON object or a list of objects, got {_kind(data)}: {_preview(data)}"
        )
    known = set(known_models)
    problems: list[str] = []
    points: list[Point] = []
    for index, item in enumerate(items):
        points.extend(_parse_item(item, f"item {index}", known, accept_unknown, now, problems))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
        raise IngestError(422, "; ".join(shown) + suffix)
    return points


def _decode(body: bytes) -> Any:
    """JSON text to Python values, refusing what ``json`` would otherwise let through."""
    try:
        text = body.decode("utf-8-sig")  # RFC 8259: UTF-8; a leading BOM is tolerated
    except UnicodeDecodeError as exc:
        raise IngestError(422, f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    if not text.strip():
        raise IngestError(422, "empty body: send a JSON object or a list of objects")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_int=_integer, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise IngestError(422, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise IngestError(422, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise IngestError(422, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity literals, integers longer than Python's digit limit
        raise IngestError(422, f"invalid JSON: {exc}") from None
    hostile = first_unstorable(data)  # a NUL or a lone surrogate: no database column takes it, retrying won't help
    if hostile:
        raise IngestError(422, f"{hostile}; send valid Unicode text without NUL characters")
    return data


def _refuse_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not a number; NaN and Infinity cannot be stored or compared")


def _integer(literal: str) -> int:
    """Refuse absurdly long integers up front (a float overflows past 309 digits anyway), with a
    message for the sender instead of Python's advice about ``sys.set_int_max_str_digits``."""
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits is too large; values must be finite numbers")
    return int(literal)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {_preview(key)} in an object; each key may appear once")
        out[key] = value
    return out


def _parse_item(
    item: Any, where: str, known: set[str], accept_unknown: bool, now: datetime, problems: list[str]
) -> list[Point]:
    if not isinstance(item, dict):
        problems.append(f'{where}: must be an object like {{"model": ..., "metrics": {{...}}}}, got {_kind(item)}')
        return []
    before = len(problems)
    unknown = [k for k in item if k not in ALLOWED_KEYS]
    for key in unknown:
        close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(ALLOWED_KEYS)}"
        problems.append(f"{where}: unknown key {_preview(key)}; {hint}")
    model = _model(item, where, known, accept_unknown, problems)
    at = _timestamp(item, where, now, problems)
    values = _metrics(item, where, problems)
    labels = _labels(item, where, problems)
    for name in sorted(values.keys() & labels.keys()):
        problems.append(f"{where}: {name!r} is both a metric and a label; use one name for one thing")
    if len(problems) > before or model is None or at is None:
        return []
    points: list[Point] = [(model, name, at, number) for name, number in values.items()]
    points.extend((model, name, at, text) for name, text in labels.items())
    return points


def _model(item: dict[str, Any], where: str, known: set[str], accept_unknown: bool, problems: list[str]) -> str | None:
    if "model" not in item:
        problems.append(f"{where}: field 'model' is missing; name the model these metrics belong to")
        return None
    model = item["model"]
    if not isinstance(model, str):
        problems.append(f"{where}: field 'model' must be a string, got {_kind(model)}")
        return None
    if not model.strip():
        problems.append(f"{where}: field 'model' is empty; name the model these metrics belong to")
        return None
    if model in known:
        return model
    if not accept_unknown:
        close = difflib.get_close_matches(model, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = ", ".join(sorted(known)) or "(none)"
        problems.append(
            f"{where}: field 'model': unknown model {_preview(model)}; {hint}known models: {listed} "
            "(add it under models: in rules/, or set settings.accept_unknown_models: true)"
        )
        return None
    if not MODEL_NAME.fullmatch(model):
        problems.append(
            f"{where}: field 'model': {_preview(model)} is not a valid model name "
            "(letters, digits, '.', '_', '-'; starting with a letter or digit; at most 100 characters)"
        )
        return None
    return model


def _timestamp(item: dict[str, Any], where: str, now: datetime, problems: list[str]) -> datetime | None:
    if "timestamp" not in item:
        return now
    raw = item["timestamp"]
    if not isinstance(raw, str):
        problems.append(
            f"{where}: field 'timestamp' must be an ISO-8601 string such as '2026-01-05T09:00:00Z', got {_kind(raw)}"
        )
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(
            f"{where}: field 'timestamp': {_preview(raw)} is not an ISO-8601 date-time; "
            "use a form such as '2026-01-05T09:00:00Z'"
        )
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        problems.append(
            f"{where}: field 'timestamp': {_preview(raw)} has no timezone; "
            "add 'Z' or an offset such as '+02:00' so the time is not ambiguous"
        )
        return None
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        problems.append(f"{where}: field 'timestamp': {_preview(raw)} is out of range")
        return None
    if at - now > MAX_FUTURE:
        problems.append(
            f"{where}: field 'timestamp': {at.isoformat()} is more than {humanize(MAX_FUTURE)} in the future "
            f"(server time {now.isoformat()}); check the sender's clock"
        )
        return None
    return at


def _metrics(item: dict[str, Any], where: str, problems: list[str]) -> dict[str, float]:
    if "metrics" not in item:
        problems.append(f"{where}: field 'metrics' is missing; send at least one metric such as {{\"accuracy\": 0.93}}")
        return {}
    metrics = item["metrics"]
    if not isinstance(metrics, dict):
        problems.append(f"{where}: field 'metrics' must be an object of name → number, got {_kind(metrics)}")
        return {}
    if not metrics:
        problems.append(f"{where}: field 'metrics' is empty; send at least one metric")
        return {}
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if not METRIC_NAME.fullmatch(name):
            problems.append(f"{where}: field 'metrics': {_name_rule('metric', name)}")
            continue
        field = f"{where}: field 'metrics.{name}'"
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{field} must be a number, got {_kind(value)} {_preview(value)}")
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
        problems.append(f"{where}: field 'labels' must be an object of name → string, got {_kind(labels)}")
        return {}
    out: dict[str, str] = {}
    for name, value in labels.items():
        if not METRIC_NAME.fullmatch(name):
            problems.append(f"{where}: field 'labels': {_name_rule('label', name)}")
            continue
        field = f"{where}: field 'labels.{name}'"
        if not isinstance(value, str):
            problems.append(f"{field} must be a string, got {_kind(value)}; numbers belong in 'metrics'")
            continue
        if len(value) > MAX_LABEL_CHARS:
            problems.append(f"{field} is {len(value)} characters long; the limit is {MAX_LABEL_CHARS}")
            continue
        out[name] = value
    return out


def _name_rule(what: str, name: str) -> str:
    return (
        f"invalid {what} name {_preview(name)}; use lower-case letters, digits and '_', "
        "starting with a letter, at most 100 characters"
    )


def _kind(value: Any) -> str:
    """The JSON type name of a decoded value (what the sender wrote, not Python's name for it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _preview(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a sender's value: never the whole (possibly huge or deep) thing."""
    if isinstance(value, list | dict):
        return "[...]" if isinstance(value, list) else "{...}"
    text = json.dumps(value, ensure_ascii=False)
    if unstorable(text):  # a lone surrogate cannot be encoded into the answer: show it escaped
        text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + '…"'

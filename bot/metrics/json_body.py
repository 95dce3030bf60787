"""The strict JSON request bodies of the bot's push endpoints (metrics, changes).

Pure: bytes in, values or a :class:`~bot.errors.RequestRefused` out. The rules are the same for
every endpoint, so a sender learns them once: JSON in UTF-8 with no NaN, duplicate keys or absurd
integers; an object or a non-empty list of objects; a known ``model``; an ISO-8601 ``timestamp``
with a timezone and not in the future. Problems are collected per item and reported together (up
to :data:`MAX_PROBLEMS`), so one round trip fixes them all.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config.durations import humanize
from bot.errors import RequestRefused
from bot.safe_text import first_unstorable, unstorable

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""The shape of a model name in ``rules/`` (accepted unknown models must fit the same column)."""
MAX_FUTURE = timedelta(minutes=5)
"""Clock skew tolerated for an explicit timestamp; later than this is a sender's bug."""
MAX_INT_DIGITS = 400
MAX_PROBLEMS = 10
"""Problems listed in one error; beyond that the message says how many more there were."""


class _DuplicateKey(ValueError):
    """Raised from the JSON object hook: ``{"a": 1, "a": 2}`` silently keeps one value otherwise."""


def decode(body: bytes) -> Any:
    """JSON text to Python values, refusing what ``json`` would otherwise let through."""
    try:
        text = body.decode("utf-8-sig")  # RFC 8259: UTF-8; a leading BOM is tolerated
    except UnicodeDecodeError as exc:
        raise RequestRefused(422, f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    if not text.strip():
        raise RequestRefused(422, "empty body: send a JSON object or a list of objects")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_int=_integer, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise RequestRefused(422, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise RequestRefused(422, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise RequestRefused(422, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity literals, integers longer than Python's digit limit
        raise RequestRefused(422, f"invalid JSON: {exc}") from None
    hostile = first_unstorable(data)  # a NUL or a lone surrogate: no database column takes it, retrying won't help
    if hostile:
        raise RequestRefused(422, f"{hostile}; send valid Unicode text without NUL characters")
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
            raise _DuplicateKey(f"duplicate key {preview(key)} in an object; each key may appear once")
        out[key] = value
    return out


def items_of(data: Any, *, max_items: int, example: str) -> list[Any]:
    """The items of a body: one object, or a non-empty list of at most ``max_items``."""
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        if not data:
            raise RequestRefused(422, f"empty list: send at least one {example} object")
        if len(data) > max_items:
            raise RequestRefused(422, f"too many items: {len(data)} in one request, the limit is {max_items}; split it")
        return data
    raise RequestRefused(422, f"the body must be a JSON object or a list of objects, got {kind(data)}: {preview(data)}")


def refuse_if_any(problems: Sequence[str]) -> None:
    """Refuse the whole request (422) naming its problems: nothing is stored partly."""
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
        raise RequestRefused(422, "; ".join(shown) + suffix)


def unknown_keys(item: dict[str, Any], allowed: Sequence[str], where: str, problems: list[str]) -> None:
    for key in (k for k in item if k not in allowed):
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        problems.append(f"{where}: unknown key {preview(key)}; {hint}")


LISTED_MODELS = 20
"""Known models an unknown model's error lists: a fleet configures thousands."""


def _suggested(model: str, known: Collection[str], problems: Sequence[str]) -> str:
    """What to write instead of an unknown ``model``: the closest known name and some known ones.
    Only for the problems the error shows (:data:`MAX_PROBLEMS`): matching a name against 10,000
    models takes milliseconds, and a batch may name thousands of unknown ones."""
    if len(problems) >= MAX_PROBLEMS:
        return ""
    close = difflib.get_close_matches(model, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    names = sorted(known)
    listed = ", ".join(names[:LISTED_MODELS]) or "(none)"
    if len(names) > LISTED_MODELS:
        listed += f" and {len(names) - LISTED_MODELS:,} more"
    return (
        f"; {hint}known models: {listed} "
        "(add it under models: in rules/, or set settings.accept_unknown_models: true)"
    )


def model_field(
    item: dict[str, Any], where: str, known: Collection[str], accept_unknown: bool, problems: list[str]
) -> str | None:
    if "model" not in item:
        problems.append(f"{where}: field 'model' is missing; name the model this item is about")
        return None
    model = item["model"]
    if not isinstance(model, str):
        problems.append(f"{where}: field 'model' must be a string, got {kind(model)}")
        return None
    if not model.strip():
        problems.append(f"{where}: field 'model' is empty; name the model this item is about")
        return None
    if model in known:
        return model
    if not accept_unknown:
        problems.append(f"{where}: field 'model': unknown model {preview(model)}{_suggested(model, known, problems)}")
        return None
    if not MODEL_NAME.fullmatch(model):
        problems.append(
            f"{where}: field 'model': {preview(model)} is not a valid model name "
            "(letters, digits, '.', '_', '-'; starting with a letter or digit; at most 100 characters)"
        )
        return None
    return model


def timestamp_field(item: dict[str, Any], where: str, now: datetime, problems: list[str]) -> datetime | None:
    if "timestamp" not in item:
        return now
    raw = item["timestamp"]
    if not isinstance(raw, str):
        problems.append(
            f"{where}: field 'timestamp' must be an ISO-8601 string such as '2026-01-05T09:00:00Z', got {kind(raw)}"
        )
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(
            f"{where}: field 'timestamp': {preview(raw)} is not an ISO-8601 date-time; "
            "use a form such as '2026-01-05T09:00:00Z'"
        )
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        problems.append(
            f"{where}: field 'timestamp': {preview(raw)} has no timezone; "
            "add 'Z' or an offset such as '+02:00' so the time is not ambiguous"
        )
        return None
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        problems.append(f"{where}: field 'timestamp': {preview(raw)} is out of range")
        return None
    if at - now > MAX_FUTURE:
        problems.append(
            f"{where}: field 'timestamp': {at.isoformat()} is more than {humanize(MAX_FUTURE)} in the future "
            f"(server time {now.isoformat()}); check the sender's clock"
        )
        return None
    return at


def kind(value: Any) -> str:
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


def preview(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a sender's value: never the whole (possibly huge or deep) thing."""
    if isinstance(value, list | dict):
        return "[...]" if isinstance(value, list) else "{...}"
    text = json.dumps(value, ensure_ascii=False)
    if unstorable(text):  # a lone surrogate cannot be encoded into the answer: show it escaped
        text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + '…"'

"""Title and description templates: ``{name}`` fields with format specs, nothing more.

``str.format`` would happily render ``{x.__class__.__mro__}``; a rule file must not be a way
into the bot's objects, so fields are checked once at load (plain names only, a spec that
formats a number or a string) and rendered from a flat mapping of values.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FORMATTER = string.Formatter()

MISSING = "n/a"


class TemplateError(ValueError):
    """The template text is not one we accept; the message says what to change."""


class Template:
    """A checked template: a sequence of literal text and ``(field, spec)`` pairs."""

    __slots__ = ("_parts", "fields", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise TemplateError(f"a template must be text, not {type(source).__name__}")
        self.source = source
        try:
            parsed = list(_FORMATTER.parse(source))
        except ValueError as exc:
            raise TemplateError(
                f"cannot parse template {source!r}: {exc}; write fields as {{metric}} and a "
                "literal brace as {{ or }}"
            ) from None
        parts: list[tuple[str, str | None, str]] = []
        for literal, field, spec, conversion in parsed:
            if field is None:
                parts.append((literal, None, ""))
                continue
            _check_field(source, field, spec or "", conversion)
            parts.append((literal, field, spec or ""))
        self._parts = tuple(parts)
        self.fields: frozenset[str] = frozenset(f for _, f, _ in parts if f is not None)

    def render(self, values: Mapping[str, object], *, escape: Callable[[str], str] = str) -> str:
        """Fill the fields from ``values``; a missing value reads ``n/a``.

        ``escape`` is applied to each rendered value, never to the template's own text, so a
        rule author may use Slack markup while a metric label cannot inject any.
        """
        out: list[str] = []
        for literal, field, spec in self._parts:
            out.append(literal)
            if field is None:
                continue
            out.append(escape(_format_value(values.get(field), spec)))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _check_field(source: str, field: str, spec: str, conversion: str | None) -> None:
    if not _NAME.match(field):
        raise TemplateError(
            f"template {source!r}: field {{{field}}} is not allowed; fields are plain metric "
            "names such as {p99_latency_ms} (no attribute access, indexing or positions)"
        )
    if conversion:
        raise TemplateError(
            f"template {source!r}: conversion !{conversion} on {{{field}}} is not supported; "
            "drop it and use a format spec such as {field:.2f}"
        )
    if "{" in spec:
        raise TemplateError(f"template {source!r}: nested fields in {{{field}:{spec}}} are not allowed")
    if spec and not any(_spec_works(spec, sample) for sample in (1.5, 1, "text")):
        raise TemplateError(
            f"template {source!r}: format spec {spec!r} of {{{field}}} is invalid; use one such as .3f, .1%, >8 or ,d"
        )


def _spec_works(spec: str, sample: object) -> bool:
    try:
        format(sample, spec)
    except (ValueError, TypeError):
        return False
    return True


def _format_value(value: object, spec: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer() and not spec:
        return str(int(value))
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        # a spec written for numbers meeting a label, or ",d" meeting a float: show the value
        if isinstance(value, float) and spec.endswith("d"):
            return format(round(value), spec)
        return str(value)

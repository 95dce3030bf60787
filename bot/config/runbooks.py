"""Runbook templates (``runbooks/*.md``), filled from a model's settings.

Runbooks are Markdown full of shell snippets and JSON, where braces are everyday text, so
``str.format`` would break on them. Only ``{field}`` with a plain name is a field; a field the
model does not set stays as written, which shows the reader what to fill in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Runbook:
    name: str
    path: Path
    text: str

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(_FIELD.findall(self.text))

    def render(self, values: Mapping[str, object]) -> str:
        def fill(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return match.group(0) if value is None else str(value)

        return _FIELD.sub(fill, self.text)

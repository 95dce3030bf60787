"""Text from outside that cannot be stored, or that would lie when shown: found in one place.

JSON lets a sender write characters no database column takes: ``"\\ud800"`` decodes to a lone
UTF-16 surrogate, which is not UTF-8 at all (SQLite's driver and PostgreSQL both fail on it, and
so does encoding the error message that quotes it), and ``"\\u0000"`` is a NUL, which PostgreSQL
text refuses. Both are permanent problems of the request, so the edges refuse them with a 4xx
naming the field (:func:`first_unstorable`) instead of failing deep inside with a 5xx that
senders retry forever.

Other characters store fine but deceive a reader: bidirectional overrides reorder what Slack
shows (``"fraud\\u202e2v-rotceted"``) and zero-width characters make two different labels look
identical. :func:`neutralise` shows them as ``[U+202E]`` so the text reads as what it is.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_INVISIBLE = re.compile(
    "[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)  # Arabic letter mark, zero-width space/joiners, LRM/RLM, embeddings and overrides, word joiner, isolates, BOM


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL or an unpaired surrogate), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains a NUL character (\\u0000)"
    return f"contains an unpaired UTF-16 surrogate (\\u{ord(char):04x}), which is not valid Unicode text"


def first_unstorable(data: Any) -> str | None:
    """The first key or string value anywhere in decoded JSON that cannot be stored, as
    ``"field 'alerts[0].labels.model' contains a NUL character (\\u0000)"``; None when all can.

    Iterative, so JSON nested as deep as the decoder allows cannot exhaust the stack here."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            reason = unstorable(value)
            if reason:
                return f"field '{where or 'body'}' {reason}"
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key in value:
                reason = unstorable(key)
                if reason:
                    return f"a key in '{where or 'body'}' {reason}"
            pending.extend((f"{where}.{key}" if where else key, item) for key, item in reversed(value.items()))
    return None


def neutralise(text: str) -> str:
    """Bidirectional controls and zero-width characters made visible as ``[U+XXXX]``."""
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)

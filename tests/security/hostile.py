"""Hypothesis strategies for hostile text: characters that JSON carries but no database column
takes (NUL, lone UTF-16 surrogates) and characters that store fine but deceive a reader
(bidirectional overrides, zero-width characters), mixed with ordinary text."""

from __future__ import annotations

from hypothesis import strategies as st

UNSTORABLE = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]
DECEIVING = ["\u202e", "\u202d", "\u2066", "\u200b", "\u200d", "\u2060", "\ufeff", "\u061c"]

hostile_text = st.text(
    alphabet=st.sampled_from(UNSTORABLE + DECEIVING) | st.characters(categories=["Cs", "Cc", "Cf"]) | st.characters(),
    min_size=1,
    max_size=12,
)
"""Text that holds at least sometimes a NUL, a lone surrogate or an invisible control character."""

"""YAML loading that remembers where every value came from.

PyYAML forgets line numbers once it builds Python objects, yet "rules/ml.yaml:14" is the
whole point of a good configuration error. We compose the node tree, build plain objects
ourselves and keep a map from each value's path (``("rules", 0, "severity")``) to its line.
Duplicate keys, which PyYAML silently lets the last one win, are reported instead, syntax errors
carry a hint at their usual cause (a tab, an indentation, a missing space after a colon), and
nesting is limited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


class YamlProblem(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class LocatedDocument:
    data: Any
    text: str = ""
    """The source, composed again for its lines the first time one is asked for."""
    _lines: dict[Path, int] | None = field(default=None, repr=False)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one.

        Lines are worked out only when a problem is reported: a path for every value of 10,000
        models is hundreds of thousands of tuples, which a configuration that loads never uses."""
        if self._lines is None:
            self._lines = {}
            root = _compose(self.text) if self.text else None
            if root is not None:
                _build(root, (), self._lines, yaml.SafeLoader(""))
        for cut in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


MAX_DEPTH = 20
"""How deeply collections may nest. Real files need four (file, rules, a rule, its labels); PyYAML and
:func:`_build` recurse per level, so a few hundred ``- - - …`` would end in ``RecursionError``."""

_HINTS: tuple[tuple[str, str, bool], ...] = (
    # (PyYAML's problem contains this, the hint, report the context line: where the trouble began)
    ("found character '\\t'", "YAML does not allow tabs for indentation; use spaces", False),
    ("could not find expected ':'", "a key needs a colon and a space before its value (severity: P1)", True),
    (
        "mapping values are not allowed here",
        "this line is indented deeper than the key above it, or its value contains ': '; "
        "align the indentation, or quote the value (title: \"P99: too slow\")",
        False,
    ),
    (
        "sequence entries are not allowed here",
        "a '- ' starts a list item on its own line; quote a value that begins with '-'",
        False,
    ),
    (
        "expected <block end>",
        "the indentation does not match the lines above: keys of one item line up, with spaces; "
        "quote a value that begins with { or [",
        False,
    ),
    ("while scanning a quoted scalar", "a quote opened here is never closed", True),
    ("expected ',' or", "a { … } or [ … ] is not closed, or its items lack commas", True),
)


def load_located(text: str) -> LocatedDocument:
    _check_depth(text)
    root = _compose(text)
    if root is None:
        return LocatedDocument(data={}, text=text)
    return LocatedDocument(data=_build(root, (), None, yaml.SafeLoader("")), text=text)


FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML was built with it: a file of 10,000 models composes in 1.3 s
instead of 4.4 s, and the bot's memory after loading it is about 55 MB lower (its node tree is
smaller, so less of the heap stays fragmented after it is freed; issue 16)."""

PYYAML_ONLY = re.compile(r"\t|(?:^|[\s\[{,])!(?=[\s,\]}]|$)", re.MULTILINE)
"""Text libyaml reads differently from PyYAML's own parser: it accepts a tab as spacing where
PyYAML refuses it (``name: x<TAB>``), and reads an empty tag (``a: !``) as ``''`` instead of
``None``. A document holding either goes to PyYAML alone, so a file loads, or is refused with the
same message, whether or not PyYAML was built with libyaml (``!=`` in a condition is no tag)."""


def _loaders(text: str) -> tuple[type[yaml.SafeLoader], ...]:
    """The parsers to try in turn: libyaml first where it reads ``text`` as PyYAML does."""
    if PYYAML_ONLY.search(text):
        return (yaml.SafeLoader,)
    return tuple(dict.fromkeys((FAST_LOADER, yaml.SafeLoader)))


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree; a document libyaml refuses is composed again by PyYAML's own
    parser, whose messages :data:`_HINTS` know (libyaml words some problems differently)."""
    *first, last = _loaders(text)
    for loader in first:
        try:
            return yaml.compose(text, Loader=loader)
        except yaml.YAMLError:
            pass
    try:
        return yaml.compose(text, Loader=last)
    except yaml.MarkedYAMLError as exc:
        raise _explained(exc) from None


def _explained(exc: yaml.MarkedYAMLError) -> YamlProblem:
    """PyYAML's message with a hint at the usual cause, located where the reader should look."""
    said = " ".join(part for part in (exc.context, exc.problem) if part)
    mark = exc.problem_mark or exc.context_mark
    hint = ""
    for needle, advice, at_context in _HINTS:
        if needle in said:
            hint = f"; {advice}"
            if at_context and exc.context_mark is not None:
                mark = exc.context_mark
            break
    return YamlProblem(f"not valid YAML: {exc.problem or exc.context}{hint}", mark.line + 1 if mark else None)


def _check_depth(text: str) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` from the parser's event stream, which (unlike composing
    nodes) does not recurse, so even thousands of levels are reported with their line. libyaml
    gives up on some such documents before saying where (its own nesting limit): PyYAML's parser
    reads them again."""
    for loader in _loaders(text):
        depth = 0
        try:
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise YamlProblem(
                            f"nested more than {MAX_DEPTH} levels deep; a rules file needs a handful, so look for "
                            "repeated '- ' or brackets and remove them (quote a condition that begins with '-')",
                            event.start_mark.line + 1 if event.start_mark else None,
                        )
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
            return
        except yaml.YAMLError:
            continue  # composing reports it, with a hint


def _build(node: yaml.Node, path: Path, lines: dict[Path, int] | None, ctor: yaml.SafeLoader) -> Any:
    """The plain objects of ``node``; with ``lines``, the line of every value's path too."""
    if lines is not None:
        lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise YamlProblem("mapping keys must be plain text", key_node.start_mark.line + 1)
            if key in out:
                raise YamlProblem(
                    f"key {key!r} appears twice in the same mapping; keep one",
                    key_node.start_mark.line + 1,
                )
            if lines is None:
                out[key] = _build(value_node, path, None, ctor)
                continue
            child: Path = (*path, key if isinstance(key, str | int) else str(key))
            out[key] = _build(value_node, child, lines, ctor)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        if lines is None:
            return [_build(item, path, None, ctor) for item in node.value]
        return [_build(item, (*path, i), lines, ctor) for i, item in enumerate(node.value)]
    return ctor.construct_object(node, deep=True)

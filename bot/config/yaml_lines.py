"""YAML loading that remembers where every value came from.

PyYAML forgets line numbers once it builds Python objects, yet "rules/ml.yaml:14" is the
whole point of a good configuration error. We build the plain objects ourselves from the parser's
events and, only when a problem is reported, compose the node tree to map each value's path
(``("rules", 0, "severity")``) to its line. Duplicate keys, which PyYAML silently lets the last
one win, are reported instead, syntax errors carry a hint at their usual cause (a tab, an
indentation, a missing space after a colon), and nesting is limited.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from yaml.composer import ComposerError

Path = tuple[str | int, ...]
T = TypeVar("T")


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
            root = _parsed(self.text, _compose) if self.text else None
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
    (
        "could not determine a constructor",
        "tags (!name) and merge keys (<<) are not supported here; write the value out, or quote it",
        False,
    ),
)


def load_located(text: str) -> LocatedDocument:
    """The document's plain objects, built from the parser's events: no node tree is composed
    unless a problem's line is asked for. A tree for 10,000 models held about 80 MB at once
    (a node and two marks per value), which was the bot's peak memory (issue 16, point 3)."""
    return LocatedDocument(data=_parsed(text, _read), text=text)


_NO_KEY = object()
"""What a mapping being read awaits while its next node is a key."""


@dataclass
class _Open:
    """A collection being read: its object so far, and for a mapping the key awaiting its value."""

    value: dict[Any, Any] | list[Any]
    anchor: str | None
    line: int | None
    key: Any = _NO_KEY


def _read(text: str, loader_class: type[yaml.SafeLoader]) -> Any:
    """What composing ``text`` and :func:`_build` give (``{}`` for an empty stream), read from the
    event stream with a stack, so no depth recurses and nothing but the objects is kept. Scalars
    are resolved and constructed as the composer and constructor do; an alias is a copy of what
    its anchor named. Raises what composing raises, and :class:`YamlProblem` as :func:`_build`
    does, and past :data:`MAX_DEPTH`."""
    loader = loader_class(text)
    events: Any = loader  # PyYAML's parser methods are untyped
    try:
        events.get_event()  # the stream's start
        if loader.check_event(yaml.StreamEndEvent):
            return {}
        events.get_event()  # the document's start
        value = _document(events)
        events.get_event()  # the document's end
        if not loader.check_event(yaml.StreamEndEvent):
            another = events.get_event().start_mark
            raise ComposerError("expected a single document in the stream", None, "but found another document", another)
        return value
    finally:
        loader.dispose()


def _document(loader: Any) -> Any:
    anchors: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    stack: list[_Open] = []
    while True:
        event = loader.get_event()
        start: Any = event.start_mark  # libyaml's marks and PyYAML's are different classes
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            if anchor in seen:
                twice = f"the anchor &{anchor} is defined twice (first on line {_line(seen[anchor])})"
                twice += "; name each anchor once"
                raise ComposerError(None, None, twice, start)
            seen[anchor] = start
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _too_deep(_line(start))
            opened: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
            stack.append(_Open(opened, anchor, _line(start)))
            continue
        line = _line(start)
        if isinstance(event, yaml.CollectionEndEvent):
            closed = stack.pop()
            value, anchor, line = closed.value, closed.anchor, closed.line
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", start)
            value = copy.deepcopy(anchors[event.anchor])
        else:
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, start, event.end_mark, style=event.style)
            value = loader.construct_object(node, deep=True)
            loader.constructed_objects.clear()  # it keeps every node it built, marks and all: the tree again
        if anchor is not None:
            anchors[anchor] = value
        if not stack:
            return value
        _place(stack[-1], value, line)


def _place(parent: _Open, value: Any, line: int | None) -> None:
    """Put ``value`` (starting on ``line``) into the collection being read: an item, a key, or a key's value."""
    if isinstance(parent.value, list):
        parent.value.append(value)
    elif parent.key is _NO_KEY:
        if not isinstance(value, str | int | float | bool):
            raise YamlProblem("mapping keys must be plain text", line)
        if value in parent.value:
            raise YamlProblem(f"key {value!r} appears twice in the same mapping; keep one", line)
        parent.key = value
    else:
        parent.value[parent.key] = value
        parent.key = _NO_KEY


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML was built with it: about three times as fast as PyYAML's own (a
file of 10,000 models is read in 0.8 s; issue 16)."""

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


def _parsed(text: str, read: Callable[[str, type[yaml.SafeLoader]], T]) -> T:
    """``read(text, loader)``, libyaml's first where it reads ``text`` as PyYAML does; a document
    libyaml refuses is read again by PyYAML's own parser, whose messages :data:`_HINTS` know
    (libyaml words some problems differently)."""
    *first, last = _loaders(text)
    for loader in first:
        try:
            return read(text, loader)
        except yaml.YAMLError:
            pass
    try:
        return read(text, last)
    except yaml.MarkedYAMLError as exc:
        raise _explained(exc) from None


def _compose(text: str, loader: type[yaml.SafeLoader]) -> yaml.Node | None:
    return yaml.compose(text, Loader=loader)


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


def _too_deep(line: int | None) -> YamlProblem:
    return YamlProblem(
        f"nested more than {MAX_DEPTH} levels deep; a rules file needs a handful, so look for "
        "repeated '- ' or brackets and remove them (quote a condition that begins with '-')",
        line,
    )


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

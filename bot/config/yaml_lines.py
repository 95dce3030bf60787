"""YAML loading that remembers where every value came from.

PyYAML forgets line numbers once it builds Python objects, yet "rules/ml.yaml:14" is the
whole point of a good configuration error. We compose the node tree, build plain objects
ourselves and keep a map from each value's path (``("rules", 0, "severity")``) to its line.
Duplicate keys, which PyYAML silently lets the last one win, are reported instead.
"""

from __future__ import annotations

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
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


def load_located(text: str) -> LocatedDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(f"not valid YAML: {exc.problem or exc.context}", mark.line + 1 if mark else None) from None
    doc = LocatedDocument(data=None)
    if root is None:
        doc.data = {}
        return doc
    constructor = yaml.SafeLoader("")
    doc.data = _build(root, (), doc.lines, constructor)
    return doc


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], ctor: yaml.SafeLoader) -> Any:
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
            child: Path = (*path, key if isinstance(key, str | int) else str(key))
            out[key] = _build(value_node, child, lines, ctor)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, ctor) for i, item in enumerate(node.value)]
    return ctor.construct_object(node, deep=True)

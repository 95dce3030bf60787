"""Imports run down the layers of ``bot.LAYERS``: no module imports from a later layer, and every
package or top-level module of ``bot/`` has a place in the order."""

from __future__ import annotations

import ast
from pathlib import Path

import bot

PACKAGE = Path(bot.__file__).parent
RANK = {name: rank for rank, names in enumerate(bot.LAYERS) for name in names}


def part_of(module: str) -> str:
    """``bot.notify.outbox`` → ``notify``."""
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[str, int]]:
    """Every ``bot.*`` module ``path`` imports (at the top, inside functions, under TYPE_CHECKING)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("bot."):
            found.append((str(node.module), node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("bot.")]
    return found


def modules() -> list[tuple[Path, str]]:
    """Each module below ``bot/`` (not ``bot/__init__.py``) with the part of the order it is in."""
    return [
        (path, path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "__init__.py"
    ]


def test_every_package_and_module_has_a_layer() -> None:
    unplaced = sorted({part for _path, part in modules()} - RANK.keys())
    assert not unplaced, f"place these in bot.LAYERS (bot/__init__.py): {unplaced}"


def upward(path: Path, part: str) -> list[str]:
    """The imports of ``path`` (a module of ``part``) that reach a later layer."""
    return [
        f"{path}:{line}: {part} imports {target} (a later layer)"
        for target, line in imports(path)
        if RANK.get(part_of(target), -1) > RANK[part]
    ]


def test_no_import_runs_up_the_layers() -> None:
    found = [problem for path, part in modules() if part in RANK for problem in upward(path, part)]
    assert not found, "\n".join(found)


def test_an_upward_import_is_seen_even_inside_a_function(tmp_path: Path) -> None:
    core = tmp_path / "lifecycle.py"
    core.write_text("def f():\n    from bot.slack.actions import parse_click\n    return parse_click\n")
    assert upward(core, "alerts") == [f"{core}:2: alerts imports bot.slack.actions (a later layer)"]
    assert upward(core, "slack") == []

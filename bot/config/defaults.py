"""Where the configuration comes from when none is named, and ``incident-bot init``'s copy of it.

The shipped defaults are one set of files: the repository's top-level ``rules/`` and
``runbooks/``, which ``bot/defaults/`` links to and a wheel carries as package data. So a
source checkout, an editable install and ``pip install .`` all read the same files from
:data:`SHIPPED`, and a user edits a copy that ``init`` writes, never the installed package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.settings import Settings

SHIPPED = Path(__file__).resolve().parent.parent / "defaults"
"""The shipped ``rules/`` and ``runbooks/`` (inside the installed package, or linked in a checkout)."""
PARTS = ("rules", "runbooks")


def default_config_dir(settings: Settings) -> Path:
    """``BOT_CONFIG_DIR``, else the working directory if it holds rules/, else the shipped defaults."""
    if settings.bot_config_dir is not None:
        return settings.bot_config_dir
    if (Path.cwd() / "rules").is_dir():
        return Path.cwd()
    return SHIPPED


def write_defaults(target: Path) -> list[Path]:
    """Copy the shipped files into ``target/rules`` and ``target/runbooks``; return what was written.

    Refuses (FileExistsError naming every clash) before writing anything if any of those files
    exists already, so a second ``init`` never overwrites rules someone has edited."""
    sources = [path for part in PARTS for path in sorted((SHIPPED / part).iterdir()) if path.is_file()]
    destinations = [target / source.parent.name / source.name for source in sources]
    clashes = [str(path) for path in destinations if path.exists()]
    if clashes:
        raise FileExistsError(f"{len(clashes)} file(s) exist already: {', '.join(clashes)}")
    for source, destination in zip(sources, destinations, strict=True):
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    return destinations

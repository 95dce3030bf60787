"""``pip install .`` (a wheel, not an editable checkout) works from any directory.

The wheel is built offline from a copy of the sources (so the shared tree gets no ``build/``),
installed without dependencies into a fresh virtualenv that borrows this environment's
site-packages for them, and run from an empty temporary directory: the installed package must
find its own rules and runbooks, as a user's ``pip install incident-bot`` would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "bot", "rules", "runbooks")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed; yields its ``bin`` directory."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(root / "dist"), str(source)])  # fmt: skip
    (wheel,) = (root / "dist").glob("incident_bot-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    # the dependencies come from this environment; its .pth files (the editable checkout's finder) are not read
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([str(venv / "bin" / "python"), "-c", where]))
    (purelib / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
          "--no-index", str(wheel)])  # fmt: skip
    yield venv / "bin"


def _run(command: list[str], *, cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def _clean_env() -> dict[str, str]:
    """The environment minus what would point the installed command back at this checkout."""
    drop = {"BOT_CONFIG_DIR", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def test_check_finds_the_packaged_rules_from_another_directory(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "incident-bot"), "check"], cwd=tmp_path)
    assert "OK — " in out
    shown = Path(out.split(":", 1)[0])
    assert shown.is_relative_to(installed.parent), f"read {shown}, not the installed package"


def test_the_packaged_defaults_are_the_repository_files(installed: Path, tmp_path: Path) -> None:
    script = "from bot.config.defaults import SHIPPED; print(SHIPPED)"
    where = _run([str(installed / "python"), "-c", script], cwd=tmp_path)  # not here: -c imports from the cwd
    assert Path(where).is_relative_to(installed.parent)
    for part in ("rules", "runbooks"):
        packaged = {p.name: p.read_bytes() for p in (Path(where) / part).iterdir()}
        repository = {p.name: p.read_bytes() for p in (REPO / part).iterdir() if p.is_file()}
        assert packaged == repository, f"the wheel's {part}/ differs from the repository's"


def test_demo_help_and_version_run_from_another_directory(installed: Path, tmp_path: Path) -> None:
    assert "--sandbox-port" in _run([str(installed / "incident-bot"), "demo", "--help"], cwd=tmp_path)
    from bot import __version__

    assert _run([str(installed / "incident-bot"), "--version"], cwd=tmp_path) == f"incident-bot {__version__}"


def test_init_writes_an_editable_copy_that_check_accepts(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "incident-bot"), "init", "team-config"], cwd=tmp_path)
    assert "team-config/rules/ml.yaml" in out
    assert (tmp_path / "team-config" / "runbooks" / "default.md").is_file()
    assert "OK — " in _run([str(installed / "incident-bot"), "check", "team-config"], cwd=tmp_path)


def test_constraints_pin_every_declared_requirement_inside_its_range() -> None:
    """.ci/run installs with constraints.txt; a pin outside pyproject's range would fail there, a
    requirement without a pin would go untested at whatever version PyPI has today."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    declared = [Requirement(text) for text in project["dependencies"]]
    declared += [Requirement(text) for extra in project["optional-dependencies"].values() for text in extra]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name == "incident-bot":  # the dev extra asks for the charts extra
            continue
        assert name in pins, f"{requirement} has no pin in constraints.txt"
        inside = requirement.specifier.contains(pins[name], prereleases=True)
        assert inside, f"{name}=={pins[name]} is not {requirement}"
    assert "incident-bot" not in pins
    assert "-c constraints.txt" in (REPO / ".ci" / "run").read_text()


def test_the_license_file_is_the_apache_license_pyproject_names() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer to it

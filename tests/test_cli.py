"""The ``incident-bot`` command as a user runs it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_check_accepts_the_shipped_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(REPO)]) == 0
    assert "OK — 6 rules, 2 models" in capsys.readouterr().out


def test_check_names_file_line_and_fix_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text(
        "models:\n  - name: m1\nrules:\n  - name: r1\n    condition: x > 1\n    severity: P7\n    title: t\n"
    )
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "rules/bad.yaml:6:" in err
    assert "unknown severity 'P7'; use one of P0, P1, P2, P3" in err


def test_test_rules_runs_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-rules", str(REPO / "rule-tests" / "default-rules.yaml")]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_python_dash_m_bot_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", str(REPO)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    "command", [["serve", "--port", "0"], ["serve", "--port", "0", "--web-only", "--workers", "2"], ["worker"]]
)
def test_serve_refuses_a_bad_configuration(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text("rules:\n  - name: r1\n    condition: x >\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BOT_CONFIG_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
    )
    assert result.returncode == 2
    assert "rules/bad.yaml:3" in result.stderr


def test_init_says_what_it_wrote_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}/rules/ml.yaml" in out and f"{tmp_path}/runbooks/default.md" in out
    assert main(["check", str(tmp_path)]) == 0
    edited = tmp_path / "rules" / "ml.yaml"
    edited.write_text(edited.read_text() + "# our change\n")
    (tmp_path / "runbooks" / "default.md").unlink()  # refused as a whole: no half-written copy either

    assert main(["init", str(tmp_path)]) == 1
    assert f"{edited}" in capsys.readouterr().err
    assert edited.read_text().endswith("# our change\n")
    assert not (tmp_path / "runbooks" / "default.md").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from bot import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"incident-bot {__version__}"


def test_demo_without_its_configuration_says_so_instead_of_blaming_the_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.demo import runner

    monkeypatch.setattr(runner, "SHIPPED", tmp_path / "not-installed")
    assert runner.run_demo(port=0, sandbox_port=0) == 2
    err = capsys.readouterr().err
    assert "the shipped configuration is missing" in err
    assert "cannot listen" not in err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--workers", "2"], "--workers needs --web-only"),
        (["--web-only", "--workers", "0"], "must be 1 or more, not 0"),
        (["--web-only", "--workers", "two"], "must be a whole number, not two"),
    ],
)
def test_serve_refuses_several_processes_that_would_each_run_the_scheduler(
    options: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *options])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_web_processes_that_cannot_share_the_port_refuse_to_start(tmp_path: Path) -> None:
    held = socket.socket()  # bound without SO_REUSEPORT: nobody may join it
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        port = str(held.getsockname()[1])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--web-only",
                "--workers",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                port,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "LOG_LEVEL": "WARNING"},
        )
    finally:
        held.close()
    assert result.returncode == 1, result.stderr
    assert "cannot listen on 127.0.0.1" in result.stderr

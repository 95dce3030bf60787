"""matplotlib is the optional ``charts`` extra: without it the chart is refused with the install
command, on the command line and in Slack, and everything else keeps working."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.storage.database import make_engine, migrate
from tests.slack.harness import SlackEnv, slack_env
from tests.slack.slo_data import push_slo_history

REPO = Path(__file__).resolve().parents[2]
INSTALL = "pip install 'incident-bot[charts]'"


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of matplotlib fail as they do where the extra is not installed."""
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] or ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("matplotlib.backends.backend_agg", "matplotlib.dates", "matplotlib.figure", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        push_slo_history(running.service, running.clock)
        yield running


@pytest.mark.usefixtures("without_matplotlib")
def test_the_command_line_chart_names_the_extra_and_the_dashboard_still_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    migrate(make_engine(url))
    monkeypatch.setenv("DATABASE_URL", url)
    chart = tmp_path / "budget.png"
    assert main(["slo", "status", "support-bot", "--config-dir", str(REPO), "--chart", str(chart)]) == 1
    captured = capsys.readouterr()
    assert "response_time_p95_ms" in captured.out
    assert "needs matplotlib, which is not installed" in captured.err and INSTALL in captured.err
    assert not chart.exists()


def test_slack_chart_names_the_extra_instead_of_try_again(env: SlackEnv, without_matplotlib: None) -> None:
    before = len(env.slack.calls_to("response_url"))
    assert env.command("/slo", "status support-bot chart").status_code == 200
    call = env.slack.wait_for("response_url", count=before + 1)
    assert INSTALL in call.params["text"]
    assert env.slack.calls_to("files.getUploadURLExternal") == []

"""``/changes [model] [window]``: what shipped lately, answered through the response URL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.config.loader import load_config
from bot.slack.commands import ChangesRequest, parse_changes_args
from bot.slack.replies import Reply
from tests.slack.harness import SlackEnv, slack_env

REPO = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


def test_changes_lists_what_shipped_newest_first(env: SlackEnv) -> None:
    now = env.clock.now()
    ChangeLog(env.engine).record(
        [
            Change("support-bot", ChangeKind.DATASET, "d9", now - timedelta(days=3)),
            Change("support-bot", ChangeKind.PROMPT, "v42", now - timedelta(minutes=4), author="dana"),
            Change("fraud-detector-v2", ChangeKind.DEPLOY, "b7", now - timedelta(hours=2)),
        ]
    )
    assert env.command("/changes").status_code == 200
    call = env.slack.wait_for("response_url")
    assert call.params["response_type"] == "ephemeral"
    assert call.params["text"] == "Changes to any model in the last 1 d, newest first:"
    shown = call.params["blocks"][0]["text"]["text"]
    assert shown.index("support-bot: prompt v42 by dana") < shown.index("fraud-detector-v2: deploy b7")
    assert "dataset d9" not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ChangesRequest()),
        ("support-bot", ChangesRequest("support-bot")),
        ("7d", ChangesRequest(None, 7 * DAY)),
        ("support-bot 30d", ChangesRequest("support-bot", 30 * DAY)),
    ],
)
def test_the_arguments_read_as_model_and_window(text: str, expected: ChangesRequest) -> None:
    assert parse_changes_args(load_config(REPO), text) == expected


def test_a_mistyped_model_gets_the_close_names_and_nonsense_the_usage() -> None:
    config = load_config(REPO)
    typo = parse_changes_args(config, "suport-bot")
    assert isinstance(typo, Reply) and "Did you mean: `support-bot`" in typo.text
    assert isinstance(parse_changes_args(config, "a b c"), Reply)
    bad_window = parse_changes_args(config, "support-bot forever")
    assert isinstance(bad_window, Reply) and "/changes [model] [window]" in bad_window.text

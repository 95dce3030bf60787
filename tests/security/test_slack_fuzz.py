"""Correctly signed nonsense at ``/slack/events``: arbitrary slash-command text, garbage bodies and
random interaction payloads. Never a 5xx; a refusal is a 4xx with a readable JSON reason or a 200
whose refusal the person is told; the alert and every other row stay as they were.

Every example is signed as Slack signs (v0 HMAC, current timestamp) and carries a fresh
``trigger_id`` where Slack would, so it passes the signature and replay gates and reaches the
parsers and listeners behind them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.slack.payloads import alert_id_of
from tests.security.conftest import FORM, Edge, examples
from tests.security.hostile import hostile_text

EXAMPLES = examples(120)
COMMANDS = ["/runbook", "/alerts", "/slo", "/silence"]
BUTTONS = ["alert_acknowledge", "alert_resolve", "alert_runbook", "alert_silence"]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
words = st.sampled_from(
    ["status", "support-bot", "fraud-detector-v2", "review", "list", "end", "7d", "30m", "<!channel>", "*", "1"]
)
command_text = (
    st.text(max_size=200)
    | st.lists(words | st.text(max_size=12), max_size=5).map(" ".join)
    | st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=4000)
)


def readable(answer_text: str) -> bool:
    try:
        body = json.loads(answer_text)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and len(body["error"]) > 5


def check_refusal(status: int, text: str) -> None:
    assert status < 500, text
    if status >= 400 and status != 404:  # 404 is Bolt's "no listener for this" (no body to read)
        assert readable(text), text


@pytest.fixture(scope="module")
def commands(edge: Edge) -> list[str]:
    """The commands this build registers (``/silence`` arrives with its own change)."""
    return [c for c in COMMANDS if edge.registered(c)]


# --------------------------------------------------------------------------- slash commands


def could_silence(command: str, text: str) -> bool:
    """``/silence <target> <duration>`` mutes alerts when the target exists: a legitimate change."""
    return command == "/silence" and re.match(r"\s*\S+\s+\d", text) is not None


@EXAMPLES
@given(index=st.integers(0, len(COMMANDS) - 1), text=command_text)
def test_any_command_text_is_answered_and_changes_nothing(
    edge: Edge, commands: list[str], index: int, text: str
) -> None:
    command = commands[index % len(commands)]
    if could_silence(command, text):
        text = "list " + text
    event(command)
    before = edge.snapshot()
    url = edge.slack.response_url()
    answer = edge.post(edge.command_body(command, text, response_url=url))
    assert answer.status_code == 200, answer.text
    body = answer.json() if answer.content else {}
    if body.get("text"):
        event("answered in the ack")
    else:  # the answer goes to the response_url from the after-ack worker
        key = url.rsplit("/", 1)[1]
        call = edge.slack.wait_for(lambda c: c.method == "response_url" and c.path.endswith(key))
        assert call.params.get("text"), call.params
        event("answered through the response_url")
    assert edge.snapshot() == before


# --------------------------------------------------------------------------- garbage bodies

content_types = st.sampled_from([FORM, "application/json", "text/plain", "multipart/form-data; boundary=x", None])


@EXAMPLES
@given(body=st.binary(max_size=400) | st.text(max_size=200).map(str.encode), content_type=content_types)
def test_a_validly_signed_garbage_body_is_a_4xx(edge: Edge, body: bytes, content_type: str | None) -> None:
    before = edge.snapshot()
    answer = edge.post(body, content_type)
    event(f"status {answer.status_code}")
    check_refusal(answer.status_code, answer.text)
    assert answer.status_code != 200 or body.strip() in (b"", b"ssl_check=1") or answer.text == ""
    assert edge.snapshot() == before


anything = st.text(max_size=10) | json_values | hostile_text
event_types = st.sampled_from(
    ["app_home_opened", "message", "app_mention", "tokens_revoked", "app_uninstalled", "function_executed",
     "assistant_thread_started", "workflow_step_execute"]
) | st.text(max_size=8)  # fmt: skip
events = st.fixed_dictionaries(
    {"type": event_types},
    optional={k: anything for k in ("user", "channel", "tab", "subtype", "thread_ts", "ts", "bot_id", "tokens",
                                    "assistant_thread", "function", "function_execution_id", "user_team")},
)  # fmt: skip
payload_types = st.sampled_from(
    ["event_callback", "block_actions", "view_submission", "view_closed", "shortcut", "message_action",
     "interactive_message", "dialog_submission", "block_suggestion", "url_verification", "function_executed"]
) | st.text(max_size=8)  # fmt: skip
slack_shaped = st.fixed_dictionaries(
    {"type": payload_types},
    optional={
        "event": events | anything,
        "team_id": anything,
        "team": st.fixed_dictionaries({"id": anything}) | anything,
        "user": st.fixed_dictionaries({"id": anything, "team_id": anything}) | anything,
        "view": st.fixed_dictionaries({}, optional={k: anything for k in ("type", "team_id", "callback_id",
                                                                           "app_installed_team_id")}) | anything,
        "authorizations": st.lists(st.fixed_dictionaries({"team_id": anything}) | anything, max_size=2),
        "enterprise": anything,
        "channel": anything,
        "container": anything,
        "actions": st.lists(st.fixed_dictionaries({"action_id": anything}) | anything, max_size=2),
        "callback_id": anything,
        "command": anything,
        "text": anything,
        "challenge": anything,
        "is_ext_shared_channel": anything,
        "function_data": anything,
        "bot_access_token": anything,
    },
)  # fmt: skip
"""Payloads shaped like Slack's (the keys Bolt reads while routing), with any value in any key."""


@EXAMPLES
@given(payload=json_values | slack_shaped, wrap=st.booleans())
def test_random_json_as_a_payload_is_refused_without_a_5xx(edge: Edge, payload: Any, wrap: bool) -> None:
    """Random and Slack-shaped JSON in ``payload=`` (an interaction) or as the body (an event)."""
    before = edge.snapshot()
    body, content_type = (edge.form(payload), FORM) if wrap else (json.dumps(payload).encode(), "application/json")
    answer = edge.post(body, content_type)
    event(f"status {answer.status_code}")
    check_refusal(answer.status_code, answer.text)
    edge.settle(quiet=0.02)
    assert edge.snapshot() == before


# --------------------------------------------------------------------------- interaction payloads

texts_or_values = st.text(max_size=30) | json_values
click_fields = st.fixed_dictionaries(
    {},
    optional={
        "user": st.none() | st.text(max_size=10) | st.fixed_dictionaries({"id": texts_or_values}) | json_values,
        "channel": st.none() | st.text(max_size=10) | st.fixed_dictionaries({"id": texts_or_values}) | json_values,
        "container": st.none() | st.fixed_dictionaries({"channel_id": texts_or_values}) | json_values,
        "trigger_id": texts_or_values,
        "response_url": texts_or_values,
        "message": json_values,
        "view": json_values,
        "state": json_values,
        "type": st.sampled_from(["block_actions", "view_submission", "shortcut", "message_action"])
        | st.text(max_size=8),
    },
)
actions = st.lists(
    st.fixed_dictionaries(
        {"action_id": st.sampled_from(BUTTONS) | st.text(max_size=12)},
        optional={"value": st.text(max_size=24) | json_values, "block_id": texts_or_values, "type": texts_or_values},
    )
    | json_values,
    max_size=3,
)


@EXAMPLES
@given(fields=click_fields, actions=actions)
def test_a_click_with_random_fields_and_values_never_changes_the_alert(
    edge: Edge, fields: dict[str, Any], actions: list[Any]
) -> None:
    """A genuine-looking ``block_actions`` payload with fuzzed fields and action values.

    The alert's own id is kept out of the values: a click carrying it is a real click."""
    for action in actions:
        if isinstance(action, dict) and alert_id_of(str(action.get("value", ""))) == edge.alert_id:
            action["value"] = f"{edge.alert_id}x"
    before = edge.snapshot()
    payload = edge.click_payload("alert_acknowledge") | {"actions": actions} | fields
    answer = edge.post(edge.form(payload))
    event(f"status {answer.status_code}")
    check_refusal(answer.status_code, answer.text)
    edge.settle(quiet=0.03)
    assert edge.snapshot() == before


@EXAMPLES
@given(action_id=st.sampled_from(BUTTONS), value=st.text(max_size=40))
def test_a_button_with_a_random_value_is_refused_with_a_reason(edge: Edge, action_id: str, value: str) -> None:
    if alert_id_of(value) == edge.alert_id:
        value += "x"
    before, said = edge.snapshot(), len(edge.slack.calls_to("chat.postEphemeral"))
    answer = edge.post(edge.form(edge.click_payload(action_id, value=value)))
    if answer.status_code == 404:  # a button this build does not have
        return
    assert answer.status_code == 200, answer.text
    # the refusal is the after-ack worker's last step: wait for it, however long a loaded machine takes
    told = str(edge.slack.wait_for("chat.postEphemeral", count=said + 1).params.get("text"))
    assert "cannot read" in told or "does not exist" in told, told
    assert edge.snapshot() == before

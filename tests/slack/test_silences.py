"""Silences from Slack (SPEC §1, §2): ``/silence`` parsed against the configuration, and the
``Silence 1h`` button, through real signed requests against the running app with the Slack Web
API emulator on the other side (harness: ``tests/slack/harness.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlmodel import col, select

from bot.alerts import store
from bot.alerts.lifecycle import AlertState
from bot.config.loader import Config
from bot.config.schema import Model
from bot.incidents import store as incident_store
from bot.notify.notifier import THREAD_NOTE
from bot.silences import store as silence_store
from bot.silences.silence import Silence
from bot.slack.silence_args import (
    USAGE,
    EndRequest,
    ListRequest,
    SilenceRequest,
    Target,
    parse_silence_args,
    target_channels,
)
from bot.slack.silence_replies import list_reply
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow, OutboxRow
from tests.slack.harness import ANA, BEN, CHANNEL_NAME, EVE, TOKEN, SlackEnv, shipped_config, slack_env

COST_RULE, BOT_MODEL = "llm_cost_runaway", "support-bot"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


def active(env: SlackEnv) -> list[Silence]:
    with open_session(env.engine) as s:
        return silence_store.active(s, now=env.clock.now())


def outbox_of(env: SlackEnv, alert_id: int) -> list[OutboxRow]:
    with open_session(env.engine) as s:
        return list(s.exec(select(OutboxRow).where(OutboxRow.alert_id == alert_id).order_by(col(OutboxRow.id))).all())


def thread_notes(env: SlackEnv) -> list[dict[str, object]]:
    """The thread notes queued for delivery (the outbox posts them, retried and once)."""
    with open_session(env.engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.kind == THREAD_NOTE).order_by(col(OutboxRow.id))).all()
    return [dict(row.payload) for row in rows]


def thread_note(env: SlackEnv) -> dict[str, object]:
    """Wait for the click's note to be queued; return it."""
    env.wait_until(lambda: thread_notes(env))
    [note] = thread_notes(env)
    return note


def answer_of(env: SlackEnv, count: int = 1) -> str:
    """The text of the ``count``-th answer sent through a command's ``response_url``."""
    call = env.slack.wait_for("response_url", count=count)
    assert call.params["response_type"] == "ephemeral"
    return str(call.params["text"])


# --------------------------------------------------------------------------- parsing (pure)


def parse(text: str, config: Config | None = None) -> object:
    return parse_silence_args(config or shipped_config(), text)


def test_a_rule_a_model_and_a_rule_on_a_model() -> None:
    assert parse("latency_spike 2h") == SilenceRequest(Target("latency_spike", None), timedelta(hours=2), "")
    assert parse("support-bot 30m  deploying v3 ") == SilenceRequest(
        Target(None, "support-bot"), timedelta(minutes=30), "deploying v3"
    )
    assert parse("latency_spike:fraud-detector-v2 1h30m load test") == SilenceRequest(
        Target("latency_spike", "fraud-detector-v2"), timedelta(hours=1, minutes=30), "load test"
    )


def test_star_means_every_rule_or_every_model_and_slo_rules_are_known() -> None:
    assert parse("*:support-bot 1h") == SilenceRequest(Target(None, "support-bot"), timedelta(hours=1), "")
    assert parse("latency_spike:* 1h") == SilenceRequest(Target("latency_spike", None), timedelta(hours=1), "")
    slo = shipped_config().slos[0]
    rule = f"slo:{slo.name or slo.metric}"
    assert parse(f"{rule} 1h") == SilenceRequest(Target(rule, None), timedelta(hours=1), "")
    assert parse(f"{rule}:{slo.model} 1h") == SilenceRequest(Target(rule, slo.model), timedelta(hours=1), "")
    assert "everything" in str(parse("*:* 1h"))


def test_a_name_that_is_both_a_rule_and_a_model_silences_the_rule_and_says_so() -> None:
    base = shipped_config()
    both = replace(base, models={**base.models, "latency_spike": Model(name="latency_spike")})
    request = parse("latency_spike 1h", both)
    assert isinstance(request, SilenceRequest)
    assert (request.target.rule, request.target.model) == ("latency_spike", None)
    assert "both a rule and a model" in request.target.note and "`*:latency_spike`" in request.target.note


def test_list_and_end() -> None:
    assert parse("list") == ListRequest()
    assert parse("LIST") == ListRequest()
    assert parse("end 12") == EndRequest(12)
    assert parse("end #12") == EndRequest(12)
    assert "is not a silence id" in str(parse("end twelve"))
    assert parse("end") == USAGE
    assert parse("list everything") == USAGE


def test_usage_unknown_names_and_bad_durations() -> None:
    assert parse("") == USAGE
    assert str(parse("support-bot")).startswith("Say for how long")
    typo = str(parse("suport-bot 1h"))
    assert "Unknown rule or model `suport-bot`" in typo and "Did you mean: `support-bot`?" in typo
    assert "`latency_spike`" in typo and "`fraud-detector-v2`" in typo
    model_typo = str(parse("latency_spike:fraud-detector 1h"))
    assert "Unknown model `fraud-detector` in `latency_spike:fraud-detector`" in model_typo
    assert "Did you mean: `fraud-detector-v2`?" in model_typo
    rule_typo = str(parse("latency_spik:support-bot 1h"))
    assert "Unknown rule `latency_spik`" in rule_typo and "Did you mean: `latency_spike`" in rule_typo
    assert "is not a duration" in str(parse("support-bot soon"))
    assert "between 1 min and 7 d" in str(parse("support-bot 8d"))
    assert "between 1 min and 7 d" in str(parse("support-bot 10s"))
    assert "Name what to silence first" in str(parse("2h support-bot"))


def test_what_a_user_typed_is_escaped() -> None:
    reply = str(parse("<!channel> 1h"))
    assert "<!channel>" not in reply and "&lt;!channel&gt;" in reply
    assert "<!here>" not in str(parse("support-bot <!here>"))


def test_the_channels_a_target_alerts_in() -> None:
    config = shipped_config()
    assert target_channels(config, COST_RULE, BOT_MODEL) == {CHANNEL_NAME}
    assert target_channels(config, None, BOT_MODEL) == {CHANNEL_NAME}
    assert target_channels(config, "latency_spike", None) == {"#ml-alerts", CHANNEL_NAME}


def test_list_reply_escapes_reasons_and_names_ids(env: SlackEnv) -> None:
    now = env.clock.now()
    silences = [
        Silence("latency_spike", None, now, now + timedelta(hours=2), ANA, "<!channel> load test", id=4),
        Silence(None, "support-bot", now, now + timedelta(minutes=30), BEN, "", id=7),
    ]
    text = list_reply(silences, now=now)
    assert text.splitlines()[0] == "*2 active silences*"
    assert text.splitlines()[1].startswith("#7 · model `support-bot` (every rule)")  # ends first
    assert "30 min left" in text and f"<@{BEN}>" in text
    assert "#4 · rule `latency_spike` (every model)" in text and "&lt;!channel&gt; load test" in text
    assert "<!channel>" not in text
    assert list_reply([], now=now).startswith("No active silences.")


# --------------------------------------------------------------------------- /silence over signed requests


def test_silence_command_mutes_and_confirms_with_the_end_time(env: SlackEnv) -> None:
    answer = env.command("/silence", f"{COST_RULE}:{BOT_MODEL} 2h deploy of v3", user=BEN)
    assert answer.status_code == 200 and answer.text == ""
    text = answer_of(env)
    [silence] = active(env)
    assert (silence.rule, silence.model, silence.created_by, silence.reason) == (
        COST_RULE,
        BOT_MODEL,
        BEN,
        "deploy of v3",
    )
    assert silence.ends_at == env.clock.now() + timedelta(hours=2)
    assert text.startswith(f"🔕 Silenced rule `{COST_RULE}` on model `{BOT_MODEL}` for 2 h, until <!date^")
    assert f"^{int(silence.ends_at.timestamp())}^" in text and "|2026-01-05 11:00 UTC>" in text
    assert f"Silence #{silence.id}" in text and f"`/silence end {silence.id}`" in text


def test_silence_list_and_end(env: SlackEnv) -> None:
    env.command("/silence", f"{BOT_MODEL} 1h")
    answer_of(env)
    [silence] = active(env)
    env.command("/silence", "list")
    listed = answer_of(env, count=2)
    assert f"#{silence.id} · model `{BOT_MODEL}` (every rule)" in listed and f"<@{ANA}>" in listed
    env.command("/silence", f"end {silence.id}")
    assert f"Silence #{silence.id} of model `{BOT_MODEL}` (every rule) ended" in answer_of(env, count=3)
    assert active(env) == []
    env.command("/silence", f"end {silence.id}")
    assert f"There is no active silence #{silence.id}" in answer_of(env, count=4)
    env.command("/silence", "list")
    assert answer_of(env, count=5).startswith("No active silences.")


def test_usage_errors_are_answered_in_the_ack_and_change_nothing(env: SlackEnv) -> None:
    usage = env.command("/silence").json()
    assert usage["response_type"] == "ephemeral" and usage["text"] == USAGE
    typo = env.command("/silence", "suport-bot 1h").json()["text"]
    assert "Did you mean: `support-bot`?" in typo
    assert "is not a duration" in env.command("/silence", "support-bot 1 hour").json()["text"]
    assert "between 1 min and 7 d" in env.command("/silence", "support-bot 30d").json()["text"]
    assert env.slack.calls_to("response_url") == []
    assert active(env) == []


def test_channel_members_policy_applies_to_the_command(env: SlackEnv) -> None:
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    env.command("/silence", f"{BOT_MODEL} 1h", user=EVE)
    assert "not allowed to silence" in answer_of(env)
    # the alerts of fraud-detector-v2 are posted to #ml-alerts: run from #llm-alerts, it is refused
    env.command("/silence", "fraud-detector-v2 1h", user=ANA)
    assert "run `/silence` in the channel these alerts are posted to (#ml-alerts)" in answer_of(env, count=2)
    assert active(env) == []
    env.command("/silence", f"{BOT_MODEL} 1h", user=ANA)
    assert answer_of(env, count=3).startswith("🔕 Silenced model")
    [silence] = active(env)
    env.command("/silence", f"end {silence.id}", user=EVE)
    assert "not allowed to silence" in answer_of(env, count=4)
    assert len(active(env)) == 1


# --------------------------------------------------------------------------- the Silence 1h button


def post_root(env: SlackEnv) -> str:
    """Post the alert's root message to the emulator and record it, as the notifier would."""
    answer = WebClient(token=TOKEN, base_url=env.slack.base_url).chat_postMessage(channel=CHANNEL_NAME, text="alert")
    ts = str(answer["ts"])
    with open_session(env.engine) as s, s.begin():
        store.record_slack_message(s, env.alert_id, channel=str(answer["channel"]), ts=ts)
        incident_store.record_slack_message(s, env.incident_id, channel=str(answer["channel"]), ts=ts)
    return ts


def test_the_incidents_silence_button_mutes_what_the_incident_groups(env: SlackEnv) -> None:
    """An incident grouped by model (the default) mutes the model, every rule, for an hour."""
    ts = post_root(env)
    env.click("incident_silence", user=ANA, value=str(env.incident_id))
    note = thread_note(env)
    assert note == {"channel": env.channel, "thread_ts": ts, "text": f"🔕 Silenced for 1 h by <@{ANA}>"}
    [silence] = active(env)
    assert (silence.rule, silence.model, silence.created_by) == (None, BOT_MODEL, ANA)
    assert silence.reason == f"Silence 1h button on incident #{env.incident_id}"
    env.click("incident_silence", user=BEN, value=str(env.incident_id))
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert call.params["user"] == BEN and len(active(env)) == 1, "a second click adds nothing"


def test_the_incidents_silence_button_follows_the_access_policy_of_the_incidents_channel(env: SlackEnv) -> None:
    env.config.allow("channel_members")
    post_root(env)
    env.slack.set_members(env.channel, [ANA])
    env.click("incident_silence", user=EVE, value=str(env.incident_id))
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == EVE and "not allowed to silence" in call.params["text"]
    assert active(env) == []


def test_silence_button_mutes_the_rule_on_the_model_for_an_hour_until_it_ends(env: SlackEnv) -> None:
    ts = post_root(env)
    assert env.click("alert_silence", user=ANA).status_code == 200
    note = thread_note(env)
    assert note == {"channel": env.channel, "thread_ts": ts, "text": f"🔕 Silenced for 1 h by <@{ANA}>"}
    [silence] = active(env)
    assert (silence.rule, silence.model, silence.created_by) == (COST_RULE, BOT_MODEL, ANA)
    assert silence.ends_at - silence.starts_at == timedelta(hours=1)
    env.wait_until(lambda: len(env.ephemerals(ANA)) == 1)  # told after the silence and its note are stored
    [confirmation] = env.ephemerals(ANA)
    assert confirmation.startswith(f"🔕 Silenced rule `{COST_RULE}` on model `{BOT_MODEL}` for 1 h, until <!date^")
    assert env.alert().state is AlertState.FIRING  # silencing is not acknowledging

    # the alert clears and fires again while silenced (a short cooldown): recorded, but nobody is notified
    config = env.config.config
    short = [
        r.model_copy(update={"cooldown": timedelta(minutes=1)}) if r.name == COST_RULE else r for r in config.rules
    ]
    env.config.config = replace(config, rules=tuple(short))
    env.service.resolve(env.alert_id, actor=ANA)
    env.clock.advance(timedelta(minutes=5))
    env.service.ingest([(BOT_MODEL, "daily_cost_usd", env.clock.now(), 480.0)])
    env.service.evaluate_once()
    with open_session(env.engine) as s:
        [again] = [a for a in store.active(s) if a.rule == COST_RULE]
    assert again.id is not None and again.id != env.alert_id
    assert outbox_of(env, again.id) == []

    # the silence ends: the release announces the still-firing alert, once
    env.clock.advance(timedelta(hours=1))
    assert active(env) == []
    assert env.service.release_unmuted() == 1
    [fired] = outbox_of(env, again.id)
    assert fired.kind == "alert.fired" and fired.payload["detail"] == "silence ended"
    assert env.service.release_unmuted() == 0


def test_a_second_click_adds_no_second_silence(env: SlackEnv) -> None:
    post_root(env)
    env.click("alert_silence", user=ANA)
    env.wait_until(lambda: len(env.ephemerals(ANA)) == 1)
    env.click("alert_silence", user=BEN)
    env.wait_until(lambda: len(env.ephemerals(BEN)) == 1)
    assert "already silenced until" in env.ephemerals(BEN)[0] and f"<@{ANA}>" in env.ephemerals(BEN)[0]
    assert len(active(env)) == 1
    assert len(thread_notes(env)) == 1


def test_silence_button_follows_the_access_policy(env: SlackEnv) -> None:
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    env.click("alert_silence", user=EVE)
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == EVE and "not allowed to silence" in call.params["text"]
    assert active(env) == []


def test_silence_button_checks_the_alerts_channel_not_the_one_the_click_names(env: SlackEnv) -> None:
    """A copy of the message clicked in Eve's own channel names that channel; she is no member of the alert's."""
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    own = env.slack.channel_id("#eve-private")
    env.slack.set_members(own, [EVE])
    post_root(env)
    env.click("alert_silence", user=EVE, overrides={"channel": {"id": own, "name": "eve-private"}})
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == EVE and "not allowed to silence" in call.params["text"]
    assert active(env) == []


def test_silence_button_with_a_bad_or_unknown_alert_id(env: SlackEnv) -> None:
    env.click("alert_silence", value="<!channel>")
    call = env.slack.wait_for("chat.postEphemeral")
    assert "cannot read" in call.params["text"] and "<!channel>" not in json.dumps(call.params)
    env.click("alert_silence", value="999999")
    assert "does not exist" in env.slack.wait_for("chat.postEphemeral", count=2).params["text"]
    assert active(env) == []


def test_without_a_root_message_the_click_still_silences_and_replies_under_the_clicked_message(env: SlackEnv) -> None:
    """A click carries the message it came from; the thread reply goes there if nothing is recorded."""
    ts = post_root(env)
    with open_session(env.engine) as s, s.begin():
        row = s.get(AlertRow, env.alert_id)
        assert row is not None
        row.slack_channel = row.slack_ts = None
        s.add(row)
    message = {"container": {"type": "message", "message_ts": ts, "channel_id": env.channel}}
    env.click("alert_silence", user=ANA, overrides=message)
    assert thread_note(env)["thread_ts"] == ts
    assert len(active(env)) == 1

"""Tests for the Slack Web API emulator, driven through real clients.

``slack_sdk.WebClient`` covers the path the bot uses (JSON / form bodies,
Bearer token); plain httpx covers form posts with JSON-string fields and
raw HTTP details such as status codes and headers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.emulators.slack_api import SlackEmulator

TOKEN = "xoxb-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(members={"#ml-alerts": ["U1", "U2"]}, usergroups={"S0ONCALL": ["U1"]}) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> WebClient:
    # No retry handlers: tests must see the raw 429 / 5xx, not a retried success.
    return WebClient(token=TOKEN, base_url=slack.base_url, retry_handlers=[], timeout=5)


def form_post(slack: SlackEmulator, method: str, token: str | None = TOKEN, **fields: Any) -> httpx.Response:
    """POST form-encoded like Slack's docs show: JSON-valued fields as strings."""
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(slack.base_url + method, data=data, headers=headers, timeout=5)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**overrides: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": "Ack"}, "action_id": "ack", **overrides}


# ------------------------------------------------------------------ basics
def test_auth_test_and_base_url(slack: SlackEmulator, client: WebClient) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:") and slack.base_url.endswith("/api/")
    resp = client.auth_test()
    assert resp["user_id"] == slack.bot_user_id and resp["bot_id"] == slack.bot_id
    assert {"team_id", "team", "user", "url"} <= set(resp.data)
    assert slack.calls_to("auth.test")[0].headers["authorization"] == AUTH["Authorization"]


def test_post_update_history_round_trip(slack: SlackEmulator, client: WebClient) -> None:
    first = client.chat_postMessage(channel="#ml-alerts", text="GPU node down", blocks=[section("*GPU down*")])
    channel = first["channel"]
    assert channel == slack.channel_id("#ml-alerts") and channel.startswith("C")
    second = client.chat_postMessage(channel=channel, text="second")
    assert float(second["ts"]) > float(first["ts"])

    updated = client.chat_update(channel=channel, ts=first["ts"], text="GPU node recovered", blocks=[])
    assert updated["ts"] == first["ts"] and updated["text"] == "GPU node recovered"

    history = client.conversations_history(channel=channel, limit=10)
    assert [m["text"] for m in history["messages"]] == ["second", "GPU node recovered"]  # newest first
    assert history["messages"][1]["blocks"] == []
    assert [m["text"] for m in slack.messages("#ml-alerts")] == ["GPU node recovered", "second"]
    older = client.conversations_history(channel=channel, oldest=first["ts"])
    assert [m["ts"] for m in older["messages"]] == [second["ts"]]  # oldest is exclusive


def test_update_unknown_message_and_name_only_methods(client: WebClient, slack: SlackEmulator) -> None:
    channel = client.chat_postMessage(channel="#ml-alerts", text="x")["channel"]
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=channel, ts="1.000001", text="y")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err:
        client.conversations_history(channel="#ml-alerts")  # Slack wants IDs here
    assert err.value.response["error"] == "channel_not_found"


def test_thread_replies(slack: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="#incidents", text="INC-1 opened")
    channel = parent["channel"]
    r1 = client.chat_postMessage(channel=channel, thread_ts=parent["ts"], text="update 1")
    client.chat_postMessage(channel=channel, thread_ts=r1["ts"], text="update 2")  # reply ts -> same thread
    assert r1["message"]["thread_ts"] == parent["ts"]

    replies = client.conversations_replies(channel=channel, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["INC-1 opened", "update 1", "update 2"]
    assert [m["text"] for m in slack.messages(channel)] == ["INC-1 opened"]  # replies are not roots
    assert slack.messages(channel)[0]["reply_count"] == 2
    assert [m["text"] for m in slack.thread(channel, parent["ts"])][1:] == ["update 1", "update 2"]
    assert slack.thread(channel, r1["ts"]) == slack.thread(channel, parent["ts"])
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=channel, thread_ts="1.000001", text="orphan")
    assert err.value.response["error"] == "thread_not_found"


def test_metadata_kept_and_found_again(slack: SlackEmulator, client: WebClient) -> None:
    metadata = {"event_type": "incident_status", "event_payload": {"incident_id": "INC-7"}}
    posted = client.chat_postMessage(channel="#ml-alerts", text="status", metadata=metadata)
    assert posted["message"]["metadata"] == metadata
    channel = posted["channel"]
    client.chat_update(channel=channel, ts=posted["ts"], text="status v2")

    with_meta = client.conversations_history(channel=channel, include_all_metadata=True)["messages"]
    mine = [m for m in with_meta if m.get("metadata", {}).get("event_payload", {}).get("incident_id") == "INC-7"]
    assert [m["ts"] for m in mine] == [posted["ts"]] and mine[0]["text"] == "status v2"
    assert "metadata" not in client.conversations_history(channel=channel)["messages"][0]  # as Slack does
    assert slack.calls_to("chat.postMessage")[0].params["metadata"] == metadata

    # Form posts carry metadata as a JSON string; the emulator decodes it.
    assert form_post(slack, "chat.postMessage", channel=channel, text="t", metadata=metadata).json()["ok"]
    assert slack.calls_to("chat.postMessage")[-1].params["metadata"] == metadata
    bad = form_post(slack, "chat.postMessage", channel=channel, text="t", metadata={"event_type": "x"})
    assert bad.json()["error"] == "invalid_metadata_format"


# --------------------------------------------------------- fault injection
def test_rate_limit_visible_to_client(slack: SlackEmulator, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="#ml-alerts", text="hello")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="#ml-alerts", text="hello")["ok"]  # only the next call fails
    attempts = slack.calls_to("chat.postMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert [m["text"] for m in slack.messages("#ml-alerts")] == ["hello"]  # the 429 stored nothing


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_injected(slack: SlackEmulator, client: WebClient, status: int) -> None:
    slack.fail_next("chat.update", times=2, status=status)
    for _ in range(2):
        resp = httpx.post(slack.base_url + "chat.update", headers=AUTH, json={"channel": "C0X", "ts": "1"})
        assert resp.status_code == status and resp.json()["ok"] is False
    assert len(slack.calls_to("chat.update")) == 2


def test_error_next_and_delay_next(slack: SlackEmulator, client: WebClient) -> None:
    slack.error_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="#gone", text="x")
    assert err.value.response.status_code == 200 and err.value.response["error"] == "channel_not_found"

    slack.delay_next("auth.test", 2.0)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(slack.base_url + "auth.test", headers=AUTH, timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert slack.wait_for("auth.test").ok  # the timed-out attempt is still recorded


# ----------------------------------------------------------- Block Kit limits
BLOCK_CASES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("51 blocks", [section("x")] * 51, "[json-pointer:/blocks]"),
    ("section text", [section("x" * 3001)], "/blocks/0/text/text"),
    ("header text", [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
    (
        "button text",
        [{"type": "actions", "elements": [button(text={"type": "plain_text", "text": "b" * 76})]}],
        "/blocks/0/elements/0/text/text",
    ),
    ("button value", [{"type": "actions", "elements": [button(value="v" * 2001)]}], "/blocks/0/elements/0/value"),
    ("action_id", [{"type": "actions", "elements": [button(action_id="a" * 256)]}], "/blocks/0/elements/0/action_id"),
    ("button style", [{"type": "actions", "elements": [button(style="warning")]}], "/blocks/0/elements/0/style"),
    (
        "26 actions",
        [{"type": "actions", "elements": [button(action_id=f"a{i}") for i in range(26)]}],
        "/blocks/0/elements]",
    ),
    (
        "context element",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 2001}]}],
        "/blocks/0/elements/0/text",
    ),
    ("block_id", [{**section("x"), "block_id": "b" * 256}], "/blocks/0/block_id"),
    ("accessory button", [{**section("x"), "accessory": button(value="v" * 2001)}], "/blocks/0/accessory/value"),
]


@pytest.mark.parametrize(("blocks", "pointer"), [c[1:] for c in BLOCK_CASES], ids=[c[0] for c in BLOCK_CASES])
def test_block_kit_limits_rejected(slack: SlackEmulator, blocks: list[dict[str, Any]], pointer: str) -> None:
    body = form_post(slack, "chat.postMessage", channel="#ml-alerts", text="t", blocks=blocks).json()
    assert body["ok"] is False and body["error"] == "invalid_blocks"
    assert any(pointer in e for e in body["errors"]), body["errors"]
    assert body["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert slack.messages("#ml-alerts") == []


def test_block_kit_limits_at_the_edge_pass(client: WebClient) -> None:
    blocks = [section("x" * 3000)] * 49 + [
        {
            "type": "actions",
            "block_id": "b" * 255,
            "elements": [button(action_id=f"a{i}", value="v" * 2000, style="danger") for i in range(25)],
        }
    ]
    assert client.chat_postMessage(channel="#ml-alerts", text="t" * 40_000, blocks=blocks)["ok"]


def test_limits_on_update_ephemeral_and_views(slack: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="#ml-alerts", text="t")
    too_many = [section("x")] * 51
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=posted["channel"], ts=posted["ts"], text="t", blocks=too_many)
    assert err.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as err:
        client.chat_postEphemeral(channel="#ml-alerts", user="U1", text="t", blocks=too_many)
    assert err.value.response["error"] == "invalid_blocks"
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Declare"}, "blocks": [section("x")] * 100}
    assert client.views_open(trigger_id="t1", view=modal)["ok"]  # 100 is fine in a view
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="t1", view={**modal, "blocks": [section("x")] * 101})
    assert err.value.response["error"] == "invalid_blocks"


def test_text_too_long_and_bad_blocks_json(slack: SlackEmulator) -> None:
    long_text = form_post(slack, "chat.postMessage", channel="#ml-alerts", text="x" * 40_001)
    assert long_text.status_code == 200 and long_text.json()["error"] == "msg_too_long"
    bad_json = form_post(slack, "chat.postMessage", channel="#ml-alerts", text="x", blocks="[{not json")
    assert bad_json.json()["error"] == "invalid_blocks_format"
    assert slack.calls_to("chat.postMessage")[-1].params["blocks"] == "[{not json"  # raw kept for debugging


# ------------------------------------------------------------ auth & methods
def test_bad_or_missing_token(slack: SlackEmulator) -> None:
    assert form_post(slack, "auth.test", token=None).json() == {"ok": False, "error": "not_authed"}
    wrong = form_post(slack, "auth.test", token="xoxb-wrong")
    assert wrong.status_code == 200 and wrong.json()["error"] == "invalid_auth"
    assert httpx.post(slack.base_url + "auth.test", data={"token": TOKEN}).json()["ok"]  # form field token
    assert len(slack.calls_to("auth.test")) == 3
    assert form_post(slack, "chat.nope").json() == {"ok": False, "error": "unknown_method"}


def test_ephemeral(slack: SlackEmulator, client: WebClient) -> None:
    resp = client.chat_postEphemeral(channel="#ml-alerts", user="U1", text="only you can see this")
    assert resp["ok"] and resp["message_ts"]
    assert slack.calls_to("chat.postEphemeral")[0].params["user"] == "U1"
    assert slack.messages("#ml-alerts") == []  # ephemeral messages are not in history


def test_views_open_publish_update_recorded(slack: SlackEmulator, client: WebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "declare",
        "title": {"type": "plain_text", "text": "Declare"},
        "blocks": [section("Severity?")],
    }
    opened = client.views_open(trigger_id="123.456", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "declare"
    updated = client.views_update(view_id=opened["id"], view={**modal, "blocks": [section("Done")]})
    assert updated["view"]["id"] == opened["id"]
    home = {"type": "home", "blocks": [section("Open incidents: 0")]}
    published = client.views_publish(user_id="U1", view=home)["view"]
    assert slack.home_view("U1")["id"] == published["id"]  # type: ignore[index]
    assert [c.method for c in slack.calls] == ["views.open", "views.update", "views.publish"]
    assert slack.calls_to("views.open")[0].params["view"] == modal
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id="V404", view=modal)
    assert err.value.response["error"] == "not_found"


def test_members_and_usergroups(slack: SlackEmulator, client: WebClient) -> None:
    assert client.conversations_members(channel=slack.channel_id("#ml-alerts"))["members"] == ["U1", "U2"]
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U1"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"


def test_file_upload_v2(slack: SlackEmulator, client: WebClient) -> None:
    channel = slack.channel_id("#ml-alerts")
    resp = client.files_upload_v2(
        channel=channel, content="loss curve", filename="loss.txt", initial_comment="see attached"
    )
    file_id = resp["files"][0]["id"]
    assert slack.file_content(file_id) == b"loss curve"
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "upload_url",
        "files.completeUploadExternal",
    ]
    assert slack.messages(channel)[0]["files"][0]["id"] == file_id


def test_response_url(slack: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="#ml-alerts", text="Ack?")
    url = slack.response_url("tok1", channel=posted["channel"], ts=posted["ts"])
    assert url.startswith(slack.url + "/response/")
    resp = httpx.post(url, json={"text": "Acked by U1", "replace_original": True, "response_type": "in_channel"})
    assert resp.json() == {"ok": True}
    call = slack.wait_for("response_url")
    assert call.params["replace_original"] is True and call.path.endswith("/tok1")
    assert slack.messages("#ml-alerts")[0]["text"] == "Acked by U1"
    assert httpx.post(slack.url + "/response/unknown", json={"text": "x"}).status_code == 404


# ---------------------------------------------------------------- wait_for
def test_wait_for_blocks_until_call_and_times_out(slack: SlackEmulator, client: WebClient) -> None:
    timer = threading.Timer(0.1, lambda: client.chat_postMessage(channel="#ml-alerts", text="late"))
    timer.start()
    call = slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("text") == "late", timeout=3)
    timer.join()
    assert call.ok
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"chat.update.*recorded: \['chat.postMessage'\]"):
        slack.wait_for("chat.update", timeout=0.2)
    assert 0.15 < time.monotonic() - started < 1.0


def test_reset_clears_state_but_keeps_channel_ids(slack: SlackEmulator, client: WebClient) -> None:
    channel = client.chat_postMessage(channel="#ml-alerts", text="x")["channel"]
    slack.fail_next("auth.test")
    slack.reset()
    assert slack.calls == [] and slack.messages(channel) == []
    assert client.auth_test()["ok"]  # pending faults were dropped
    assert slack.channel_id("#ml-alerts") == channel


def test_concurrent_posts_get_unique_increasing_ts(slack: SlackEmulator) -> None:
    channel = slack.channel_id("#ml-alerts")

    def post_many(worker: int) -> None:
        client = WebClient(token=TOKEN, base_url=slack.base_url, retry_handlers=[])
        for i in range(10):
            client.chat_postMessage(channel=channel, text=f"{worker}-{i}")

    threads = [threading.Thread(target=post_many, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps = [m["ts"] for m in slack.messages(channel)]
    assert len(stamps) == len(set(stamps)) == 60
    assert stamps == sorted(stamps, key=float)
    assert slack.wait_for("chat.postMessage", count=60).ok

"""The Alertmanager webhook against a real Alertmanager (Debian's ``prometheus-alertmanager``):
an alert posted to Alertmanager's API reaches the bot through its webhook receiver and ends as
one Slack message with buttons in the emulator; its resolution auto-resolves that message.

The receiver lists the bot's URL twice, so every notification arrives twice, as from an HA
pair: the bot must still post exactly one root message. Skipped, with the reason, where the
binary is missing; ``REQUIRE_PROMETHEUS=1`` (set by ``.ci/run``) makes that a failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bot.app import build_bot
from bot.settings import Settings
from tests.emulators.slack_api import Call, SlackEmulator
from tests.slack.harness import SECRET, TOKEN
from tests.sources.helpers import ALERTMANAGER, config_dir, require_binary, running_binary, serve, wait_until
from tests.support.ports import free_port

INGEST_TOKEN = "am-real-t0ken"
CHANNEL = "#llm-alerts"  # support-bot's channel in rules/models.yaml
WAIT = 15.0
LABELS = {"alertname": "LLMErrorRateHigh", "model": "support-bot", "severity": "critical", "instance": "pod-7"}


def alertmanager_config(bot_url: str) -> str:
    receiver = {
        "url": f"{bot_url}/api/v1/alertmanager",
        "send_resolved": True,
        "http_config": {"authorization": {"type": "Bearer", "credentials": INGEST_TOKEN}},
    }
    config = {
        "route": {
            "receiver": "incident-bot",
            "group_by": ["alertname", "model"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "incident-bot", "webhook_configs": [receiver, receiver]}],
    }
    return json.dumps(config)  # JSON is YAML


def post_alert(am_url: str, *, ends_at: datetime | None = None) -> None:
    alert: dict[str, Any] = {
        "labels": LABELS,
        "annotations": {"summary": "LLM error rate above 5%", "description": "5xx from the model API: 7.2%"},
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat()
    answer = httpx.post(f"{am_url}/api/v2/alerts", json=[alert], timeout=5)
    assert answer.status_code == 200, answer.text


def webhook_counts(am_url: str) -> tuple[float, float]:
    """Alertmanager's own count of webhook notifications sent and failed (its /metrics)."""
    sent = failed = 0.0
    for line in httpx.get(f"{am_url}/metrics", timeout=5).text.splitlines():
        if 'integration="webhook"' in line and not line.startswith("#"):
            if line.startswith("alertmanager_notifications_total"):
                sent += float(line.rsplit(" ", 1)[1])
            elif line.startswith("alertmanager_notifications_failed_total"):
                failed += float(line.rsplit(" ", 1)[1])
    return sent, failed


def rendered(call: Call) -> str:
    return f"{call.params.get('text', '')}\n{json.dumps(call.params.get('blocks') or [], ensure_ascii=False)}"


def test_an_alert_from_alertmanager_is_posted_to_slack_once_and_resolves(tmp_path: Path) -> None:
    require_binary(ALERTMANAGER)
    with SlackEmulator(token=TOKEN) as slack:
        settings = Settings(
            slack_bot_token=TOKEN,  # type: ignore[arg-type]
            slack_signing_secret=SECRET,  # type: ignore[arg-type]
            slack_api_url=slack.base_url,
            ingest_token=INGEST_TOKEN,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp_path}/bot.db",
        )
        bot = build_bot(settings, config_dir=config_dir(tmp_path, group_wait="0s"))
        with serve(bot) as served:
            port = free_port()
            am_url = f"http://127.0.0.1:{port}"
            (tmp_path / "alertmanager.yml").write_text(alertmanager_config(served.base), encoding="utf-8")
            args = [
                str(ALERTMANAGER),
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]
            with running_binary(args, f"{am_url}/-/ready", tmp_path / "alertmanager.log"):
                channel = slack.channel_id(CHANNEL)

                def root_post(call: Call) -> bool:
                    return (
                        call.method == "chat.postMessage"
                        and call.ok
                        and slack.channel_id(str(call.params.get("channel"))) == channel
                        and not call.params.get("thread_ts")
                    )

                post_alert(am_url)
                posted = slack.wait_for(root_post, timeout=WAIT)
                text = rendered(posted)
                assert "LLM error rate above 5%" in text and "P1" in text and "support-bot" in text, text
                assert "incident_acknowledge" in text and "incident_resolve" in text, text
                ts = str(posted.response["ts"])

                post_alert(am_url, ends_at=datetime.now(UTC) - timedelta(seconds=1))
                slack.wait_for(
                    lambda c: (
                        c.method == "chat.update"
                        and c.ok
                        and c.params.get("ts") == ts
                        and "auto-resolved" in rendered(c).lower()
                    ),
                    timeout=WAIT,
                )
                assert len([c for c in slack.calls if root_post(c)]) == 1, "duplicates must not post twice"
                # firing and resolved, each delivered twice, and none refused by the bot
                wait_until(lambda: webhook_counts(am_url)[0] >= 4, timeout=WAIT, what="four webhook deliveries")
                assert webhook_counts(am_url)[1] == 0
                assert len([c for c in slack.calls if root_post(c)]) == 1

"""Alertmanager's webhook payload: validation, label mapping and the pure plan (no I/O)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.lifecycle import Alert, AlertState, EventKind, Transition
from bot.config.loader import Config, load_config
from bot.notify.links import SOURCE_URL, Link, alert_links
from bot.severity import Severity
from bot.sources.alertmanager import (
    FINGERPRINTS,
    GROUP_KEY,
    Notification,
    PayloadError,
    model_name,
    parse_notification,
    plan,
    resolved_since,
    rule_name,
)
from tests.sources.helpers import NOW, config_dir

GROUP = '{}:{alertname="ModelLatencyHigh"}'


def am_alert(
    status: str = "firing",
    *,
    name: str = "ModelLatencyHigh",
    fingerprint: str = "a1b2c3d4e5f60718",
    started: datetime = NOW - timedelta(minutes=3),
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "model": "support-bot", "severity": "critical", **labels},
        "annotations": {"summary": "P99 latency above 5s", "description": "p99 is 6.1s on support-bot"},
        "startsAt": started.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else (NOW - timedelta(seconds=5)).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], group: str = GROUP, **extra: Any) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "incident-bot",
        "groupLabels": {"alertname": "ModelLatencyHigh"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def parsed(*alerts: dict[str, Any], **extra: Any) -> Notification:
    return parse_notification(json.dumps(payload(*alerts, **extra)).encode())


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(config_dir(tmp_path_factory.mktemp("am")))


class State:
    """The open alerts and last resolutions a service would hand to ``plan``, kept in memory."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.open: dict[str, Alert] = {}
        self.resolved: dict[str, datetime] = {}

    def apply(self, notification: Notification, now: datetime = NOW) -> list[Transition]:
        since = resolved_since(notification, now)
        last = {k: at for k, at in self.resolved.items() if at >= since}
        changes = plan(notification, self.config, dict(self.open), last, now)
        for change in changes:
            if change.alert.state.is_open:
                self.open[change.alert.key] = change.alert
            else:
                self.open.pop(change.alert.key, None)
                self.resolved[change.alert.key] = now
        return changes


# ----------------------------------------------------------------------------- validation


def test_a_real_v4_payload_parses() -> None:
    note = parsed(am_alert(), am_alert("resolved", fingerprint="ffff000011112222"))
    assert note.groupKey == GROUP and len(note.alerts) == 2
    assert note.alerts[0].starts_at == NOW - timedelta(minutes=3)
    assert note.alerts[1].status == "resolved"


def test_nanosecond_timestamps_and_unknown_fields_are_accepted() -> None:
    alert = {**am_alert(), "startsAt": "2026-01-05T09:57:26.739266876+02:00", "silenceURL": "http://x"}
    note = parsed(alert, orgId=1)
    assert note.alerts[0].starts_at.isoformat() == "2026-01-05T07:57:26.739266+00:00"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps({**payload(am_alert()), "version": "3"}).encode(), "version '3'"),
        (json.dumps({k: v for k, v in payload(am_alert()).items() if k != "version"}).encode(), "version None"),
        (json.dumps({**payload(am_alert()), "groupKey": ""}).encode(), "groupKey"),
        (json.dumps({**payload(am_alert()), "alerts": "x"}).encode(), "alerts"),
        (json.dumps(payload({**am_alert(), "status": "pending"})).encode(), "alerts[0].status"),
        (json.dumps(payload({**am_alert(), "labels": {"model": "x"}})).encode(), "alertname"),
        (json.dumps(payload({**am_alert(), "startsAt": "yesterday"})).encode(), "alerts[0].startsAt"),
        (json.dumps(payload({**am_alert(), "labels": {"alertname": "X", "n": 1}})).encode(), "alerts[0].labels.n"),
    ],
)
def test_a_bad_payload_is_refused_with_a_readable_reason(body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body)
    assert expected in caught.value.message


# ----------------------------------------------------------------------------- mapping


def test_rule_names_are_sanitised_and_never_collide_with_configured_rules(config: Config) -> None:
    assert rule_name("ModelLatencyHigh", config) == "ModelLatencyHigh"
    assert rule_name("disk full: /var", config) == "disk_full___var"
    assert rule_name("latency_spike", config) == "am_latency_spike"  # a rule of rules/ml.yaml
    assert rule_name("   ", config) == "alertmanager"
    assert len(rule_name("x" * 500, config)) == 100


def test_the_model_is_the_first_model_label_present(config: Config) -> None:
    section = config.alertmanager
    assert model_name({"model": "support-bot", "job": "api"}, section) == "support-bot"
    assert model_name({"service": "fraud", "job": "api"}, section) == "fraud"
    assert model_name({"job": "node exporter/1"}, section) == "node-exporter-1"
    assert model_name({"instance": "h:9100"}, section) == "unknown"


SEVERITY_LABELS = [
    ("critical", Severity.P1),
    ("page", Severity.P1),
    ("warning", Severity.P2),
    ("info", Severity.P3),
    ("P0", Severity.P0),
    ("p3", Severity.P3),
    ("", Severity.P2),
    ("whatever", Severity.P2),
]


@pytest.mark.parametrize(("label", "expected"), SEVERITY_LABELS)
def test_severity_labels_map_onto_p0_to_p3(config: Config, label: str, expected: Severity) -> None:
    assert config.alertmanager.severity_of({"severity": label}) is expected


def test_the_severity_map_and_model_labels_are_configurable(tmp_path: Path) -> None:
    extra = """
alertmanager:
  model_labels: [service]
  default_model: platform
  severity_label: priority
  severities: {critical: P0, High: P1}
  default_severity: P3
"""
    section = load_config(config_dir(tmp_path, extra)).alertmanager
    assert section.severity_of({"priority": "critical"}) is Severity.P0
    assert section.severity_of({"priority": "high"}) is Severity.P1
    assert section.severity_of({"priority": "warning"}) is Severity.P2  # the defaults still apply
    assert section.severity_of({"severity": "critical"}) is Severity.P3  # not the configured label
    assert model_name({"model": "x"}, section) == "platform"


# ----------------------------------------------------------------------------- plan


def test_a_firing_alert_fires_once_with_labels_fingerprint_and_group_key(config: Config) -> None:
    state = State(config)
    (change,) = state.apply(parsed(am_alert(instance="pod-1")))
    alert, event = change.alert, change.event
    assert event.kind is EventKind.FIRED and event.actor == "alertmanager"
    assert (alert.rule, alert.model, alert.state) == ("ModelLatencyHigh", "support-bot", AlertState.FIRING)
    assert alert.severity is Severity.P1
    assert alert.title == "P99 latency above 5s" and alert.description == "p99 is 6.1s on support-bot"
    assert alert.values[FINGERPRINTS] == "a1b2c3d4e5f60718" and alert.values[GROUP_KEY] == GROUP
    assert alert.values["instance"] == "pod-1" and "alertname" not in alert.values
    assert alert.values[SOURCE_URL] == "http://prometheus:9090/graph?g0.expr=up"  # a link on Slack and the page
    assert alert_links(config, model=alert.model, rule=alert.rule, values=alert.values)[-1] == Link(
        "Source", "http://prometheus:9090/graph?g0.expr=up"
    )
    assert alert.policy  # its incident escalates on it, as for any alert


def test_duplicates_and_repeats_change_nothing(config: Config) -> None:
    state = State(config)
    note = parsed(am_alert())
    assert len(state.apply(note)) == 1
    assert state.apply(note) == []  # the HA peer's copy
    assert state.apply(note, NOW + timedelta(hours=4)) == []  # repeat_interval


def test_a_resolved_alert_resolves_and_its_duplicates_change_nothing(config: Config) -> None:
    state = State(config)
    state.apply(parsed(am_alert()))
    resolved = parsed(am_alert("resolved"))
    (change,) = state.apply(resolved, NOW + timedelta(minutes=1))
    assert change.event.kind is EventKind.AUTO_RESOLVED and change.alert.resolved_by == "incident-bot"
    assert state.apply(resolved, NOW + timedelta(minutes=1)) == []


def test_a_resolve_for_an_alert_never_seen_is_a_no_op(config: Config) -> None:
    assert State(config).apply(parsed(am_alert("resolved"))) == []


def test_a_late_copy_of_a_firing_does_not_reopen_what_resolved_after_it_started(config: Config) -> None:
    state = State(config)
    state.apply(parsed(am_alert()))
    state.apply(parsed(am_alert("resolved")), NOW + timedelta(minutes=1))
    assert state.apply(parsed(am_alert()), NOW + timedelta(minutes=2)) == []
    # a new occurrence (it started after the resolve) fires again
    again = parsed(am_alert(started=NOW + timedelta(minutes=3)))
    (change,) = state.apply(again, NOW + timedelta(minutes=4))
    assert change.event.kind is EventKind.FIRED


def test_alerts_of_one_rule_and_model_are_one_alert_until_none_fires(config: Config) -> None:
    state = State(config)
    one, two = am_alert(fingerprint="1111", instance="a"), am_alert(fingerprint="2222", instance="b")
    (change,) = state.apply(parsed(one, two))
    assert change.alert.values[FINGERPRINTS] == "1111,2222"
    # one of them resolves: the group still has one firing, so the alert stays open
    assert state.apply(parsed({**one, "status": "resolved"}, two)) == []
    (change,) = state.apply(parsed({**two, "status": "resolved"}))
    assert change.event.kind is EventKind.AUTO_RESOLVED


def test_the_most_severe_firing_alert_sets_the_severity(config: Config) -> None:
    low, high = am_alert(fingerprint="1", severity="info"), am_alert(fingerprint="2", severity="P0")
    (change,) = State(config).apply(parsed(low, high))
    assert change.alert.severity is Severity.P0


def test_another_groups_resolve_does_not_end_an_alert_it_did_not_fire(config: Config) -> None:
    state = State(config)
    state.apply(parsed(am_alert(fingerprint="1111")))
    other = parsed(am_alert("resolved", fingerprint="2222"), group='{}:{instance="b"}')
    assert state.apply(other) == []
    # but a resolve naming every alert that fired it does, whatever its group key (a changed route)
    moved = parsed(am_alert("resolved", fingerprint="1111"), group='{}:{new="route"}')
    (change,) = state.apply(moved)
    assert change.event.kind is EventKind.AUTO_RESOLVED


def test_several_rules_and_models_in_one_group_are_separate_alerts(config: Config) -> None:
    note = parsed(
        am_alert(fingerprint="1"),
        am_alert(fingerprint="2", model="fraud-detector-v2"),
        am_alert(fingerprint="3", name="DiskFull"),
    )
    keys = [change.alert.key for change in State(config).apply(note)]
    assert keys == ["DiskFull:support-bot", "ModelLatencyHigh:fraud-detector-v2", "ModelLatencyHigh:support-bot"]


def test_an_alert_a_rule_opened_is_never_resolved_by_alertmanager(config: Config) -> None:
    state = State(config)
    (change,) = state.apply(parsed(am_alert(name="am_rule")))
    ruled = Alert(
        rule=change.alert.rule,
        model="support-bot",
        severity=Severity.P1,
        state=AlertState.FIRING,
        started_at=NOW,
        values={"p99_latency_ms": 6100.0},
    )
    state.open[ruled.key] = ruled
    assert state.apply(parsed(am_alert("resolved", name="am_rule"))) == []


def test_an_alert_without_fingerprint_is_named_by_a_hash_of_its_labels(config: Config) -> None:
    state = State(config)
    (change,) = state.apply(parsed({**am_alert(), "fingerprint": ""}, group="a"))
    assert re.fullmatch(r"[0-9a-f]{16}", str(change.alert.values[FINGERPRINTS]))
    (change,) = state.apply(parsed({**am_alert("resolved"), "fingerprint": ""}, group="b"))  # found by its labels
    assert change.event.kind is EventKind.AUTO_RESOLVED


def test_values_keep_the_other_labels_and_a_long_group_key_still_matches(config: Config) -> None:
    state = State(config)
    group = "{}:" + "x" * 5000
    (change,) = state.apply(parsed(am_alert(job="serving", runbook="r"), group=group))
    assert change.alert.values["job"] == "serving" and "model" not in change.alert.values
    assert len(str(change.alert.values[GROUP_KEY])) == 1000
    (change,) = state.apply(parsed(am_alert("resolved"), group=group))
    assert change.event.kind is EventKind.AUTO_RESOLVED


def test_a_generator_url_that_is_not_a_web_url_is_not_kept(config: Config) -> None:
    odd = {**am_alert(), "generatorURL": "javascript:alert(1)"}
    (change,) = State(config).apply(parsed(odd))
    assert SOURCE_URL not in change.alert.values

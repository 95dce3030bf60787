"""Alertmanager's webhook payload (version 4) as incident-bot alerts (SPEC §2 source c). Pure.

Alertmanager sends a *group* of alerts per notification: every alert of the group still known,
firing or just resolved, each with its labels, annotations, ``startsAt``/``endsAt`` and a
``fingerprint`` (a hash of its labels). Each alert maps onto the bot's model of the world:

* rule = ``alertname`` (characters other than letters, digits, ``_ . -`` become ``_``; a name
  that equals a rule of ``rules/`` gets the prefix ``am_``, so the evaluator never resolves an
  alert it did not fire), model = the first of ``alertmanager.model_labels`` the alert carries,
  severity = the ``severity`` label through ``alertmanager.severities``;
* the first firing alert's ``generatorURL`` (http or https) is kept in the values under
  :data:`~bot.notify.links.SOURCE_URL`: a link on the Slack message and the page;
* alerts with the same ``rule:model`` are one bot alert (the dedup key of every alert): it fires
  when the first of them fires and resolves when the group that fired it reports none firing.

Alertmanager retries, repeats and (in HA) sends each notification once per replica, so
:func:`plan` is idempotent: a firing alert whose key is open, or whose occurrence (``startsAt``)
began before the key's last resolution, changes nothing; a resolved alert for a key that is not
open changes nothing. A person who resolves an alert in Slack while Prometheus still fires it is
therefore not paged again by every ``repeat_interval``; a new occurrence (a later ``startsAt``)
fires again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.alerts.lifecycle import Alert, AlertState, Observation, Timing, Transition, dedup_key, observe
from bot.clock import ensure_utc
from bot.config.conditions import Outcome
from bot.config.loader import Config
from bot.config.source_schema import AlertmanagerSection
from bot.errors import IncidentBotError
from bot.evaluation.evaluate import policy_for
from bot.notify.links import SOURCE_URL, is_web_url
from bot.safe_text import first_unstorable

ACTOR = "alertmanager"
GROUP_KEY = "am_group_key"
FINGERPRINTS = "am_fingerprints"
STARTS_AT = "am_starts_at"
MAX_LABEL_VALUES = 20
MAX_TEXT = 3000
MAX_GROUP_KEY = 1000
_RULE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_MODEL_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class PayloadError(IncidentBotError):
    """The body is not an Alertmanager v4 payload; the message tells the sender what is wrong.

    Answered with a 4xx, which Alertmanager does not retry: a payload that is wrong now is wrong
    on every retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Lenient(BaseModel):
    """Alertmanager adds fields over versions (``truncatedAlerts``, ``silenceURL`` …): ignore them."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AmAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _named(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("alertname", "").strip():
            raise ValueError("every alert needs an alertname label")
        return value

    @property
    def starts_at(self) -> datetime:
        return ensure_utc(self.startsAt)

    @property
    def identity(self) -> str:
        """The fingerprint; an alert sent without one (by hand, with curl) gets a hash of its labels."""
        if self.fingerprint:
            return self.fingerprint.replace(",", "_")[:64]
        return hashlib.sha256(json.dumps(sorted(self.labels.items())).encode()).hexdigest()[:16]


class Notification(_Lenient):
    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[AmAlert]
    truncatedAlerts: int = 0


def parse_notification(body: bytes) -> Notification:
    """Validate a webhook body; raise :class:`PayloadError` naming the first problems found."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from None
    except RecursionError:  # json's C decoder stops at the recursion limit (not a ValueError)
        raise PayloadError("the body is not JSON Alertmanager sends: it is nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object: Alertmanager's webhook payload")
    hostile = first_unstorable(data)  # 4xx: Alertmanager would retry a 5xx for this payload forever
    if hostile:
        raise PayloadError(f"{hostile}; no alert can record it")
    if data.get("version") != "4":
        raise PayloadError(
            f"unsupported payload version {data.get('version')!r}: incident-bot reads Alertmanager's "
            'webhook payload version "4" (Alertmanager 0.7 and later)'
        )
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise PayloadError("not an Alertmanager v4 payload: " + "; ".join(problems[:5]) + more) from None


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


@dataclass(frozen=True)
class _Group:
    """The alerts of one notification that share a ``rule:model``."""

    rule: str
    model: str
    firing: tuple[AmAlert, ...]
    resolved: tuple[AmAlert, ...]


def rule_name(alertname: str, config: Config) -> str:
    name = _RULE_CHARS.sub("_", alertname.strip())[:100] or "alertmanager"
    return f"am_{name}"[:100] if config.rule(name) is not None else name


def model_name(labels: Mapping[str, str], section: AlertmanagerSection) -> str:
    for label in section.model_labels:
        cleaned = _MODEL_CHARS.sub("-", labels.get(label, "").strip()).lstrip("._-")[:100]
        if cleaned:
            return cleaned
    return section.default_model


def group_alerts(notification: Notification, config: Config) -> dict[str, _Group]:
    """The notification's alerts by dedup key, in a stable order."""
    buckets: dict[str, tuple[str, str, list[AmAlert], list[AmAlert]]] = {}
    for alert in sorted(notification.alerts, key=lambda a: a.identity):
        rule = rule_name(alert.labels["alertname"], config)
        model = model_name(alert.labels, config.alertmanager)
        _, _, firing, resolved = buckets.setdefault(dedup_key(rule, model), (rule, model, [], []))
        (firing if alert.status == "firing" else resolved).append(alert)
    return {
        key: _Group(
            rule, model, tuple(firing), tuple(a for a in resolved if a.identity not in {f.identity for f in firing})
        )
        for key, (rule, model, firing, resolved) in sorted(buckets.items())
    }


def resolved_since(notification: Notification, now: datetime) -> datetime:
    """How far back :func:`plan` needs the keys' last resolutions: the oldest firing occurrence."""
    return min((a.starts_at for a in notification.alerts if a.status == "firing"), default=now)


def plan(
    notification: Notification,
    config: Config,
    open_alerts: Mapping[str, Alert],
    last_resolved: Mapping[str, datetime],
    now: datetime,
) -> list[Transition]:
    """The transitions this notification causes, given the open alerts and the keys' last
    resolutions (since :func:`resolved_since`). Applying the same notification twice gives
    nothing the second time."""
    changes: list[Transition] = []
    for key, group in group_alerts(notification, config).items():
        current = open_alerts.get(key)
        if group.firing:
            last = last_resolved.get(key)
            handled = last is not None and all(a.starts_at <= last for a in group.firing)
            if current is None and not handled:
                changes.append(_fire(group, notification, config, now))
        elif current is not None and _resolves(current, group, notification):
            seen = Observation(group.rule, group.model, current.severity, Outcome.FALSE)
            change = observe(current, seen, Timing(), last_fired_resolved_at=None, now=now)
            if change is not None:
                changes.append(_by_alertmanager(change, "resolved in Alertmanager"))
    return changes


def _resolves(current: Alert, group: _Group, notification: Notification) -> bool:
    """Whether a notification with only resolved alerts for the key ends the open alert: it must
    be one Alertmanager opened (not a rule's), and come from the group that fired it or name
    every alert that did (a changed route changes the group key, never the fingerprints)."""
    if current.state not in (AlertState.FIRING, AlertState.ACKNOWLEDGED) or GROUP_KEY not in current.values:
        return False
    if current.values[GROUP_KEY] == _clip(notification.groupKey, MAX_GROUP_KEY):
        return True
    opened_by = set(str(current.values.get(FINGERPRINTS, "")).split(","))
    return opened_by <= {a.identity for a in group.resolved}


def _fire(group: _Group, notification: Notification, config: Config, now: datetime) -> Transition:
    first = group.firing[0]
    severity = min(config.alertmanager.severity_of(a.labels) for a in group.firing)  # the most severe
    section = config.alertmanager
    named_by = next((label for label in section.model_labels if first.labels.get(label, "").strip()), "")
    skip = {"alertname", section.severity_label, named_by}
    labels = {k: _clip(v, 500) for k, v in sorted(first.labels.items()) if k not in skip}
    values: dict[str, float | str] = dict(list(labels.items())[:MAX_LABEL_VALUES])
    if first.annotations.get("runbook_url"):
        values["runbook_url"] = _clip(first.annotations["runbook_url"], 500)
    if is_web_url(first.generatorURL):  # a link on the message and the page; a cut URL would be a broken one
        values[SOURCE_URL] = first.generatorURL
    values[FINGERPRINTS] = ",".join(a.identity for a in group.firing)
    values[GROUP_KEY] = _clip(notification.groupKey, MAX_GROUP_KEY)
    values[STARTS_AT] = min(a.starts_at for a in group.firing).isoformat()
    seen = Observation(
        group.rule,
        group.model,
        severity,
        Outcome.TRUE,
        values,
        title=_clip(first.annotations.get("summary") or first.labels["alertname"], 300),
        description=_clip(first.annotations.get("description") or first.annotations.get("message") or "", MAX_TEXT),
        policy=policy_for(config, group.model),
    )
    change = observe(None, seen, Timing(), last_fired_resolved_at=None, now=now)
    assert change is not None  # a true observation with no open alert and no cooldown always fires
    return _by_alertmanager(change, f"firing in Alertmanager ({len(group.firing)} alert(s))")


def _by_alertmanager(change: Transition, detail: str) -> Transition:
    return Transition(change.alert, replace(change.event, actor=ACTOR, detail=detail))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(changes: list[Transition]) -> dict[str, int]:
    """The webhook's answer: how many bot alerts this notification fired and resolved."""
    kinds = [change.event.kind.value for change in changes]
    return {"fired": kinds.count("fired"), "resolved": kinds.count("auto_resolved")}

"""Alert groups in Slack: alerts of one model that fire together share one root message.

A group message is nothing more than several alerts that recorded the same root message
(``slack_channel``, ``slack_ts``), so there is no group table to keep consistent: rendering
a root message means rendering every alert recorded there, and a click on any of them
re-renders the whole message from the database. This module is the pure half of grouping
(how a group looks in Block Kit, when a group may still take an alert, which queued alerts
fired together with one being delivered); the notifier in :mod:`bot.notify.slack` does the I/O.

A message of one alert renders exactly as :func:`~bot.notify.slack_blocks.alert_message`;
a group shows a header naming the model and its alerts, most severe first, each with its own
state line and its own buttons (whose value is that alert's id, so a click acts on one alert).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, DividerBlock, HeaderBlock, PlainTextObject

from bot.alerts.lifecycle import Alert, AlertState, Event, EventKind
from bot.clock import ensure_utc
from bot.config.loader import Config
from bot.notify.slack_blocks import (
    FIELDS_PER_SECTION,
    HEADER_LIMIT,
    MESSAGE_BLOCKS,
    RESOLVED_EMOJI,
    SECTION_LIMIT,
    alert_buttons,
    alert_message,
    alert_title,
    clip,
    context_line,
    escape_mrkdwn,
    fired_line,
    resolved_values,
    rule_line,
    section,
    state_emoji,
    state_line,
    summary,
    value_sections,
)
from bot.storage.tables import OutboxRow

BLOCKS_PER_ALERT = 6
"""Divider, title and description, values, state, buttons, context: the most one entry takes."""
MAX_GROUP = (MESSAGE_BLOCKS - 1) // BLOCKS_PER_ALERT
"""Alerts one message can hold (8): a header plus six blocks each stays within Slack's 50
blocks. A group that is full stops taking alerts; the next alert of the model starts a new one."""
DESCRIPTION_LIMIT = 1000
"""A group shows up to eight descriptions; keeping each short keeps the message readable."""

_STATE_WORDS = (
    (AlertState.FIRING, "firing"),
    (AlertState.ACKNOWLEDGED, "acknowledged"),
    (AlertState.RESOLVED, "resolved"),
    (AlertState.PENDING, "pending"),
)


def by_severity(alerts: Iterable[Alert]) -> list[Alert]:
    """Most severe first, then oldest: the order a group lists its alerts in, stable across updates."""
    return sorted(alerts, key=lambda a: (a.severity.rank, a.fired_at or a.started_at, a.id or 0))


def render(
    alerts: Sequence[Alert],
    *,
    now: datetime,
    runbook: Callable[[Alert], bool],
    recovered: Mapping[int, Mapping[str, object]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The root message holding ``alerts``: the single-alert layout for one, a group for more.
    ``recovered``: alert id → the values its auto-resolve saw (:func:`recovered_values`)."""
    ordered = by_severity(alerts)
    if len(ordered) == 1:
        only = ordered[0]
        return alert_message(only, now=now, runbook=runbook(only), recovered=(recovered or {}).get(only.id or 0))
    return group_message(ordered, now=now, runbook=runbook, recovered=recovered)


def recovered_values(histories: Mapping[int, Sequence[Event]]) -> dict[int, Mapping[str, object]]:
    """Alert id → the values its auto-resolve saw (the AUTO_RESOLVED event's ``data["recovered"]``)."""
    out: dict[int, Mapping[str, object]] = {}
    for alert_id, events in histories.items():
        for event in events:
            values = event.data.get("recovered")
            if event.kind is EventKind.AUTO_RESOLVED and isinstance(values, Mapping):
                out[alert_id] = values
    return out


def group_message(
    alerts: Sequence[Alert],
    *,
    now: datetime,
    runbook: Callable[[Alert], bool],
    recovered: Mapping[int, Mapping[str, object]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """A group: header, then one entry per alert with its own state and buttons.

    Two deliveries racing to join one group can leave it a little over :data:`MAX_GROUP`; the
    extra alerts are then named in a last context line rather than breaking the 50-block limit.
    """
    ordered = by_severity(alerts)
    header = group_header(ordered)
    shown = ordered[:MAX_GROUP]
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=header, emoji=True))]
    for alert in shown:
        blocks.extend(_entry(alert, now=now, runbook=runbook(alert), recovered=(recovered or {}).get(alert.id or 0)))
    if len(ordered) > len(shown):
        rest = ", ".join(escape_mrkdwn(alert_title(a)) for a in ordered[len(shown) :])
        blocks.append(context_line(f"…and {len(ordered) - len(shown)} more in this group: {rest} (see `/alerts`)"))
    fallback = "\n".join([header, *(summary(a) for a in ordered)])
    return clip(fallback, SECTION_LIMIT), [b.to_dict() for b in blocks[:MESSAGE_BLOCKS]]


def group_header(alerts: Sequence[Alert]) -> str:
    """``🟠 3 alerts firing for support-bot``; once some changed, how many are in which state.

    The emoji is the most severe *open* alert's, so a resolved P0 no longer colours a group
    whose remaining alerts are P3; once every alert is resolved it is green, not a fire.
    """
    still_open = [a for a in alerts if a.state.is_open]
    lead = by_severity(still_open or alerts)[0]
    count, model = len(alerts), lead.model
    states = Counter(a.state for a in alerts)
    if states[AlertState.FIRING] == count:
        text = f"{lead.severity.emoji} {count} alerts firing for {model}"
    elif states[AlertState.RESOLVED] == count:
        text = f"{RESOLVED_EMOJI} {count} alerts for {model} · all resolved"
    else:
        parts = ", ".join(f"{states[state]} {word}" for state, word in _STATE_WORDS if states[state])
        text = f"{lead.severity.emoji} {count} alerts for {model} · {parts}"
    return text if len(text) <= HEADER_LIMIT else text[: HEADER_LIMIT - 1] + "…"


def also_firing(alerts: Sequence[Alert]) -> str:
    """The thread reply when alerts join a group that was already posted."""
    return "\n".join(f"➕ Also firing: {_name(a)}" for a in by_severity(alerts))


def named(alert: Alert, reply: str) -> str:
    """A state-change reply in a group's thread says which of the group's alerts changed."""
    return f"{reply} — {_name(alert)}"


def posted_at(ts: str) -> datetime | None:
    """When a message was posted: a Slack ``ts`` is the Unix time of the post."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def takes_alerts(ts: str, members: Sequence[Alert], *, now: datetime, group_interval: timedelta) -> bool:
    """Whether a group message may take another alert: posted less than ``group_interval`` ago,
    not full, and not over (some alert in it still open). Past that, a new alert of the model is
    news of its own and gets a new message, which notifies the channel."""
    posted = posted_at(ts)
    return (
        posted is not None
        and now - posted < group_interval
        and len(members) < MAX_GROUP
        and any(m.state.is_open for m in members)
    )


@dataclass
class Queued:
    """The model's other alerts whose Slack post is still queued, for the same channel."""

    companions: list[Alert] = field(default_factory=list)
    """Untried and due within ``group_wait``: they fired together with the alert, so share its message."""
    tried: dict[int, datetime] = field(default_factory=dict)
    """Outbox row id -> fire time of posts tried with no known outcome: they may be in Slack already."""


def queued_with(
    rows: Iterable[OutboxRow],
    waiting: Mapping[int, Alert],
    *,
    now: datetime,
    group_wait: timedelta,
    same_channel: Callable[[Alert, OutboxRow], bool],
) -> Queued:
    """Sort the pending "fired" rows of alerts that have no message yet (``waiting``, by id).

    Rows held past ``group_wait`` (business hours) are left alone: grouping must not bring
    them forward. A row claimed for delivery right now (the outbox claims a batch at once, so
    the alerts of one evaluation pass are claimed together) counts as untried; a row whose
    attempt failed, or whose claim expired with its process, may have posted already.
    """
    queued = Queued()
    for row in rows:
        other = waiting.get(row.alert_id or 0)
        if other is None or ensure_utc(row.not_before) > now + group_wait or not same_channel(other, row):
            continue
        in_flight = row.claimed_until is not None and ensure_utc(row.claimed_until) > now
        if row.last_error is None and (row.attempts == 0 or in_flight):
            queued.companions.append(other)
        else:
            queued.tried[row.id or 0] = other.fired_at or other.started_at
    queued.companions = by_severity(queued.companions)[: MAX_GROUP - 1]
    return queued


def louder(newcomers: Iterable[Alert], members: Iterable[Alert]) -> bool:
    """Whether joining alerts are more severe than everything still open in the group.

    A chat.update notifies nobody, and a thread reply only the thread's followers; a P0 that
    joins a P3 group must reach the channel, so its reply is broadcast there too.
    """
    joining = min((a.severity.rank for a in newcomers), default=99)
    present = min((m.severity.rank for m in members if m.state.is_open), default=99)
    return joining < present


def configured_channel(alert: Alert, config: Config) -> str:
    """Where the alert's root goes: the rule's channel, else the model's, else the default.
    A rule removed by a reload still has its alerts delivered, to the model's channel."""
    rule = config.rule(alert.rule)
    if rule is not None:
        return config.channel_for(rule, alert.model)
    model = config.models.get(alert.model)
    return (model.channel if model else None) or config.settings.default_channel


def has_runbook(alert: Alert, config: Config) -> bool:
    """Whether the Runbook button has something to open for this alert."""
    rule = config.rule(alert.rule)
    if rule is not None and rule.runbook in config.runbooks:
        return True
    return config.runbook_for_model(alert.model) is not None


def _name(alert: Alert) -> str:
    return f"{state_emoji(alert)} *{alert.severity.value} · {escape_mrkdwn(alert_title(alert))}*"


def _entry(alert: Alert, *, now: datetime, runbook: bool, recovered: Mapping[str, object] | None) -> list[Block]:
    """One alert of a group, in at most :data:`BLOCKS_PER_ALERT` blocks."""
    title = _name(alert)
    description = escape_mrkdwn(alert.description.strip())
    blocks: list[Block] = [
        DividerBlock(),
        section(f"{title}\n{clip(description, DESCRIPTION_LIMIT)}" if description else title),
    ]
    values = list(alert.values.items())
    shown = dict(values[:FIELDS_PER_SECTION])  # one section at most
    blocks.extend(value_sections(shown, recovered=resolved_values(alert, recovered)))
    blocks.append(section(f"{state_line(alert, now=now)}\n{fired_line(alert)}"))
    buttons = alert_buttons(alert, runbook=runbook)
    if buttons:
        # block_id must be unique within a message, or Slack refuses it with invalid_blocks
        blocks.append(ActionsBlock(block_id=f"alert_actions_{alert.id}", elements=buttons))
    hidden = len(values) - FIELDS_PER_SECTION
    blocks.append(context_line(rule_line(alert) + (f" · {hidden} more values" if hidden > 0 else "")))
    return blocks

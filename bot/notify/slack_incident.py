"""The incident's root message in Slack: one message per incident, rendered from the incident and
its alerts as stored (pure; the notifier in :mod:`bot.notify.slack` does the I/O).

People hear about incidents, not alerts (SPEC §1), so the root shows the incident first -- its
worst severity (emoji), what it is about, how many alerts it holds and in which states -- with
buttons that act on the *whole* incident (their value is the incident id), then one section per
alert with an overflow menu that acts on that alert alone. Only the newest alert of each dedup key
(``rule:model``) is shown: a re-fire inside an open incident updates its section, it adds none.

Block Kit limits: an incident of up to :data:`DETAILED_ALERTS` alerts shows each in full (title,
description, values, state); a bigger one (a storm) shows one line per alert, up to
:data:`COMPACT_ALERTS`, then "…and N more". A storm also names its models in one section, as many
as fit in 3,000 characters; :func:`models_fit` says when they did not, so the notifier can post the
full list in the thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    PlainTextObject,
    SectionBlock,
)

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.changes.events import Change
from bot.config import choices
from bot.config.durations import humanize
from bot.config.loader import Config
from bot.incidents.incident import Incident, IncidentState
from bot.notify.links import Link, alert_links
from bot.notify.slack_blocks import (
    ALERT_MENU_ACTION,
    BOOKKEEPING_PREFIX,
    INCIDENT_ACKNOWLEDGE_ACTION,
    INCIDENT_RESOLVE_ACTION,
    INCIDENT_RUNBOOK_ACTION,
    INCIDENT_SILENCE_ACTION,
    RESOLVE_ACTION,
    RESOLVED_EMOJI,
    SILENCE_BUTTON_TEXT,
    alert_title,
    bold_name,
    fired_line,
    resolved_values,
    rule_line,
    short_state,
    state_line,
    summary,
    value_sections,
)
from bot.notify.slack_links import with_links
from bot.notify.slack_room_lines import declare_button, declared_line
from bot.notify.slack_shipped import shipped_line
from bot.notify.slack_text import (
    FIELDS_PER_SECTION,
    HEADER_LIMIT,
    MESSAGE_BLOCKS,
    SECTION_LIMIT,
    clip,
    context_line,
    escape_mrkdwn,
    format_value,
    mention,
    section,
)

DETAILED_ALERTS = 10
"""Alerts shown in full (divider, section with menu, values, context: 4 blocks each): with the
header, status, models, buttons and closing lines an incident stays within Slack's 50 blocks."""
COMPACT_ALERTS = 40
"""Alerts shown as one line each when there are more than :data:`DETAILED_ALERTS`."""
DESCRIPTION_LIMIT = 500
COMPACT_VALUES = 3
"""Values a compact line shows."""

_STATE_WORDS = (
    (AlertState.FIRING, "firing"),
    (AlertState.ACKNOWLEDGED, "acknowledged"),
    (AlertState.RESOLVED, "resolved"),
    (AlertState.PENDING, "pending"),
)
_STATE_EMOJI = {AlertState.FIRING: "🔥", AlertState.ACKNOWLEDGED: "✅", AlertState.RESOLVED: "🟢"}


def by_severity(alerts: Iterable[Alert]) -> list[Alert]:
    """Most severe first, then oldest: the order the root lists alerts in, stable across updates."""
    return sorted(alerts, key=lambda a: (a.severity.rank, a.fired_at or a.started_at, a.id or 0))


def newest_per_key(alerts: Iterable[Alert]) -> list[Alert]:
    """The newest alert of each dedup key, most severe first: what the root shows."""
    newest: dict[str, Alert] = {}
    for alert in alerts:
        known = newest.get(alert.key)
        if known is None or (alert.id or 0) > (known.id or 0):
            newest[alert.key] = alert
    return by_severity(newest.values())


def counts(alerts: Sequence[Alert]) -> str:
    """``3 alerts: 2 firing, 1 acknowledged`` (``1 alert: firing``)."""
    states = Counter(a.state for a in alerts)
    parts = ", ".join(f"{states[state]} {word}" for state, word in _STATE_WORDS if states[state])
    if len(alerts) == 1:
        return f"1 alert: {parts.removeprefix('1 ')}"
    if len(states) == 1:
        return f"{len(alerts)} alerts: all {parts.split(' ', 1)[1]}"
    return f"{len(alerts)} alerts: {parts}"


def models(alerts: Iterable[Alert]) -> list[str]:
    return sorted({a.model for a in alerts})


def subject(incident: Incident, shown: Sequence[Alert]) -> str:
    """What the incident is about: a storm's rule and model count, else its group labels."""
    if incident.storm_rule:
        return f"Storm: {incident.storm_rule} on {len(models(shown))} models"
    if len(shown) == 1:
        return alert_title(shown[0])
    if not shown and incident.title:  # declared by hand: the declarer's words
        return incident.title
    labels = ", ".join(incident.labels.values())
    return labels or incident.title or "alerts"


def header(incident: Incident, shown: Sequence[Alert]) -> str:
    """``🟠 P1 · support-bot · 3 alerts: 2 firing, 1 acknowledged``: the incident's severity (the
    worst of its alerts and escalation steps). A one-alert incident reads like the alert. Once
    resolved it turns green and says so (``🟢 Resolved · P1 · …``), so a message whose problem is
    over stops looking like a fire in the channel."""
    sev = incident.severity
    if incident.state is IncidentState.RESOLVED:
        text = f"{RESOLVED_EMOJI} Resolved · {sev.value} · {subject(incident, shown)}"
    else:
        text = f"{sev.emoji} {sev.value} · {subject(incident, shown)}"
    if len(shown) > 1 or incident.storm_rule:
        text += f" · {counts(shown)}"
    return text if len(text) <= HEADER_LIMIT else text[: HEADER_LIMIT - 1] + "…"


def status_line(incident: Incident, *, now: datetime) -> str:
    """Where the incident stands as a whole: who took it, who ended it, how far it climbed."""
    if incident.state is IncidentState.ACKNOWLEDGED:
        at = incident.acknowledged_at or now
        text = f"✅ Acknowledged by {mention(incident.acknowledged_by)} at {at:%H:%M} UTC"
    elif incident.state is IncidentState.RESOLVED:
        took = humanize((incident.resolved_at or now) - incident.opened_at)
        who = incident.resolved_by
        if who in (None, SYSTEM_ACTOR) or (who or "").startswith("rule:"):
            text = f"🟢 Auto-resolved: every alert cleared after {took}"
        else:
            text = f"🟢 Resolved by {mention(who)} after {took}"
    else:
        text = f"🔥 Firing since {incident.opened_at:%H:%M} UTC: not acknowledged yet"
    if incident.escalation_step:
        text += f" · ⏫ escalated to {incident.severity.value} (step {incident.escalation_step}/{len(incident.policy)})"
    if incident.paged_keys:
        text += " · 📟 paged PagerDuty"
    return text


def incident_buttons(incident: Incident, *, runbook: bool) -> list[ButtonElement]:
    """The root's buttons, following the incident's state; each names the incident."""
    value = str(incident.id)
    buttons: list[ButtonElement] = []
    if incident.state is IncidentState.FIRING:
        buttons.append(
            ButtonElement(text="Acknowledge", action_id=INCIDENT_ACKNOWLEDGE_ACTION, value=value, style="primary")
        )
    if incident.state.is_open:
        style = "primary" if incident.state is IncidentState.ACKNOWLEDGED else None
        buttons.append(ButtonElement(text="Resolve", action_id=INCIDENT_RESOLVE_ACTION, value=value, style=style))
    if runbook:
        buttons.append(ButtonElement(text="Runbook", action_id=INCIDENT_RUNBOOK_ACTION, value=value))
    if incident.state.is_open:
        buttons.append(ButtonElement(text=SILENCE_BUTTON_TEXT, action_id=INCIDENT_SILENCE_ACTION, value=value))
    buttons += declare_button(incident)
    return buttons


def alert_menu(alert: Alert, *, runbook: bool) -> OverflowMenuElement | ButtonElement | None:
    """The accessory of one alert's section: act on that alert alone. An overflow menu needs two
    options, so an acknowledged alert without a runbook gets a plain Resolve button."""
    value = str(alert.id)
    options: list[Option] = []
    if alert.state is AlertState.FIRING:
        options.append(Option(text="Acknowledge this alert", value=f"acknowledge:{value}"))
    if alert.state.is_open:
        options.append(Option(text="Resolve this alert", value=f"resolve:{value}"))
    if not options:
        return None
    if runbook:
        options.append(Option(text="Runbook for this alert", value=f"runbook:{value}"))
    if len(options) == 1:
        return ButtonElement(text="Resolve this alert", action_id=RESOLVE_ACTION, value=value)
    return OverflowMenuElement(action_id=ALERT_MENU_ACTION, options=options)


def render(
    incident: Incident,
    alerts: Sequence[Alert],
    *,
    now: datetime,
    config: Config | None = None,
    recovered: Mapping[int, Mapping[str, object]] | None = None,
    changes: Sequence[Change] = (),
    seen: str = "",
) -> tuple[str, list[dict[str, Any]]]:
    """The incident's root message (fallback text and blocks) from its current state. ``recovered``:
    alert id → the values its auto-resolve saw, shown beside the values that fired it. ``changes``:
    what shipped to its models shortly before it opened, newest first. ``seen``: the "Seen before"
    line (:mod:`bot.notify.slack_notes`)."""
    shown = newest_per_key(alerts)
    saw = recovered or {}

    def runbook(alert: Alert) -> bool:
        return config is None or has_runbook(alert, config)

    lead = shown[0] if shown else None
    links = alert_links(config, model=lead.model, rule=lead.rule, values=lead.values) if config and lead else []

    head = header(incident, shown)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=head, emoji=True))]
    if changes:
        blocks.append(context_line(shipped_line(changes, incident.opened_at)))
    if seen:
        blocks.append(context_line(seen))
    if len(shown) == 1 and not incident.storm_rule:
        blocks += _single(
            incident, shown[0], now=now, runbook=runbook(shown[0]), recovered=saw.get(shown[0].id or 0), links=links
        )
    else:
        blocks.append(section(status_line(incident, now=now)))
        if incident.storm_rule:
            blocks.append(section(models_section(shown)[0]))
        blocks += _actions(incident, runbook=any(runbook(a) for a in shown[:1]), links=links)
        detailed = len(shown) <= DETAILED_ALERTS
        listed = shown if detailed else shown[:COMPACT_ALERTS]
        for alert in listed:
            if detailed:
                blocks += _entry(alert, now=now, runbook=runbook(alert), recovered=saw.get(alert.id or 0))
            else:
                blocks += _compact(alert, now=now, runbook=runbook(alert))
        if len(shown) > len(listed):
            rest = ", ".join(escape_mrkdwn(alert_title(a)) for a in shown[len(listed) :])
            blocks.append(context_line(f"…and {len(shown) - len(listed)} more alerts: {rest} (see `/alerts`)"))
        blocks.append(context_line(incident_line(incident)))
    fallback = "\n".join([escape_mrkdwn(head), *(summary(a) for a in shown[:COMPACT_ALERTS])])
    return clip(fallback, SECTION_LIMIT), [b.to_dict() for b in blocks[:MESSAGE_BLOCKS]]


def incident_line(incident: Incident) -> str:
    """The incident's number and group, and once declared its room, declarer and commander."""
    line = f"Incident #{incident.id} · group `{escape_mrkdwn(incident.group_key)}`"
    declared = declared_line(incident)
    return f"{line}\n{declared}" if declared else line


def models_section(alerts: Sequence[Alert]) -> tuple[str, bool]:
    """A storm's models, each with its state's emoji, as many as fit one section; then "…and N
    more". Returns the text and whether every model was named."""
    state_of: dict[str, Alert] = {}
    for alert in alerts:
        state_of[alert.model] = alert
    names = sorted(state_of)
    head = f"*{len(names)} models:* "
    parts: list[str] = []
    size = len(head)
    for i, name in enumerate(names):
        part = f"{_STATE_EMOJI.get(state_of[name].state, '')} `{escape_mrkdwn(name)}`".strip()
        room_for_more = len(" …and 99999 more (full list in the thread)")
        if size + len(part) + 2 + room_for_more > SECTION_LIMIT:
            return head + ", ".join(parts) + f" …and {len(names) - i} more (full list in the thread)", False
        parts.append(part)
        size += len(part) + 2
    return head + ", ".join(parts), True


def models_fit(alerts: Sequence[Alert]) -> bool:
    return models_section(newest_per_key(alerts))[1]


def model_list_replies(alerts: Sequence[Alert]) -> list[str]:
    """The full list of a storm's models, for the thread, in replies of at most 3,000 characters."""
    lines = [f"{_STATE_EMOJI.get(a.state, '')} `{escape_mrkdwn(a.model)}`" for a in newest_per_key(alerts)]
    replies: list[str] = []
    current = f"📋 All {len(lines)} models of this storm:"
    for line in lines:
        if len(current) + len(line) + 1 > SECTION_LIMIT:
            replies.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    replies.append(current)
    return replies


# --------------------------------------------------------------------------- configuration


def has_runbook(alert: Alert, config: Config) -> bool:
    """Whether the Runbook button has something to open for this alert."""
    return choices.alert_runbook(config, alert.model, alert.rule) is not None


# --------------------------------------------------------------------------- blocks


def _actions(incident: Incident, *, runbook: bool, links: Sequence[Link]) -> list[Block]:
    """The incident's buttons, then its first alert's links (:mod:`bot.notify.slack_links`)."""
    buttons, overflow = with_links(incident_buttons(incident, runbook=runbook), links)
    return ([ActionsBlock(block_id="incident_actions", elements=buttons)] if buttons else []) + overflow


def _single(
    incident: Incident,
    alert: Alert,
    *,
    now: datetime,
    runbook: bool,
    recovered: Mapping[str, object] | None,
    links: Sequence[Link],
) -> list[Block]:
    """An incident of one alert reads like the alert: description, values, state, buttons."""
    blocks: list[Block] = []
    if alert.description.strip():
        blocks.append(section(escape_mrkdwn(alert.description)))
    blocks.extend(value_sections(alert.values, recovered=resolved_values(alert, recovered)))
    state = state_line(alert, now=now)
    if incident.escalation_step or incident.paged_keys:
        state += "\n" + status_line(incident, now=now)
    blocks.append(section(f"{state}\n{fired_line(alert)}"))
    blocks += _actions(incident, runbook=runbook, links=links)
    blocks.append(context_line(f"{rule_line(alert)} · {incident_line(incident)}"))
    return blocks


def _with_menu(text: str, alert: Alert, *, runbook: bool) -> SectionBlock:
    menu = alert_menu(alert, runbook=runbook)
    body = MarkdownTextObject(text=clip(text, SECTION_LIMIT), verbatim=True)
    # block_id must be unique within a message, or Slack refuses it with invalid_blocks
    return SectionBlock(block_id=f"alert_{alert.id}", text=body, accessory=menu)


def _entry(alert: Alert, *, now: datetime, runbook: bool, recovered: Mapping[str, object] | None) -> list[Block]:
    """One alert in full, in four blocks at most."""
    description = escape_mrkdwn(alert.description.strip())
    lines = [bold_name(alert)]
    if description:
        lines.append(clip(description, DESCRIPTION_LIMIT))
    lines += [state_line(alert, now=now), fired_line(alert)]
    blocks: list[Block] = [DividerBlock(), _with_menu("\n".join(lines), alert, runbook=runbook)]
    values = list(alert.values.items())
    shown = dict(values[:FIELDS_PER_SECTION])
    blocks.extend(value_sections(shown, recovered=resolved_values(alert, recovered))[:1])
    hidden = len(values) - FIELDS_PER_SECTION
    blocks.append(context_line(rule_line(alert) + (f" · {hidden} more values" if hidden > 0 else "")))
    return blocks


def _compact(alert: Alert, *, now: datetime, runbook: bool) -> list[Block]:
    """One alert in one line (a storm's many models)."""
    shown = [(k, v) for k, v in alert.values.items() if not k.startswith(BOOKKEEPING_PREFIX)][:COMPACT_VALUES]
    values = " · ".join(f"{escape_mrkdwn(k)} {escape_mrkdwn(format_value(v))}" for k, v in shown)
    text = f"{bold_name(alert)} — {short_state(alert)}" + (f"\n{values}" if values else "")
    return [_with_menu(text, alert, runbook=runbook)]


def recovered_values(histories: Mapping[int, Sequence[Event]]) -> dict[int, Mapping[str, object]]:
    """Alert id → the values its auto-resolve saw (the AUTO_RESOLVED event's ``data["recovered"]``)."""
    out: dict[int, Mapping[str, object]] = {}
    for alert_id, events in histories.items():
        for event in events:
            values = event.data.get("recovered")
            if event.kind is EventKind.AUTO_RESOLVED and isinstance(values, Mapping):
                out[alert_id] = values
    return out

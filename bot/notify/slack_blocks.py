"""Block Kit builders for every surface the bot draws in Slack: pure functions, no I/O.

Everything here turns values into ``dict`` payloads through ``slack_sdk.models``, so the
structure is checked by the SDK and the output is testable without Slack. Two rules hold
throughout:

* anything that came from outside (metric values and labels, model names, titles rendered
  from templates, actor names) goes through :func:`escape_mrkdwn` and ``verbatim`` text, so a
  label such as ``<!channel>`` shows as text instead of paging a whole channel;
* Block Kit limits (3000 characters per section, 150 per header, 10 fields per section,
  50 blocks per message, 100 per view) are respected by clipping with "…", because Slack
  rejects the *whole* message with ``invalid_blocks`` in the middle of an incident otherwise.
"""

from __future__ import annotations

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
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState
from bot.config.durations import humanize
from bot.notify.links import Link
from bot.notify.slack_links import with_links
from bot.notify.slack_text import (
    FIELD_LIMIT,
    FIELDS_PER_SECTION,
    HEADER_LIMIT,
    MESSAGE_BLOCKS,
    SECTION_LIMIT,
    VIEW_BLOCKS,
    clip,
    context_line,
    escape_mrkdwn,
    format_value,
    markdown_to_mrkdwn,
    mention,
    section,
    slack_date,
    split_sections,
)

ACKNOWLEDGE_ACTION = "alert_acknowledge"
RESOLVE_ACTION = "alert_resolve"
RUNBOOK_ACTION = "alert_runbook"
SILENCE_ACTION = "alert_silence"
"""The per-alert action ids: the overflow menu's single-alert fallback button, and messages
posted before incidents (their buttons carry an alert id and still work)."""
INCIDENT_ACKNOWLEDGE_ACTION = "incident_acknowledge"
INCIDENT_RESOLVE_ACTION = "incident_resolve"
INCIDENT_RUNBOOK_ACTION = "incident_runbook"
INCIDENT_SILENCE_ACTION = "incident_silence"
INCIDENT_STILL_ON_IT_ACTION = "incident_still_on_it"
INCIDENT_RELEASE_ACTION = "incident_release"
"""The answers to "Still on it?" (``settings.ack_reminder``)."""
"""The incident root's buttons: their value is the incident id, they act on the whole incident."""
ALERT_MENU_ACTION = "alert_menu"
"""The overflow menu on one alert's section: option values ``acknowledge:<id>``, ``resolve:<id>``,
``runbook:<id>`` act on that alert alone."""
SILENCE_BUTTON_TEXT = "Silence 1h"
TITLE_LIMIT = 24
MAX_VALUE_FIELDS = 40
MAX_LISTED_ALERTS = 40


# --------------------------------------------------------------------------- alert message


def alert_message(
    alert: Alert,
    *,
    now: datetime,
    runbook: bool = True,
    recovered: Mapping[str, object] | None = None,
    links: Sequence[Link] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The root message of an alert: fallback text and blocks, rendered from its current state.
    ``recovered``: the values an auto-resolve saw (its event's ``data["recovered"]``); ``links``:
    its dashboard and other links (:func:`bot.notify.links.alert_links`), as buttons."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=_header(alert), emoji=True))]
    if alert.description.strip():
        blocks.append(section(escape_mrkdwn(alert.description)))
    blocks.extend(value_sections(alert.values, recovered=resolved_values(alert, recovered)))
    blocks.append(section(f"{state_line(alert, now=now)}\n{fired_line(alert)}"))
    buttons, overflow = with_links(alert_buttons(alert, runbook=runbook), links)
    if buttons:
        blocks.append(ActionsBlock(block_id="alert_actions", elements=buttons))
    blocks += overflow
    blocks.append(context_line(rule_line(alert)))
    return clip(summary(alert), SECTION_LIMIT), [b.to_dict() for b in blocks[:MESSAGE_BLOCKS]]


def summary(alert: Alert) -> str:
    """One line naming the alert and its state: notification text, and a group's reply lines."""
    return f"{state_emoji(alert)} {alert.severity.value} · {escape_mrkdwn(alert_title(alert))} — {short_state(alert)}"


def rule_line(alert: Alert) -> str:
    """The context line that tells an engineer which rule to look at and how it deduplicates."""
    return f"Rule `{escape_mrkdwn(alert.rule)}` · Dedup key `{escape_mrkdwn(alert.key)}`"


def state_line(alert: Alert, *, now: datetime) -> str:
    """Where the alert stands, in words: who acknowledged or resolved it, when, after how long."""
    if alert.state is AlertState.ACKNOWLEDGED:
        at = alert.acknowledged_at or now
        return f"✅ Acknowledged by {mention(alert.acknowledged_by)} at {at:%H:%M} UTC"
    if alert.state is AlertState.RESOLVED:
        took = humanize((alert.resolved_at or now) - (alert.fired_at or alert.started_at))
        if alert.resolved_by in (None, SYSTEM_ACTOR):
            return f"🟢 Auto-resolved: condition cleared after {took}"
        return f"🟢 Resolved by {mention(alert.resolved_by)} after {took}"
    # no "for 12m" here: the root message is not re-rendered as time passes, so an age would go stale
    if alert.state is AlertState.PENDING:
        return "⏳ Pending: waiting for the condition to hold"
    return "🔥 Firing: not acknowledged yet"


def alert_title(alert: Alert) -> str:
    title = alert.title.strip() or alert.rule
    return title if alert.model in title else f"{title} · {alert.model}"


RESOLVED_EMOJI = "🟢"
"""Green, like the "🟢 Resolved" state line (✅ already means "acknowledged" in these messages)."""


def state_emoji(alert: Alert) -> str:
    """The alert's colour: its severity's while open, green once resolved, so a message whose
    problem is over stops looking like a fire in the channel."""
    return RESOLVED_EMOJI if alert.state is AlertState.RESOLVED else alert.severity.emoji


def _header(alert: Alert) -> str:
    resolved = "Resolved · " if alert.state is AlertState.RESOLVED else ""
    text = f"{state_emoji(alert)} {resolved}{alert.severity.value} · {alert_title(alert)}"
    return text if len(text) <= HEADER_LIMIT else text[: HEADER_LIMIT - 1] + "…"


def short_state(alert: Alert) -> str:
    if alert.state is AlertState.ACKNOWLEDGED:
        return f"acknowledged by {mention(alert.acknowledged_by)}"
    if alert.state is AlertState.RESOLVED:
        return (
            "auto-resolved"
            if alert.resolved_by in (None, SYSTEM_ACTOR)
            else f"resolved by {mention(alert.resolved_by)}"
        )
    return alert.state.value


def fired_line(alert: Alert) -> str:
    fired = alert.fired_at or alert.started_at
    return f"Fired {slack_date(fired)} · {alert.severity.label} severity · model `{escape_mrkdwn(alert.model)}`"


BOOKKEEPING_PREFIX = "am_"
"""Values the Alertmanager input keeps for itself (fingerprints, group key): not for people."""


def resolved_values(alert: Alert, recovered: Mapping[str, object] | None) -> Mapping[str, object] | None:
    """What :func:`value_sections` labels: for a resolved alert its values are the ones that fired
    it (and ``recovered`` what an auto-resolve saw); an open alert's values need no label."""
    return (recovered or {}) if alert.state is AlertState.RESOLVED else None


def shown_values(values: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if not k.startswith(BOOKKEEPING_PREFIX)}


def value_sections(values: Mapping[str, object], *, recovered: Mapping[str, object] | None = None) -> list[Block]:
    """The values as fields (``*p99_latency_ms*`` over ``6,100``). With ``recovered`` (a resolved
    alert) each is labelled: ``fired at: 6,100 · recovered: 200``."""
    values = shown_values(values)

    def shown(name: str, value: object) -> str:
        text = escape_mrkdwn(format_value(value))
        if recovered is None:
            return text
        if name in recovered:
            return f"fired at: {text} · recovered: {escape_mrkdwn(format_value(recovered[name]))}"
        return f"fired at: {text}"

    fields = [
        MarkdownTextObject(text=clip(f"*{escape_mrkdwn(k)}*\n{shown(k, v)}", FIELD_LIMIT), verbatim=True)
        for k, v in list(values.items())[:MAX_VALUE_FIELDS]
    ]
    blocks: list[Block] = [
        SectionBlock(fields=fields[i : i + FIELDS_PER_SECTION]) for i in range(0, len(fields), FIELDS_PER_SECTION)
    ]
    if len(values) > MAX_VALUE_FIELDS:
        blocks.append(context_line(f"…and {len(values) - MAX_VALUE_FIELDS} more values"))
    return blocks


def alert_buttons(alert: Alert, *, runbook: bool) -> list[ButtonElement]:
    value = str(alert.id)
    ack = ButtonElement(text="Acknowledge", action_id=ACKNOWLEDGE_ACTION, value=value, style="primary")
    resolve_style = "primary" if alert.state is AlertState.ACKNOWLEDGED else None
    resolve = ButtonElement(text="Resolve", action_id=RESOLVE_ACTION, value=value, style=resolve_style)
    buttons: list[ButtonElement] = []
    if alert.state is AlertState.FIRING:
        buttons += [ack, resolve]
    elif alert.state is AlertState.ACKNOWLEDGED:
        buttons.append(resolve)
    if runbook:
        buttons.append(ButtonElement(text="Runbook", action_id=RUNBOOK_ACTION, value=value))
    if alert.state in (AlertState.FIRING, AlertState.ACKNOWLEDGED):
        buttons.append(ButtonElement(text=SILENCE_BUTTON_TEXT, action_id=SILENCE_ACTION, value=value))
    return buttons



def runbook_modal(model: str, markdown: str) -> dict[str, Any]:
    """The Runbook button's modal: the model's runbook, readable without leaving Slack."""
    title = f"Runbook: {model}"
    title = title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"
    chunks = split_sections(markdown_to_mrkdwn(markdown)) or ["_This runbook is empty._"]
    blocks: list[Block] = [section(chunk, verbatim=False) for chunk in chunks[:VIEW_BLOCKS]]
    if len(chunks) > VIEW_BLOCKS:
        blocks[-1] = context_line("…the runbook is too long to show in full; read it in the runbooks/ folder.")
    view = View(
        type="modal",
        callback_id="runbook_modal",
        title=PlainTextObject(text=title, emoji=True),
        close=PlainTextObject(text="Close", emoji=True),
        blocks=blocks,
    )
    return view.to_dict()


# --------------------------------------------------------------------------- lists and home


def alerts_list(alerts: Sequence[Alert], *, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """The ``/alerts`` reply: active alerts, most severe first, each with its state, age and incident."""
    shown = _sorted_active(alerts)
    if not shown:
        return "No active alerts 🎉", [section("No active alerts 🎉").to_dict()]
    counts = ", ".join(
        f"{n} {sev}" for sev in sorted({a.severity for a in shown}) if (n := sum(a.severity is sev for a in shown))
    )
    text = f"{len(shown)} active alert{'s' if len(shown) != 1 else ''} ({counts})"
    blocks = [section(f"*{text}*"), *_alert_lines(shown, now=now, limit=MAX_LISTED_ALERTS)]
    return text, [b.to_dict() for b in blocks]


def home_view(alerts: Sequence[Alert], *, now: datetime, slo_lines: list[str] | None = None) -> dict[str, Any]:
    """The App Home tab: active alerts, then the SLO summary (``None``: section left out).

    SLO lines may use mrkdwn emphasis; ``& < >`` in them are escaped like any other text.
    """
    shown = _sorted_active(alerts)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=f"🚨 Active alerts ({len(shown)})", emoji=True))]
    if shown:
        blocks.extend(_alert_lines(shown, now=now, limit=MAX_LISTED_ALERTS))
    else:
        blocks.append(section("No active alerts 🎉"))
    if slo_lines is not None:
        blocks += [DividerBlock(), HeaderBlock(text=PlainTextObject(text="📈 SLOs", emoji=True))]
        text = "\n".join(escape_mrkdwn(line) for line in slo_lines) or "_No SLOs configured._"
        blocks.extend(section(chunk) for chunk in split_sections(text)[:20])
    blocks.append(context_line(f"Updated {slack_date(now)}"))
    return View(type="home", blocks=blocks[:VIEW_BLOCKS]).to_dict()


def _sorted_active(alerts: Iterable[Alert]) -> list[Alert]:
    active = [a for a in alerts if a.state is not AlertState.RESOLVED]
    return sorted(active, key=lambda a: (a.severity.rank, a.fired_at or a.started_at, a.id or 0))


def _alert_lines(alerts: Sequence[Alert], *, now: datetime, limit: int) -> list[Block]:
    blocks: list[Block] = []
    for alert in alerts[:limit]:
        age = humanize(now - (alert.fired_at or alert.started_at))
        if alert.state is AlertState.ACKNOWLEDGED:
            state = f"✅ acknowledged by {mention(alert.acknowledged_by)}"
        else:
            state = f"🔥 {alert.state.value}"
        title = escape_mrkdwn(alert_title(alert))
        model = escape_mrkdwn(alert.model)
        incident = f" · incident #{alert.incident_id}" if alert.incident_id is not None else ""
        blocks.append(
            section(
                f"{alert.severity.emoji} *{alert.severity.value}* · {title}\n"
                f"`{model}` · {state} · firing for {age}{incident}"
            )
        )
    if len(alerts) > limit:
        blocks.append(context_line(f"…and {len(alerts) - limit} more"))
    return blocks


def bold_name(alert: Alert) -> str:
    """``🟠 *P1 · title*``: an alert named in a line of the incident message or its thread."""
    return f"{alert.severity.emoji} *{alert.severity.value} · {escape_mrkdwn(alert_title(alert))}*"

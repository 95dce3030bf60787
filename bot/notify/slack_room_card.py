"""The card pinned in an incident's room: what the responders need in one place. Pure.

Severity and state, who declared and who commands, the incident's alerts with the values that
fired them, the dashboard and other links, the **Runbook** button and the room's buttons
(**Take commander**, **Post update**, **Resolve**), each SLO's error budget left (computed when
the incident was declared, as ``/slo status`` computes it), and what shipped before it started.
Re-rendered from the current rows whenever the incident changes, like the root message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, DividerBlock, HeaderBlock, PlainTextObject

from bot.alerts.lifecycle import Alert
from bot.changes.events import Change
from bot.incidents.incident import Incident
from bot.notify.links import Link
from bot.notify.slack_blocks import (
    INCIDENT_RESOLVE_ACTION,
    INCIDENT_RUNBOOK_ACTION,
    bold_name,
    short_state,
    value_sections,
)
from bot.notify.slack_incident import header, newest_per_key, status_line
from bot.notify.slack_links import with_links
from bot.notify.slack_room_lines import POST_UPDATE_ACTION, TAKE_COMMAND_ACTION, declared_line
from bot.notify.slack_shipped import shipped_line
from bot.notify.slack_text import MESSAGE_BLOCKS, SECTION_LIMIT, clip, context_line, escape_mrkdwn, section

CARD_ALERTS = 8
"""Alerts shown with their values (three blocks each): the card stays well within 50 blocks."""


def room_card(
    incident: Incident,
    alerts: Sequence[Alert],
    *,
    now: datetime,
    budgets: Sequence[str],
    changes: Sequence[Change],
    links: Sequence[Link],
    runbook: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """The card's fallback text and blocks."""
    shown = newest_per_key(alerts)
    head = header(incident, shown)
    lines = [status_line(incident, now=now), declared_line(incident) or ""]
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=head, emoji=True)), section("\n".join(lines).strip())]
    blocks += _buttons(incident, runbook=runbook, links=links)
    for alert in shown[:CARD_ALERTS]:
        blocks += [DividerBlock(), section(f"{bold_name(alert)} — {short_state(alert)}")]
        blocks += value_sections(alert.values)[:1]
    if len(shown) > CARD_ALERTS:
        blocks.append(context_line(f"…and {len(shown) - CARD_ALERTS} more alerts (see the alert channel)"))
    if not shown:
        blocks.append(context_line("No alerts: this incident was declared by hand."))
    if budgets:
        said = " · ".join(escape_mrkdwn(line) for line in budgets)
        blocks.append(section(clip(f"*Error budget left:* {said}", SECTION_LIMIT)))
    if changes:
        blocks.append(context_line(shipped_line(changes, incident.opened_at)))
    blocks.append(
        context_line(
            "Commands here: `/incident update <text>` · `/incident commander @user` · "
            "`/incident timeline` · `/incident resolve`"
        )
    )
    return clip(f"Incident card: {escape_mrkdwn(head)}", SECTION_LIMIT), [b.to_dict() for b in blocks[:MESSAGE_BLOCKS]]


def _buttons(incident: Incident, *, runbook: bool, links: Sequence[Link]) -> list[Block]:
    value = str(incident.id)
    buttons: list[ButtonElement] = []
    if incident.state.is_open:
        buttons += [
            ButtonElement(text="Take commander", action_id=TAKE_COMMAND_ACTION, value=value, style="primary"),
            ButtonElement(text="Post update", action_id=POST_UPDATE_ACTION, value=value),
            ButtonElement(text="Resolve", action_id=INCIDENT_RESOLVE_ACTION, value=value),
        ]
    if runbook:
        buttons.append(ButtonElement(text="Runbook", action_id=INCIDENT_RUNBOOK_ACTION, value=value))
    shown, overflow = with_links(buttons, links)
    return ([ActionsBlock(block_id="room_actions", elements=shown)] if shown else []) + overflow

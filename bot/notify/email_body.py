"""The email a notification becomes: subject, plain text, an HTML alternative, and thread headers (pure).

Every value shown comes from metrics, rules and people (titles, descriptions, label values, Slack
user names), so the HTML part escapes each one; the plain part is what a terminal mail reader or
a pager gateway shows, so it carries everything the HTML part does.

``Message-ID`` is derived from the outbox row, so a retry after an unknown outcome (the server
took the message, the connection dropped before its answer) carries the same one, and mail
systems that drop duplicates by ``Message-ID`` (and every reader looking at it) see one message.
An incident's messages thread under its opening message, whose ID is derived from the incident
(``In-Reply-To`` / ``References``), so the opening need not be looked up to answer it.

Nothing secret goes in: an escalation step's PagerDuty routing key rides in the notification's
payload (``escalation``) and is never shown.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from bot.clock import ensure_utc
from bot.notify.notifier import Notification

REPORT_KINDS = frozenset({"review.weekly", "slo.summary"})
"""Kinds whose payload is a ready text (``title``, ``text``): the weekly review, the SLO summary."""
_EVENT_WORDS: Mapping[str, str] = {
    "incident.opened": "Opened",
    "incident.escalated": "Escalated",
    "incident.acknowledged": "Acknowledged",
    "incident.resolved": "Resolved",
    "incident.auto_resolved": "Recovered",
    "incident.joined": "Alert joined",
}
FOOTER = "Sent by incident-bot; acknowledge and resolve in Slack."
MAX_SUBJECT = 200
"""Longer subjects are folded by mail systems and cut by readers anyway."""


def build_message(note: Notification, *, sender: str, domain: str) -> EmailMessage | None:
    """The message for ``note`` from ``sender`` to its ``email_to``, or None when email has no part
    in its kind. Raises ValueError for a payload that names no recipient."""
    if note.kind in REPORT_KINDS:
        subject, rows, text = str(note.payload.get("title") or note.kind), [], str(note.payload.get("text") or "")
    elif note.kind in _EVENT_WORDS:
        subject, rows, text = incident_subject(note.kind, note.payload), incident_rows(note.payload), ""
    else:
        return None
    recipients = recipients_of(note.payload)
    message = EmailMessage()
    message["Subject"] = _one_line(subject, MAX_SUBJECT)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = message_id(note, domain)
    moment = _moment(note.payload.get("at"))
    if moment is not None:  # else the server dates it on receipt
        message["Date"] = format_datetime(ensure_utc(moment))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the bot
    thread = incident_thread_id(note.payload, domain)
    if thread is not None and thread != message["Message-ID"]:
        message["In-Reply-To"] = thread
        message["References"] = thread
    description = str(note.payload.get("description") or "")
    message.set_content(plain_text(subject, rows, description or text))
    message.add_alternative(html_text(subject, rows, description, preformatted=text), subtype="html")
    return message


def message_id(note: Notification, domain: str) -> str:
    """The opening of an incident is its thread's root; every other message is named by its
    outbox row (and when it was made, so two databases' row 1 are two messages)."""
    if note.kind == "incident.opened":
        root = incident_thread_id(note.payload, domain)
        if root is not None:
            return root
    moment = _moment(note.payload.get("at"))
    stamp = f".{ensure_utc(moment):%Y%m%dT%H%M%SZ}" if moment else ""
    return f"<incident-bot.outbox-{note.id}{stamp}@{domain}>"


def incident_thread_id(payload: Mapping[str, Any], domain: str) -> str | None:
    """The ``Message-ID`` of an incident's opening message, from the incident's id and opening time."""
    incident, opened = payload.get("incident_id"), _moment(payload.get("fired_at"))
    if not isinstance(incident, int) or opened is None:
        return None
    return f"<incident-bot.incident-{incident}.{ensure_utc(opened):%Y%m%dT%H%M%SZ}@{domain}>"


def incident_subject(kind: str, payload: Mapping[str, Any]) -> str:
    """``[P3] Opened: Prediction volume dropped (fraud-detector-v2)``."""
    title = str(payload.get("title") or payload.get("key") or "incident")
    models = _models(payload)
    where = f"{len(models)} models" if len(models) > 1 else str(payload.get("model") or "")
    return f"[{payload.get('severity')}] {_EVENT_WORDS[kind]}: {title}" + (f" ({where})" if where else "")


def incident_rows(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The incident's facts as (label, value) rows, empty ones left out."""
    models = _models(payload)
    actor = str(payload.get("actor") or "")
    rows = [
        ("Severity", str(payload.get("severity") or "")),
        ("State", str(payload.get("state") or "")),
        ("Models" if len(models) > 1 else "Model", ", ".join(map(str, models)) or str(payload.get("model") or "")),
        ("Rule", str(payload.get("rule") or "")),
        ("Opened", _shown_time(payload.get("fired_at"))),
        ("Event", _shown_time(payload.get("at"))),
        ("By", actor if actor and actor != "incident-bot" else ""),
        ("Detail", str(payload.get("detail") or "") if payload.get("event") != "opened" else ""),
        ("Alerts", str(payload.get("alerts") or "")),
        ("Slack channel", str(payload.get("channel") or "")),
        ("Incident", f"#{payload['incident_id']}" if payload.get("incident_id") is not None else ""),
    ]
    values = payload.get("values")
    if isinstance(values, Mapping):
        rows += [(str(name), _value(value)) for name, value in values.items()]
    return [(label, value) for label, value in rows if value]


def plain_text(subject: str, rows: Sequence[tuple[str, str]], body: str) -> str:
    width = max((len(label) for label, _ in rows), default=0)
    lines = [subject, ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in rows]
    if body:
        lines += ["", body] if rows else [body]
    lines += ["", "-- ", FOOTER]
    return "\n".join(lines) + "\n"


def html_text(subject: str, rows: Sequence[tuple[str, str]], description: str, *, preformatted: str = "") -> str:
    """The HTML alternative: a heading, a table of the facts, the description, a report's text as
    ``<pre>`` (its columns are aligned with spaces); every value escaped."""
    e = html.escape
    parts = [f"<h2>{e(subject)}</h2>"]
    if rows:
        cells = "".join(
            f'<tr><th align="left" style="padding-right:1em">{e(label)}</th><td>{e(value)}</td></tr>'
            for label, value in rows
        )
        parts.append(f"<table>{cells}</table>")
    if description:
        parts.append(f"<p>{e(description)}</p>".replace("\n", "<br>"))
    if preformatted:
        parts.append(f"<pre>{e(preformatted)}</pre>")
    parts.append(f"<p><small>{e(FOOTER)}</small></p>")
    return f'<!DOCTYPE html><html><body style="font-family:sans-serif">{"".join(parts)}</body></html>\n'


def recipients_of(payload: Mapping[str, Any]) -> list[str]:
    """The notification's ``email_to``; raises ValueError when it names nobody."""
    to = payload.get("email_to")
    recipients = [str(a) for a in to] if isinstance(to, list) else []
    if not recipients:
        raise ValueError("the notification names no recipient (email_to)")
    return recipients


def _models(payload: Mapping[str, Any]) -> list[str]:
    models = payload.get("models")
    return [str(m) for m in models] if isinstance(models, list) else []


def _one_line(text: str, limit: int) -> str:
    """A header value: one line (a newline in a title must not start a header of its own), cut to ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _moment(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _shown_time(value: object) -> str:
    moment = _moment(value)
    return f"{ensure_utc(moment):%Y-%m-%d %H:%M:%S} UTC" if moment else ""


def _value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

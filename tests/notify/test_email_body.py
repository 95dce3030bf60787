"""The message a notification becomes (pure): both parts, escaped HTML, one-line subjects, and the
Message-ID / In-Reply-To that make retries recognisable and thread an incident."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest

from bot.notify.email_body import build_message, incident_thread_id, message_id
from bot.notify.notifier import Notification

DOMAIN = "example.com"
SENDER = "incident-bot@example.com"
OPENED_AT = "2026-01-05T09:03:00+00:00"
ROOT = "<incident-bot.incident-7.20260105T090300Z@example.com>"


def note(kind: str = "incident.opened", row: int = 41, **payload: Any) -> Notification:
    base: dict[str, Any] = {
        "event": kind.removeprefix("incident."),
        "actor": "incident-bot",
        "at": OPENED_AT,
        "detail": "",
        "incident_id": 7,
        "fired_at": OPENED_AT,
        "severity": "P3",
        "state": "firing",
        "title": "Prediction volume dropped",
        "model": "fraud-detector-v2",
        "models": ["fraud-detector-v2"],
        "rule": "prediction_volume_drop",
        "values": {"predictions_last_hour": 812.0},
        "description": "Predictions fell to 812 an hour.",
        "channel": "#ml-alerts",
        "alerts": 1,
        "escalation": {"routing_key": "R0UTINGKEYSECRET000000000000001"},
        "email_to": ["fraud@example.com", "oncall@example.com"],
    }
    return Notification(id=row, channel="email", kind=kind, alert_id=3, payload={**base, **payload})


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def built(notification: Notification) -> EmailMessage:
    message = build_message(notification, sender=SENDER, domain=DOMAIN)
    assert message is not None
    return message


def test_an_opened_incident_has_both_parts_its_facts_and_opens_its_thread() -> None:
    message = built(note())
    text, html = parts(message)

    assert message["Subject"] == "[P3] Opened: Prediction volume dropped (fraud-detector-v2)"
    assert message["To"] == "fraud@example.com, oncall@example.com" and message["From"] == SENDER
    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == ROOT and message["In-Reply-To"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    for shown in ("Severity", "P3", "fraud-detector-v2", "prediction_volume_drop", "812", "#ml-alerts"):
        assert shown in text and shown in html
    assert "Predictions fell to 812 an hour." in text
    assert "R0UTINGKEYSECRET" not in message.as_string()


def test_a_follow_up_answers_the_opening_and_is_named_by_its_outbox_row() -> None:
    message = built(note("incident.resolved", row=44, actor="U0ANA0001", at="2026-01-05T09:40:00+00:00"))

    assert message["Subject"] == "[P3] Resolved: Prediction volume dropped (fraud-detector-v2)"
    assert message["Message-ID"] == "<incident-bot.outbox-44.20260105T094000Z@example.com>"
    assert message["In-Reply-To"] == ROOT and message["References"] == ROOT
    assert "By:" in parts(message)[0] and "U0ANA0001" in parts(message)[0]


def test_the_same_row_always_gets_the_same_message_id_so_a_retry_is_recognisable() -> None:
    assert message_id(note(row=9, kind="incident.escalated"), DOMAIN) == message_id(
        note(row=9, kind="incident.escalated"), DOMAIN
    )
    assert message_id(note(row=9, kind="incident.escalated"), DOMAIN) != message_id(
        note(row=10, kind="incident.escalated"), DOMAIN
    )
    assert incident_thread_id({"incident_id": 7}, DOMAIN) is None  # no opening time: no thread


def test_every_user_controlled_string_is_escaped_in_the_html_part() -> None:
    evil = '<script>alert("x")</script> & <b>'
    message = built(note(title=evil, description=evil, values={"label": evil}, model=evil))
    html = parts(message)[1]

    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in html


def test_a_title_with_a_newline_cannot_start_a_header_of_its_own() -> None:
    message = built(note(title="drift\nBcc: everyone@example.com"))

    assert message["Bcc"] is None
    assert message["Subject"] == "[P3] Opened: drift Bcc: everyone@example.com (fraud-detector-v2)"


def test_a_storm_names_how_many_models() -> None:
    message = built(note(models=["a", "b", "c"]))

    assert message["Subject"].endswith("(3 models)")
    assert "Models:" in parts(message)[0] and "a, b, c" in parts(message)[0]


def test_a_report_is_its_text_in_both_parts() -> None:
    report = Notification(
        id=5,
        channel="email",
        kind="review.weekly",
        alert_id=None,
        payload={
            "title": "Weekly alert review (2026-W02)",
            "text": "rule   fired\n<x>    3",
            "email_to": ["a@example.com"],
        },
    )
    message = built(report)
    text, html = parts(message)

    assert message["Subject"] == "Weekly alert review (2026-W02)" and message["In-Reply-To"] is None
    assert "rule   fired\n<x>    3" in text
    assert "<pre>rule   fired\n&lt;x&gt;    3</pre>" in html


def test_kinds_email_has_no_part_in_build_nothing() -> None:
    assert build_message(note("alert.fired"), sender=SENDER, domain=DOMAIN) is None


def test_a_notification_without_recipients_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="no recipient"):
        build_message(note(email_to=[]), sender=SENDER, domain=DOMAIN)

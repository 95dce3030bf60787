"""The email notifier against a real SMTP server on 127.0.0.1 (:mod:`tests.emulators.smtp_server`).

Covers an incident at P3 going out once, with both parts, to its recipients, through the real
outbox; a 4xx retried and delivered once; a 5xx or a refused recipient list failing for good
instead of retrying forever; a refused login pausing the channel; and the password, which is
in ``SMTP_URL``, staying out of the log, the stored errors and every repr.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.alerts import store
from bot.app import default_notifiers
from bot.clock import FrozenClock
from bot.config.email_schema import Reports
from bot.config.holder import ConfigHolder
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.logs import configure_logging
from bot.notify.email import EmailNotifier, SmtpTarget
from bot.notify.notifier import Notification
from bot.notify.outbox import FAILED, Outbox, pending
from bot.review.weekly import post_weekly_review
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.severity import Severity
from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.emulators.smtp_server import HOST, PASSWORD, USER, SmtpServer, self_signed
from tests.support.ports import free_port

FRAUD = "fraud-detector-v2"
RULE = "significant_data_drift"
SENDER = "incident-bot@example.com"
TEAM = ["fraud-team@example.com", "ml-oncall@example.com"]
LEADS = ["ml-leads@example.com"]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def notifier(smtp: SmtpServer) -> EmailNotifier:
    return EmailNotifier(SmtpTarget.parse(smtp.url), SENDER, timeout=5)


@pytest.fixture
def p3_config(config: Config) -> Config:
    """The shipped configuration with the drift rule at P3, emailing its model's team and the leads."""
    rules = tuple(
        r.model_copy(update={"severity": Severity.P3, "email": LEADS}) if r.name == RULE else r for r in config.rules
    )
    models = {name: m.model_copy(update={"email": TEAM}) if name == FRAUD else m for name, m in config.models.items()}
    return replace(config, rules=rules, models=models)


def fire_drift(service: AlertService, clock: FrozenClock) -> None:
    service.ingest([(FRAUD, "drifted_feature_count", clock.now(), 9), (FRAUD, "total_features", clock.now(), 20)])
    service.evaluate_once()


def incident_note(row: int = 1, **payload: object) -> Notification:
    body = {"severity": "P3", "title": "Drift", "incident_id": 1, "email_to": TEAM, **payload}
    return Notification(id=row, channel="email", kind="incident.opened", alert_id=1, payload=body)


def test_a_p3_incident_is_emailed_once_with_both_parts_and_its_follow_ups_thread_under_it(
    engine: Engine, clock: FrozenClock, p3_config: Config, smtp: SmtpServer, notifier: EmailNotifier
) -> None:
    service = AlertService(engine, clock, lambda: p3_config, every_channel(["email"]))
    outbox = Outbox(engine, clock, {"email": notifier}, rng=random.Random(1))

    fire_drift(service, clock)
    assert outbox.deliver_due() == 1
    assert outbox.deliver_due() == 0

    [opened] = smtp.received
    assert opened.sender == SENDER and opened.recipients == [*TEAM, *LEADS]
    assert opened.message["Subject"].startswith("[P3] Opened: ") and opened.message["To"] == ", ".join(TEAM + LEADS)
    plain, html = opened.message.get_body(("plain",)), opened.message.get_body(("html",))
    assert plain is not None and html is not None
    assert RULE in plain.get_content() and RULE in html.get_content()
    assert smtp.logins == [USER]

    with session(engine) as s:
        firing = store.open_alerts(s)[f"{RULE}:{FRAUD}"]
    assert firing.id is not None
    service.acknowledge(firing.id, actor="U0ANA0001")
    service.resolve(firing.id, actor="U0ANA0001")
    while outbox.deliver_due():
        pass

    subjects = [r.message["Subject"].split(":")[0] for r in smtp.received]
    assert subjects == ["[P3] Opened", "[P3] Acknowledged", "[P3] Resolved"]
    assert [r.message["In-Reply-To"] for r in smtp.received[1:]] == [opened.message["Message-ID"]] * 2
    assert pending(engine) == []


def test_a_4xx_is_retried_and_the_message_delivered_once(
    db: Engine, clock: FrozenClock, p3_config: Config, smtp: SmtpServer, notifier: EmailNotifier
) -> None:
    service = AlertService(db, clock, lambda: p3_config, every_channel(["email"]))
    outbox = Outbox(db, clock, {"email": notifier}, rng=random.Random(1))
    smtp.answer_next_data("451 4.3.0 greylisted, try again later")

    fire_drift(service, clock)
    assert outbox.deliver_due() == 0
    [row] = pending(db)
    assert row.attempts == 1 and "451" in (row.last_error or "")

    clock.advance(timedelta(minutes=5))
    assert outbox.deliver_due() == 1
    clock.advance(timedelta(minutes=10))
    assert outbox.deliver_due() == 0
    assert smtp.data_attempts == 2 and len(smtp.received) == 1


def test_a_5xx_fails_for_good_after_one_attempt(
    db: Engine, clock: FrozenClock, p3_config: Config, smtp: SmtpServer, notifier: EmailNotifier
) -> None:
    service = AlertService(db, clock, lambda: p3_config, every_channel(["email"]))
    outbox = Outbox(db, clock, {"email": notifier}, rng=random.Random(1))
    smtp.answer_next_data("554 5.6.0 message content refused")

    fire_drift(service, clock)
    assert outbox.deliver_due() == 0
    clock.advance(timedelta(hours=1))
    assert outbox.deliver_due() == 0

    assert smtp.data_attempts == 1 and smtp.received == [] and pending(db) == []
    with session(db) as s:
        [row] = s.exec(select(OutboxRow)).all()
    assert row.status == FAILED and "554" in (row.last_error or "")
    assert outbox.failed_counts() == {"email": 1}


def test_every_recipient_refused_is_final_and_a_temporary_refusal_is_not(
    smtp: SmtpServer, notifier: EmailNotifier
) -> None:
    for address in TEAM:
        smtp.refuse(address)
    with pytest.raises(DeliveryError) as final:
        notifier.send(incident_note())
    assert not final.value.retryable and "every recipient refused" in str(final.value)

    smtp.refuse(TEAM[0], "450 4.2.1 mailbox busy")
    with pytest.raises(DeliveryError) as temporary:
        notifier.send(incident_note())
    assert temporary.value.retryable and smtp.received == []


def test_a_recipient_refused_among_others_is_logged_and_the_rest_get_it_once(
    smtp: SmtpServer, notifier: EmailNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.refuse(TEAM[1])

    with caplog.at_level(logging.WARNING, logger="bot.notify.email"):
        notifier.send(incident_note())

    assert [r.recipients for r in smtp.received] == [[TEAM[0]]]
    assert f"refused for {TEAM[1]}: 550" in caplog.text


def test_a_server_that_is_not_there_is_retryable() -> None:
    closed = EmailNotifier(SmtpTarget(HOST, free_port(), implicit_tls=False), SENDER, timeout=2)

    with pytest.raises(DeliveryError) as failed:
        closed.send(incident_note())

    assert failed.value.retryable and not failed.value.pauses and "cannot reach the SMTP server" in str(failed.value)


def test_a_refused_login_pauses_the_channel_and_never_shows_the_password(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = EmailNotifier(SmtpTarget.parse(smtp.url.replace(":s3cr3t", ":wrong")), SENDER, timeout=5)

    with pytest.raises(DeliveryError) as refused:
        wrong.send(incident_note())

    assert refused.value.pauses and "check the user and password in SMTP_URL" in str(refused.value)
    assert "wrong" not in str(refused.value) and smtp.received == []


def test_the_password_is_never_logged_stored_or_shown(
    db: Engine, clock: FrozenClock, p3_config: Config, smtp: SmtpServer
) -> None:
    settings = Settings(smtp_url=smtp.url, smtp_from=SENDER)
    stream = io.StringIO()
    handler = configure_logging(level=logging.DEBUG, secrets=settings.secret_values(), stream=stream)
    try:
        notifier = EmailNotifier.from_settings(settings)
        service = AlertService(db, clock, lambda: p3_config, every_channel(["email"]))
        outbox = Outbox(db, clock, {"email": notifier}, rng=random.Random(1))
        smtp.answer_next_data("421 4.7.0 closing, try later")
        fire_drift(service, clock)
        outbox.deliver_due()
        clock.advance(timedelta(minutes=5))
        outbox.deliver_due()
        logging.getLogger("test").warning("a library echoing the URL: %s", smtp.url)
    finally:
        logging.getLogger().removeHandler(handler)

    quoted = smtp.url.split(":")[2].split("@")[0]  # the password as the URL writes it
    logged = stream.getvalue()
    assert "accepted for outbox row" in logged and "attempt 1 failed" in logged
    assert PASSWORD not in logged and quoted not in logged and "[redacted]" in logged
    with session(db) as s:
        errors = [row.last_error or "" for row in s.exec(select(OutboxRow)).all()]
    assert all(PASSWORD not in e and quoted not in e for e in errors)
    assert PASSWORD not in repr(notifier.target) and PASSWORD not in notifier.target.shown()
    assert notifier.target.shown() == f"smtp://{USER}:***@{HOST}:{smtp.port}"
    assert PASSWORD not in repr(settings) and PASSWORD in settings.secret_values()


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("smtp://mail.example.com", "mail.example.com", 587, False),
        ("smtps://u:p@mail.example.com", "mail.example.com", 465, True),
        ("smtp://u:p@127.0.0.1:2525", "127.0.0.1", 2525, False),
    ],
)
def test_smtp_url_defaults_the_port_to_its_scheme(url: str, host: str, port: int, tls: bool) -> None:
    target = SmtpTarget.parse(url)

    assert (target.host, target.port, target.implicit_tls) == (host, port, tls)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://u:hunter22@mail.example.com", "the scheme is 'http'"),
        ("smtp://u:hunter22@:25", "no host"),
        ("smtp://u:hunter22@mail.example.com:port", "cannot be read"),
    ],
)
def test_a_malformed_smtp_url_says_why_without_quoting_it(url: str, why: str) -> None:
    with pytest.raises(ValueError) as bad:
        SmtpTarget.parse(url)

    assert why in str(bad.value) and "hunter22" not in str(bad.value)


def test_the_bot_has_an_email_notifier_only_with_smtp_url_and_warns_about_unreached_recipients(
    db: Engine, clock: FrozenClock, repo_root: Path, caplog: pytest.LogCaptureFixture, smtp: SmtpServer
) -> None:
    holder = ConfigHolder(repo_root)
    with_smtp = default_notifiers(Settings(smtp_url=smtp.url, smtp_from=SENDER), db, holder, clock)
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        without = default_notifiers(Settings(), db, holder, clock)

    assert isinstance(with_smtp["email"], EmailNotifier) and "email" not in without
    assert "SMTP_URL" not in caplog.text  # the shipped configuration names no recipient
    with pytest.raises(ValueError, match="SMTP_FROM is not"):
        default_notifiers(Settings(smtp_url=smtp.url), db, holder, clock)


def test_recipients_without_smtp_url_are_a_start_up_warning(
    db: Engine, clock: FrozenClock, p3_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ConfigHolder(p3_config.directory, initial=p3_config)
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        default_notifiers(Settings(), db, holder, clock)

    assert "SMTP_URL is not set: the email: recipients in the configuration are not emailed" in caplog.text


def test_the_weekly_reports_go_out_by_email_through_the_outbox(
    db: Engine, clock: FrozenClock, config: Config, smtp: SmtpServer, notifier: EmailNotifier
) -> None:
    reports = replace(config, routing=config.routing.model_copy(update={"reports": Reports(email=LEADS)}))
    outbox = Outbox(db, clock, {"email": notifier}, rng=random.Random(1))

    assert post_weekly_review(db, reports, clock.now(), channels=["email"])
    while outbox.deliver_due():
        pass

    assert [(r.recipients, r.message["Subject"]) for r in smtp.received] == [
        (LEADS, "Weekly alert review (2026-W02)"),
        (LEADS, "SLO summary (2026-W02)"),
    ]
    html = smtp.received[1].message.get_body(("html",))
    assert html is not None and "<pre>" in html.get_content() and FRAUD in html.get_content()


def test_smtp_upgrades_with_starttls_when_offered_and_a_certificate_that_does_not_verify_pauses(
    tmp_path: Path,
) -> None:
    server_tls, trusting = self_signed(tmp_path)
    with SmtpServer(tls=server_tls) as secure:
        target = SmtpTarget.parse(secure.url)
        EmailNotifier(target, SENDER, timeout=5, tls=trusting).send(incident_note())
        with pytest.raises(DeliveryError) as untrusted:
            EmailNotifier(target, SENDER, timeout=5).send(incident_note())

    assert secure.encrypted == [True] and secure.logins == [USER]
    assert untrusted.value.pauses and "certificate does not verify" in str(untrusted.value)


def test_smtp_from_may_carry_a_display_name_and_must_hold_an_address(smtp: SmtpServer) -> None:
    named = EmailNotifier(SmtpTarget.parse(smtp.url), f"incident-bot <{SENDER}>", timeout=5)
    named.send(incident_note())

    [received] = smtp.received
    assert received.sender == SENDER and received.message["From"] == f"incident-bot <{SENDER}>"
    assert received.message["Message-ID"].endswith("@example.com>")
    with pytest.raises(ValueError, match="SMTP_FROM must be an email address"):
        EmailNotifier(SmtpTarget.parse(smtp.url), "incident-bot")

"""Table definitions (SQLModel). Every time column is :class:`UTCDateTime`: aware UTC in, aware
UTC out, on SQLite (which keeps no offset) as on PostgreSQL (``timestamptz``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from bot.clock import ensure_utc, maybe_utc


class UTCDateTime(TypeDecorator[datetime]):
    """Converts to UTC before storing and marks values read back as UTC.

    SQLite drops the offset of an aware datetime, so 10:00+01:00 would come back as 10:00.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return maybe_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return maybe_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, each distinct instant written as text once (:func:`sqlite_text`)."""
        if dialect.name == "sqlite":
            return sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the stored text parsed once per distinct value (:func:`sqlite_instant`)."""
        if dialect.name == "sqlite":
            return sqlite_instant
        return super().result_processor(dialect, coltype)


@lru_cache(maxsize=1 << 16)
def sqlite_text(moment: datetime | None) -> str | None:
    """An instant as SQLite keeps it: UTC, no offset, SQLAlchemy's own text form (so that text
    compares in time order with what SQLAlchemy wrote). Cached for the same reason as reading."""
    if moment is None:
        return None
    return ensure_utc(moment).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@lru_cache(maxsize=1 << 16)
def sqlite_instant(text: str | None) -> datetime | None:
    """A SQLite time column's text as aware UTC. Cached: a pull stamps its 200,000 values with one
    instant, and parsing that text again for every row was most of an evaluation pass's read."""
    return None if text is None else ensure_utc(datetime.fromisoformat(text))


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        # the database itself guarantees one open alert per rule:model, whatever the replicas do
        Index(
            "uq_alerts_open_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("ix_alerts_key_resolved", "dedup_key", "resolved_at"),
        Index("ix_alerts_slack_message", "slack_channel", "slack_ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=300)
    rule: str = Field(max_length=100)
    model: str = Field(max_length=100, index=True)
    severity: str = Field(max_length=2)
    state: str = Field(max_length=20, index=True)
    title: str = ""
    description: str = ""
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = _ts()
    fired_at: datetime | None = _ts(nullable=True)
    acknowledged_at: datetime | None = _ts(nullable=True)
    acknowledged_by: str | None = None
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = None
    policy: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The escalation policy snapshotted when the alert opened (its incident climbs on it)."""
    escalation_step: int = 0
    """Unused since incidents escalate (schema 3); kept so older databases need no rewrite."""
    next_escalation_at: datetime | None = _ts(nullable=True, index=True)
    """Unused since incidents escalate (schema 3)."""
    paged_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Unused since incidents page (schema 3)."""
    clear_since: datetime | None = _ts(nullable=True)
    """When a firing alert's condition stopped holding while ``keep_firing_for`` keeps it open."""
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True)
    """The incident the alert joined when it fired (none while pending)."""
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    """Where the alert's root Slack message lives, once posted; updates and thread replies go there."""
    version: int = 0
    """Bumped on every update; an update names the version it read (optimistic locking),
    so of two people clicking at once exactly one wins."""


class IncidentRow(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        # one open incident per group, whatever the replicas do: a second opener gets an IntegrityError
        Index(
            "uq_incidents_open_group",
            "group_key",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_key: str = Field(max_length=300)
    channel: str = Field(max_length=100)
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    storm_rule: str | None = Field(default=None, max_length=100)
    severity: str = Field(max_length=2)
    state: str = Field(max_length=20, index=True)
    title: str = ""
    opened_at: datetime = _ts()
    acknowledged_at: datetime | None = _ts(nullable=True)
    acknowledged_by: str | None = None
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = None
    policy: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The escalation policy snapshotted when the incident opened."""
    escalation_step: int = 0
    paused_seconds: float | None = None
    """How long it was acknowledged before a release: the climb's deadlines move by it."""
    next_escalation_at: datetime | None = _ts(nullable=True, index=True)
    paged_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    """Where the incident's root Slack message lives, once posted."""
    page_key: str | None = Field(default=None, max_length=300)
    """The key PagerDuty knows a page by, when not ``incident:<id>``: an alert that was open and
    paged under its own key before incidents existed keeps it, so its acknowledge still lands."""
    declared_at: datetime | None = _ts(nullable=True)
    declared_by: str | None = Field(default=None, max_length=200)
    room: str | None = Field(default=None, max_length=80)
    """The incident room's channel name, once declared; ``room_id`` once Slack created it."""
    room_id: str | None = Field(default=None, max_length=40)
    commander: str | None = Field(default=None, max_length=200)
    resolution_note: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    version: int = 0


class IncidentEventRow(SQLModel, table=True):
    __tablename__ = "incident_events"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    kind: str = Field(max_length=40)
    actor: str = Field(max_length=200)
    at: datetime = _ts()
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AlertEventRow(SQLModel, table=True):
    __tablename__ = "alert_events"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    kind: str = Field(max_length=40)
    actor: str = Field(max_length=200)
    at: datetime = _ts()
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class MetricSampleRow(SQLModel, table=True):
    """Every pushed sample, kept so windows (last hour, 7 days) can be computed."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_samples_model_name_at", "model", "name", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=100)
    name: str = Field(max_length=100)
    at: datetime = _ts()
    value: float | None = None
    text: str | None = None


class MetricLatestRow(SQLModel, table=True):
    """The newest sample per model and metric: what one evaluation pass reads, in one query."""

    __tablename__ = "metric_latest"

    model: str = Field(primary_key=True, max_length=100)
    name: str = Field(primary_key=True, max_length=100)
    at: datetime = _ts()
    value: float | None = None
    text: str | None = None
    prev_at: datetime | None = _ts(nullable=True)
    """The value before this one: a pass as of a tick that the newest value postdates reads it,
    for a metric stored without sample rows (pulled, and read by no window or SLO)."""
    prev_value: float | None = None
    prev_text: str | None = None


class OutboxRow(SQLModel, table=True):
    """A notification to deliver. Written in the same transaction as the alert change that
    caused it, so a crash can delay a notification but never lose it."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        Index("ix_outbox_due", "status", "not_before"),
        # the claim's "an earlier entry of this alert is still pending" check, kept small
        Index(
            "ix_outbox_pending_per_alert",
            "alert_id",
            "channel",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_outbox_pending_per_incident",
            "incident_id",
            "channel",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_outbox_claimed_by", "claimed_by"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300)
    channel: str = Field(max_length=40)
    """Which notifier delivers it (``slack``, ``pagerduty``, ``log`` …)."""
    kind: str = Field(max_length=40)
    alert_id: int | None = Field(default=None, foreign_key="alerts.id", index=True)
    incident_id: int | None = None
    """Set for an incident's notifications: they are delivered in order per incident."""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    not_before: datetime = _ts()
    claimed_until: datetime | None = _ts(nullable=True)
    claimed_by: str | None = None
    last_error: str | None = None
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class SilenceRow(SQLModel, table=True):
    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_window", "starts_at", "ends_at"),)

    id: int | None = Field(default=None, primary_key=True)
    rule: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    starts_at: datetime = _ts()
    ends_at: datetime = _ts()
    created_by: str = Field(max_length=200)
    reason: str = ""


class SchemaVersionRow(SQLModel, table=True):
    __tablename__ = "schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int
    applied_at: datetime = _ts()


class ChangeRow(SQLModel, table=True):
    """A change shipped to a model (a new model version, prompt, dataset …): the first question of an
    ML incident is "did something ship?", and alerts answer it from these rows (:mod:`bot.changes`)."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_model_at", "model", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=100)
    kind: str = Field(max_length=40)
    version: str = Field(max_length=200)
    at: datetime = _ts()
    author: str | None = Field(default=None, max_length=200)
    link: str | None = Field(default=None, max_length=2000)
    description: str | None = Field(default=None, max_length=2000)


class EvaluatorRow(SQLModel, table=True):
    """A process that evaluates rules, and when it last said it was alive: the live ones split the
    models between them (:mod:`bot.evaluation.members`)."""

    __tablename__ = "evaluators"

    name: str = Field(primary_key=True, max_length=200)
    seen_at: datetime = _ts()

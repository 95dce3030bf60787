"""Engine creation and schema setup for SQLite (default) and PostgreSQL.

The schema is created on start. Each later change to it is a numbered step in
:data:`MIGRATIONS`, applied in order inside one transaction and recorded in
``schema_version``, so a database written by an older release is brought forward on start
instead of failing on a missing column.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine, select

from bot.storage.deadline import STATEMENT_TIMEOUT, CallDeadlines
from bot.storage.tables import SchemaVersionRow

Migration = Callable[[Connection], None]


def _baseline(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)


def _add_column(table: str, column: str, ddl_type: str) -> Migration:
    """A migration adding a nullable column, unless the baseline already created it (a database
    created by this release gets every column from ``create_all``)."""

    def step(connection: Connection) -> None:
        if column not in {c["name"] for c in inspect(connection).get_columns(table)}:
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl_type}"))

    step.__name__ = f"add_{table}_{column}"
    return step


def _indexes(*specs: str) -> Migration:
    """Indexes of columns added to existing tables (a fresh database already has them)."""

    def step(connection: Connection) -> None:
        for spec in specs:
            connection.execute(text(f"CREATE INDEX IF NOT EXISTS {spec}"))

    return step


def _create_missing_tables(connection: Connection) -> None:
    """New tables (``create_all`` skips those that exist, so a fresh database is left as it is)."""
    SQLModel.metadata.create_all(connection)


def _adopt_open_alerts(connection: Connection) -> None:
    """Alerts open when incidents arrived become an incident each, carrying on from where they
    were: the same Slack message, escalation step and deadline, pages and PagerDuty key."""
    open_orphans = "state IN ('firing', 'acknowledged') AND incident_id IS NULL"
    connection.execute(
        text(
            "INSERT INTO incidents (group_key, channel, labels, severity, state, title, opened_at, acknowledged_at,"
            " acknowledged_by, policy, escalation_step, next_escalation_at, paged_keys, slack_channel, slack_ts,"
            " page_key, version)"
            " SELECT 'legacy-alert:' || CAST(id AS VARCHAR), COALESCE(slack_channel, ''), '{}', severity, state, title,"
            " COALESCE(fired_at, started_at), acknowledged_at, acknowledged_by, policy, escalation_step,"
            " next_escalation_at, paged_keys, slack_channel, slack_ts, dedup_key, 1"
            f" FROM alerts WHERE {open_orphans}"
        )
    )
    connection.execute(
        text(
            "UPDATE alerts SET incident_id = (SELECT i.id FROM incidents i"
            " WHERE i.group_key = 'legacy-alert:' || CAST(alerts.id AS VARCHAR))"
            f" WHERE {open_orphans}"
        )
    )


MIGRATIONS: list[Migration] = [
    _baseline,
    _add_column("alerts", "clear_since", "TIMESTAMP WITH TIME ZONE"),  # keep_firing_for's countdown
    _create_missing_tables,  # incidents, incident_events
    _add_column("alerts", "incident_id", "INTEGER REFERENCES incidents(id)"),
    _add_column("outbox", "incident_id", "INTEGER"),
    _indexes(
        "ix_alerts_incident_id ON alerts (incident_id)",
        "ix_outbox_pending_per_incident ON outbox (incident_id, channel, id) WHERE status = 'pending'",
    ),
    _adopt_open_alerts,
    _create_missing_tables,  # changes
    _add_column("incidents", "declared_at", "TIMESTAMP WITH TIME ZONE"),  # incident rooms (declare)
    _add_column("incidents", "declared_by", "VARCHAR(200)"),
    _add_column("incidents", "room", "VARCHAR(80)"),
    _add_column("incidents", "room_id", "VARCHAR(40)"),
    _add_column("incidents", "commander", "VARCHAR(200)"),
    _add_column("incidents", "resolution_note", "JSON"),
    _add_column("incidents", "paused_seconds", "FLOAT"),  # a released incident's climb resumes
    _add_column("metric_latest", "prev_at", "TIMESTAMP WITH TIME ZONE"),  # pulled metrics without samples
    _add_column("metric_latest", "prev_value", "FLOAT"),
    _add_column("metric_latest", "prev_text", "VARCHAR"),
    _create_missing_tables,  # evaluators (evaluation shared between processes)
]
"""Step N brings a database from version N to N+1. Append; never edit a released step."""

SCHEMA_VERSION = len(MIGRATIONS)


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as users write them; use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


CONNECT_TIMEOUT = 3
"""Seconds to open a PostgreSQL connection (libpq's minimum is 2)."""
POOL_TIMEOUT = 10.0
"""Seconds to wait for a free pooled connection before the call fails as an outage would."""
_DEADLINES: weakref.WeakKeyDictionary[Engine, CallDeadlines] = weakref.WeakKeyDictionary()


def make_engine(url: str, *, call_timeout: float = STATEMENT_TIMEOUT) -> Engine:
    """An engine whose every call ends: on PostgreSQL, connecting takes at most
    :data:`CONNECT_TIMEOUT`, the kernel drops a peer that stopped answering (keepalives,
    ``tcp_user_timeout``), and a call still waiting after ``call_timeout`` seconds has its
    connection cut (:mod:`bot.storage.deadline`). SQLite waits at most 30 s for a lock."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    network = {
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": int(call_timeout * 1000),
    }
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=POOL_TIMEOUT, connect_args=network
    )
    deadlines = CallDeadlines(statement=call_timeout)
    deadlines.install(engine)
    _DEADLINES[engine] = deadlines
    return engine


def without_deadlines(engine: Engine) -> contextlib.AbstractContextManager[None]:
    """Lift the call deadline for this thread (a migration may build an index for minutes)."""
    deadlines = _DEADLINES.get(engine)
    return deadlines.unbounded() if deadlines is not None else contextlib.nullcontext()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the single writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before."""
    version_table = SchemaVersionRow.__table__  # type: ignore[attr-defined]
    with without_deadlines(engine), engine.begin() as connection:
        version_table.create(connection, checkfirst=True)
        row = connection.execute(select(SchemaVersionRow.version).where(SchemaVersionRow.id == 1)).scalar()
        found = int(row or 0)
        for step in MIGRATIONS[found:]:
            step(connection)
        values = {"version": SCHEMA_VERSION, "applied_at": datetime.now(UTC)}
        if row is None:
            connection.execute(version_table.insert().values(id=1, **values))
        elif found < SCHEMA_VERSION:
            connection.execute(version_table.update().where(version_table.c.id == 1).values(**values))
    return found


def missing_sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:`` URL names, if it does not exist (SQLite would create an empty one).

    Reading commands must not: an empty new database reads as "no alerts, no data", a calm answer
    to a typo in ``DATABASE_URL`` or to running the command from another directory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path.absolute()


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)

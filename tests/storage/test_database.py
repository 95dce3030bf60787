"""The schema: created and versioned on start, and guarding one open alert per key itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.storage.database import SCHEMA_VERSION, make_engine, migrate, normalise_url
from bot.storage.tables import AlertRow, SchemaVersionRow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def alert_row(state: str, key: str = "latency_spike:fraud-detector-v2") -> AlertRow:
    rule, model = key.split(":")
    return AlertRow(dedup_key=key, rule=rule, model=model, severity="P1", state=state, started_at=T0)


def recorded_version(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(SchemaVersionRow.version)).one()


def test_migrate_is_idempotent_and_records_the_schema_version(engine: Engine) -> None:
    # the fixture already migrated this database once
    assert migrate(engine) == SCHEMA_VERSION
    assert migrate(engine) == SCHEMA_VERSION
    assert recorded_version(engine) == SCHEMA_VERSION
    with Session(engine) as s:
        assert len(s.exec(select(SchemaVersionRow)).all()) == 1


def test_a_restart_on_an_existing_sqlite_file_finds_its_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    first = make_engine(url)
    assert migrate(first) == 0  # a new file: nothing there before
    with Session(first) as s:
        s.add(alert_row("firing"))
        s.commit()
    first.dispose()

    second = make_engine(url)
    try:
        assert migrate(second) == SCHEMA_VERSION
        assert recorded_version(second) == SCHEMA_VERSION
        with Session(second) as s:
            assert [r.state for r in s.exec(select(AlertRow)).all()] == ["firing"]
    finally:
        second.dispose()


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("postgresql://bot:pw@db:5432/incidents", "postgresql+psycopg://bot:pw@db:5432/incidents"),
        ("postgres://bot:pw@db/incidents", "postgresql+psycopg://bot:pw@db/incidents"),
        ("postgresql+psycopg://bot@db/incidents", "postgresql+psycopg://bot@db/incidents"),
        ("sqlite:///incident-bot.db", "sqlite:///incident-bot.db"),
    ],
)
def test_database_urls_are_normalised_to_psycopg_3(written: str, used: str) -> None:
    assert normalise_url(written) == used


def test_make_engine_speaks_psycopg_3_for_postgres_urls() -> None:
    engine = make_engine("postgres://bot@db.invalid/incidents")  # no connection is made
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_the_database_refuses_a_second_open_alert_for_the_same_key(engine: Engine) -> None:
    with Session(engine) as s:
        s.add(alert_row("firing"))
        s.commit()
    with Session(engine) as s:
        s.add(alert_row("pending"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_the_database_keeps_any_number_of_resolved_alerts_beside_one_open_one(engine: Engine) -> None:
    with Session(engine) as s:
        s.add_all([alert_row("resolved") for _ in range(3)])
        s.add(alert_row("acknowledged"))
        s.add(alert_row("firing", key="latency_spike:support-bot"))
        s.commit()
    with Session(engine) as s:
        states = sorted(r.state for r in s.exec(select(AlertRow)).all())
    assert states == ["acknowledged", "firing", "resolved", "resolved", "resolved"]

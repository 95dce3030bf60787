"""Fixtures shared by the whole suite.

``engine`` runs a test on both backends: a SQLite file, and a fresh PostgreSQL database made
for that one test on the server at ``TEST_DATABASE_URL``. Where no PostgreSQL is reachable the
PostgreSQL half is skipped with the reason; ``REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns
that skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.clock import Clock, FrozenClock
from bot.config.loader import Config, load_config
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate, normalise_url

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run the long versions of generated tests (e.g. many more promtool differential cases)",
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def config(repo_root: Path) -> Config:
    """The shipped default configuration (``rules/`` and ``runbooks/``)."""
    return load_config(repo_root)


@pytest.fixture
def clock() -> FrozenClock:
    """Monday 2026-01-05 09:00 UTC until a test advances it."""
    return FrozenClock()


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[Engine | str]:
    """An AUTOCOMMIT engine on the shared server's ``test`` database (only ever used to create and
    drop per-test databases), or the reason none is reachable."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    admin = create_engine(
        normalise_url(url),
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        pool_pre_ping=True,  # the reliability suite restarts PostgreSQL under the session
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        admin.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        yield f"PostgreSQL not reachable at {url}: {reason}; set TEST_DATABASE_URL"
        return
    yield admin
    admin.dispose()


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _postgres_engine(server: Engine | str) -> Iterator[Engine]:
    """A migrated engine on a database created for this test alone, dropped afterwards."""
    if isinstance(server, str):
        _postgres_unavailable(server)
    assert isinstance(server, Engine)
    name = f"ib_{uuid.uuid4().hex}"
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.url.set(database=name).render_as_string(hide_password=False))
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield from _sqlite_engine(tmp_path)
    else:
        yield from _postgres_engine(request.getfixturevalue("_postgres_server"))


@pytest.fixture
def pg_engine(_postgres_server: Engine | str) -> Iterator[Engine]:
    """Like ``engine``, PostgreSQL only: for tests about real row locks and concurrency."""
    yield from _postgres_engine(_postgres_server)


@pytest.fixture
def make_service(engine: Engine, clock: FrozenClock, config: Config) -> Callable[..., AlertService]:
    """Build an :class:`AlertService` routing every notifiable event to the ``recording`` channel;
    ``clock=`` swaps the clock (a second "replica" with its own timing)."""

    def build(*, clock: Clock = clock) -> AlertService:
        return AlertService(engine, clock, lambda: config, every_channel(["recording"]))

    return build


@pytest.fixture
def service(make_service: Callable[..., AlertService]) -> AlertService:
    return make_service()

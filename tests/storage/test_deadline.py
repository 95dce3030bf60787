"""Every PostgreSQL call ends: a server that stops answering (the network drops the packets,
a proxy stops forwarding) has the waiting call's connection cut at its deadline, and the next
call works on a fresh connection once the server answers again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bot.storage.database import make_engine, without_deadlines
from tests.emulators.tcp_proxy import TcpProxy

TIMEOUT = 1.0


@pytest.fixture
def proxied(pg_engine: Engine) -> Iterator[tuple[Engine, TcpProxy]]:
    proxy = TcpProxy((pg_engine.url.host or "127.0.0.1", pg_engine.url.port or 5432))
    url = pg_engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(url, call_timeout=TIMEOUT)
    yield engine, proxy
    engine.dispose()
    proxy.close()


def test_a_statement_the_server_never_answers_is_cut_at_its_deadline(proxied: tuple[Engine, TcpProxy]) -> None:
    engine, proxy = proxied
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
        proxy.drop()
        started = time.monotonic()
        with pytest.raises(OperationalError):
            connection.execute(text("SELECT 2"))
    assert time.monotonic() - started < TIMEOUT + 5

    proxy.forward()
    with engine.connect() as connection:  # the cut connection was discarded, not reused
        assert connection.execute(text("SELECT 3")).scalar() == 3


def test_a_pooled_connection_gone_silent_fails_its_ping_and_a_new_one_cannot_connect(
    proxied: tuple[Engine, TcpProxy],
) -> None:
    engine, proxy = proxied
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # now pooled
    proxy.drop()
    started = time.monotonic()
    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert time.monotonic() - started < 2.0 + 3.0 + 3  # the ping's 2 s, a 3 s connect, slack for a busy machine


def test_a_slow_statement_is_cut_but_not_inside_a_migration(pg_engine: Engine) -> None:
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False), call_timeout=TIMEOUT)
    try:
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(3)"))
        with without_deadlines(engine), engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(1.5)"))  # a long index build is not an outage
    finally:
        engine.dispose()

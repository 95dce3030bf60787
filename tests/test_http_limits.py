"""The pure parts of bot.http_limits; the protocol itself is tested against a real ``serve``
process in tests/reliability/test_connection_flood.py."""

from __future__ import annotations

import logging

from bot.http_limits import RESERVED_FILES, AcceptErrorFilter, ConnectionLimits


def test_the_connection_limit_fits_under_the_open_file_limit() -> None:
    assert ConnectionLimits(max_connections=1000).within(65536).max_connections == 1000
    assert ConnectionLimits(max_connections=1000).within(1024).max_connections == 1024 - RESERVED_FILES
    assert ConnectionLimits(max_connections=1000).within(10).max_connections == 1


def _accept_error() -> logging.LogRecord:
    try:
        raise OSError(24, "Too many open files")
    except OSError as exc:
        return logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, "socket.accept() out of system resource\nsocket: <x>", (),
            (OSError, exc, exc.__traceback__),
        )  # fmt: skip


def test_a_storm_of_accept_errors_is_one_line_without_a_traceback() -> None:
    keep = AcceptErrorFilter()
    records = [_accept_error() for _ in range(2048)]
    passed = [record for record in records if keep.filter(record)]
    assert len(passed) == 1
    assert passed[0].exc_info is None and "no open files left" in passed[0].getMessage()
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved", (), None)
    assert keep.filter(other)

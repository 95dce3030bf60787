"""The pure parts of bot.http_limits; the protocol itself is tested against a real ``serve``
process in tests/reliability/test_connection_flood.py."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from bot.http_limits import (
    RESERVED_FILES,
    AcceptErrorFilter,
    ConnectionLimits,
    guarded_protocol,
)
from tests.support.served import serving


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


# --------------------------------------------------------------------------- the protocol, in a real uvicorn

LIMITS = ConnectionLimits(max_connections=4, header_timeout=0.5, body_timeout=0.5)


async def echo_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body and answers its length; records a disconnect seen while reading."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":  # answers before reading the body, as a refusal does
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            DISCONNECTS.append(scope["path"])
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


DISCONNECTS: list[str] = []


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    config = uvicorn.Config(
        echo_length, host="127.0.0.1", port=0, http=guarded_protocol(LIMITS),
        log_config=None, lifespan="off",
    )  # fmt: skip
    with serving(config, name="uvicorn-http-limits") as port:
        yield port


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def ask(port: int, request: bytes) -> bytes:
    """Send ``request`` (which asks for ``Connection: close``) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_request_head_that_trickles_is_cut_off_at_the_header_timeout(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        assert closed_within(sock, 5)
        assert LIMITS.header_timeout <= time.monotonic() - started + 0.05 < LIMITS.header_timeout + 1.5


def test_a_body_that_stalls_is_cut_off_at_the_body_timeout_and_the_app_sees_a_disconnect(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        started = time.monotonic()
        assert closed_within(sock, 5)
        assert time.monotonic() - started < LIMITS.body_timeout + 1.5
    deadline = time.monotonic() + 5
    while "/stalled" not in DISCONNECTS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "/stalled" in DISCONNECTS


def test_over_the_limit_the_oldest_idle_connection_gives_way_to_a_request(server: int) -> None:
    idle = [socket.create_connection(("127.0.0.1", server)) for _ in range(LIMITS.max_connections)]
    try:
        answer = ask(server, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"3"), answer
        assert closed_within(idle[0], 0.4), "the oldest idle connection was not closed"
    finally:
        for sock in idle:
            sock.close()


def test_content_length_and_transfer_encoding_together_are_refused(server: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
    answer = ask(server, head + b"Connection: close\r\n\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"can't be present with Content-Length" in answer, answer
    assert "/" not in DISCONNECTS  # the app never saw it


def test_a_request_head_over_16_kib_is_refused_with_431(server: int) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * (17 * 1024) + b"\r\nConnection: close\r\n\r\n"
    answer = ask(server, head)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_a_head_just_under_the_limit_is_served(server: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * (15 * 1024)
    answer = ask(server, head + b"\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"2"), answer[:100]


def test_pipelined_requests_are_answered_in_order_and_the_connection_then_idles_out(server: int) -> None:
    """Two requests in one write: both answered, then the head clock runs again for the next one."""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        one = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
        two = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
        sock.sendall(one + two)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert received.index(b"\r\n\r\n1") < received.index(b"\r\n\r\n3"), received
        started = time.monotonic()
        assert closed_within(sock, 5)
        assert time.monotonic() - started < LIMITS.header_timeout + 1.5


def test_a_kept_alive_connection_serves_a_second_request_after_the_first(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        for body in (b"ab", b"abcd"):
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"%d" % len(body)), answer


def test_a_connection_answered_before_its_body_arrived_idles_out_once_the_body_is_in(server: int) -> None:
    """An early answer (a refusal) leaves the body to arrive after the response: once it has, the
    head clock runs for the next request, as after any other response."""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        sock.sendall(b"67890")  # the rest of the body, then nothing
        started = time.monotonic()
        assert closed_within(sock, 5), "an idle connection after an early answer was never closed"
        assert time.monotonic() - started < LIMITS.header_timeout + 1.5

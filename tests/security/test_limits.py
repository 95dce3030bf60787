"""Bodies built to exhaust the server: oversized (413 before the body is read whole) and deeply
nested JSON (a 4xx, at once, with bounded memory) at every endpoint that reads a body.

Memory is traced with :mod:`tracemalloc` around the one request (every thread, so the app's
too); the bound is a few times the body limit, whatever the nesting depth or the size sent.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from bot.slack.gates import MAX_BODY_BYTES
from tests.security.conftest import ALERTMANAGER, BEARER, FORM, INGEST, SLACK, Edge
from tests.slack.harness import sign

MB = 1024 * 1024
LIMIT = MB  # INGEST_MAX_BYTES's default, and the Slack route's MAX_BODY_BYTES
MEMORY_BOUND = 8 * MB
ENDPOINTS = ["ingest", "alertmanager", "slack"]


def traced(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, int, float]:
    """The answer, the peak memory allocated while it was made, and how long it took."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        answer = call()
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, peak, took


def send(edge: Edge, endpoint: str, body: bytes, *, json_body: bool = True) -> httpx.Response:
    if endpoint in ("ingest", "alertmanager"):
        answer: httpx.Response = edge.client.post(
            INGEST if endpoint == "ingest" else ALERTMANAGER, content=body, headers=BEARER
        )
        return answer
    if json_body:
        return edge.post(body, "application/json")
    return edge.post(b"payload=" + quote(body.decode()).encode(), FORM)


# --------------------------------------------------------------------------- deeply nested JSON


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("depth", [990, 5_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_4xx_fast_with_bounded_memory(
    edge: Edge, endpoint: str, depth: int, opener: str
) -> None:
    body = (opener * depth).encode()
    before = edge.snapshot()
    answer, peak, took = traced(lambda: send(edge, endpoint, body))
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]
    assert peak < MEMORY_BOUND, f"{peak / MB:.1f} MB for a {len(body)}-byte body"
    assert took < 2.0, f"{took:.2f} s"
    assert edge.snapshot() == before


FORM_AMPLIFICATION = 100
"""Python's form decoder (``parse_qsl``, which Bolt uses) allocates about 80 bytes per percent-escape
while it works: 23 MB for a 300 kB body of ``%5B``, 80 MB at the 1 MB cap. Only a correctly signed
body reaches it (see the forged case below), so this is bounded by the cap, not by the sender."""


@pytest.mark.parametrize("depth", [990, 100_000])
def test_deeply_nested_json_in_a_signed_slack_form_payload_is_a_4xx(edge: Edge, depth: int) -> None:
    """``payload=`` percent-encoded, as a click arrives: ``[`` becomes ``%5B``, 300 kB at depth 100,000."""
    before = edge.snapshot()
    answer, peak, took = traced(lambda: send(edge, "slack", b"[" * depth, json_body=False))
    assert 400 <= answer.status_code < 500, answer.text
    assert peak < FORM_AMPLIFICATION * 3 * depth + MEMORY_BOUND, f"{peak / MB:.1f} MB"
    assert took < 2.0, f"{took:.2f} s"
    assert edge.snapshot() == before


def test_a_forged_form_body_at_the_cap_costs_no_more_than_its_size(edge: Edge) -> None:
    """1 MB of escapes with a wrong signature: refused on the signature, before any parsing."""
    body = b"payload=" + b"%5B" * ((LIMIT - 8) // 3)
    headers = {"Content-Type": FORM, **sign(body, secret="not-the-secret")}
    answer, peak, took = traced(lambda: edge.client.post(SLACK, content=body, headers=headers))
    assert answer.status_code == 401
    assert peak < 6 * LIMIT, f"{peak / MB:.1f} MB"  # the test client's copies of the body included
    assert took < 1.0


def test_closed_and_balanced_deep_nesting_is_refused_too(edge: Edge) -> None:
    """Valid JSON, just deep: ``[[[…]]]`` closed again, 50,000 levels."""
    body = b"[" * 50_000 + b"]" * 50_000
    for endpoint in ENDPOINTS:
        answer, peak, _ = traced(lambda endpoint=endpoint: send(edge, endpoint, body))  # type: ignore[misc]
        assert 400 <= answer.status_code < 500, (endpoint, answer.text)
        assert peak < MEMORY_BOUND, (endpoint, peak)


# --------------------------------------------------------------------------- oversized bodies

HEADERS = {
    "ingest": (INGEST, BEARER),
    "alertmanager": (ALERTMANAGER, BEARER),
    "slack": (SLACK, {"Content-Type": FORM, **sign(b"")}),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_oversized_body_is_refused_on_its_declared_length_without_reading_it(edge: Edge, endpoint: str) -> None:
    path, headers = HEADERS[endpoint]
    declared = {**headers, "Content-Length": str(1024 * MB)}
    answer, pulled = asyncio.run(edge.stream(path, chunk=64 * 1024, chunks=16 * 1024, headers=declared))
    assert answer.status_code == 413, answer.text
    assert "1048576" in answer.json()["error"] or "larger than" in answer.json()["error"]
    assert pulled <= 64 * 1024, f"{pulled} bytes read before refusing"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_endless_chunked_body_is_cut_off_at_the_limit(edge: Edge, endpoint: str) -> None:
    """No Content-Length: 1 GB offered in 64 kB chunks; the app stops pulling just past the limit."""
    path, headers = HEADERS[endpoint]
    before = edge.snapshot()
    tracemalloc.start()
    try:
        answer, pulled = asyncio.run(edge.stream(path, chunk=64 * 1024, chunks=16 * 1024, headers=headers))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413, answer.text
    assert pulled <= LIMIT + 2 * 64 * 1024, f"{pulled} bytes read"
    assert peak < 4 * LIMIT, f"{peak / MB:.1f} MB"
    assert edge.snapshot() == before


def test_the_slack_limit_is_the_documented_one() -> None:
    assert MAX_BODY_BYTES == LIMIT

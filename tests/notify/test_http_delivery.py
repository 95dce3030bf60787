"""The one HTTP retry table (:mod:`bot.notify.http_delivery`), as every channel reads it."""

from __future__ import annotations

import httpx
import pytest

from bot.notify.http_delivery import retries, retry_after


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (425, True),
        (400, False),
        (403, False),
        (404, False),
        (302, False),
    ],
)
def test_5xx_408_425_and_429_retry_and_other_statuses_do_not(status: int, again: bool) -> None:
    assert retries(status) is again


def test_retry_after_reads_slack_sdks_plain_headers_as_httpxs() -> None:
    """slack_sdk hands headers as a plain dict, in any case, a value sometimes a list of values."""
    assert retry_after({"Retry-After": "7"}) == 7
    assert retry_after({"retry-after": ["3", "9"]}) == 3
    assert retry_after({"retry-after": []}) is None
    assert retry_after({"content-type": "application/json"}) is None
    assert retry_after(httpx.Headers({"Retry-After": "12"})) == 12

"""Business hours: when P2/P3 notifications may wait for the next business morning.

Calendar facts used below (2026): Mon 5 Jan; US Martin Luther King Jr. Day Mon 19 Jan; US
clocks go forward Sun 8 Mar, European ones Sun 29 Mar and back Sun 25 Oct; Easter is 5 Apr,
so Germany is closed Good Friday 3 Apr and Easter Monday 6 Apr; US Thanksgiving Thu 26 Nov;
New Year's Day 2027 is a Friday.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from bot.config.routing_schema import BusinessHours
from bot.notify.business_hours import is_open, next_opening

BERLIN = BusinessHours(timezone="Europe/Berlin", holidays="DE")
NEW_YORK = BusinessHours(timezone="America/New_York", holidays="US")


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "now", "expected"),
    [
        # Berlin is UTC+1 in winter: 09:00–18:00 local is 08:00–17:00 UTC
        pytest.param(BERLIN, utc(2026, 1, 5, 7, 59, 59), False, id="berlin-one-second-before-opening"),
        pytest.param(BERLIN, utc(2026, 1, 5, 8, 0), True, id="berlin-at-opening"),
        pytest.param(BERLIN, utc(2026, 1, 5, 9, 0), True, id="berlin-monday-morning"),
        pytest.param(BERLIN, utc(2026, 1, 5, 16, 59, 59), True, id="berlin-last-second"),
        pytest.param(BERLIN, utc(2026, 1, 5, 17, 0), False, id="berlin-at-closing"),
        pytest.param(BERLIN, utc(2026, 1, 10, 10, 0), False, id="berlin-saturday"),
        pytest.param(BERLIN, utc(2026, 1, 11, 10, 0), False, id="berlin-sunday"),
        pytest.param(BERLIN, utc(2026, 1, 1, 10, 0), False, id="berlin-new-years-day"),
        pytest.param(BERLIN, utc(2026, 4, 3, 10, 0), False, id="berlin-good-friday"),
        pytest.param(BERLIN, utc(2026, 4, 6, 10, 0), False, id="berlin-easter-monday"),
        # New York is UTC-5 in winter: 09:00–18:00 local is 14:00–23:00 UTC
        pytest.param(NEW_YORK, utc(2026, 1, 5, 9, 0), False, id="new-york-still-night"),
        pytest.param(NEW_YORK, utc(2026, 1, 5, 14, 0), True, id="new-york-at-opening"),
        pytest.param(NEW_YORK, utc(2026, 1, 5, 22, 59), True, id="new-york-late-afternoon"),
        pytest.param(NEW_YORK, utc(2026, 1, 5, 23, 0), False, id="new-york-at-closing"),
        pytest.param(NEW_YORK, utc(2026, 1, 6, 2, 0), False, id="new-york-monday-evening-is-tuesday-utc"),
        pytest.param(NEW_YORK, utc(2026, 1, 9, 22, 30), True, id="new-york-friday-afternoon"),
        pytest.param(NEW_YORK, utc(2026, 1, 10, 2, 0), False, id="new-york-friday-night-is-saturday-utc"),
        pytest.param(NEW_YORK, utc(2026, 1, 19, 15, 0), False, id="new-york-mlk-day"),
        pytest.param(NEW_YORK, utc(2026, 11, 26, 15, 0), False, id="new-york-thanksgiving"),
        # a German holiday is a working day in New York and the other way round
        pytest.param(NEW_YORK, utc(2026, 4, 6, 15, 0), True, id="new-york-easter-monday"),
        pytest.param(BERLIN, utc(2026, 1, 19, 9, 0), True, id="berlin-mlk-day"),
    ],
)
def test_is_open(hours: BusinessHours, now: datetime, expected: bool) -> None:
    assert is_open(hours, now) is expected


def test_without_a_holiday_calendar_holidays_are_working_days() -> None:
    assert is_open(BusinessHours(timezone="Europe/Berlin"), utc(2026, 1, 1, 10, 0))


def test_next_opening_is_now_while_open() -> None:
    now = utc(2026, 1, 5, 9, 30)
    assert next_opening(BERLIN, now) == now


@pytest.mark.parametrize(
    ("hours", "now", "expected"),
    [
        pytest.param(BERLIN, utc(2026, 1, 5, 6, 0), utc(2026, 1, 5, 8, 0), id="berlin-before-hours-same-morning"),
        pytest.param(BERLIN, utc(2026, 1, 5, 17, 0), utc(2026, 1, 6, 8, 0), id="berlin-after-hours-next-morning"),
        pytest.param(BERLIN, utc(2026, 1, 5, 23, 30), utc(2026, 1, 6, 8, 0), id="berlin-just-after-local-midnight"),
        pytest.param(BERLIN, utc(2026, 1, 9, 17, 0), utc(2026, 1, 12, 8, 0), id="berlin-friday-evening-to-monday"),
        pytest.param(BERLIN, utc(2026, 1, 10, 10, 0), utc(2026, 1, 12, 8, 0), id="berlin-saturday-daytime-to-monday"),
        pytest.param(BERLIN, utc(2026, 1, 1, 6, 0), utc(2026, 1, 2, 8, 0), id="berlin-new-years-morning-to-friday"),
        pytest.param(
            BERLIN, utc(2026, 4, 2, 16, 0), utc(2026, 4, 7, 7, 0), id="berlin-easter-weekend-to-tuesday-summer-time"
        ),
        pytest.param(
            BERLIN, utc(2026, 12, 31, 17, 0), utc(2027, 1, 4, 8, 0), id="berlin-across-new-year-into-next-year"
        ),
        pytest.param(NEW_YORK, utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 14, 0), id="new-york-same-morning"),
        pytest.param(NEW_YORK, utc(2026, 1, 5, 2, 0), utc(2026, 1, 5, 14, 0), id="new-york-sunday-night-local"),
        pytest.param(NEW_YORK, utc(2026, 1, 10, 2, 0), utc(2026, 1, 12, 14, 0), id="new-york-friday-night-to-monday"),
        pytest.param(NEW_YORK, utc(2026, 1, 16, 23, 0), utc(2026, 1, 20, 14, 0), id="new-york-mlk-long-weekend"),
        pytest.param(NEW_YORK, utc(2026, 11, 25, 23, 0), utc(2026, 11, 27, 14, 0), id="new-york-over-thanksgiving"),
    ],
)
def test_next_opening(hours: BusinessHours, now: datetime, expected: datetime) -> None:
    opening = next_opening(hours, now)

    assert opening == expected
    assert opening.utcoffset() is not None and opening.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert is_open(hours, opening)


@pytest.mark.parametrize(
    ("hours", "now", "expected"),
    [
        # Berlin springs forward on Sun 29 Mar: Friday closes at 17:00 UTC, Monday opens at 07:00 UTC
        pytest.param(BERLIN, utc(2026, 3, 27, 17, 0), utc(2026, 3, 30, 7, 0), id="berlin-spring-forward"),
        # and falls back on Sun 25 Oct: Friday closes at 16:00 UTC, Monday opens at 08:00 UTC
        pytest.param(BERLIN, utc(2026, 10, 23, 16, 0), utc(2026, 10, 26, 8, 0), id="berlin-fall-back"),
        # New York springs forward on Sun 8 Mar: Friday closes 23:00 UTC, Monday opens 13:00 UTC
        pytest.param(NEW_YORK, utc(2026, 3, 6, 23, 0), utc(2026, 3, 9, 13, 0), id="new-york-spring-forward"),
        pytest.param(NEW_YORK, utc(2026, 10, 30, 22, 0), utc(2026, 11, 2, 14, 0), id="new-york-fall-back"),
    ],
)
def test_next_opening_across_a_clock_change_keeps_local_nine_oclock(
    hours: BusinessHours, now: datetime, expected: datetime
) -> None:
    assert not is_open(hours, now)
    assert next_opening(hours, now) == expected


def test_the_weeks_when_only_america_has_changed_its_clocks() -> None:
    """Between 8 and 29 March New York is UTC-4 while Berlin is still UTC+1: five hours apart, not six."""
    monday = utc(2026, 3, 16, 6, 0)

    assert next_opening(BERLIN, monday) == utc(2026, 3, 16, 8, 0)
    assert next_opening(NEW_YORK, monday) == utc(2026, 3, 16, 13, 0)
    assert is_open(NEW_YORK, utc(2026, 3, 16, 13, 0))
    assert not is_open(NEW_YORK, utc(2026, 3, 16, 12, 59))
    assert is_open(BERLIN, utc(2026, 3, 16, 16, 59))
    assert not is_open(BERLIN, utc(2026, 3, 16, 17, 0))


def test_in_summer_time_berlin_opens_at_seven_utc() -> None:
    assert not is_open(BERLIN, utc(2026, 3, 30, 6, 59))
    assert is_open(BERLIN, utc(2026, 3, 30, 7, 0))
    assert is_open(BERLIN, utc(2026, 3, 30, 15, 59))
    assert not is_open(BERLIN, utc(2026, 3, 30, 16, 0))


def test_custom_days_and_hours() -> None:
    """A Sunday–Thursday team in Jerusalem, 08:00–17:00 (UTC+2 in winter)."""
    hours = BusinessHours(
        timezone="Asia/Jerusalem", days=["sun", "mon", "tue", "wed", "thu"], start=time(8), end=time(17)
    )

    assert is_open(hours, utc(2026, 1, 4, 6, 0))  # Sunday 08:00 local
    assert not is_open(hours, utc(2026, 1, 9, 8, 0))  # Friday
    assert next_opening(hours, utc(2026, 1, 8, 15, 0)) == utc(2026, 1, 11, 6, 0)  # Thursday 17:00 → Sunday 08:00


def test_a_calendar_with_no_working_day_is_an_error_not_a_hang() -> None:
    hours = BusinessHours(timezone="UTC", days=[])

    with pytest.raises(ValueError, match="no working day"):
        next_opening(hours, utc(2026, 1, 5, 12, 0))

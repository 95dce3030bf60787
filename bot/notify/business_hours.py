"""Business hours: when P2/P3 notifications may wait for the next business morning.

Pure: the clock's ``now`` comes in, the next opening goes out. Holidays come from the
``holidays`` library (maintained per country) rather than a list we would have to keep.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from bot.config.routing_schema import BusinessHours

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_open(hours: BusinessHours, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(hours.timezone))
    return _working_day(hours, local.date()) and hours.start <= local.time() < hours.end


def next_opening(hours: BusinessHours, now: datetime) -> datetime:
    """The next moment business hours begin (``now`` itself when they are open), in UTC."""
    zone = ZoneInfo(hours.timezone)
    local = now.astimezone(zone)
    if is_open(hours, now):
        return now
    day = local.date()
    if local.time() >= hours.start:
        day += timedelta(days=1)
    for _ in range(400):  # a year of holidays and weekends cannot hide every working day
        if _working_day(hours, day):
            return datetime.combine(day, hours.start, tzinfo=zone).astimezone(now.tzinfo)
        day += timedelta(days=1)
    raise ValueError("business_hours has no working day in the next 400 days; check days: and holidays:")


def _working_day(hours: BusinessHours, day: date) -> bool:
    if _DAYS[day.weekday()] not in hours.days:
        return False
    return not (hours.holidays and day in _calendar(hours.holidays, day.year))


@lru_cache(maxsize=32)
def _calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=[year, year + 1])

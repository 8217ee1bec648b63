"""The English education calendar the generator follows (approximate, rule-based).

Bank holidays of England and Wales, school holidays (summer, half-terms, Christmas, Easter),
results days (A level on the Thursday between 13 and 19 August, GCSE a week later), the
September enrolment surge and HE clearing. Dates are rules, not a published timetable:
good enough to put the seasonal shapes where the detectors will meet them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year, month, 1)
    return d + timedelta(days=(weekday - d.weekday()) % 7)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    d = nxt - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _substitute(d: date, taken: set[date]) -> date:
    while d.weekday() >= 5 or d in taken:
        d += timedelta(days=1)
    return d


@cache
def bank_holidays(year: int) -> frozenset[date]:
    """England and Wales bank holidays, with weekend substitutes."""
    easter = easter_sunday(year)
    days: set[date] = set()
    days.add(_substitute(date(year, 1, 1), days))
    days.add(easter - timedelta(days=2))
    days.add(easter + timedelta(days=1))
    days.add(_first_weekday(year, 5, 0))
    days.add(_last_weekday(year, 5, 0))
    days.add(_last_weekday(year, 8, 0))
    days.add(_substitute(date(year, 12, 25), days))
    days.add(_substitute(date(year, 12, 26), days))
    return frozenset(days)


def a_level_results_day(year: int) -> date:
    """The Thursday between 13 and 19 August."""
    d = date(year, 8, 13)
    return d + timedelta(days=(3 - d.weekday()) % 7)


def gcse_results_day(year: int) -> date:
    return a_level_results_day(year) + timedelta(days=7)


@cache
def _school_holiday_ranges(year: int) -> tuple[tuple[date, date], ...]:
    easter = easter_sunday(year)
    feb = _first_weekday(year, 2, 0) + timedelta(days=14)
    oct_ = _last_weekday(year, 10, 0)
    may = _last_weekday(year, 5, 0)
    return (
        (date(year, 1, 1), date(year, 1, 4)),
        (feb, feb + timedelta(days=4)),
        (easter - timedelta(days=6), easter + timedelta(days=8)),
        (may, may + timedelta(days=4)),
        (date(year, 7, 22), date(year, 9, 2)),
        (oct_, oct_ + timedelta(days=4)),
        (date(year, 12, 20), date(year, 12, 31)),
    )


def is_school_holiday(d: date) -> bool:
    return any(lo <= d <= hi for lo, hi in _school_holiday_ranges(d.year))


def enrolment_bump(d: date) -> float:
    """0..1: how far into the enrolment surge ``d`` is (GCSE results day to end September).

    Rises from GCSE results day, peaks in the second week of September, fades by October.
    """
    start = gcse_results_day(d.year)
    peak = date(d.year, 9, 10)
    end = date(d.year, 10, 5)
    if d < start or d > end:
        return 0.0
    if d <= peak:
        return 0.25 + 0.75 * (d - start).days / max((peak - start).days, 1)
    return max(0.0, 1.0 - (d - peak).days / (end - peak).days)


def results_bump(d: date) -> float:
    """0..1: closeness to a results day (verification runs in the days before and after)."""
    best = 0.0
    for rd in (a_level_results_day(d.year), gcse_results_day(d.year)):
        delta = (d - rd).days
        if -10 <= delta <= 0:
            best = max(best, 1.0 - abs(delta) / 11)
        elif 0 < delta <= 3:
            best = max(best, 1.0 - delta / 4)
    return best


def clearing_bump(d: date) -> float:
    """0..1: HE admissions and clearing, from A-level results day to the end of September."""
    start = a_level_results_day(d.year)
    end = date(d.year, 9, 30)
    if d < start - timedelta(days=3) or d > end:
        return 0.0
    if d <= start:
        return 0.5
    return max(0.2, 1.0 - 0.8 * (d - start).days / (end - start).days)


def london_offset_hours(d: date) -> int:
    """Hours Europe/London is ahead of UTC at noon on ``d`` (0 or 1)."""
    noon = datetime(d.year, d.month, d.day, 12, tzinfo=LONDON)
    off = noon.utcoffset()
    return int(off.total_seconds() // 3600) if off is not None else 0


def utc_midnight_us(d: date) -> int:
    """Microseconds since the Unix epoch at 00:00 UTC on ``d``."""
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000

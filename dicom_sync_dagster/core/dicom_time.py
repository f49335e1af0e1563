"""DICOM DA/TM values to aware datetimes, with pydicom's own parsers."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache

from pydicom.valuerep import DA, TM

_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")


@lru_cache(maxsize=4096)
def parse_da(value: str | None) -> date | None:
    """A DICOM DA (``YYYYMMDD``) as a date; ``None`` when empty or not a valid date."""
    try:
        parsed = DA(value.strip()) if value else None
    except (ValueError, TypeError):
        return None
    return date(parsed.year, parsed.month, parsed.day) if parsed is not None else None


@lru_cache(maxsize=65536)
def parse_tm(value: str | None) -> time | None:
    """A DICOM TM (``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.FFFFFF``) as a time, else ``None``."""
    try:
        parsed = TM(value.strip()) if value else None
    except (ValueError, TypeError):
        return None
    if parsed is None:
        return None
    return time(parsed.hour, parsed.minute, parsed.second, parsed.microsecond)


@lru_cache(maxsize=256)
def parse_utc_offset(value: str | None) -> timezone | None:
    """A TimezoneOffsetFromUTC value (``+HHMM`` / ``-HHMM``) as a timezone, else ``None``."""
    match = _OFFSET.match(value.strip()) if value else None
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    delta = -delta if sign == "-" else delta
    # DICOM allows -1200 to +1400.
    if int(minutes) > 59 or not timedelta(hours=-12) <= delta <= timedelta(hours=14):
        return None
    return timezone(delta)


def format_da(day: date) -> str:
    """A date as a DICOM DA string."""
    return day.strftime("%Y%m%d")


def study_datetime(
    study_date: date | None, study_time: time | None, zone: tzinfo, offset: tzinfo | None = None
) -> datetime | None:
    """The aware moment of a study, in ``offset`` when the study gives one, else in ``zone``."""
    if study_date is None or study_time is None:
        return None
    naive = datetime.combine(study_date, study_time)
    if offset is not None:
        return naive.replace(tzinfo=offset)
    # zoneinfo resolves ambiguous/non-existent local times (DST) through `fold`.
    return naive.replace(tzinfo=zone)

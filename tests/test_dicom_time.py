"""DICOM DA/TM/offset parsing and the aware moment of a study (pure, no network)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dicom_sync_dagster.core.dicom_time import (
    format_da,
    parse_da,
    parse_tm,
    parse_utc_offset,
    study_datetime,
)

BERLIN = ZoneInfo("Europe/Berlin")


# --- DA ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20251006", date(2025, 10, 6)),
        ("20240229", date(2024, 2, 29)),  # leap day
        (" 20251006 ", date(2025, 10, 6)),  # DICOM pads with spaces
    ],
)
def test_parse_da_valid(value, expected):
    assert parse_da(value) == expected


@pytest.mark.parametrize(
    "value", [None, "", "   ", "20250229", "20251301", "20251032", "2025100", "abcdefgh"]
)
def test_parse_da_empty_or_invalid_is_none(value):
    assert parse_da(value) is None


def test_format_da_round_trips():
    day = date(2025, 1, 5)
    assert format_da(day) == "20250105"
    assert parse_da(format_da(day)) == day


# --- TM ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", time(12, 0)),
        ("1230", time(12, 30)),
        ("123015", time(12, 30, 15)),
        ("000000", time(0, 0)),
        ("235959", time(23, 59, 59)),
        ("123015.5", time(12, 30, 15, 500000)),
        ("123015.123456", time(12, 30, 15, 123456)),
        ("123015.000001", time(12, 30, 15, 1)),
        (" 1230 ", time(12, 30)),
    ],
)
def test_parse_tm_valid(value, expected):
    assert parse_tm(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "2561",  # hour 25
        "24",  # hour 24
        "1260",  # minute 60
        "123061",  # second 61
        "12:30:15",  # ACR-NEMA style colons: pydicom 3 rejects them
        "12301",  # odd number of digits
        "noon",
    ],
)
def test_parse_tm_empty_or_invalid_is_none(value):
    assert parse_tm(value) is None


# --- TimezoneOffsetFromUTC --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("+0100", 60),
        ("-0500", -300),
        ("+0530", 330),
        ("-0930", -570),
        ("+0000", 0),
        ("-0000", 0),
        ("+1400", 14 * 60),
        (" +0200 ", 120),
    ],
)
def test_parse_utc_offset_valid(value, minutes):
    zone = parse_utc_offset(value)
    assert zone is not None
    assert zone.utcoffset(None) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "0100",  # no sign
        "+01:00",  # colon
        "+100",  # too short
        "+01000",  # too long
        "UTC",
        "+1500",  # out of range: hours
        "-1600",
        "+0160",  # out of range: minutes
        "-0099",
    ],
)
def test_parse_utc_offset_invalid_or_out_of_range_is_none(value):
    assert parse_utc_offset(value) is None


# --- study_datetime ---------------------------------------------------------------------


def test_study_datetime_needs_date_and_time():
    assert study_datetime(None, time(12), BERLIN) is None
    assert study_datetime(date(2025, 1, 15), None, BERLIN) is None


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [
        (date(2025, 1, 15), 11),  # CET, UTC+1
        (date(2025, 7, 15), 10),  # CEST, UTC+2
    ],
)
def test_study_datetime_reads_wall_clock_in_the_zone(day, utc_hour):
    moment = study_datetime(day, time(12, 0), BERLIN)
    assert moment is not None
    assert moment.tzinfo is not None
    assert moment.astimezone(timezone.utc) == datetime(
        day.year, day.month, day.day, utc_hour, 0, tzinfo=timezone.utc
    )


def test_study_datetime_explicit_offset_overrides_the_zone():
    # A summer date: Berlin would be +0200, the study says +0100.
    offset = parse_utc_offset("+0100")
    moment = study_datetime(date(2025, 7, 15), time(12, 0), BERLIN, offset)
    assert moment.astimezone(timezone.utc) == datetime(2025, 7, 15, 11, 0, tzinfo=timezone.utc)
    # Without the offset, the zone's DST offset applies.
    zoned = study_datetime(date(2025, 7, 15), time(12, 0), BERLIN)
    assert moment - zoned == timedelta(hours=1)


def test_study_datetime_negative_offset():
    moment = study_datetime(date(2025, 1, 15), time(23, 30), BERLIN, parse_utc_offset("-0500"))
    assert moment.astimezone(timezone.utc) == datetime(2025, 1, 16, 4, 30, tzinfo=timezone.utc)


def test_study_datetime_on_dst_change_days():
    # 2025-03-30 02:30 does not exist in Berlin; fold=0 reads it with the offset before the
    # change (+0100), so 01:30 UTC.
    gap = study_datetime(date(2025, 3, 30), time(2, 30), BERLIN)
    assert gap.astimezone(timezone.utc) == datetime(2025, 3, 30, 1, 30, tzinfo=timezone.utc)
    # 2025-10-26 02:30 happens twice; fold=0 is the first one (+0200), so 00:30 UTC.
    twice = study_datetime(date(2025, 10, 26), time(2, 30), BERLIN)
    assert twice.astimezone(timezone.utc) == datetime(2025, 10, 26, 0, 30, tzinfo=timezone.utc)
    # Either side of the autumn change the offset differs by one hour.
    before = study_datetime(date(2025, 10, 26), time(1, 0), BERLIN)
    after = study_datetime(date(2025, 10, 26), time(4, 0), BERLIN)
    assert before.utcoffset() == timedelta(hours=2)
    assert after.utcoffset() == timedelta(hours=1)
    elapsed = after.astimezone(timezone.utc) - before.astimezone(timezone.utc)
    assert elapsed == timedelta(hours=4)  # three wall-clock hours, four real ones

"""The query date range and the time window (pure, no network)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dicom_sync_dagster.core.frames import STUDY_COLUMNS, study_frame
from dicom_sync_dagster.core.window import (
    AFTER_REFERENCE,
    DATE_INVALID,
    TIME_INVALID,
    TIME_MISSING,
    Window,
    apply_window,
    catch_up_hours,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc

# 2025-10-06 12:00 in Berlin (CEST, UTC+2) = 10:00 UTC. A 12-hour window starts at 00:00.
REFERENCE = datetime(2025, 10, 6, 12, 0, tzinfo=BERLIN)
WINDOW = Window(REFERENCE, 12, BERLIN)


def studies(*rows: dict) -> pd.DataFrame:
    """A study frame; every text column present so no column is all-missing."""
    blank = {c: "" for c in STUDY_COLUMNS if c not in ("series_count", "images")}
    return study_frame([{**blank, **row} for row in rows])


def windowed(*rows: dict, window: Window = WINDOW) -> pd.DataFrame:
    return apply_window(studies(*rows), window).set_index("study_uid")


def wall(moment: datetime, zone=BERLIN) -> dict:
    """study_date / study_time of ``moment`` read on a wall clock in ``zone``."""
    local = moment.astimezone(zone)
    return {"study_date": local.strftime("%Y%m%d"), "study_time": local.strftime("%H%M%S")}


# --- Window -----------------------------------------------------------------------------


def test_date_range_is_yesterday_to_today_in_the_pacs_zone():
    assert WINDOW.date_range == (date(2025, 10, 5), date(2025, 10, 6))
    assert WINDOW.date_range_query == "20251005-20251006"


def test_short_window_still_covers_yesterday():
    window = Window(datetime(2025, 10, 6, 23, 0, tzinfo=BERLIN), 1, BERLIN)
    assert window.date_range == (date(2025, 10, 5), date(2025, 10, 6))


@pytest.mark.parametrize(
    ("hours", "first"),
    [
        (24, date(2025, 10, 5)),
        # 36 h before 12:00 CEST on the 6th is 00:00 on the 5th: still yesterday.
        (36, date(2025, 10, 5)),
        (36.5, date(2025, 10, 4)),  # 23:30 on the 4th
        (72, date(2025, 10, 3)),
    ],
)
def test_date_range_widens_when_the_window_reaches_further_back(hours, first):
    window = Window(REFERENCE, hours, BERLIN)
    assert window.date_range == (first, date(2025, 10, 6))
    assert window.date_range_query == f"{first:%Y%m%d}-20251006"


def test_date_range_uses_the_pacs_zone_not_utc_near_midnight():
    # 22:30 UTC on the 5th is already 00:30 on the 6th in Berlin.
    window = Window(datetime(2025, 10, 5, 22, 30, tzinfo=UTC), 12, BERLIN)
    assert window.date_range == (date(2025, 10, 5), date(2025, 10, 6))
    # ... and 02:00 UTC on the 6th is still 22:00 on the 5th in New York.
    window = Window(datetime(2025, 10, 6, 2, 0, tzinfo=UTC), 12, NEW_YORK)
    assert window.date_range == (date(2025, 10, 4), date(2025, 10, 5))
    assert window.date_range_query == "20251004-20251005"


def test_date_range_same_instant_different_reference_zone():
    # The reference's own tzinfo does not matter, only the instant and the PACS zone.
    instant = datetime(2025, 10, 5, 22, 30, tzinfo=UTC)
    in_tokyo = instant.astimezone(ZoneInfo("Asia/Tokyo"))
    assert Window(instant, 12, BERLIN).date_range == Window(in_tokyo, 12, BERLIN).date_range


def test_start_is_hours_before_the_reference():
    window = Window(datetime(2025, 10, 6, 10, 0, tzinfo=UTC), 12, BERLIN)
    assert window.start == datetime(2025, 10, 5, 22, 0, tzinfo=UTC)
    window = Window(datetime(2025, 10, 6, 10, 0, tzinfo=UTC), 1.5, BERLIN)
    assert window.start == datetime(2025, 10, 6, 8, 30, tzinfo=UTC)


def test_start_is_hours_of_real_time_across_a_dst_change():
    # Spring forward in Berlin: 2025-03-30 02:00 CET -> 03:00 CEST. 12:00 CEST = 10:00 UTC;
    # twelve real hours earlier is 22:00 UTC on the 29th (23:00 CET).
    window = Window(datetime(2025, 3, 30, 12, 0, tzinfo=BERLIN), 12, BERLIN)
    assert window.start.astimezone(UTC) == datetime(2025, 3, 29, 22, 0, tzinfo=UTC)
    # So a study 11.5 real hours before the reference is in the window.
    frame = windowed(
        {"study_uid": "s", "study_date": "20250329", "study_time": "233000"}, window=window
    )
    assert frame.loc["s", "in_window"]


def test_window_needs_an_aware_reference():
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2025, 10, 6, 12, 0), 12, BERLIN)


@pytest.mark.parametrize("hours", [0, 0.0, -1, -12.5])
def test_window_hours_must_be_positive(hours):
    with pytest.raises(ValueError, match="window_hours must be > 0") as excinfo:
        Window(REFERENCE, hours, BERLIN)
    assert repr(hours) in str(excinfo.value)


def test_window_hours_nan_rejected():
    with pytest.raises(ValueError, match="window_hours"):
        Window(REFERENCE, float("nan"), BERLIN)


# --- apply_window -----------------------------------------------------------------------


def test_inside_and_outside_the_window():
    frame = windowed(
        {"study_uid": "in", **wall(REFERENCE - timedelta(hours=11, minutes=50))},
        {"study_uid": "out", **wall(REFERENCE - timedelta(hours=12, minutes=10))},
    )
    assert frame.loc["in", "in_window"]
    assert not frame.loc["out", "in_window"]
    assert frame.loc["in", "window_note"] == ""
    assert frame.loc["out", "window_note"] == ""
    # Both are dated inside the query date range, so the time decided.
    assert frame.loc["in", "study_datetime"] == pd.Timestamp("2025-10-05 22:10", tz="UTC")
    assert frame.loc["out", "study_datetime"] == pd.Timestamp("2025-10-05 21:50", tz="UTC")


def test_study_datetime_column_is_utc():
    frame = windowed({"study_uid": "s", "study_date": "20251006", "study_time": "083000"})
    assert str(frame["study_datetime"].dtype) == "datetime64[ns, UTC]"
    assert frame.loc["s", "study_datetime"] == pd.Timestamp("2025-10-06 06:30", tz="UTC")


def test_both_edges_are_inside():
    frame = windowed(
        {"study_uid": "start", "study_date": "20251006", "study_time": "000000"},
        {"study_uid": "end", "study_date": "20251006", "study_time": "120000"},
        {"study_uid": "before_start", "study_date": "20251005", "study_time": "235959.999999"},
        {"study_uid": "after_end", "study_date": "20251006", "study_time": "120000.000001"},
    )
    assert frame.loc["start", "in_window"]
    assert frame.loc["end", "in_window"]
    assert frame.loc["end", "window_note"] == ""  # the reference itself is not "after"
    assert not frame.loc["before_start", "in_window"]
    # One microsecond after the reference: kept, flagged.
    assert frame.loc["after_end", "in_window"]
    assert frame.loc["after_end", "window_note"] == AFTER_REFERENCE


@pytest.mark.parametrize("study_time", ["", "   "])
def test_missing_time_in_the_date_range_is_kept_and_flagged(study_time):
    # Yesterday's date, no time: cannot tell, so keep it.
    frame = windowed({"study_uid": "s", "study_date": "20251005", "study_time": study_time})
    assert frame.loc["s", "in_window"]
    assert frame.loc["s", "window_note"] == TIME_MISSING
    assert pd.isna(frame.loc["s", "study_datetime"])


@pytest.mark.parametrize("study_time", ["2561", "12:30:15", "noon"])
def test_invalid_time_in_the_date_range_is_kept_and_flagged(study_time):
    frame = windowed({"study_uid": "s", "study_date": "20251006", "study_time": study_time})
    assert frame.loc["s", "in_window"]
    assert frame.loc["s", "window_note"] == TIME_INVALID
    assert pd.isna(frame.loc["s", "study_datetime"])


@pytest.mark.parametrize("study_time", ["", "2561"])
def test_date_outside_the_range_without_time_is_dropped(study_time):
    frame = windowed({"study_uid": "s", "study_date": "20251004", "study_time": study_time})
    assert not frame.loc["s", "in_window"]
    assert frame.loc["s", "window_note"] == ""


@pytest.mark.parametrize("study_date", ["", "2025", "20251340"])
def test_missing_or_invalid_date_is_dropped_and_flagged(study_date):
    frame = windowed({"study_uid": "s", "study_date": study_date, "study_time": "100000"})
    assert not frame.loc["s", "in_window"]
    assert frame.loc["s", "window_note"] == DATE_INVALID


def test_study_after_the_reference_is_kept_and_flagged():
    frame = windowed(
        {"study_uid": "later_today", "study_date": "20251006", "study_time": "133000"},
        {"study_uid": "tomorrow", "study_date": "20251007", "study_time": "010000"},
    )
    assert frame.loc["later_today", "in_window"]
    assert frame.loc["later_today", "window_note"] == AFTER_REFERENCE
    # A date outside the query range is not something the C-FIND returned: not kept.
    assert not frame.loc["tomorrow", "in_window"]


def test_timezone_offset_from_utc_overrides_the_zone():
    frame = windowed(
        # Berlin wall clock 23:50 on the 5th = 21:50 UTC: out. Stated as UTC: 23:50 UTC, in.
        {
            "study_uid": "utc_in",
            "study_date": "20251005",
            "study_time": "235000",
            "tz_offset": "+0000",
        },
        {"study_uid": "zone_out", "study_date": "20251005", "study_time": "235000"},
        # 00:10 on the 6th in Berlin = 22:10 UTC: in. At +0500 it is 19:10 UTC: out.
        {
            "study_uid": "east_out",
            "study_date": "20251006",
            "study_time": "001000",
            "tz_offset": "+0500",
        },
        {"study_uid": "zone_in", "study_date": "20251006", "study_time": "001000"},
        # An unparseable offset falls back to the zone.
        {
            "study_uid": "bad_offset",
            "study_date": "20251006",
            "study_time": "001000",
            "tz_offset": "+05",
        },
    )
    assert frame.loc["utc_in", "in_window"]
    assert frame.loc["utc_in", "study_datetime"] == pd.Timestamp("2025-10-05 23:50", tz="UTC")
    assert not frame.loc["zone_out", "in_window"]
    assert not frame.loc["east_out", "in_window"]
    assert frame.loc["east_out", "study_datetime"] == pd.Timestamp("2025-10-05 19:10", tz="UTC")
    assert frame.loc["zone_in", "in_window"]
    assert frame.loc["bad_offset", "in_window"]
    assert frame.loc["bad_offset", "study_datetime"] == frame.loc["zone_in", "study_datetime"]


def test_apply_window_keeps_columns_and_rows_and_does_not_mutate():
    frame = studies(
        {"study_uid": "a", "study_date": "20251006", "study_time": "100000", "images": 3},
        {"study_uid": "b", "study_date": "20250101", "study_time": "100000"},
    )
    before = frame.copy()
    out = apply_window(frame, WINDOW)
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.columns) == [*STUDY_COLUMNS, "study_datetime", "in_window", "window_note"]
    assert out["study_uid"].tolist() == ["a", "b"]
    assert out["in_window"].dtype == bool
    assert out["in_window"].tolist() == [True, False]


# --- catch_up_hours ---------------------------------------------------------------------


def test_catch_up_stretches_the_window_back_to_the_last_covered_run():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert catch_up_hours(12, now, now - timedelta(minutes=1), 72) == 12  # regular running
    assert catch_up_hours(12, now, None, 72) == 12  # first run ever
    assert catch_up_hours(12, now, now - timedelta(hours=30), 72) == 30
    assert catch_up_hours(12, now, now - timedelta(days=5), 72) == 72  # capped
    assert catch_up_hours(12, now, now - timedelta(hours=30), 0) == 12  # off
    assert catch_up_hours(12, now, now + timedelta(hours=3), 72) == 12  # a later reference

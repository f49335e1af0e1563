"""The query date range and the time window a cycle looks at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

import pandas as pd

from .dicom_time import format_da, parse_da, parse_tm, parse_utc_offset, study_datetime

TIME_MISSING = "StudyTime missing: kept"
TIME_INVALID = "StudyTime not a valid DICOM TM: kept"
AFTER_REFERENCE = "study time after the reference time: kept"
DATE_INVALID = "StudyDate missing or invalid"


@dataclass(frozen=True)
class Window:
    """The last ``hours`` before ``reference``, read in the PACS's ``zone``."""

    reference: datetime
    hours: float
    zone: tzinfo

    def __post_init__(self) -> None:
        if self.reference.tzinfo is None:
            raise ValueError("reference time must be timezone-aware")
        if not self.hours > 0:
            raise ValueError(f"window_hours must be > 0, got {self.hours!r}")

    @property
    def start(self) -> datetime:
        # In UTC: aware arithmetic in a zone would count wall-clock hours across DST changes.
        return self.reference.astimezone(timezone.utc) - timedelta(hours=self.hours)

    @property
    def date_range(self) -> tuple[date, date]:
        """Yesterday to today in the PACS zone, widened when the window reaches further back."""
        today = self.reference.astimezone(self.zone).date()
        first = min(today - timedelta(days=1), self.start.astimezone(self.zone).date())
        return first, today

    @property
    def date_range_query(self) -> str:
        """The StudyDate range matching value, e.g. ``20251005-20251006``."""
        first, last = self.date_range
        return f"{format_da(first)}-{format_da(last)}"


def _utc(moment: datetime | None) -> pd.Timestamp | None:
    """``moment`` in UTC; ``None`` when there is none, or when it lies beyond what a clock
    can show here (a valid DA such as 99991231 or 00010101 from a peer: past pandas' years
    1677-2262, or past year 1-9999 once moved to UTC), as for a missing time."""
    if moment is None:
        return None
    try:
        return pd.Timestamp(moment.astimezone(timezone.utc)).as_unit("ns")
    except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
        return None


def apply_window(studies: pd.DataFrame, window: Window) -> pd.DataFrame:
    """``studies`` with ``study_datetime`` (UTC), ``in_window`` and ``window_note`` columns.

    A study whose date is in the date range but whose time is missing or unparseable is kept,
    flagged: moving too much is harmless, missing data is not. So is one dated after the
    reference time (a clock ahead of ours).
    """
    first, last = window.date_range
    dates = studies["study_date"].map(parse_da)
    times = studies["study_time"].map(parse_tm)
    offsets = studies["tz_offset"].map(parse_utc_offset)
    moments = [
        study_datetime(d, t, window.zone, o) for d, t, o in zip(dates, times, offsets, strict=True)
    ]
    utc = pd.Series([_utc(m) for m in moments], index=studies.index, dtype="datetime64[ns, UTC]")
    date_ok = dates.map(lambda d: d is not None and first <= d <= last).astype(bool)
    has_time = utc.notna()
    reference = pd.Timestamp(window.reference).tz_convert("UTC")
    start = pd.Timestamp(window.start).tz_convert("UTC")
    inside = has_time & (utc >= start) & (utc <= reference)
    after = has_time & (utc > reference) & date_ok
    no_time = date_ok & ~has_time

    notes = pd.Series("", index=studies.index, dtype=object)
    notes[no_time & (studies["study_time"].str.strip() == "")] = TIME_MISSING
    notes[no_time & (studies["study_time"].str.strip() != "")] = TIME_INVALID
    notes[after] = AFTER_REFERENCE
    notes[dates.isna()] = DATE_INVALID

    out = studies.copy()
    out["study_datetime"] = utc
    out["in_window"] = (inside | after | no_time).astype(bool)
    out["window_note"] = notes.astype(str)
    return out


def catch_up_hours(
    window_hours: float, reference: datetime, last_covered: datetime | None, max_hours: float
) -> float:
    """The window, stretched back to the reference of the last run that examined the remote
    (after an outage longer than the window), but at most ``max_hours``; 0 turns it off."""
    if last_covered is None or max_hours <= 0:
        return window_hours
    gap = (reference - last_covered).total_seconds() / 3600
    return max(window_hours, min(gap, max_hours))

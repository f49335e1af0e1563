"""Column layouts of the study and series frames that flow between the steps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

STUDY_COLUMNS = [
    "study_uid",
    "study_date",
    "study_time",
    "tz_offset",
    "accession",
    "modalities",
    "description",
    "series_count",
    "images",
]
SERIES_COLUMNS = [
    "study_uid",
    "series_uid",
    "modality",
    "series_number",
    "description",
    "images",
]
_INTEGER_COLUMNS = ("series_count", "images", "series_number")


def make_frame(rows: Iterable[Mapping[str, object]], columns: list[str]) -> pd.DataFrame:
    """A frame with exactly ``columns``; counts become nullable integers (unknown is NA, not 0)."""
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in _INTEGER_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in frame.columns.difference(_INTEGER_COLUMNS):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    return frame


def study_frame(rows: Iterable[Mapping[str, object]] = ()) -> pd.DataFrame:
    """A study frame; duplicate StudyInstanceUIDs keep their first answer."""
    frame = make_frame(rows, STUDY_COLUMNS)
    frame = frame[frame["study_uid"] != ""]
    return frame.drop_duplicates("study_uid").reset_index(drop=True)


def series_frame(rows: Iterable[Mapping[str, object]] = ()) -> pd.DataFrame:
    """A series frame; duplicate SeriesInstanceUIDs keep their first answer."""
    frame = make_frame(rows, SERIES_COLUMNS)
    frame = frame[frame["series_uid"] != ""]
    return frame.drop_duplicates(["study_uid", "series_uid"]).reset_index(drop=True)

"""Column layouts of the study and series frames that flow between the steps, and the checks
a peer's answers pass before they become rows: valid UIDs, counts a PACS can hold."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from .text import printable

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
# More images (or series) than any one study holds: a count beyond it is unknown, and the plan
# then counts at series / image level.
MAX_COUNT = 10_000_000
MAX_UID_LENGTH = 64
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")

LOG = logging.getLogger(__name__)
Warn = Callable[[str], object]


def uid_problem(uid: object) -> str:
    """Why ``uid`` is not a DICOM UID (digits and dots, no empty component, at most 64
    characters), or '' when it is one."""
    if not isinstance(uid, str) or not uid:
        return "is empty"
    if len(uid) > MAX_UID_LENGTH:
        return f"is {len(uid)} characters long (at most {MAX_UID_LENGTH})"
    if not _UID.fullmatch(uid):
        return "is not digits and dots"
    return ""


def valid_uid(uid: object) -> bool:
    return not uid_problem(uid)


def make_frame(rows: Iterable[Mapping[str, object]], columns: list[str]) -> pd.DataFrame:
    """A frame with exactly ``columns``; counts become nullable integers (unknown is NA, not 0,
    and so is a count outside 0..MAX_COUNT)."""
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in _INTEGER_COLUMNS:
        if column in frame:
            numbers = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            numbers = numbers.where((numbers >= 0) & (numbers <= MAX_COUNT))
            frame[column] = numbers.round().astype("Int64")
    for column in frame.columns.difference(_INTEGER_COLUMNS):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    return frame


def checked_rows(
    rows: Iterable[Mapping[str, object]], keys: tuple[str, ...], source: str, warn: Warn | None
) -> list[Mapping[str, object]]:
    """The rows whose ``keys`` are valid UIDs; each other one is dropped with a warning naming
    ``source`` (the node) and the row, escaped. An empty UID is dropped silently (no answer)."""
    kept = []
    for row in rows:
        bad = [(key, uid_problem(row.get(key))) for key in keys if row.get(key)]
        bad = [(key, problem) for key, problem in bad if problem]
        if not bad:
            kept.append(row)
            continue
        key, problem = bad[0]
        shown = ", ".join(f"{k}={printable(v, 100)}" for k, v in row.items() if v not in (None, ""))
        (warn or LOG.warning)(
            f"{source or 'a PACS'}: an answer was dropped, its {key} '{printable(row[key], 100)}' "
            f"{problem} ({shown})"
        )
    return kept


def study_frame(
    rows: Iterable[Mapping[str, object]] = (), source: str = "", warn: Warn | None = None
) -> pd.DataFrame:
    """A study frame; duplicate StudyInstanceUIDs keep their first answer. Answers from a
    ``source`` (a node) with an invalid StudyInstanceUID are dropped with a warning."""
    rows = checked_rows(rows, ("study_uid",), source, warn) if source else rows
    frame = make_frame(rows, STUDY_COLUMNS)
    frame = frame[frame["study_uid"] != ""]
    return frame.drop_duplicates("study_uid").reset_index(drop=True)


def series_frame(
    rows: Iterable[Mapping[str, object]] = (), source: str = "", warn: Warn | None = None
) -> pd.DataFrame:
    """A series frame; duplicates keep their first answer. Answers from a ``source`` (a
    node) with an invalid Study- or SeriesInstanceUID are dropped with a warning."""
    rows = checked_rows(rows, ("study_uid", "series_uid"), source, warn) if source else rows
    frame = make_frame(rows, SERIES_COLUMNS)
    frame = frame[frame["series_uid"] != ""]
    return frame.drop_duplicates(["study_uid", "series_uid"]).reset_index(drop=True)

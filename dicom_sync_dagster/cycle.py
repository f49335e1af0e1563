"""The queries and the plan of one sync cycle: the pure core wired to the DICOM layer (moving
the planned series is transfer.py). No Dagster here.

Each step opens one association per node and reuses it for all of its queries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from .core.dicom_time import format_da
from .core.frames import series_frame, study_frame
from .core.plan import (
    SETTLED,
    build_plan,
    classify_studies,
    mark_settled,
    moves,
    needs_series_query,
    settled_after,
)
from .core.selection import Selection
from .core.summary import missing_study_count
from .core.window import Window, apply_window
from .dicom import (
    DicomNode,
    DicomSession,
    QueryFailed,
    QueryTruncated,
    open_session,
    queries,
)
from .reconnecting import Reconnecting
from .settings import SyncSettings

SECONDS_A_DAY = 24 * 3600
MIN_SLICE_SECONDS = 60  # a peer capping within one minute of one day: give up, loudly
UID_LIST_CHUNK = 100  # StudyInstanceUIDs per C-FIND by UID list

Log = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class Cycle:
    """Everything one run needs, validated: who, when, what."""

    settings: SyncSettings
    window: Window
    selection: Selection
    dry_run: bool = False


@dataclass
class Plan:
    """The plan and the counts the report needs."""

    rows: pd.DataFrame
    windowed_studies: int
    missing_studies: int
    queries: dict[str, int] = field(default_factory=dict)
    settled: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def moves(self) -> pd.DataFrame:
        return moves(self.rows)


def query_studies(cycle: Cycle, node: DicomNode, log: Log | None = None) -> pd.DataFrame:
    """The node's studies with StudyDate in the cycle's date range. A node that caps its
    answers is asked again day by day, then in ever shorter StudyTime slices."""
    first, last = cycle.window.date_range
    with open_session(node, cycle.settings.calling_ae, cycle.settings.timeouts) as session:
        log = log or logging.getLogger(__name__)
        rows = find_studies_split(session, first, last, log)
    return study_frame(rows, str(node), log.warning)


def find_studies_split(session: DicomSession, first: date, last: date, log: Log) -> list[dict]:
    """Study rows of a C-FIND over ``first``..``last``, split whenever the peer truncates its
    answer."""
    identifier = queries.studies_by_date(f"{format_da(first)}-{format_da(last)}")
    try:
        return session.find(identifier, convert=queries.study_row)
    except QueryTruncated as exc:
        if first == last:
            log.warning(f"{exc}: asking for {format_da(first)} in StudyTime slices")
            return _find_day_in_slices(session, first, 0, SECONDS_A_DAY, log)
        middle = first + (last - first) // 2
        log.info(f"{exc}: splitting {format_da(first)}-{format_da(last)}")
        return find_studies_split(session, first, middle, log) + find_studies_split(
            session, middle + timedelta(days=1), last, log
        )


def _find_day_in_slices(
    session: DicomSession, day: date, start: int, end: int, log: Log
) -> list[dict]:
    """One day's studies with StudyTime in [start, end) seconds, halving on truncation.
    A study with no StudyTime cannot match a time range: the warning above says so."""
    hhmmss = lambda s: f"{s // 3600:02d}{s % 3600 // 60:02d}{s % 60:02d}"  # noqa: E731
    time_range = f"{hhmmss(start)}-{hhmmss(end - 1)}.999999"  # 115959.5 is in 115959
    try:
        identifier = queries.studies_by_date(format_da(day), time_range)
        return session.find(identifier, convert=queries.study_row)
    except QueryTruncated:
        if end - start <= MIN_SLICE_SECONDS:
            raise
        middle = (start + end) // 2
        return _find_day_in_slices(session, day, start, middle, log) + _find_day_in_slices(
            session, day, middle, end, log
        )


def lookup_studies(session: DicomSession, uids: list[str], log: Log | None = None) -> pd.DataFrame:
    """Studies by StudyInstanceUID, whatever their date: UID list matching in chunks, or one
    UID per query for servers that refuse lists (pynetdicom's qrscp answers 0xC320)."""
    rows, chunk_size = [], UID_LIST_CHUNK
    start = 0
    while start < len(uids):
        chunk = uids[start : start + chunk_size]
        try:
            found = session.find(queries.studies_by_uid(chunk), convert=queries.study_row)
        except QueryFailed:
            if len(chunk) == 1:
                raise
            chunk_size = 1  # the peer refuses UID lists: ask one UID at a time from here on
            continue
        rows += found
        start += len(chunk)
    return study_frame(rows, str(session.node), log.warning if log else None)


def list_series(
    session: DicomSession, study_uids: list[str], log: Log | None = None
) -> pd.DataFrame:
    """The series of each study with image counts; counted per series at IMAGE level when the
    server does not return NumberOfSeriesRelatedInstances (DCMTK's dcmqrscp)."""
    rows = []
    for uid in study_uids:
        for row in session.find(queries.series_of_study(uid), convert=queries.series_row):
            rows.append({**row, "study_uid": uid})
    # one row per series, even when a server repeats answers; none with an invalid UID
    series = series_frame(rows, str(session.node), log.warning if log else None)
    for index in series.index[series["images"].isna()]:
        study_uid, series_uid = series.at[index, "study_uid"], series.at[index, "series_uid"]
        series.at[index, "images"] = session.count_instances(study_uid, series_uid)
    return series


def plan_cycle(
    cycle: Cycle,
    remote: pd.DataFrame,
    local: pd.DataFrame,
    log: Log,
    settled: Mapping[str, tuple[int, int]] | None = None,
) -> Plan:
    """Window the remote studies, find what the local lacks (down to series), select by mode.
    ``settled``: studies an earlier plan in this mode found nothing to move in, with the
    counts it saw; those whose counts are unchanged are not listed again."""
    settings = cycle.settings
    windowed = apply_window(remote, cycle.window)
    in_window = windowed[windowed["in_window"]]
    unseen = sorted(set(in_window["study_uid"]) - set(local["study_uid"]))
    on_local = Reconnecting(settings.local, settings)  # associates only when asked
    try:
        if unseen:  # a local copy may carry another StudyDate: look it up by UID
            found = lookup_studies(on_local.get(), unseen, log)
            local = pd.concat([local, found], ignore_index=True).drop_duplicates("study_uid")
        classified = classify_studies(windowed, local)
        classified = mark_settled(classified, settled or {})
        remote_uids, local_uids = needs_series_query(classified)
        local_series = (
            list_series(on_local.get(), local_uids, log) if local_uids else series_frame()
        )
    finally:
        on_local.close()
    remote_series = series_frame()
    if remote_uids:
        with open_session(settings.remote, settings.calling_ae, settings.timeouts) as session:
            remote_series = list_series(session, remote_uids, log)
    rows = build_plan(classified, remote_series, local_series, cycle.selection)
    log.info(
        f"{len(in_window)} of {len(remote)} remote studies in the window; "
        f"{len(remote_uids)} examined at series level; {int((rows['action'] == 'move').sum())} "
        f"series to move ({cycle.selection.describe()})"
    )
    return Plan(
        rows=rows,
        windowed_studies=len(in_window),
        missing_studies=missing_study_count(classified, rows),
        settled=settled_after(classified, rows),
        queries={
            "looked_up_by_uid": len(unseen),
            "remote_series_queries": len(remote_uids),
            "local_series_queries": len(local_uids),
            "settled_studies_skipped": int((classified["status"] == SETTLED).sum()),
        },
    )


def local_series_images(session: DicomSession, study_uid: str, series_uid: str) -> int:
    """How many images of one series the local PACS holds now."""
    identifier = queries.series_of_study(study_uid)
    identifier.SeriesInstanceUID = series_uid
    counts = session.find(
        identifier, convert=lambda ds: queries.count(ds, "NumberOfSeriesRelatedInstances")
    )
    if not counts:
        return 0
    if counts[0] is None:
        return session.count_instances(study_uid, series_uid)
    return int(counts[0])

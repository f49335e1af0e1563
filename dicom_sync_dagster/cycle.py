"""The steps of one sync cycle: the pure core wired to the DICOM layer. No Dagster here.

Each step opens one association per node and reuses it for all of its queries.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from .completion import complete_series, worth_completing
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
from .core.report import Transfer, TransferRun, missing_study_count
from .core.selection import Selection
from .core.text import printable
from .core.window import Window, apply_window
from .dicom import (
    AssociationRejected,
    DicomError,
    DicomNode,
    DicomSession,
    DimseTimeout,
    MoveOutcome,
    MoveResult,
    NodeUnreachable,
    QueryFailed,
    QueryTruncated,
    open_session,
    queries,
)
from .dicom.tls import TlsFailed
from .settings import SyncSettings

SECONDS_A_DAY = 24 * 3600
MIN_SLICE_SECONDS = 60  # a peer capping within one minute of one day: give up, loudly
UID_LIST_CHUNK = 100
CONFIRM_POLL_SECONDS = 1.0  # StudyInstanceUIDs per C-FIND by UID list
PROGRESS_EVERY_SECONDS = 5.0

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
    on_local = _Reconnecting(settings.local, settings)  # associates only when asked
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


class _Reconnecting:
    """A session to one node that is reopened when its association was lost. ``lock`` is for
    threads that share it; setting ``stop`` ends a request in progress (C-CANCEL, A-ABORT)."""

    def __init__(
        self, node: DicomNode, settings: SyncSettings, stop: threading.Event | None = None
    ) -> None:
        self.node, self.settings = node, settings
        self.stop = stop or threading.Event()
        self._stack = ExitStack()
        self.session: DicomSession | None = None
        self.lock = threading.Lock()

    def get(self) -> DicomSession:
        if self.session is None or not self.session.assoc.is_established:
            self.close()
            self.session = self._stack.enter_context(
                open_session(self.node, self.settings.calling_ae, self.settings.timeouts, self.stop)
            )
        return self.session

    def close(self) -> None:
        self._stack.close()
        self.session = None


def _outcome_for_error(exc: DicomError) -> MoveOutcome:
    if isinstance(exc, TlsFailed | AssociationRejected):
        return MoveOutcome.REJECTED  # a configuration problem: retrying will not help
    if isinstance(exc, NodeUnreachable):
        return MoveOutcome.UNREACHABLE
    if isinstance(exc, DimseTimeout):
        return MoveOutcome.TIMEOUT
    return MoveOutcome.ABORTED


def _progress_logger(log: Log, label: str) -> Callable[[int, int, int, int], None]:
    last = [0.0]

    def report(completed: int, failed: int, warning: int, remaining: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            log.info(
                f"{label}: {completed} done, {failed} failed, {warning} warnings, {remaining} left"
            )

    return report


def _label(row: pd.Series) -> str:
    study = printable(row["accession"] or row["study_uid"])  # peer text: escaped
    return f"series {row['series_number']} ({printable(row['modality'])}) of study {study}"


class _Mover:
    """One worker: its own association to the remote, reused for its share of the series; the
    local association (for the short confirming queries) is shared by all workers."""

    def __init__(
        self, settings: SyncSettings, log: Log, gone: list[DicomError], local: _Reconnecting
    ) -> None:
        self.settings, self.log = settings, log
        self.remote = _Reconnecting(settings.remote, settings, local.stop)
        self.local = local
        self.gone = gone  # shared: once the remote is unreachable or refuses, fail the rest
        self.last_error: DicomError | None = None

    def _attempt(self, row: pd.Series, label: str, complete: bool = False) -> MoveResult:
        """One C-MOVE of the series; with ``complete``, of only the images the local lacks
        when the series is partly there (falling back to the series)."""
        try:
            if self.gone:
                raise self.gone[0]
            progress = _progress_logger(self.log, label)
            if complete and worth_completing(row["remote_images"], row["local_images"]):
                result = complete_series(
                    self.remote.get(),
                    lambda: self._local_uids(row),
                    row,
                    self.settings.destination,
                    self.log,
                    progress,
                )
                if result is not None:
                    return result
            return self.remote.get().move(
                row["study_uid"], row["series_uid"], self.settings.destination, progress
            )
        except DicomError as exc:
            self.last_error = exc
            return MoveResult(_outcome_for_error(exc), message=str(exc))

    def _local_images(self, row: pd.Series) -> int:
        """The local count of the series; one retry on a fresh association."""
        with self.local.lock:
            try:
                return local_series_images(self.local.get(), row["study_uid"], row["series_uid"])
            except DicomError:
                self.local.close()
                return local_series_images(self.local.get(), row["study_uid"], row["series_uid"])

    def _local_uids(self, row: pd.Series) -> set[str]:
        with self.local.lock:
            return self.local.get().instance_uids(row["study_uid"], row["series_uid"])

    def _confirm(self, row: pd.Series, result: MoveResult) -> int:
        """The local count after the move; after a success, waits up to ``confirm_seconds``
        for a PACS that files what it received in the background."""
        deadline = time.monotonic() + self.settings.confirm_seconds
        images = self._local_images(row)
        while (
            result.outcome is MoveOutcome.SUCCESS
            and images < row["remote_images"]
            and time.monotonic() < deadline
        ):
            time.sleep(CONFIRM_POLL_SECONDS)
            images = self._local_images(row)
        return images

    def move(self, row: pd.Series, position: str) -> Transfer:
        """Move one series, retrying transient failures with backoff, then confirm it."""
        label = _label(row)
        self.log.info(f"{position} moving {label}: {row['remote_images']} images")
        result, attempts = self._attempt(row, label, complete=True), 1
        retries, stop = self.settings.move_retries, self.remote.stop
        while result.transient and attempts <= retries and not self.gone and not stop.is_set():
            delay = self.settings.retry_backoff_seconds * 2 ** (attempts - 1)
            self.log.warning(
                f"{label}: {result.outcome.value} ({result.message}); "
                f"retry {attempts}/{retries} in {delay:g}s"
            )
            if stop.wait(delay):
                break
            with contextlib.suppress(DicomError):  # the remote may have sent it all after all
                if self._local_images(row) >= row["remote_images"]:
                    break
            result, attempts = self._attempt(row, label), attempts + 1
        if result.outcome in (MoveOutcome.UNREACHABLE, MoveOutcome.REJECTED) and not self.gone:
            self.gone.append(self.last_error)
        local_images, error = None, result.message
        if result.outcome not in (MoveOutcome.UNREACHABLE, MoveOutcome.REJECTED):
            try:
                local_images = self._confirm(row, result)
            except DicomError as exc:
                error = f"{error}; could not confirm on local: {exc}".lstrip("; ")
        confirmed = local_images is not None and local_images >= row["remote_images"]
        if not confirmed and not error:
            error = f"local has {local_images} of {row['remote_images']} images after the move"
        (self.log.info if confirmed else self.log.warning)(
            f"{label}: {result.outcome.value}, {result.completed} completed, "
            f"{result.failed} failed, {result.warning} warnings in {result.seconds:.1f}s"
            + ("" if confirmed else f" - NOT transferred: {error}")
        )
        return _record(
            row,
            result.outcome.value,
            confirmed,
            error,
            completed=result.completed,
            failed=result.failed,
            warning=result.warning,
            local_images=local_images,
            seconds=round(result.seconds, 3),
            attempts=attempts,
        )


def _record(row: pd.Series, outcome: str, transferred: bool, error: str, **counts) -> Transfer:
    study_time = row.get("study_datetime")  # tz-aware UTC (core.plan)
    before = row.get("local_images")
    return Transfer(
        local_images_before=0 if pd.isna(before) else int(before),
        study_datetime="" if pd.isna(study_time) else pd.Timestamp(study_time).isoformat(),
        finished_at=datetime.now(timezone.utc).isoformat(),
        study_uid=row["study_uid"],
        series_uid=row["series_uid"],
        accession=row["accession"],
        modality=row["modality"],
        series_number=None if pd.isna(row["series_number"]) else int(row["series_number"]),
        series_description=row["series_description"],
        images=int(row["remote_images"]),
        outcome=outcome,
        transferred=transferred,
        error=error,
        **counts,
    )


def transfer(cycle: Cycle, plan: Plan, log: Log) -> TransferRun:
    """C-MOVE each planned series (one request each, up to ``max_parallel_moves`` at once, each
    worker on its own remote association, closed once no series is left for it) and confirm it
    on the local PACS over one shared association.

    A failing series does not stop the others; a remote that cannot be reached or refuses
    fails the rest at once. Results come back in plan order.
    """
    settings = cycle.settings
    rows = [row for _, row in plan.moves.iterrows()]
    workers = max(1, min(settings.max_parallel_moves, len(rows)))
    gone: list[DicomError] = []
    local = _Reconnecting(settings.local, settings)  # its stop event is every worker's
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(rows)):
        pending.put(index)

    def work() -> list[tuple[int, Transfer]]:
        mover, done = _Mover(settings, log, gone, local), []
        try:
            while True:
                try:
                    index = pending.get_nowait() if not local.stop.is_set() else None
                except queue.Empty:
                    index = None
                if index is None:
                    return done
                row = rows[index]
                try:
                    done.append((index, mover.move(row, f"[{index + 1}/{len(rows)}]")))
                except Exception as exc:  # a bug must not lose the other series' records
                    log.exception(f"{_label(row)}: unexpected error")
                    done.append((index, _record(row, "error", False, f"unexpected error: {exc!r}")))
        finally:
            mover.remote.close()

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="c-move") as pool:
            shares = [pool.submit(work) for _ in range(workers)]
            try:
                results = sorted((pair for s in shares for pair in s.result()), key=lambda p: p[0])
            except BaseException:  # Ctrl+C, Dagster's terminate: end the moves in progress
                local.stop.set()
                raise
    finally:
        local.close()
    return TransferRun([t for _, t in results], round(time.monotonic() - started, 3))

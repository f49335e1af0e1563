"""Moving the planned series: worker threads, each on its own remote association, retrying
transient failures and confirming every series on the local PACS. No Dagster here."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pandas as pd

from .completion import complete_series, worth_completing
from .core.text import printable
from .core.transfers import Transfer, TransferRun
from .cycle import Cycle, Log, Plan, local_series_images
from .dicom import (
    AssociationRejected,
    DicomError,
    DimseTimeout,
    MoveOutcome,
    MoveResult,
    NodeUnreachable,
)
from .dicom.tls import TlsFailed
from .reconnecting import Reconnecting
from .settings import SyncSettings

CONFIRM_POLL_SECONDS = 1.0  # between local counts while a PACS files what it received
PROGRESS_EVERY_SECONDS = 5.0


def _outcome_for_error(exc: DicomError) -> MoveOutcome:
    if isinstance(exc, TlsFailed | AssociationRejected):
        return MoveOutcome.REJECTED  # a configuration problem: retrying will not help
    if isinstance(exc, NodeUnreachable):
        return MoveOutcome.UNREACHABLE
    if isinstance(exc, DimseTimeout):
        return MoveOutcome.TIMEOUT
    return MoveOutcome.ABORTED


def _progress_logger(log: Log, label: str) -> Callable[[int, int, int, int], None]:
    last = [time.monotonic()]  # a move shorter than that logs no progress line

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


class RemoteGone:
    """Set once the remote is unreachable or refuses, with that error: every worker then fails
    its remaining series with it at once, without asking the remote again."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.error: DicomError | None = None

    def set(self, error: DicomError) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class _Mover:
    """One worker: its own association to the remote, reused for its share of the series; the
    local association (for the short confirming queries) is shared by all workers."""

    def __init__(
        self, settings: SyncSettings, log: Log, gone: RemoteGone, local: Reconnecting
    ) -> None:
        self.settings, self.log = settings, log
        self.remote = Reconnecting(settings.remote, settings, local.stop)
        self.local = local
        self.gone = gone  # shared by all workers
        self.last_error: DicomError | None = None

    def _attempt(self, row: pd.Series, label: str, complete: bool = False) -> MoveResult:
        """One C-MOVE of the series; with ``complete``, of only the images the local lacks
        when the series is partly there (falling back to the series)."""
        try:
            if self.gone.is_set() and self.gone.error is not None:
                raise self.gone.error
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
        while (
            result.transient
            and attempts <= retries
            and not self.gone.is_set()
            and not stop.is_set()
        ):
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
        if result.outcome in (MoveOutcome.UNREACHABLE, MoveOutcome.REJECTED) and self.last_error:
            self.gone.set(self.last_error)  # only errors end in these outcomes
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
    gone = RemoteGone()
    local = Reconnecting(settings.local, settings)  # its stop event is every worker's
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(rows)):
        pending.put(index)

    def work() -> list[tuple[int, Transfer]]:
        mover, done = _Mover(settings, log, gone, local), list[tuple[int, Transfer]]()
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

"""Completing a series the local PACS holds part of: only its missing instances are moved.

An IMAGE-level C-FIND on both nodes lists the SOPInstanceUIDs; the missing ones are C-MOVEd at
IMAGE level as UID lists, in chunks. When most of the series is missing, when a node will not
list instances, or when the remote refuses the first IMAGE-level move, the caller moves the
whole series instead (the PACS keeps the copies it already has). No Dagster here.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from .dicom import DicomError, DicomSession, MoveOutcome, MoveResult
from .dicom.session import Progress

INSTANCES_PER_MOVE = 500  # SOPInstanceUIDs per C-MOVE request: a ~33 KB identifier
MOST_MISSING = 0.5  # more than this share missing: one series move is cheaper

Log = logging.Logger | logging.LoggerAdapter


def worth_completing(remote_images: object, local_images: object) -> bool:
    """A series partly on the local, missing no more than MOST_MISSING of its images."""
    try:
        remote, local = int(remote_images), int(local_images)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return 0 < local < remote and (remote - local) <= MOST_MISSING * remote


def _add(total: MoveResult, part: MoveResult) -> MoveResult:
    return replace(
        part,
        completed=total.completed + part.completed,
        failed=total.failed + part.failed,
        warning=total.warning + part.warning,
        seconds=total.seconds + part.seconds,
    )


def move_instances(
    remote: DicomSession,
    study_uid: str,
    series_uid: str,
    uids: Sequence[str],
    destination: str,
    progress: Progress | None = None,
) -> MoveResult:
    """C-MOVE ``uids`` in chunks; stops at the first chunk that does not end in success.
    Counts and seconds are summed over the chunks sent."""
    total = MoveResult(MoveOutcome.SUCCESS)
    for start in range(0, len(uids), INSTANCES_PER_MOVE):
        chunk = uids[start : start + INSTANCES_PER_MOVE]
        part = remote.move(study_uid, series_uid, destination, progress, instances=chunk)
        total = _add(total, part)
        if part.outcome is not MoveOutcome.SUCCESS:
            break
    return total


def _both_lists(
    remote: DicomSession, local_uids: Callable[[], set[str]], study_uid: str, series_uid: str
) -> set[str]:
    """The remote's instances the local lacks. The two IMAGE-level C-FINDs (on two
    associations) run at once: in a half-present series they cost as much as a third of the
    move, one after the other."""
    with ThreadPoolExecutor(1, thread_name_prefix="local-find") as pool:
        local = pool.submit(local_uids)
        try:
            remote_uids = remote.instance_uids(study_uid, series_uid)
        finally:
            concurrent.futures.wait([local])  # never leave the local query running
        return remote_uids - local.result()


def complete_series(
    remote: DicomSession,
    local_uids: Callable[[], set[str]],
    row: Mapping,
    destination: str,
    log: Log,
    progress: Progress | None = None,
) -> MoveResult | None:
    """Move only the instances of ``row``'s series the local lacks; None: move the series
    instead (a node will not list instances, or the remote refuses IMAGE-level moves).
    DicomErrors of the association itself propagate, as from a series move."""
    study_uid, series_uid = row["study_uid"], row["series_uid"]
    try:
        missing = sorted(_both_lists(remote, local_uids, study_uid, series_uid))
    except DicomError as exc:
        if not remote.assoc.is_established:
            raise
        log.info(f"series {series_uid}: instances not listed ({exc}); moving the series")
        return None
    if not missing:
        return MoveResult(MoveOutcome.SUCCESS)
    log.info(
        f"series {row['series_number']}: {len(missing)} of {row['remote_images']} images "
        "missing on local; moving those by SOPInstanceUID"
    )
    result = move_instances(remote, study_uid, series_uid, missing, destination, progress)
    refused = result.outcome is MoveOutcome.FAILURE and result.completed == 0
    if refused and remote.assoc.is_established:
        log.info(
            f"series {row['series_number']}: the remote refused the IMAGE-level move "
            f"({result.message}); moving the series"
        )
        return None
    return result

"""The sync job: start -> query both nodes -> plan -> move -> report."""

from __future__ import annotations

from dagster import in_process_executor, job

from .ops import (
    check_nodes,
    move_series,
    plan_transfers,
    query_local_studies,
    query_remote_studies,
    report,
    start_cycle,
)

SYNC_JOB = "dicom_sync"
CONCURRENCY_TAG = "dicom-sync/job"
MAX_RUNTIME_SECONDS = 3600  # dagster.yaml allows one queued run per value at a time


@job(
    name=SYNC_JOB,
    description="Move what the remote PACS has and the local PACS lacks, for the last hours.",
    # One process: a process per step would cost seconds per run, every minute.
    executor_def=in_process_executor,
    # A run that outlives this (its process killed, a PACS hung) is marked failed by run
    # monitoring, so it cannot block the one-at-a-time queue and the schedule for ever.
    tags={CONCURRENCY_TAG: SYNC_JOB, "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
)
def dicom_sync() -> None:
    cycle = start_cycle()
    remote = query_remote_studies(cycle)
    local = query_local_studies(cycle)
    plan = plan_transfers(cycle, remote, local)
    transfers = move_series(cycle, plan)
    report(cycle, remote, local, plan, transfers)


@job(
    name="check_connections",
    description="C-ECHO both PACS, C-FIND one study on each, and show which optional return "
    "keys (instance counts, modalities) each fills.",
    executor_def=in_process_executor,
)
def check_connections() -> None:
    check_nodes()

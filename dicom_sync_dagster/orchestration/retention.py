"""Run history retention: at one run a minute the history grows by 1,440 runs a day.

A daily job deletes sync runs that did nothing (succeeded, planned no series) once they are
older than ``keep_idle_days``, and failed sync runs once older than ``keep_failed_days`` (a
node down for a weekend fails 2,880 runs). Runs that moved data are kept.
"""

from datetime import datetime, timedelta, timezone

from dagster import (
    Config,
    DagsterRunStatus,
    DefaultScheduleStatus,
    OpExecutionContext,
    RunsFilter,
    in_process_executor,
    job,
    op,
    schedule,
)
from pydantic import Field

from .tags import CONCURRENCY_TAG, OUTCOME_TAG


class RetentionConfig(Config):
    keep_idle_days: float = Field(
        default=7.0, ge=0, description="Delete idle sync runs older than this many days."
    )
    keep_failed_days: float = Field(
        default=30.0,
        ge=0,
        description="Delete failed sync runs (also those that failed before their report, "
        "e.g. a node down) older than this many days.",
    )
    dry_run: bool = Field(default=False, description="Count what would go; delete nothing.")


def _old_sync_runs(context: OpExecutionContext, runs: RunsFilter) -> list[str]:
    """The ids of the runs of ``runs`` that are sync runs (they carry the route's job tag)."""
    return [r.run_id for r in context.instance.get_runs(filters=runs) if CONCURRENCY_TAG in r.tags]


@op
def delete_old_runs(context: OpExecutionContext, config: RetentionConfig) -> int:
    """Delete sync runs (of every route) tagged idle, and failed ones, once older than their
    cutoff; runs that moved data are kept. Returns how many went."""
    now = datetime.now(timezone.utc)
    idle_cutoff = now - timedelta(days=config.keep_idle_days)
    failed_cutoff = now - timedelta(days=config.keep_failed_days)
    idle = RunsFilter(
        statuses=[DagsterRunStatus.SUCCESS],
        tags={OUTCOME_TAG: "idle"},
        created_before=idle_cutoff,
    )
    failed = RunsFilter(statuses=[DagsterRunStatus.FAILURE], created_before=failed_cutoff)
    run_ids = _old_sync_runs(context, idle) + _old_sync_runs(context, failed)
    if not config.dry_run:
        for run_id in run_ids:
            context.instance.delete_run(run_id)
    context.log.info(
        f"{'would delete' if config.dry_run else 'deleted'} {len(run_ids)} sync runs: idle ones "
        f"created before {idle_cutoff:%Y-%m-%d %H:%M} UTC, failed ones before "
        f"{failed_cutoff:%Y-%m-%d %H:%M} UTC"
    )
    context.add_output_metadata(
        {
            "deleted_runs": len(run_ids),
            "idle_cutoff": idle_cutoff.isoformat(),
            "failed_cutoff": failed_cutoff.isoformat(),
        }
    )
    return len(run_ids)


@job(
    name="prune_run_history",
    description="Delete idle sync runs older than keep_idle_days and failed ones older than "
    "keep_failed_days; keep runs that moved data.",
    executor_def=in_process_executor,
)
def prune_run_history() -> None:
    delete_old_runs()


@schedule(
    job=prune_run_history,
    cron_schedule="17 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily at 03:17: delete idle sync runs older than 7 days, failed ones older "
    "than 30.",
)
def prune_daily() -> dict:
    return {}

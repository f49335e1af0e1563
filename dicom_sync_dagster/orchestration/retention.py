"""Run history retention: at one run a minute the history grows by 1,440 runs a day.

A daily job deletes sync runs that did nothing (succeeded, planned no series) once they are
older than ``keep_idle_days``. Runs that moved data or failed are kept.
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

from .coverage import OUTCOME_TAG


class RetentionConfig(Config):
    keep_idle_days: float = Field(
        default=7.0, ge=0, description="Delete idle sync runs older than this many days."
    )
    dry_run: bool = Field(default=False, description="Count what would go; delete nothing.")


@op
def delete_idle_runs(context: OpExecutionContext, config: RetentionConfig) -> int:
    """Delete successful sync runs (of every route) tagged idle and older than the cutoff;
    return how many."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=config.keep_idle_days)
    idle = RunsFilter(
        statuses=[DagsterRunStatus.SUCCESS],
        tags={OUTCOME_TAG: "idle"},
        created_before=cutoff,
    )
    run_ids = [run.run_id for run in context.instance.get_runs(filters=idle)]
    if not config.dry_run:
        for run_id in run_ids:
            context.instance.delete_run(run_id)
    deleted = len(run_ids)
    context.log.info(
        f"{'would delete' if config.dry_run else 'deleted'} {deleted} idle sync runs "
        f"created before {cutoff:%Y-%m-%d %H:%M} UTC"
    )
    context.add_output_metadata({"deleted_runs": deleted, "cutoff": cutoff.isoformat()})
    return deleted


@job(
    name="prune_run_history",
    description="Delete idle sync runs older than keep_idle_days; keep runs that moved or failed.",
    executor_def=in_process_executor,
)
def prune_run_history() -> None:
    delete_idle_runs()


@schedule(
    job=prune_run_history,
    cron_schedule="17 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily at 03:17: delete idle sync runs older than 7 days.",
)
def prune_daily() -> dict:
    return {}

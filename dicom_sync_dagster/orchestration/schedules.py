"""Each route's schedule: every minute (or its cron), unless a run of the route is going."""

import os
from datetime import datetime, timezone

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from ..routes import Route
from ..settings import SCHEDULE, TIMEZONE, ConfigError, check_timezone
from .route_check import check_route
from .stale_runs import fail_dead_runs

IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def sync_in_progress(instance, job_name: str) -> str | None:
    """The id and status of a run of ``job_name`` that has not finished, if any (a run whose
    process died holding the route's lock is marked failed first: stale_runs)."""
    fail_dead_runs(instance, job_name)
    records = instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=1
    )
    if not records:
        return None
    run = records[0].dagster_run
    return f"run {run.run_id[:8]} is {run.status.value.lower()}"


def default_status_from_env(env=os.environ) -> DefaultScheduleStatus:
    """DICOM_SYNC_SCHEDULE=off starts the schedules stopped (turn them on in the UI)."""
    value = env.get(SCHEDULE, "").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ValueError(f"{SCHEDULE}={value!r} must be 'on' or 'off'")
    return DefaultScheduleStatus.RUNNING if value == "on" else DefaultScheduleStatus.STOPPED


def schedule_zone(route: Route, env=os.environ) -> str:
    """The zone cron times are read in: the PACS zone (as the route's StudyTimes are)."""
    value = env.get(TIMEZONE, "") if route.from_env else str(route.options["timezone"])
    try:
        return check_timezone(TIMEZONE, value)[0]
    except ConfigError:  # reported by the run's start_cycle, naming the setting
        return "UTC"


def sync_schedule(route: Route, job: JobDefinition) -> ScheduleDefinition:
    """Runs with the route's mode and window (its resources); skips while one is going."""
    status = default_status_from_env()
    if not route.schedule_on:
        status = DefaultScheduleStatus.STOPPED

    @schedule(
        name=route.schedule_name,
        job=job,
        cron_schedule=route.cron,
        execution_timezone=schedule_zone(route),
        default_status=status,
        description=f"Route {route.name}: on '{route.cron}', checks both PACS and starts a "
        f"run of {route.job_name} only when there is something to move (or the check fails); "
        "otherwise the tick is skipped with the figures. Skips while a run is going.",
    )
    def _schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        busy = sync_in_progress(context.instance, route.job_name)
        if busy:
            return SkipReason(f"a sync run is still in progress ({busy})")
        tick = context.scheduled_execution_time or datetime.now(timezone.utc)
        return check_route(context.instance, route, tick)

    return _schedule

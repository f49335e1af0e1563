"""Every minute, unless a sync run is still going."""

import os

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from ..core.selection import Mode, Selection
from ..settings import IMAGE_LIMIT, MODE, SCHEDULE
from .jobs import SYNC_JOB, dicom_sync

IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def sync_in_progress(instance) -> str | None:
    """The id and status of a sync run that has not finished, if any."""
    records = instance.get_run_records(
        filters=RunsFilter(job_name=SYNC_JOB, statuses=IN_PROGRESS), limit=1
    )
    if not records:
        return None
    run = records[0].dagster_run
    return f"run {run.run_id[:8]} is {run.status.value.lower()}"


def mode_config_from_env(env=os.environ) -> dict[str, object]:
    """The start_cycle config for DICOM_SYNC_MODE / DICOM_SYNC_IMAGE_LIMIT."""
    mode_text = env.get(MODE, "").strip() or Mode.smallest.value
    try:
        mode = Mode(mode_text)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"{MODE}={mode_text!r} is not one of {choices}") from None
    limit_text = env.get(IMAGE_LIMIT, "").strip()
    config: dict[str, object] = {"mode": mode.value}
    if mode is Mode.fewer_than:
        if not (limit_text.isascii() and limit_text.isdigit()) or int(limit_text) < 1:
            raise ValueError(
                f"{IMAGE_LIMIT}={limit_text!r} must be a whole number >= 1 for mode fewer_than"
            )
        config["image_limit"] = int(limit_text)
        Selection(mode, int(limit_text))
    return config


def default_status_from_env(env=os.environ) -> DefaultScheduleStatus:
    """DICOM_SYNC_SCHEDULE=off starts the schedule stopped (turn it on in the UI)."""
    value = env.get(SCHEDULE, "").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ValueError(f"{SCHEDULE}={value!r} must be 'on' or 'off'")
    return DefaultScheduleStatus.RUNNING if value == "on" else DefaultScheduleStatus.STOPPED


@schedule(
    job=dicom_sync,
    cron_schedule="* * * * *",
    default_status=default_status_from_env(),
    description="Sync every minute with the mode from DICOM_SYNC_MODE; skips while a run is going.",
)
def every_minute(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    busy = sync_in_progress(context.instance)
    if busy:
        return SkipReason(f"a sync run is still in progress ({busy})")
    config = mode_config_from_env()
    tick = context.scheduled_execution_time
    config["reference_time"] = tick.isoformat() if tick else ""
    return RunRequest(run_config={"ops": {"start_cycle": {"config": config}}})

"""Which series failed in earlier sync runs, read back from the runs' own event logs."""

from datetime import datetime, timezone

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

FAILED_SERIES_KEY = "failed_series"  # report failure metadata: the SeriesInstanceUIDs
LOOK_BACK_RUNS = 100


def earlier_failures(
    instance: DagsterInstance, job_name: str, run_id: str
) -> list[tuple[str, set[str]]]:
    """(start time, failed series) of earlier finished sync runs, newest first. Runs that
    ended before their report (a node down) say nothing about series and are left out."""
    runs = instance.get_run_records(
        filters=RunsFilter(
            job_name=job_name, statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
        ),
        limit=LOOK_BACK_RUNS,
    )
    history = []
    for record in runs:
        run = record.dagster_run
        if run.run_id == run_id:
            continue
        started = datetime.fromtimestamp(record.start_time or 0, timezone.utc).isoformat(
            timespec="seconds"
        )
        if run.status == DagsterRunStatus.SUCCESS:
            history.append((started, set()))
            continue
        failed = _report_failure_series(instance, run.run_id)
        if failed is not None:
            history.append((started, failed))
    return history


def _report_failure_series(instance: DagsterInstance, run_id: str) -> set[str] | None:
    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        dagster_event = event.dagster_event
        if dagster_event is None or dagster_event.step_key != "report":
            continue
        data = dagster_event.event_specific_data.user_failure_data
        if data and FAILED_SERIES_KEY in data.metadata:
            return set(data.metadata[FAILED_SERIES_KEY].value)
    return None

"""Series failing run after run: each failing run records, per series, in how many runs in a
row it has failed and since when; the next run reads only the latest earlier run that got as
far as its report (and was not a dry run) and carries the count on."""

from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from .tags import REFERENCE_TAG

FAILURE_STREAKS_KEY = "failure_streaks"  # report failure metadata: {series UID: [runs, since]}
SKIP_RUNS_WITHOUT_REPORT = 50  # runs that failed before their report (a node down) say nothing


def previous_streaks(
    instance: DagsterInstance, job_name: str, run_id: str
) -> dict[str, tuple[int, str]]:
    """The streaks recorded by the latest earlier sync run that reached its report; empty
    when that run succeeded (nothing was failing) or there is none."""
    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=job_name, statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
        ),
        limit=SKIP_RUNS_WITHOUT_REPORT,
    )
    for record in records:
        run = record.dagster_run
        if run.run_id == run_id or REFERENCE_TAG not in run.tags:
            continue  # this run; a dry run; a run that failed before its report
        if run.status == DagsterRunStatus.SUCCESS:
            return {}
        streaks = _recorded_streaks(instance, run.run_id)
        if streaks is not None:
            return streaks
    return {}


def _recorded_streaks(instance: DagsterInstance, run_id: str) -> dict | None:
    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        dagster_event = event.dagster_event
        if dagster_event is None or dagster_event.step_key != "report":
            continue
        failure: Any = dagster_event.event_specific_data  # StepFailureData (not exported)
        data = failure.user_failure_data
        if data and FAILURE_STREAKS_KEY in data.metadata:
            return {uid: tuple(v) for uid, v in data.metadata[FAILURE_STREAKS_KEY].value.items()}
    return None

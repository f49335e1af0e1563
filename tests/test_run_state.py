"""The sync ops hand their values on in the run's process (orchestration.run_state), not as
Dagster outputs: what a step run without its predecessors says, and what a process keeps."""

from __future__ import annotations

from dagster import DagsterInstance

from dicom_sync_dagster.definitions import route_definitions
from dicom_sync_dagster.orchestration import run_state
from dicom_sync_dagster.routes import DEFAULT_ROUTE, Route

from .test_schedule import NODES


def test_a_step_run_without_its_run_says_to_re_execute_the_whole_run(tmp_path, monkeypatch):
    for name, value in NODES.items():
        monkeypatch.setenv(name, value)
    job = route_definitions([Route(DEFAULT_ROUTE)]).resolve_job_def("dicom_sync")

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        result = job.execute_in_process(
            op_selection=["plan_transfers"], instance=instance, raise_on_error=False
        )

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "re-execute the whole run" in message


def test_a_process_keeps_the_states_of_its_latest_runs_only():
    """A long-lived process (the code server, `dicom-sync run` without --once) must not grow
    with every run."""
    ids = [f"run-{n}" for n in range(run_state.KEPT_RUNS + 3)]
    for run_id in ids:
        run_state.begin(run_id, cycle=None)  # type: ignore[arg-type]

    kept = [run_id for run_id in ids if run_state.state_of(run_id) is not None]
    assert kept == ids[-run_state.KEPT_RUNS :]
    for run_id in kept:
        assert run_state.take(run_id) is not None
        assert run_state.state_of(run_id) is None

"""The every-minute schedule, the route's default mode and the one-run-at-a-time rule, on a
real Dagster instance."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    validate_run_config,
)

from dicom_sync_dagster.definitions import defs, route_definitions
from dicom_sync_dagster.orchestration.jobs import CONCURRENCY_TAG
from dicom_sync_dagster.orchestration.schedules import default_status_from_env
from dicom_sync_dagster.routes import DEFAULT_ROUTE, Route

from .helpers import run_state_of, step_metadata

REPO = Path(__file__).resolve().parents[1]
TICK = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
SYNC_JOB = "dicom_sync"
every_minute = defs().resolve_schedule_def("every_minute")
NODES = {
    "DICOM_SYNC_REMOTE_AE": "REMOTE",
    "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
    "DICOM_SYNC_REMOTE_PORT": "11112",
    "DICOM_SYNC_LOCAL_AE": "LOCAL",
    "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
    "DICOM_SYNC_LOCAL_PORT": "11113",
    "DICOM_SYNC_TIMEZONE": "UTC",
}


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def evaluate(instance) -> RunRequest | SkipReason:
    with build_schedule_context(instance=instance, scheduled_execution_time=TICK) as context:
        return every_minute(context)


def test_schedule_runs_every_minute_and_is_on_by_default():
    assert every_minute.cron_schedule == "* * * * *"
    assert every_minute.default_status.value == "RUNNING"
    assert defs().resolve_schedule_def("every_minute").job_name == SYNC_JOB


def test_a_tick_whose_check_cannot_reach_the_nodes_requests_a_run_for_it(instance, monkeypatch):
    for name, value in NODES.items():  # nobody listens there: the run will fail naming them
        monkeypatch.setenv(name, value)
    request = evaluate(instance)

    assert isinstance(request, RunRequest)
    config = request.run_config["ops"]["start_cycle"]["config"]
    assert config == {"reference_time": TICK.isoformat()}
    validate_run_config(defs().resolve_job_def(SYNC_JOB), request.run_config)


def start_cycle_with_env(instance, monkeypatch, env: dict[str, str], config=None):
    """Only the start_cycle op (no network) of a code location built with ``env`` set."""
    for name, value in {**NODES, **env}.items():
        monkeypatch.setenv(name, value)
    job = route_definitions([Route(DEFAULT_ROUTE)]).resolve_job_def(SYNC_JOB)
    return job.execute_in_process(
        run_config={"ops": {"start_cycle": {"config": config or {}}}},
        op_selection=["start_cycle"],
        instance=instance,
        raise_on_error=False,
    )


def test_runs_take_the_mode_from_the_environment(instance, monkeypatch):
    env = {"DICOM_SYNC_MODE": "fewer_than", "DICOM_SYNC_IMAGE_LIMIT": "300"}
    result = start_cycle_with_env(instance, monkeypatch, env)

    assert result.success
    assert run_state_of(result).cycle.selection.image_limit == 300
    assert step_metadata(result, "start_cycle")["mode"] == "series with < 300 images"


def test_the_run_config_mode_wins_over_the_environment(instance, monkeypatch):
    env = {"DICOM_SYNC_MODE": "fewer_than", "DICOM_SYNC_IMAGE_LIMIT": "300"}
    result = start_cycle_with_env(instance, monkeypatch, env, {"mode": {"all": {}}})

    assert run_state_of(result).cycle.selection.mode.value == "all"


@pytest.mark.parametrize("status", [DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED])
def test_schedule_skips_while_a_sync_run_is_in_progress(instance, status, monkeypatch):
    for name, value in NODES.items():
        monkeypatch.setenv(name, value)
    job = defs().resolve_job_def(SYNC_JOB)
    run = instance.create_run_for_job(job_def=job, run_config={}, status=status)

    result = evaluate(instance)

    assert isinstance(result, SkipReason)
    assert run.run_id[:8] in result.skip_message
    instance.report_run_failed(run)
    assert isinstance(evaluate(instance), RunRequest)


def test_bad_mode_variable_is_named(instance, monkeypatch):
    result = start_cycle_with_env(instance, monkeypatch, {"DICOM_SYNC_MODE": "biggest"})

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "DICOM_SYNC_MODE='biggest'" in failure.event_specific_data.error.message


def test_committed_instance_config_allows_one_sync_run_at_a_time(instance):
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    per_value = {"applyLimitPerUniqueValue": True}
    assert {"key": CONCURRENCY_TAG, "value": per_value, "limit": 1} in limits
    assert defs().resolve_job_def(SYNC_JOB).tags[CONCURRENCY_TAG] == SYNC_JOB


@pytest.mark.parametrize(
    ("value", "status"), [("", "RUNNING"), ("on", "RUNNING"), ("OFF", "STOPPED")]
)
def test_schedule_default_status_follows_the_variable(value, status):
    assert default_status_from_env({"DICOM_SYNC_SCHEDULE": value}).value == status


def test_bad_schedule_variable_is_named():
    with pytest.raises(ValueError, match="DICOM_SYNC_SCHEDULE='maybe'"):
        default_status_from_env({"DICOM_SYNC_SCHEDULE": "maybe"})

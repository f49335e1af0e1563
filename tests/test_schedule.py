"""The every-minute schedule and the one-run-at-a-time rule, on a real Dagster instance."""

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

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.orchestration.jobs import CONCURRENCY_TAG, SYNC_JOB
from dicom_sync_dagster.orchestration.schedules import default_status_from_env, every_minute

REPO = Path(__file__).resolve().parents[1]
TICK = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)


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
    assert defs.resolve_schedule_def("every_minute").job_name == SYNC_JOB


def test_idle_schedule_requests_a_run_for_its_tick_with_the_env_mode(instance, monkeypatch):
    monkeypatch.setenv("DICOM_SYNC_MODE", "fewer_than")
    monkeypatch.setenv("DICOM_SYNC_IMAGE_LIMIT", "300")

    request = evaluate(instance)

    assert isinstance(request, RunRequest)
    config = request.run_config["ops"]["start_cycle"]["config"]
    assert config == {"mode": "fewer_than", "image_limit": 300, "reference_time": TICK.isoformat()}
    validate_run_config(defs.resolve_job_def(SYNC_JOB), request.run_config)


@pytest.mark.parametrize("status", [DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED])
def test_schedule_skips_while_a_sync_run_is_in_progress(instance, status):
    job = defs.resolve_job_def(SYNC_JOB)
    run = instance.create_run_for_job(job_def=job, run_config={}, status=status)

    result = evaluate(instance)

    assert isinstance(result, SkipReason)
    assert run.run_id[:8] in result.skip_message
    instance.report_run_failed(run)
    assert isinstance(evaluate(instance), RunRequest)


def test_bad_mode_variable_is_named(instance, monkeypatch):
    monkeypatch.setenv("DICOM_SYNC_MODE", "biggest")
    with pytest.raises(ValueError, match="DICOM_SYNC_MODE='biggest'"):
        evaluate(instance)


def test_committed_instance_config_allows_one_sync_run_at_a_time(instance):
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": CONCURRENCY_TAG, "value": SYNC_JOB, "limit": 1} in limits
    assert defs.resolve_job_def(SYNC_JOB).tags[CONCURRENCY_TAG] == SYNC_JOB


@pytest.mark.parametrize(
    ("value", "status"), [("", "RUNNING"), ("on", "RUNNING"), ("OFF", "STOPPED")]
)
def test_schedule_default_status_follows_the_variable(value, status):
    assert default_status_from_env({"DICOM_SYNC_SCHEDULE": value}).value == status


def test_bad_schedule_variable_is_named():
    with pytest.raises(ValueError, match="DICOM_SYNC_SCHEDULE='maybe'"):
        default_status_from_env({"DICOM_SYNC_SCHEDULE": "maybe"})

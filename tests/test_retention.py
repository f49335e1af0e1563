"""Run history retention on a real Dagster instance, with runs of the real sync job."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.orchestration.tags import OUTCOME_TAG
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import run_sync

pytestmark = pytest.mark.servers


def prune(instance, **config):
    job = defs().resolve_job_def("prune_run_history")
    result = job.execute_in_process(
        run_config={"ops": {"delete_old_runs": {"config": config}}}, instance=instance
    )
    return result.output_for_node("delete_old_runs")


def sync_runs(instance) -> dict[str, str]:
    return {
        run.run_id: run.tags.get(OUTCOME_TAG, "")
        for run in instance.get_runs()
        if run.job_name == "dicom_sync"
    }


def test_idle_runs_are_deleted_once_old_and_others_kept(site, tmp_path, monkeypatch):
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
        moved = run_sync(site, instance).run_id  # moves the series
        idle = [run_sync(site, instance).run_id for _ in range(2)]  # nothing left to do
        env = site.env() | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}
        site.add_remote(SyntheticStudy(site.ago(hours=2), [1]))
        monkeypatch.setattr(type(site), "env", lambda self: env)
        failed = run_sync(site, instance).run_id
        assert site.local.series_instances(study.series_uids[0]) == 2
        site.local.stop()
        local_down = run_sync(site, instance).run_id  # fails before its report: tagged too

        assert sync_runs(instance) == {
            moved: "moved",
            idle[0]: "idle",
            idle[1]: "idle",
            failed: "failed",
            local_down: "failed",
        }
        assert instance.get_run_by_id(failed).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(local_down).status == DagsterRunStatus.FAILURE

        assert prune(instance, keep_idle_days=1) == 0  # all runs are younger than a day
        assert prune(instance, keep_idle_days=0, dry_run=True) == 2
        assert len(sync_runs(instance)) == 5
        assert prune(instance, keep_idle_days=0) == 2
        assert sync_runs(instance) == {moved: "moved", failed: "failed", local_down: "failed"}
        assert prune(instance, keep_failed_days=0) == 2  # both failed runs, tagged or not
        assert sync_runs(instance) == {moved: "moved"}
        assert len(instance.get_runs()) > 1  # the prune runs themselves are not sync runs


def test_the_daily_prune_is_scheduled():
    schedule = defs().resolve_schedule_def("prune_daily")
    assert schedule.job_name == "prune_run_history"
    assert schedule.cron_schedule == "17 3 * * *"

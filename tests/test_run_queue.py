"""Never two sync runs at once, on a real `dagster dev`: a run launched while another is
moving data waits in the queue, then finds the series already there and moves nothing.

The remote is the scripted SCP of scripted_pacs.py, because its C-MOVE must stall for a few
seconds on demand (no real server does); the local is a real Orthanc.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from dagster import DagsterRunStatus

from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import Site
from .scripted_pacs import ScriptedPacs
from .support.dagster_dev import clean_env, start_dagster_dev
from .test_dagster_dev import _report_output_metadata

pytestmark = pytest.mark.servers

STALL_SECONDS = 6
RUN_CONFIG = {"ops": {"start_cycle": {"config": {"mode": {"all": {}}}}}}


def wait_for(client, run_id, statuses, seconds=90) -> DagsterRunStatus:
    deadline = time.monotonic() + seconds
    status = client.get_run_status(run_id)
    while status not in statuses and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get_run_status(run_id)
    return status


def test_a_second_run_queues_while_the_first_moves(local_orthanc, tmp_path):
    site = Site(None, local_orthanc, datetime.now(timezone.utc).replace(microsecond=0))
    study = SyntheticStudy(site.ago(hours=1), [3])
    remote = ScriptedPacs(
        "SCRIPTED",
        study.datasets(),
        {local_orthanc.node.ae_title: local_orthanc.node.port},
        [("stall", STALL_SECONDS)],
    ).start()
    site.remote = remote
    dev = start_dagster_dev(tmp_path, clean_env(site.env(), {"DICOM_SYNC_SCHEDULE": "off"}))
    try:
        with dev.log_on_failure():
            dev.wait_until_loaded()
            client = dev.client()

            first = client.submit_job_execution("dicom_sync", run_config=RUN_CONFIG)
            assert wait_for(client, first, {DagsterRunStatus.STARTED}) == DagsterRunStatus.STARTED
            deadline = time.monotonic() + 30
            while not remote.moves and time.monotonic() < deadline:  # the first run is moving
                time.sleep(0.1)
            assert remote.moves == [study.series_uids[0]]

            second = client.submit_job_execution("dicom_sync", run_config=RUN_CONFIG)
            time.sleep(2)  # the queue daemon polls every second or so: give it the chance
            assert client.get_run_status(second) == DagsterRunStatus.QUEUED
            assert client.get_run_status(first) == DagsterRunStatus.STARTED

            done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}
            assert wait_for(client, first, done) == DagsterRunStatus.SUCCESS
            assert wait_for(client, second, done) == DagsterRunStatus.SUCCESS

            with dev.instance() as instance:
                first_record = instance.get_run_record_by_id(first)
                second_record = instance.get_run_record_by_id(second)
                second_meta = _report_output_metadata(instance, second)
            assert second_record.start_time >= first_record.end_time  # one after the other
            assert second_meta["series_planned"] == 0  # nothing left to move
            assert remote.moves == [study.series_uids[0]]  # the series was moved once
            assert site.local.series_instances(study.series_uids[0]) == 3
    finally:
        dev.stop()
        remote.stop()

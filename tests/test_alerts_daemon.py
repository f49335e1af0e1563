"""The alert sensors as they run for real: `dagster dev` (its daemon evaluates the sensors),
a sync run launched over GraphQL that fails (Orthanc refuses the move to an unknown AE), and
the webhook server on loopback receiving the one message."""

from __future__ import annotations

import time

import pytest
from dagster_graphql import DagsterGraphQLClient

from dicom_sync_dagster.alerts.sensors import ON_FAILURE
from dicom_sync_dagster.sandbox import LOOPBACK
from dicom_sync_dagster.synthetic import SyntheticStudy

from .alert_servers import WebhookServer
from .test_dagster_dev import (
    RUN_SECONDS,
    TERMINAL,
    _log_tail_on_failure,
    _start,
    _wait_until_loaded,
)

pytestmark = pytest.mark.servers

SENSOR_SECONDS = 180  # the daemon evaluates run-status sensors every 30 s; a loaded machine

SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 1) { status } } }
  }
}
"""


def test_the_daemon_sends_the_failure_alert_of_a_run_launched_in_the_ui(site, tmp_path):
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    webhook = WebhookServer()
    env = site.env() | {
        "DICOM_SYNC_MOVE_DESTINATION": "NOWHERE",
        "DICOM_SYNC_ALERT_WEBHOOK_URL": webhook.url,
        "DICOM_SYNC_ALERT_UI_URL": "http://dicom-sync.example.org",
    }
    dev = _start(tmp_path, env)
    try:
        with _log_tail_on_failure(dev):
            location = _wait_until_loaded(dev)
            [repository] = location["repositories"]
            selector = {
                "repositoryLocationName": location["name"],
                "repositoryName": repository["name"],
                "sensorName": ON_FAILURE,
            }
            # A run-status sensor starts from the events stored at its first tick: wait for
            # that tick, so the run below is one it watches.
            deadline = time.monotonic() + SENSOR_SECONDS
            state = {}
            while time.monotonic() < deadline:
                state = dev.graphql(SENSOR_TICKS, {"selector": selector})["sensorOrError"]
                if state["sensorState"]["ticks"]:
                    break
                time.sleep(0.5)
            assert state["sensorState"]["status"] == "RUNNING", state
            assert state["sensorState"]["ticks"], "the failure sensor never ticked"

            client = DagsterGraphQLClient(LOOPBACK, port_number=dev.port)
            run_id = client.submit_job_execution("dicom_sync", run_config={})
            deadline = time.monotonic() + RUN_SECONDS
            while client.get_run_status(run_id) not in TERMINAL:
                assert time.monotonic() < deadline, "the run did not finish"
                time.sleep(0.5)

            posts = webhook.wait_for(1, SENSOR_SECONDS)
            assert len(posts) == 1, posts
            message = posts[0]["json"]
            assert message["event"] == "failing" and message["route"] == "default"
            assert message["url"] == f"http://dicom-sync.example.org/runs/{run_id}"
            assert "does not know move destination NOWHERE" in message["text"]
    finally:
        dev.stop()
        webhook.stop()

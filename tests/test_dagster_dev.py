"""The product as a user runs it: `dagster dev` on the code location (tests/support/dagster_dev.py)
with its own DAGSTER_HOME (a copy of the project's dagster.yaml, so runs go through the queued run
coordinator and are dequeued by the daemon `dagster dev` starts), on real Orthanc servers.

Two deployments, because `dagster dev` takes 10-90 s to start on a loaded machine and a
schedule ticks only on the minute:

- ``dagster_dev`` (per test): the DICOM_SYNC_* variables name the site, one route, its
  schedule off; a .env in its folder overrides the environment.
- ``deployment`` (one for the module, shared by the tests of its schedules, its routes and its
  alerts): a routes file with five routes over two remote Orthanc servers and one local, and
  alerts to a webhook server on loopback. The routes' data do not overlap, so each test sees
  only its own routes' effects, in any order:

  ========== ======== ======== =========================== ===================================
  route      remote   window   schedule                    its data
  ========== ======== ======== =========================== ===================================
  default    A        2 h      on (every_minute)           HERE (1 h ago) on both: ticks skip
  busy       A        6 h      on                          NEW (5 h ago) missing: a tick runs
  failing    A        12 h     off; launched over GraphQL  FAIL (8 h ago) to NOWHERE: one alert
  ct_all     B        12 h     off; launched over GraphQL  DEV-R (3 h ago), mode all
  ct_small   B        12 h     off; launched over GraphQL  the same, mode smallest
  ========== ======== ======== =========================== ===================================
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClientError

from dicom_sync_dagster.alerts.sensors import ON_FAILURE
from dicom_sync_dagster.orchestration.archive import archive_key
from dicom_sync_dagster.sandbox import OrthancServer, Peer
from dicom_sync_dagster.synthetic import SyntheticStudy

from .alert_servers import WebhookServer
from .conftest import CALLING_AE, ZONE_NAME, Site, _reference, _require, discard
from .support.dagster_dev import (
    RUN_SECONDS,
    DagsterDev,
    clean_env,
    listening,
    running_dagster_dev,
    start_dagster_dev,
)

pytestmark = pytest.mark.servers

JOB = "dicom_sync"
SCHEDULE = "every_minute"
TICK_SECONDS = 180  # the next full minute, the check, and the daemon's loop around it
SENSOR_SECONDS = 180  # the daemon evaluates run-status sensors every 30 s; a loaded machine

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule {
      scheduleState { status ticks(limit: 20) { status timestamp skipReason runIds } }
    }
  }
}
"""

SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 1) { status } } }
  }
}
"""

ROUTES_ELSEWHERE = """
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 11112}
routes:
  - name: from_file
    remote: {ae_title: REMOTEPACS, host: 127.0.0.1, port: 11113}
"""


def _selector(location: dict, **name: str) -> dict:
    return {
        "repositoryLocationName": location["name"],
        "repositoryName": location["repositories"][0]["name"],
        **name,
    }


def _schedule_state(dev: DagsterDev, location: dict, schedule: str) -> dict:
    selector = _selector(location, scheduleName=schedule)
    data = dev.graphql(SCHEDULE_QUERY, {"selector": selector})["scheduleOrError"]
    assert data["__typename"] == "Schedule", data
    return data["scheduleState"]


def _first_tick(dev: DagsterDev, location: dict, schedule: str) -> dict:
    """The schedule's first tick, once it has ended (skipped, launched its run, or failed)."""
    deadline = time.monotonic() + TICK_SECONDS
    while time.monotonic() < deadline:
        ticks = _schedule_state(dev, location, schedule)["ticks"]  # newest first
        if ticks and ticks[-1]["status"] != "STARTED":
            return ticks[-1]
        time.sleep(1)
    raise AssertionError(f"{schedule}: no tick within {TICK_SECONDS} s")


def _report_output_metadata(instance: DagsterInstance, run_id: str) -> dict[str, object]:
    outputs = [
        record.dagster_event
        for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT)
        if record.dagster_event and record.dagster_event.step_key == "report"
    ]
    assert len(outputs) == 1, outputs
    metadata = outputs[0].event_specific_data.metadata
    return {key: value.value for key, value in metadata.items()}


def _failures(instance: DagsterInstance, run_id: str) -> list[str]:
    return [
        f"{record.step_key}: {record.dagster_event.message if record.dagster_event else ''}"
        for record in instance.all_logs(run_id)
        if record.dagster_event and record.dagster_event.is_failure
    ]


# ---- one route from the variables, a run launched over GraphQL -----------------------------


@pytest.fixture
def dagster_dev(site, tmp_path) -> Iterator[DagsterDev]:
    """`dagster dev` pointed at the site, its schedule off; the environment names a routes
    file, the .env in its folder says DICOM_SYNC_ROUTES_FILE=none (the .env wins). Stopped at
    teardown, before `site` stops the Orthanc servers."""
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(ROUTES_ELSEWHERE)
    env = clean_env(
        site.env(), {"DICOM_SYNC_SCHEDULE": "off", "DICOM_SYNC_ROUTES_FILE": str(elsewhere)}
    )
    with running_dagster_dev(tmp_path, env, dotenv="DICOM_SYNC_ROUTES_FILE=none\n") as dev:
        yield dev


LAUNCHPAD_QUERY = """
query Launchpad($selector: PipelineSelector!, $config: RunConfigData) {
  runConfigSchemaOrError(selector: $selector) {
    __typename
    ... on RunConfigSchema {
      rootDefaultYaml
      isRunConfigValid(runConfigData: $config) { __typename }
    }
  }
}
"""
LAUNCHPAD_YAML = """ops:
  start_cycle:
    config:
      catch_up: true
      dry_run: false
      mode:
        smallest: {}
      reference_time: ''
      window_hours: 12.0
"""


def _check_the_launchpad(dev: DagsterDev, location: str, repository: str) -> None:
    """What the Launchpad opens with, and its live check of a mode without its limit."""
    selector = {
        "repositoryLocationName": location,
        "repositoryName": repository,
        "pipelineName": JOB,
    }

    def launchpad(config: dict) -> dict:
        variables = {"selector": selector, "config": config}
        return dev.graphql(LAUNCHPAD_QUERY, variables)["runConfigSchemaOrError"]

    shown = launchpad({})
    assert shown["rootDefaultYaml"] == LAUNCHPAD_YAML
    assert shown["isRunConfigValid"]["__typename"] == "PipelineConfigValidationValid"
    no_limit = {"ops": {"start_cycle": {"config": {"mode": {"fewer_than": {}}}}}}
    assert launchpad(no_limit)["isRunConfigValid"]["__typename"] == "RunConfigValidationInvalid"


def test_dagster_dev_runs_the_sync_job_launched_over_graphql(site, dagster_dev):
    dev = dagster_dev
    first = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 5], accession="DEV-1"))
    second = site.add_remote(SyntheticStudy(site.ago(hours=3), [3], accession="DEV-2"))
    seeded = {
        (study.study_uid, number + 1): (uid, size)
        for study in (first, second)
        for number, (uid, size) in enumerate(
            zip(study.series_uids, study.series_sizes, strict=True)
        )
    }
    images = sum(size for _, size in seeded.values())

    with dev.log_on_failure():
        location = dev.wait_until_loaded()
        startup = time.monotonic() - dev.started_at
        [repository] = location["repositories"]
        # The .env's DICOM_SYNC_ROUTES_FILE=none won over the environment's routes file.
        names = {s["name"] for s in repository["schedules"]}
        assert SCHEDULE in names and "sync_from_file_schedule" not in names, names
        [schedule] = [s for s in repository["schedules"] if s["name"] == SCHEDULE]
        assert schedule["scheduleState"]["status"] == "STOPPED"  # DICOM_SYNC_SCHEDULE=off

        _check_the_launchpad(dev, location["name"], repository["name"])
        client = dev.client()
        out_of_range = {"ops": {"start_cycle": {"config": {"window_hours": -5}}}}
        with pytest.raises(DagsterGraphQLClientError, match=r"window_hours=-5\.0 must be > 0"):
            client.submit_job_execution(JOB, run_config=out_of_range)  # no run is created
        run_id = client.submit_job_execution(
            JOB, run_config={"ops": {"start_cycle": {"config": {"mode": {"all": {}}}}}}
        )
        status = dev.wait_for_runs([run_id])[run_id]

        state = _schedule_state(dev, location, SCHEDULE)
        assert state["status"] == "STOPPED"
        assert state["ticks"] == [], state["ticks"]

        with dev.instance() as instance:
            assert status == DagsterRunStatus.SUCCESS, (status, _failures(instance, run_id))
            runs = instance.get_runs()
            assert [run.run_id for run in runs] == [run_id], [(r.run_id, r.tags) for r in runs]
            meta = _report_output_metadata(instance, run_id)

        assert meta["series_planned"] == len(seeded)
        assert meta["series_transferred"] == len(seeded)
        assert meta["series_failed"] == 0
        assert meta["images_moved"] == images
        assert meta["remote_studies"] == 2
        assert meta["local_studies"] == 0
        assert meta["dry_run"] is False
        records = [record.data for record in meta["transfers"].records]
        assert len(records) == len(seeded)
        assert {(r["study_uid"], r["series_number"]) for r in records} == set(seeded)
        for record in records:
            assert record["outcome"] == "success", record
            assert record["images"] == seeded[record["study_uid"], record["series_number"]][1]

        for uid, size in seeded.values():
            assert site.local.series_instances(uid) == size
        assert site.local.instance_count() == images

        dev.stop()
        assert dev.process.returncode is not None
        assert not listening(dev.port), f"port {dev.port} still open after dagster dev stopped"
        print(f"dagster dev came up in {startup:.1f} s")


# ---- the module's deployment: five routes from a routes file, alerts on -----------------------


@dataclass
class Deployment:
    dev: DagsterDev
    location: dict
    a: Site  # remote A and the local
    b: Site  # remote B and the local
    studies: dict[str, SyntheticStudy]  # by accession
    webhook: WebhookServer


def _routes(a: OrthancServer, b: OrthancServer, local: OrthancServer) -> str:
    def node(server: OrthancServer) -> str:
        n = server.node
        return f"{{ae_title: {n.ae_title}, host: {n.host}, port: {n.port}}}"

    return f"""
calling_ae: {CALLING_AE}
timezone: {ZONE_NAME}
local: {node(local)}
routes:
  - name: default
    remote: {node(a)}
    window_hours: 2
  - name: busy
    remote: {node(a)}
    window_hours: 6
    mode: all
  - name: failing
    remote: {node(a)}
    move_destination: NOWHERE
    schedule_status: "off"
  - name: ct_all
    remote: {node(b)}
    mode: all
    schedule_status: "off"
  - name: ct_small
    remote: {node(b)}
    schedule_status: "off"
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    _require("Orthanc", "orthanc")
    folder = tmp_path_factory.mktemp("deployment")
    servers: list[OrthancServer] = []
    webhook = WebhookServer()
    try:
        local = OrthancServer(folder / "local", "LOCALPACS", [Peer(CALLING_AE)]).start()
        servers.append(local)
        peers = [Peer(CALLING_AE), Peer(local.node.ae_title, local.node.port)]
        for name in ("REMOTEA", "REMOTEB"):
            servers.append(OrthancServer(folder / name.lower(), name, peers).start())
        reference = _reference()
        a, b = Site(servers[1], local, reference), Site(servers[2], local, reference)
        studies = {
            "HERE": a.add_remote(SyntheticStudy(a.ago(hours=1), [2, 3], accession="HERE")),
            "NEW": a.add_remote(SyntheticStudy(a.ago(hours=5), [4, 1], accession="NEW")),
            "FAIL": a.add_remote(SyntheticStudy(a.ago(hours=8), [2], accession="FAIL")),
            "DEV-R": b.add_remote(SyntheticStudy(b.ago(hours=3), [2, 4], accession="DEV-R")),
        }
        a.add_local(studies["HERE"])
        env = clean_env(
            {
                "DICOM_SYNC_ALERT_WEBHOOK_URL": webhook.url,
                "DICOM_SYNC_ALERT_UI_URL": "http://dicom-sync.example.org",
                "DICOM_SYNC_ALERT_NO_CHECK_MINUTES": "1440",  # not within this module
            }
        )
        dev = start_dagster_dev(folder, env, routes=_routes(servers[1], servers[2], local))
        try:
            with dev.log_on_failure():
                location = dev.wait_until_loaded()
            yield Deployment(dev, location, a, b, studies, webhook)
        finally:
            dev.stop()
    finally:
        webhook.stop()
        for server in reversed(servers):
            discard(server)


def test_dagster_dev_runs_the_routes_of_the_routes_file_in_its_folder(deployment):
    dev, location = deployment.dev, deployment.location
    study = deployment.studies["DEV-R"]
    with dev.log_on_failure():
        names = {s["name"] for s in location["repositories"][0]["schedules"]}
        assert {"sync_ct_all_schedule", "sync_ct_small_schedule", SCHEDULE} <= names

        client = dev.client()
        jobs = ("sync_ct_all", "sync_ct_small")  # different routes: both may run at once
        run_ids = {job: client.submit_job_execution(job) for job in jobs}
        statuses = dev.wait_for_runs(run_ids.values())

        with dev.instance() as instance:
            for run_id in run_ids.values():
                assert statuses[run_id] == DagsterRunStatus.SUCCESS, _failures(instance, run_id)
            moved = instance.fetch_materializations(archive_key("ct_all"), limit=5).records
        assert len(moved) == 1  # ct_all moved at least the 4-image series
        assert deployment.b.local.series_instances(study.series_uids[1]) == 4


@pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning")  # in gql
def test_the_daemon_sends_the_failure_alert_of_a_run_launched_in_the_ui(deployment):
    """The alert sensors as they run for real: the daemon evaluates them; a sync run launched
    over GraphQL fails (Orthanc refuses the move to an unknown AE); the webhook server on
    loopback receives the one message."""
    dev, location = deployment.dev, deployment.location
    with dev.log_on_failure():
        # A run-status sensor starts from the events stored at its first tick: wait for that
        # tick, so the run below is one it watches.
        selector = _selector(location, sensorName=ON_FAILURE)
        deadline = time.monotonic() + SENSOR_SECONDS
        state: dict = {}
        while time.monotonic() < deadline:
            state = dev.graphql(SENSOR_TICKS, {"selector": selector})["sensorOrError"]
            if state["sensorState"]["ticks"]:
                break
            time.sleep(0.5)
        assert state["sensorState"]["status"] == "RUNNING", state
        assert state["sensorState"]["ticks"], "the failure sensor never ticked"

        run_id = dev.client().submit_job_execution("sync_failing", run_config={})
        status = dev.wait_for_runs([run_id], RUN_SECONDS)[run_id]
        assert status == DagsterRunStatus.FAILURE, status

        posts = deployment.webhook.wait_for(1, SENSOR_SECONDS)
        assert len(posts) == 1, posts
        message = posts[0]["json"]
        assert message["event"] == "failing" and message["route"] == "failing"
        assert message["url"] == f"http://dicom-sync.example.org/runs/{run_id}"
        assert "does not know move destination NOWHERE" in message["text"]


def test_the_schedules_check_in_dagster_dev_and_run_only_when_there_is_work(deployment):
    """Last in the module, so the waits of the tests above overlap the wait for the minute.

    Issue 10: an idle route's minute is a skipped tick with the figures (no run); a route
    with a missing series has its tick launch one run that moves it."""
    dev, location = deployment.dev, deployment.location
    with dev.log_on_failure():
        idle = _first_tick(dev, location, SCHEDULE)  # the default route keeps every_minute
        assert idle["status"] == "SKIPPED", idle
        # Remote A's three studies are of today or yesterday; the route's 2 h hold only HERE.
        reason = "in the window 1, missing 0, series to move 0"
        assert idle["skipReason"].startswith("nothing to move: remote 3 studies, local "), idle
        assert reason in idle["skipReason"], idle
        assert idle["runIds"] == []

        busy = _first_tick(dev, location, "sync_busy_schedule")
        assert busy["status"] == "SUCCESS", busy
        [run_id] = busy["runIds"]
        status = dev.wait_for_runs([run_id])[run_id]
        with dev.instance() as instance:
            assert status == DagsterRunStatus.SUCCESS, _failures(instance, run_id)
            by_schedule = [
                run for run in instance.get_runs() if "dagster/schedule_name" in run.tags
            ]
        assert [run.run_id for run in by_schedule] == [run_id]  # none for the idle route
        new = deployment.studies["NEW"]
        for uid, size in zip(new.series_uids, new.series_sizes, strict=True):
            assert deployment.a.local.series_instances(uid) == size

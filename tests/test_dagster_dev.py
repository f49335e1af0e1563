"""The product as a user runs it: `dagster dev` on the code location, a run launched over GraphQL.

Two real Orthanc servers (the `site` fixture) hold the data; `dagster dev` runs as a child
process with its own DAGSTER_HOME (a copy of the project's dagster.yaml, so runs go through the
queued run coordinator and are dequeued by the daemon `dagster dev` starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from dicom_sync_dagster.orchestration.archive import archive_key
from dicom_sync_dagster.sandbox import LOOPBACK, free_port
from dicom_sync_dagster.synthetic import SyntheticStudy

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parents[1]
JOB = "dicom_sync"
SCHEDULE = "every_minute"
STARTUP_SECONDS = 90  # webserver up and code location loaded (~5 s on a quiet machine)
RUN_SECONDS = 120
STOP_SECONDS = 30
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              schedules { name scheduleState { id status } }
            }
          }
        }
      }
    }
  }
}
"""

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule {
      scheduleState { status ticks(limit: 10) { status timestamp skipReason runIds } }
    }
  }
}
"""


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


@dataclass
class DagsterDev:
    process: subprocess.Popen
    port: int
    home: Path
    log: Path
    started_at: float  # wall clock
    stopped: bool = False

    def tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def stop(self) -> None:
        """SIGINT to the process group (like Ctrl+C), then SIGKILL whatever is left."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"dagster dev ignored SIGINT for {STOP_SECONDS} s; killing its group")
        # Children (webserver, daemon, code server, run workers) share the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _start(
    tmp_path: Path,
    site_env: dict[str, str],
    routes: str = "",
    schedule: str = "off",
    dotenv: str = "",
) -> DagsterDev:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    cwd = tmp_path / "cwd"  # not the repo: `dagster dev` would read a .env there
    cwd.mkdir()
    if routes:  # as a site keeps it: dicom_sync.yaml in the folder dagster dev starts in
        (cwd / "dicom_sync.yaml").write_text(routes)
    if dotenv:
        (cwd / ".env").write_text(dotenv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    env.update(site_env)
    env.pop("DICOM_SYNC_MODE", None)
    # The schedule starts stopped unless the test is about it, so no tick can launch a run of
    # its own during the test.
    env["DICOM_SYNC_SCHEDULE"] = schedule
    env["DAGSTER_HOME"] = str(home)
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    started_at = time.time()
    command = ["dev", "-h", LOOPBACK, "-p", str(port), "-m", "dicom_sync_dagster.definitions"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", *command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return DagsterDev(process, port, home, log, started_at)


def _wait_until_loaded(dev: DagsterDev) -> dict:
    """Poll /server_info, then the workspace, until the code location is loaded."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert dev.process.poll() is None, f"dagster dev exited with {dev.process.returncode}"
        try:
            with urllib.request.urlopen(
                f"http://{LOOPBACK}:{dev.port}/server_info", timeout=2
            ) as response:
                assert response.status == 200
            entries = dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        except (OSError, urllib.error.URLError):
            entries = []
        if entries and entries[0]["loadStatus"] == "LOADED":
            assert len(entries) == 1, entries
            location = entries[0]["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", location
            return {"name": entries[0]["name"], **location}
        time.sleep(0.25)
    raise AssertionError(f"dagster dev did not load the code location in {STARTUP_SECONDS} s")


def _schedule_state(dev: DagsterDev, location: str, repository: str) -> dict:
    selector = {
        "repositoryLocationName": location,
        "repositoryName": repository,
        "scheduleName": SCHEDULE,
    }
    data = dev.graphql(SCHEDULE_QUERY, {"selector": selector})["scheduleOrError"]
    assert data["__typename"] == "Schedule", data
    return data["scheduleState"]


@contextlib.contextmanager
def _log_tail_on_failure(dev: DagsterDev) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(f"---- last lines of {dev.log} ----\n{dev.tail()}")
        raise


@pytest.fixture
def dagster_dev(site, tmp_path) -> Iterator[DagsterDev]:
    """`dagster dev` pointed at the site; stopped (group SIGINT, then SIGKILL) at teardown."""
    dev = _start(tmp_path, site.env())
    try:
        yield dev
    finally:
        dev.stop()  # before `site` stops the Orthanc servers


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

    with _log_tail_on_failure(dev):
        location = _wait_until_loaded(dev)
        [repository] = location["repositories"]
        [schedule] = [s for s in repository["schedules"] if s["name"] == SCHEDULE]
        assert schedule["scheduleState"]["status"] == "STOPPED"  # DICOM_SYNC_SCHEDULE=off
        startup = time.time() - dev.started_at

        _check_the_launchpad(dev, location["name"], repository["name"])
        client = DagsterGraphQLClient(LOOPBACK, port_number=dev.port)
        out_of_range = {"ops": {"start_cycle": {"config": {"window_hours": -5}}}}
        with pytest.raises(DagsterGraphQLClientError, match=r"window_hours=-5\.0 must be > 0"):
            client.submit_job_execution(JOB, run_config=out_of_range)  # no run is created
        run_id = client.submit_job_execution(
            JOB, run_config={"ops": {"start_cycle": {"config": {"mode": {"all": {}}}}}}
        )
        deadline = time.monotonic() + RUN_SECONDS
        status = client.get_run_status(run_id)
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.get_run_status(run_id)

        state = _schedule_state(dev, location["name"], repository["name"])
        assert state["status"] == "STOPPED"
        assert state["ticks"] == [], state["ticks"]

        with DagsterInstance.from_config(str(dev.home)) as instance:
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
        assert not _listening(dev.port), f"port {dev.port} still open after dagster dev stopped"
        print(f"dagster dev came up in {startup:.1f} s")


def test_dagster_dev_runs_the_routes_of_the_routes_file_in_its_folder(site, tmp_path):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 4], accession="DEV-R"))
    remote, local = site.remote.node, site.local.node
    routes = f"""
calling_ae: DICOMSYNC
timezone: Europe/Berlin
local: {{ae_title: {local.ae_title}, host: {local.host}, port: {local.port}}}
routes:
  - name: ct_all
    remote: {{ae_title: {remote.ae_title}, host: {remote.host}, port: {remote.port}}}
    mode: all
  - name: ct_small
    remote: {{ae_title: {remote.ae_title}, host: {remote.host}, port: {remote.port}}}
"""
    dev = _start(tmp_path, {}, routes)
    try:
        with _log_tail_on_failure(dev):
            location = _wait_until_loaded(dev)
            [repository] = location["repositories"]
            names = {s["name"] for s in repository["schedules"]}
            assert {"sync_ct_all_schedule", "sync_ct_small_schedule"} <= names
            assert "every_minute" not in names

            client = DagsterGraphQLClient(LOOPBACK, port_number=dev.port)
            jobs = ("sync_ct_all", "sync_ct_small")  # different routes: both may run at once
            run_ids = {job: client.submit_job_execution(job) for job in jobs}
            deadline = time.monotonic() + RUN_SECONDS
            statuses = {}
            while time.monotonic() < deadline:
                statuses = {job: client.get_run_status(i) for job, i in run_ids.items()}
                if set(statuses.values()) <= TERMINAL:
                    break
                time.sleep(0.5)

            with DagsterInstance.from_config(str(dev.home)) as instance:
                for job, run_id in run_ids.items():
                    assert statuses[job] == DagsterRunStatus.SUCCESS, _failures(instance, run_id)
                moved = instance.fetch_materializations(archive_key("ct_all"), limit=5).records
            assert len(moved) == 1  # ct_all moved at least the 4-image series
            assert site.local.series_instances(study.series_uids[1]) == 4
    finally:
        dev.stop()


TICK_SECONDS = 150  # the next full minute, the check, and the daemon's loop around it


def _wait_for_tick(dev: DagsterDev, location: dict, status: str, seen: int) -> dict:
    """The newest tick once there are more than ``seen`` ticks and it has ``status``."""
    deadline = time.monotonic() + TICK_SECONDS
    while time.monotonic() < deadline:
        ticks = _schedule_state(dev, location["name"], location["repositories"][0]["name"])
        ticks = ticks["ticks"]
        if len(ticks) > seen and ticks[0]["status"] in (status, "FAILURE"):
            assert ticks[0]["status"] == status, ticks[0]
            return ticks[0]
        time.sleep(1)
    raise AssertionError(f"no {status} tick within {TICK_SECONDS} s")


def test_the_schedule_checks_in_dagster_dev_and_runs_only_when_there_is_work(site, tmp_path):
    """Issue 10: an idle minute is a skipped tick with the figures (no run); a missing series
    makes the next tick launch one run that moves it."""
    here = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3], accession="DEV-HERE"))
    site.add_local(here)
    dev = _start(tmp_path, site.env(), schedule="on")
    try:
        with _log_tail_on_failure(dev):
            location = _wait_until_loaded(dev)
            idle = _wait_for_tick(dev, location, "SKIPPED", 0)
            assert idle["skipReason"].startswith("nothing to move: remote 1 studies, local 1")
            assert idle["runIds"] == []
            with DagsterInstance.from_config(str(dev.home)) as instance:
                assert instance.get_runs() == []

            new = site.add_remote(SyntheticStudy(site.ago(minutes=5), [4, 1], accession="DEV-N"))
            busy = _wait_for_tick(dev, location, "SUCCESS", 1)
            [run_id] = busy["runIds"]
            client = DagsterGraphQLClient(LOOPBACK, port_number=dev.port)
            deadline = time.monotonic() + RUN_SECONDS
            while client.get_run_status(run_id) not in TERMINAL:
                assert time.monotonic() < deadline, "the run did not finish"
                time.sleep(0.5)
            with DagsterInstance.from_config(str(dev.home)) as instance:
                status = client.get_run_status(run_id)
                assert status == DagsterRunStatus.SUCCESS, _failures(instance, run_id)
                assert len(instance.get_runs()) == 1
            assert site.local.series_instances(new.series_uids[1]) == 1
    finally:
        dev.stop()

"""A run stopped with Ctrl+C, or killed, never blocks the next (issue 14): `dicom-sync run` as
a real process against a remote that answers its queries and then keeps a C-MOVE 'pending'
for ever (remaining stuck at 65535), played by the raw-socket peer: no real server does that
on demand. The local PACS is a real Orthanc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from .raw_peer import RawPeer, Request, find_rsp, move_rsp, pdata, pdv
from .test_cli import dicom_sync, project  # noqa: F401 - the fixture

pytestmark = pytest.mark.servers

STUDY, SERIES = "1.2.826.0.1.3680043.9.14.1", "1.2.826.0.1.3680043.9.14.2"
WAIT = 120  # generous: dagster's import and start on a loaded machine


def answer() -> bytes:
    """One answer that serves every query level: the study and its one series of 3 images."""
    from pydicom.dataset import Dataset
    from pynetdicom.dsutils import encode

    when = datetime.now(timezone.utc) - timedelta(hours=1)
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES
    ds.StudyDate, ds.StudyTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.AccessionNumber, ds.Modality, ds.SeriesNumber = "ACC-14", "CT", 1
    ds.NumberOfStudyRelatedInstances = ds.NumberOfSeriesRelatedInstances = 3
    ds.NumberOfStudyRelatedSeries = 1
    return encode(ds, True, True)


class StallingRemote:
    """Answers C-FINDs; keeps every C-MOVE pending for ever, one response a second."""

    def __init__(self) -> None:
        self.move_started = threading.Event()
        self.done = threading.Event()
        self.peer = RawPeer(self.script)

    def script(self, peer: RawPeer, conn, request: Request) -> None:
        context, message_id = request.context_id, request.message_id
        if request.command_field == 0x0020:
            conn.sendall(
                pdata(
                    pdv(context, 3, find_rsp(0xFF00, message_id)),
                    pdv(context, 2, answer()),
                    pdv(context, 3, find_rsp(0x0000, message_id, has_data=False)),
                )
            )
            return
        self.move_started.set()
        pending = move_rsp(0xFF00, message_id, NumberOfRemainingSuboperations=65535)

        def stall() -> None:
            with contextlib.suppress(OSError):
                while not self.done.is_set():
                    conn.sendall(pdata(pdv(context, 3, pending)))
                    self.done.wait(1.0)

        threading.Thread(target=stall, daemon=True).start()

    def close(self) -> None:
        self.done.set()
        self.peer.close()


@pytest.fixture
def stalling_remote():
    remote = StallingRemote()
    yield remote
    remote.close()


def environment(remote: StallingRemote, local_orthanc) -> dict[str, str]:
    return {
        "DICOM_SYNC_CALLING_AE": "DICOMSYNC",
        "DICOM_SYNC_REMOTE_AE": "STALLING",
        "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
        "DICOM_SYNC_REMOTE_PORT": str(remote.peer.port),
        "DICOM_SYNC_LOCAL_AE": local_orthanc.node.ae_title,
        "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
        "DICOM_SYNC_LOCAL_PORT": str(local_orthanc.node.port),
        "DICOM_SYNC_TIMEZONE": "UTC",
    }


def start_run(env: dict[str, str], folder, once: bool = True) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "dicom_sync_dagster.cli", "run", *(["--once"] if once else [])],
        env={**clean, **env},
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def runs(folder) -> list:
    """The runs of the instance in ``folder`` (its dagster.yaml), as the CLI recorded them."""
    with DagsterInstance.from_config(str(folder)) as instance:
        return [r.dagster_run for r in instance.get_run_records()]


@pytest.mark.parametrize("once", [True, False], ids=["once", "loop"])
def test_ctrl_c_to_the_process_group_stops_a_move_pending_for_ever_within_seconds(
    project,  # noqa: F811
    stalling_remote,
    local_orthanc,
    once,
):
    """Before: Ctrl+C to the process group did nothing for 60 s (the move's worker thread
    waited on, each 'pending' restarting the DIMSE timeout). Then (the run stopped, but
    Dagster makes that a failed run): `dicom-sync run --once` exited 1, and `dicom-sync run`
    went on to its next cycle."""
    env = environment(stalling_remote, local_orthanc)
    process = start_run(env, project, once)
    try:
        assert stalling_remote.move_started.wait(WAIT), process.communicate(timeout=5)[0]
        time.sleep(1.0)  # a few 'pending' responses in
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        out, _ = process.communicate(timeout=60)
        stopped_in = time.monotonic() - interrupted
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    assert stopped_in < 15, out  # C-CANCEL, a 2 s grace, A-ABORT, then the run's end
    assert process.returncode == 130, out  # README: 130 when stopped with Ctrl+C
    assert "Stopped." in out
    [run] = runs(project)
    assert run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    assert stalling_remote.peer.cancelled.is_set()  # the remote was told to stop


def test_a_run_killed_mid_move_does_not_make_the_next_run_skip(
    project,  # noqa: F811
    stalling_remote,
    local_orthanc,
):
    """Before: after SIGKILL the run stayed 'started' and every later `dicom-sync run`
    skipped with exit 3, for ever (no daemon to notice)."""
    env = environment(stalling_remote, local_orthanc)
    process = start_run(env, project)
    try:
        assert stalling_remote.move_started.wait(WAIT), process.communicate(timeout=5)[0]
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    [killed] = runs(project)
    assert killed.status is DagsterRunStatus.STARTED  # what the kill left behind

    after = dicom_sync(["run", "--once", "--dry-run"], env, project)

    assert after.returncode != 3 and "Skipped" not in after.stdout, after.stdout + after.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    status = {run.run_id: run.status for run in runs(project)}
    assert status[killed.run_id] is DagsterRunStatus.FAILURE


def test_a_lock_whose_pid_another_process_has_now_does_not_keep_the_run_started(project):  # noqa: F811
    """After a power cut and a reboot, the pid in a dead run's lock file may be another
    process's. Before: that process made the run look alive, so it stayed 'started' and every
    `dicom-sync run` skipped with exit 3 for as long as that process lived. (No DICOM: the
    lock file and the run record as a killed run leaves them.)"""
    import re

    from dagster import DagsterRun

    from dicom_sync_dagster.orchestration.schedules import sync_in_progress
    from dicom_sync_dagster.orchestration.stale_runs import lock_path, lock_text

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with DagsterInstance.from_config(str(project)) as instance:
            run = instance.add_run(DagsterRun("dicom_sync", status=DagsterRunStatus.STARTED))
            lock = lock_path(instance, "dicom_sync")
            lock.write_text(lock_text(run.run_id, other.pid))  # as that process would write it
            assert sync_in_progress(instance, "dicom_sync")  # its writer lives: a live run

            written_by_the_dead = re.sub(
                r"started \d+", "started 1", lock_text(run.run_id, other.pid)
            )
            lock.write_text(written_by_the_dead)  # the same pid, another start: not its writer

            assert sync_in_progress(instance, "dicom_sync") is None
            assert instance.get_run_by_id(run.run_id).status is DagsterRunStatus.FAILURE
    finally:
        other.kill()
        other.wait()


def test_only_a_run_whose_own_process_is_gone_here_is_failed_by_its_process_tag(project):  # noqa: F811
    """The process tag names the run, the process (pid and start), the boot, the pid namespace
    and the host. A run is failed by it only when that process is gone from this very machine,
    boot and namespace: never a live one, never a re-execution carrying its parent's tag, never
    another host's or another boot's on a shared instance. (No DICOM: run records as
    `dicom-sync run` tags them; a live process stands for the run's.)"""
    import socket
    from pathlib import Path

    from dagster import DagsterRun

    from dicom_sync_dagster.orchestration.stale_runs import (
        PROCESS_TAG,
        fail_dead_runs,
        process_start,
    )

    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    host = socket.gethostname()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        ticks = process_start(other.pid)
        assert ticks
        live, reused = [other.pid, ticks], [other.pid, "1"]  # "1": started at another moment
        here, status = [boot, namespace, host], DagsterRunStatus
        cases = {  # name: (status, tag fields after the run id)
            "alive": (status.STARTED, live + here),
            "alive, starting": (status.STARTING, live + here),
            "alive, not started": (status.NOT_STARTED, live + here),
            "gone (pid reused)": (status.STARTED, reused + here),
            "gone, not started": (status.NOT_STARTED, reused + here),
            "another run's tag": (status.STARTED, reused + here),
            "another host": (status.STARTED, [*reused, boot, namespace, "elsewhere"]),
            "another boot": (status.STARTED, [*reused, str(uuid.UUID(int=0)), namespace, host]),
            "another namespace": (status.STARTED, [*reused, boot, "1", host]),
        }
        with DagsterInstance.from_config(str(project)) as instance:
            runs_by_case = {}
            for name, (run_status, fields) in cases.items():
                run_id = str(uuid.uuid4())
                named = str(uuid.uuid4()) if name == "another run's tag" else run_id
                tag = " ".join(str(f) for f in [named, *fields])
                runs_by_case[name] = instance.add_run(
                    DagsterRun(
                        "dicom_sync", run_id=run_id, status=run_status, tags={PROCESS_TAG: tag}
                    )
                )

            failed = set(fail_dead_runs(instance, "dicom_sync"))

        assert {name for name, run in runs_by_case.items() if run.run_id in failed} == {
            "gone (pid reused)",
            "gone, not started",
        }
    finally:
        other.kill()
        other.wait()


def test_a_run_killed_before_it_took_the_lock_does_not_make_the_next_run_skip(
    project,  # noqa: F811
    stalling_remote,
    local_orthanc,
):
    """A `dicom-sync run` killed while it waited for the route's lock (held here, as another
    run would) never wrote its id into the lock file. Before: it stayed 'started' and every
    later `dicom-sync run` skipped with exit 3, for ever."""
    import fcntl

    from dagster import DagsterInstance as Instance

    from dicom_sync_dagster.orchestration.stale_runs import lock_path

    env = environment(stalling_remote, local_orthanc)
    with Instance.from_config(str(project)) as instance:
        lock = lock_path(instance, "dicom_sync")
    lock.touch()
    with open(lock, "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        process = start_run(env, project)
        try:
            deadline = time.monotonic() + WAIT
            while not [r for r in runs(project) if r.status is DagsterRunStatus.STARTED]:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout
                time.sleep(0.2)
            os.killpg(process.pid, signal.SIGKILL)  # waiting for the lock (10 s by default)
            process.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        fcntl.flock(held, fcntl.LOCK_UN)
    [killed] = runs(project)
    assert killed.status is DagsterRunStatus.STARTED  # what the kill left behind
    assert not stalling_remote.move_started.is_set()

    after = dicom_sync(["run", "--once", "--dry-run"], env, project)

    assert after.returncode == 0 and "Skipped" not in after.stdout, after.stdout + after.stderr
    status = {run.run_id: run.status for run in runs(project)}
    assert status[killed.run_id] is DagsterRunStatus.FAILURE


def test_dagsters_terminate_stops_a_move_pending_for_ever_within_seconds(
    tmp_path, stalling_remote, local_orthanc
):
    """The UI's Terminate (GraphQL terminateRun) on a run launched by `dagster dev`: the
    move in progress is cancelled (C-CANCEL, then A-ABORT) and the run ends 'canceled'
    within seconds, not when the remote stops sending 'pending'."""
    from .support.dagster_dev import clean_env, start_dagster_dev

    env = clean_env(environment(stalling_remote, local_orthanc), {"DICOM_SYNC_SCHEDULE": "off"})
    dev = start_dagster_dev(tmp_path, env)
    try:
        with dev.log_on_failure():
            dev.wait_until_loaded()
            client = dev.client()
            run_id = client.submit_job_execution("dicom_sync", run_config={})
            assert stalling_remote.move_started.wait(WAIT)
            client.terminate_run(run_id)
            terminated = time.monotonic()
            ended = {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS}
            while client.get_run_status(run_id) not in ended:
                assert time.monotonic() - terminated < 60, "the run did not end"
                time.sleep(0.2)
            stopped_in = time.monotonic() - terminated

            assert client.get_run_status(run_id) is DagsterRunStatus.CANCELED
            assert stopped_in < 20  # C-CANCEL, a 2 s grace, A-ABORT (the daemon: a load margin)
            assert stalling_remote.peer.cancelled.is_set() and stalling_remote.peer.closed.is_set()
    finally:
        dev.stop()

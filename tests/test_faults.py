"""How a run meets a misbehaving remote: each fault with its expected outcome.

The remote here is the scripted pynetdicom SCP of scripted_pacs.py, because no real server
answers a chosen status, stalls or aborts on demand; the local PACS is a real Orthanc, and
the moves really C-STORE into it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from dicom_sync_dagster.proc_net import ESTABLISHED, socket_inodes, tcp_sockets
from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import Site
from .conftest import scripted_site as new_scripted_site
from .helpers import moved_series, plan_of, report_metadata, run_sync, transfers_of
from .scripted_pacs import ScriptedPacs

pytestmark = pytest.mark.servers

FAST_RETRIES = {"retry_backoff_seconds": 0.05, "move_retries": 2}


@pytest.fixture
def scripted_site(local_orthanc, scripted_remote):
    """Returns a function: (series sizes, script) -> (site, study, scripted remote)."""

    def make(sizes: list[int], script: list) -> tuple[Site, SyntheticStudy, ScriptedPacs]:
        site = new_scripted_site(local_orthanc)
        study = SyntheticStudy(site.ago(hours=1), sizes, accession="ACC-F")
        return site, study, scripted_remote(site, study, script)

    return make


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(microsecond=0)


def our_connections_to(port: int) -> int:
    """Established TCP connections from this process to ``port`` (from /proc)."""
    inodes = socket_inodes()
    return sum(
        1
        for s in tcp_sockets()
        if s.remote_port == port and s.state == ESTABLISHED and s.inode in inodes
    )


def only_transfer(result):
    [transfer] = transfers_of(result)
    return transfer


@pytest.mark.parametrize("status", [0xA701, 0xA702])
def test_out_of_resources_is_retried_within_the_run(scripted_site, status):
    site, study, remote = scripted_site([3], [status])

    result = run_sync(site, options=FAST_RETRIES, mode="all")

    assert result.success
    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts, transfer.transferred) == ("success", 2, True)
    assert remote.moves == [study.series_uids[0]] * 2
    assert site.local.series_instances(study.series_uids[0]) == 3


@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        (0xC001, "failure", "0xC001 Failure: Unable to Process"),
        (0xA900, "failure", "0xA900 Failure: Identifier does not match SOP class"),
        (0xFE00, "cancelled", "0xFE00 Cancel"),
    ],
)
def test_permanent_statuses_are_named_and_not_retried(scripted_site, status, outcome, words):
    site, study, remote = scripted_site([2], [status])

    result = run_sync(site, options=FAST_RETRIES, mode="all")

    assert not result.success
    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts, transfer.transferred) == (outcome, 1, False)
    assert words in transfer.error
    assert remote.moves == [study.series_uids[0]]


def test_unknown_move_destination_is_named_and_not_retried(scripted_site, monkeypatch):
    site, _study, _remote = scripted_site([2], [])
    env = site.env() | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}
    monkeypatch.setattr(Site, "env", lambda self: env)

    result = run_sync(site, options=FAST_RETRIES, mode="all")

    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts) == ("failure", 1)
    assert "0xA801" in transfer.error and "destination unknown" in transfer.error.lower()


def test_a_partial_move_is_recorded_with_its_counts_and_completed_next_run(scripted_site):
    site, study, _remote = scripted_site([5], [("partial", 2)])

    first = run_sync(site, options=FAST_RETRIES, mode="all")

    assert not first.success
    transfer = only_transfer(first)
    assert (transfer.outcome, transfer.completed, transfer.failed) == ("warning", 2, 3)
    assert not transfer.transferred and transfer.local_images == 2
    assert "0xB000" in transfer.error
    assert report_metadata(first)["series_failed"] == 1

    second = run_sync(site, options=FAST_RETRIES, mode="all")

    assert second.success
    assert plan_of(second).loc[0, "reason"] == "selected: local has fewer images"
    assert moved_series(second) == {study.series_uids[0]}
    assert site.local.series_instances(study.series_uids[0]) == 5


def test_a_stalled_move_hits_the_timeout_and_is_retried(scripted_site):
    site, _study, remote = scripted_site([3], [("stall", 20)])
    started = time.monotonic()

    result = run_sync(site, options={**FAST_RETRIES, "dimse_timeout": 1.0}, mode="all")

    assert result.success
    assert time.monotonic() - started < 15
    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts, transfer.transferred) == ("success", 2, True)
    assert our_connections_to(remote.node.port) == 0  # the stalled association was aborted


def test_an_abort_mid_move_is_retried_and_the_series_confirmed(scripted_site):
    site, study, _remote = scripted_site([4], [("abort", 1)])

    result = run_sync(site, options=FAST_RETRIES, mode="all")

    assert result.success
    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts, transfer.transferred) == ("success", 2, True)
    assert site.local.series_instances(study.series_uids[0]) == 4


def test_transient_failures_that_persist_end_after_the_retries(scripted_site):
    site, _study, remote = scripted_site([2], [0xA702, 0xA702, 0xA702, "ok"])

    result = run_sync(site, options=FAST_RETRIES, mode="all")

    assert not result.success
    transfer = only_transfer(result)
    assert (transfer.outcome, transfer.attempts) == ("failure", 3)
    assert "0xA702" in transfer.error
    assert len(remote.moves) == 3


def test_a_remote_killed_mid_move_leaves_the_series_for_the_next_run(site):
    """A real Orthanc, SIGKILLed while it sends the series, then started again."""
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [1500]))
    results = []
    mover = threading.Thread(
        target=lambda: results.append(run_sync(site, options=FAST_RETRIES, mode="all"))
    )
    mover.start()
    deadline = time.monotonic() + 60
    while site.local.instance_count() < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(site.remote.process.pid, signal.SIGKILL)
    mover.join(120)

    [first] = results
    assert not first.success
    transfer = only_transfer(first)
    assert not transfer.transferred
    assert transfer.outcome in ("aborted", "unreachable", "timeout")
    assert 0 < site.local.series_instances(study.series_uids[0]) < 1500

    site.remote.start()  # same storage, same ports
    second = run_sync(site, options=FAST_RETRIES, mode="all")

    assert second.success
    assert plan_of(second).loc[0, "reason"] == "selected: local has fewer images"
    assert site.local.series_instances(study.series_uids[0]) == 1500


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"DICOM_SYNC_REMOTE_AE": "WRONGAE"}, "association rejected (called AE 'WRONGAE'"),
        ({"DICOM_SYNC_REMOTE_HOST": "pacs.invalid"}, "cannot resolve host 'pacs.invalid'"),
        ({"DICOM_SYNC_REMOTE_PORT": "CLOSED"}, "cannot connect (Connection refused)"),
        ({"DICOM_SYNC_CALLING_AE": "STRANGER"}, "is calling AE 'STRANGER' allowed"),
    ],
)
def test_a_remote_that_cannot_be_queried_fails_the_run_fast_and_named(
    site, monkeypatch, closed_node, change, words
):
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    env = site.env() | change
    if env["DICOM_SYNC_REMOTE_PORT"] == "CLOSED":
        env["DICOM_SYNC_REMOTE_PORT"] = str(closed_node.port)
    monkeypatch.setattr(Site, "env", lambda self: env)
    started = time.monotonic()

    result = run_sync(site, mode="all")

    assert not result.success
    assert time.monotonic() - started < 10
    failures = [e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE"]
    assert failures[0].node_name == "query_remote_studies"
    message = failures[0].event_specific_data.error.message
    assert f"remote PACS {env['DICOM_SYNC_REMOTE_AE']}@{env['DICOM_SYNC_REMOTE_HOST']}" in message
    assert words in message
    assert site.local.instance_count() == 0


def test_a_run_that_finds_the_sync_lock_held_moves_nothing(site, tmp_path):
    """What keeps `dicom-sync run` (in-process, outside the queue) and a scheduled run apart."""
    import fcntl

    from dagster import DagsterInstance

    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        lock = Path(instance.root_directory) / "dicom-sync.lock"
        with open(lock, "a+") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX)
            holder.write("run 1234abcd (pid 42)")
            holder.flush()
            blocked = run_sync(site, instance, options={"lock_wait": 0.5}, mode="all")
        after = run_sync(site, instance, mode="all")

    assert not blocked.success
    [init_failure] = [
        e for e in blocked.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"
    ]
    error = init_failure.event_specific_data.error.to_string()
    assert "another sync run is in progress (run 1234abcd (pid 42) holds" in error
    assert not [e for e in blocked.all_events if e.event_type_value == "STEP_START"]
    assert after.success
    assert site.local.series_instances(study.series_uids[0]) == 2

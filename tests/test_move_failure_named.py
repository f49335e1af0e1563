"""A C-MOVE that fails before any sub-operation names the move destination and the likely
causes, in the run, the failure table, the asset check and the CLI (one concise line, no stack
trace). Orthanc's own answer: a C-MOVE to an AE it does not know is 0xC000 with no counts."""

from __future__ import annotations

import dataclasses

import pytest
from dagster import AssetCheckKey, DagsterInstance

from dicom_sync_dagster.orchestration.archive import FAILING_CHECK, archive_key
from dicom_sync_dagster.sandbox import OrthancServer, Peer, free_port
from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import CALLING_AE, Site
from .helpers import report_metadata, run_sync, transfers_of
from .test_cli import dicom_sync, project  # noqa: F401 - the fixture

pytestmark = pytest.mark.servers

CAUSES = ("does not know move destination NOWHERE", "or cannot reach it")


@pytest.fixture
def nowhere(site, monkeypatch) -> Site:
    """The site, with moves going to NOWHERE, an AE the remote Orthanc does not know."""
    env = site.env() | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}
    monkeypatch.setattr(Site, "env", lambda self: env)
    return site


def _check_over_limit(instance: DagsterInstance) -> dict:
    key = AssetCheckKey(archive_key("default"), FAILING_CHECK)
    [latest, *_] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    return latest.event.dagster_event.event_specific_data.metadata["over_limit"].value


def test_orthancs_refusal_names_the_destination_in_run_table_and_check(nowhere, tmp_path):
    site = nowhere
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3]))

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        run_sync(site, instance, options={"failing_runs_limit": 1}, mode="all")
        result = run_sync(site, instance, options={"failing_runs_limit": 1}, mode="all")
        over_limit = _check_over_limit(instance)

    assert not result.success
    for transfer in transfers_of(result):
        assert transfer.error.startswith("0xC000 Failure: Unable to Process; no image sent")
        assert all(cause in transfer.error for cause in CAUSES), transfer.error
        assert "REMOTEPACS" in transfer.error
    failures = report_metadata(result)["failures"].records
    assert [all(c in r.data["error"] for c in CAUSES) for r in failures] == [True, True]
    [failure] = [e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.event_specific_data.error.message
    assert "2 of 2 series not transferred - 2 series: 0xC000" in description
    assert description.count("0xC000") == 1  # one cause, not once per series
    assert set(over_limit) == set(study.series_uids)
    assert all(CAUSES[0] in entry["last_error"] for entry in over_limit.values())


def test_a_destination_the_remote_cannot_reach_is_named_too(site, tmp_path, monkeypatch):
    gone = free_port()  # the remote knows GONE, at a port where nothing listens
    remote = OrthancServer(
        tmp_path / "remote2", "REMOTE2", [Peer(CALLING_AE), Peer("GONE", gone)]
    ).start()
    try:
        other = dataclasses.replace(site, remote=remote)
        env = other.env() | {"DICOM_SYNC_MOVE_DESTINATION": "GONE"}
        monkeypatch.setattr(Site, "env", lambda self: env)
        other.add_remote(SyntheticStudy(site.ago(hours=1), [2]))

        result = run_sync(other, mode="all")
    finally:
        remote.stop()

    [transfer] = transfers_of(result)
    assert not transfer.transferred
    assert "move destination GONE" in transfer.error and "cannot reach it" in transfer.error


def test_the_cli_prints_one_concise_line_for_the_expected_failure(nowhere, project):  # noqa: F811
    nowhere.add_remote(SyntheticStudy(nowhere.ago(hours=1), [2, 3]))

    done = dicom_sync(["run", "--once", "--all-series"], nowhere.env(), project)

    assert done.returncode == 1
    assert "Stack Trace" not in done.stderr and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("ERROR report: 2 of 2 series not transferred - 2 series: 0xC000")
    assert all(cause in errors[0] for cause in CAUSES)

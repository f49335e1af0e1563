"""The every-minute check in the schedule (issue 10): an idle minute is a skipped tick with
figures, not a run; work, a dead node or a check that cannot finish in time launch a run.
Against two real Orthanc servers, on a real Dagster instance."""

from __future__ import annotations

import socket
from concurrent.futures import wait
from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_schedule_context

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.orchestration import route_check
from dicom_sync_dagster.orchestration.catch_up import last_covered_reference
from dicom_sync_dagster.orchestration.check_state import read_check_state
from dicom_sync_dagster.routes import Route
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import moved_series, run_sync

pytestmark = pytest.mark.servers

every_minute = defs().resolve_schedule_def("every_minute")


@pytest.fixture
def instance(tmp_path):
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        yield instance


@pytest.fixture
def site_env(site, monkeypatch):
    for key, value in site.env().items():
        monkeypatch.setenv(key, value)
    return site


def tick(instance, when) -> RunRequest | SkipReason:
    with build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        return every_minute(context)


def runs(instance) -> int:
    return len(instance.get_run_records())


def test_an_idle_minute_is_a_skipped_tick_with_the_figures_and_no_run(site_env, instance):
    site = site_env
    here = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3], accession="ACC-HERE"))
    site.add_local(here)
    # 13 h ago: out of the 12-hour window, yet on a date the C-FIND asks for (yesterday or
    # today in the PACS zone) at any time of day; 30 h ago fell before yesterday from 00:00
    # to 06:00 there.
    site.add_remote(SyntheticStudy(site.ago(hours=13), [1], accession="ACC-OLD"))

    verdict = tick(instance, site.reference)

    assert isinstance(verdict, SkipReason), verdict
    assert verdict.skip_message.startswith("nothing to move: ")
    assert "remote 2 studies, local 1, in the window 1, missing 0" in verdict.skip_message
    assert runs(instance) == 0
    state = read_check_state(instance.root_directory, "default")
    assert state is not None and state.ok
    assert state.figures["windowed_studies"] == 1 and state.figures["series_to_move"] == 0
    # The catch-up window reaches back to this check, not to an older run.
    assert last_covered_reference(instance, "dicom_sync", "default") == site.reference


def test_a_missing_series_launches_one_run_that_moves_it(site_env, instance):
    site = site_env
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [4, 2], accession="ACC-NEW"))

    verdict = tick(instance, site.reference)

    assert isinstance(verdict, RunRequest), verdict
    assert verdict.tags[route_check.CHECK_TAG] == "1 series to move"
    assert verdict.run_config["ops"]["start_cycle"]["config"]["reference_time"] == (
        site.reference.isoformat()
    )
    result = run_sync(site, instance)  # what the daemon launches for the request
    assert result.success
    assert moved_series(result) == {study.series_uids[1]}
    # A minute later the smallest series is there and the study is settled: idle again.
    later = tick(instance, site.reference + timedelta(minutes=1))
    assert isinstance(later, SkipReason), later


def test_a_partial_study_in_mode_smallest_does_not_launch_a_run_every_minute(site_env, instance):
    """After one look at its series found nothing to move, the check remembers the study."""
    site = site_env
    study = site.add_remote(SyntheticStudy(site.ago(hours=2), [5, 1], accession="ACC-PART"))
    site.add_local(study, series=[1])  # the smallest series is already there

    first = tick(instance, site.reference)
    second = tick(instance, site.reference + timedelta(minutes=1))

    assert isinstance(first, SkipReason) and isinstance(second, SkipReason)
    assert runs(instance) == 0
    assert "in the window 1, missing 0" in second.skip_message


def test_a_dead_local_launches_a_run_that_fails_naming_it(site_env, instance, monkeypatch):
    site = site_env
    site.add_remote(SyntheticStudy(site.ago(hours=1), [1]))
    site.local.stop()

    verdict = tick(instance, site.reference)

    assert isinstance(verdict, RunRequest), verdict
    why = verdict.tags[route_check.CHECK_TAG]
    assert why.startswith("the check failed: ") and "LOCALPACS" in why
    state = read_check_state(instance.root_directory, "default")
    assert state is not None and not state.ok and "LOCALPACS" in state.error
    result = run_sync(site, instance)
    assert not result.success
    failure = next(e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE")
    assert "LOCALPACS" in failure.event_specific_data.error.message


def test_a_check_that_cannot_finish_in_time_launches_the_run(site, instance):
    """A peer that takes the TCP connection and never answers (a stall no real server does
    on demand: a bare listening socket)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {**site.env(), "DICOM_SYNC_REMOTE_PORT": str(silent.getsockname()[1])}
        route = Route(name="default")
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            verdict = route_check.check_route(instance, route, site.reference, deadline=1.0)
            assert isinstance(verdict, RunRequest), verdict
            assert verdict.tags[route_check.CHECK_TAG] == "the check did not finish within 1 s"
            # While that check still waits for the PACS, the next tick does not start another.
            again = route_check.check_route(instance, route, site.reference, deadline=1.0)
            assert again.tags[route_check.CHECK_TAG] == (
                "the previous check is still waiting for a PACS"
            )
    # The silent peer is gone: the check left waiting ends, and holds up no later test.
    pending = route_check._checks["default"]
    assert wait([pending], timeout=30).done == {pending}


def test_without_settings_each_tick_skips_naming_what_is_missing(instance, monkeypatch):
    for key in ("DICOM_SYNC_REMOTE_AE", "DICOM_SYNC_REMOTE_HOST", "DICOM_SYNC_REMOTE_PORT"):
        monkeypatch.delenv(key, raising=False)

    verdict = tick(instance, datetime.now(timezone.utc))

    assert isinstance(verdict, SkipReason), verdict
    assert "DICOM_SYNC_REMOTE_AE" in verdict.skip_message
    assert "dicom-sync configure" in verdict.skip_message
    assert runs(instance) == 0

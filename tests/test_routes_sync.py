"""Two remote PACS (Orthanc and DCMTK's dcmqrscp) feeding one local Orthanc through the routes of
a dicom_sync.yaml; the archive asset each route reports on, and its asset check."""

from __future__ import annotations

import fcntl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetCheckKey,
    DagsterInstance,
    build_asset_check_context,
)

from dicom_sync_dagster.definitions import route_definitions
from dicom_sync_dagster.orchestration.archive import (
    FAILING_CHECK,
    LATEST_RUN_CHECK,
    archive_key,
    failing_series_check,
    latest_run_check,
)
from dicom_sync_dagster.orchestration.resources import SyncLockResource
from dicom_sync_dagster.orchestration.tags import CAUSE_TAG, MODE_TAG, OUTCOME_TAG, ROUTE_TAG
from dicom_sync_dagster.routes import ROUTES_FILE, load_routes
from dicom_sync_dagster.sandbox import DcmqrscpServer, Peer
from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import CALLING_AE, ZONE_NAME, Site, _require
from .helpers import moved_series, report_metadata

pytestmark = pytest.mark.servers


@dataclass
class TwoRoutes:
    """ct: an Orthanc remote; mr: a dcmqrscp remote; both move to one local Orthanc."""

    ct: Site
    mr: Site
    file: Path

    def write(self, **extra: object) -> None:
        """The routes file; ``extra`` fields go into route ct."""
        routes = [
            {"name": "ct", "remote": _node(self.ct.remote), "mode": "all", **extra},
            {"name": "mr", "remote": _node(self.mr.remote), "mode": "all"},
        ]
        document = {
            "calling_ae": CALLING_AE,
            "timezone": ZONE_NAME,
            "local": _node(self.ct.local),
            "retry_backoff_seconds": 0,
            "routes": routes,
        }
        self.file.write_text(yaml.safe_dump(document))

    def run(self, defs, route: str, instance: DagsterInstance, **resources):
        config = {"reference_time": self.ct.reference.isoformat()}
        return defs.resolve_job_def(f"sync_{route}").execute_in_process(
            run_config={"ops": {"start_cycle": {"config": config}}},
            instance=instance,
            resources=resources or None,
            raise_on_error=False,
        )


def _node(server) -> dict[str, object]:
    node = server.node
    return {"ae_title": node.ae_title, "host": node.host, "port": node.port}


@pytest.fixture
def two_routes(tmp_path, site, monkeypatch) -> TwoRoutes:
    _require("dcmqrscp", "dcmtk")
    local = site.local
    mr = DcmqrscpServer(
        tmp_path / "mr",
        "MRPACS",
        [Peer(CALLING_AE), Peer(local.node.ae_title, local.node.port)],
    ).start()
    routes = TwoRoutes(site, Site(mr, local, site.reference), tmp_path / "dicom_sync.yaml")
    routes.write()
    monkeypatch.setenv(ROUTES_FILE, str(routes.file))
    yield routes
    mr.stop()


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        yield instance


def lock_file(defs, route: str) -> str:
    """The lock file the route's job is built with."""
    resource = defs.resolve_job_def(f"sync_{route}").resource_defs["sync_lock"]
    return resource.config_field.default_value["file_name"]


def archive_events(instance: DagsterInstance, route: str, kind: str) -> list:
    """The metadata of the route's archive materializations or observations, oldest first."""
    fetch = getattr(instance, f"fetch_{kind}")
    records = fetch(archive_key(route), limit=100, ascending=True).records
    return [{k: v.value for k, v in record.asset_event.metadata.items()} for record in records]


def check_evaluations(instance: DagsterInstance, route: str, check: str = FAILING_CHECK) -> list:
    key = AssetCheckKey(archive_key(route), check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    return [r.event.dagster_event.event_specific_data for r in reversed(records) if r.event]


def test_two_remotes_feed_one_local_each_through_its_own_job(two_routes, instance):
    ct = two_routes.ct.add_remote(SyntheticStudy(two_routes.ct.ago(hours=1), [2, 3]))
    mr = two_routes.mr.add_remote(SyntheticStudy(two_routes.mr.ago(hours=2), [4]))
    defs = route_definitions(load_routes())

    first = {route: two_routes.run(defs, route, instance) for route in ("ct", "mr")}
    second = {route: two_routes.run(defs, route, instance) for route in ("ct", "mr")}

    assert all(result.success for result in [*first.values(), *second.values()])
    assert moved_series(first["ct"]) == set(ct.series_uids)
    assert moved_series(first["mr"]) == set(mr.series_uids)
    local = two_routes.ct.local
    assert local.instance_count() == 2 + 3 + 4
    assert all(report_metadata(r)["series_planned"] == 0 for r in second.values())
    for route, result in first.items():
        run = instance.get_run_by_id(result.run_id)
        assert (run.job_name, run.tags[ROUTE_TAG]) == (f"sync_{route}", route)
    # A materialization for the run that moved, an observation for the one that did not.
    [figures] = archive_events(instance, "ct", "materializations")
    assert (figures["images_moved"], figures["series_transferred"]) == (5, 2)
    assert figures["series_failed"] == 0 and figures["images_per_minute"] > 0
    assert 59 <= figures["minutes_to_arrival_median"] <= 62  # the study is 1 h old
    [idle] = archive_events(instance, "ct", "observations")
    assert (idle["images_moved"], idle["outcome"]) == (0, "idle")
    [mr_moved] = archive_events(instance, "mr", "materializations")
    assert mr_moved["images_moved"] == 4
    assert [e.passed for e in check_evaluations(instance, "ct")] == [True, True]


def test_routes_do_not_wait_for_each_other_but_a_route_waits_for_itself(two_routes, instance):
    two_routes.ct.add_remote(SyntheticStudy(two_routes.ct.ago(hours=1), [2]))
    mr = two_routes.mr.add_remote(SyntheticStudy(two_routes.mr.ago(hours=1), [3]))
    defs = route_definitions(load_routes())
    root = Path(instance.root_directory)
    quick = {"wait_seconds": 0.5}

    assert lock_file(defs, "ct") != lock_file(defs, "mr")
    with open(root / lock_file(defs, "ct"), "a+") as held:  # as a run of route ct would
        fcntl.flock(held, fcntl.LOCK_EX)
        results: dict[str, object] = {}
        threads = [
            threading.Thread(
                target=lambda r=route: results.__setitem__(
                    r,
                    two_routes.run(
                        defs,
                        r,
                        instance,
                        sync_lock=SyncLockResource(file_name=lock_file(defs, r), **quick),
                    ),
                )
            )
            for route in ("ct", "mr")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    assert not results["ct"].success  # its own route's run holds the lock
    [failure] = [
        e for e in results["ct"].all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"
    ]
    assert "another sync run is in progress" in failure.event_specific_data.error.to_string()
    assert results["mr"].success  # another route's lock is no obstacle
    assert moved_series(results["mr"]) == set(mr.series_uids)


def test_the_check_fails_once_a_series_fails_in_more_runs_than_the_limit(two_routes, instance):
    two_routes.write(move_destination="NOWHERE", failing_runs_limit=1)
    study = two_routes.ct.add_remote(SyntheticStudy(two_routes.ct.ago(hours=1), [2]))
    defs = route_definitions(load_routes())

    results = [two_routes.run(defs, "ct", instance) for _ in range(2)]

    assert not any(result.success for result in results)
    evaluations = check_evaluations(instance, "ct")
    assert [e.passed for e in evaluations] == [True, False]  # 1 run: at the limit; 2: over
    over = evaluations[-1].metadata["over_limit"].value
    assert over[study.series_uids[0]]["failing_runs"] == 2
    assert evaluations[-1].metadata["failing_runs_limit"].value == 1
    # Nothing moved: observations only, each with the failure counted.
    observed = archive_events(instance, "ct", "observations")
    assert [(o["series_failed"], o["outcome"]) for o in observed] == [(1, "failed")] * 2
    assert not archive_events(instance, "ct", "materializations")

    # Run on its own (as from the asset page), the check reads the latest run's streaks.
    [route] = [route for route in load_routes() if route.name == "ct"]
    alone = failing_series_check(route)(build_asset_check_context(instance=instance))
    assert not alone.passed
    assert alone.metadata["series_over_limit"].value == 1

    # A dry run tries nothing: it neither mends nor breaks the streak.
    dry = defs.resolve_job_def("sync_ct").execute_in_process(
        run_config={"ops": {"start_cycle": {"config": {"dry_run": True}}}},
        instance=instance,
    )
    assert dry.success
    assert len(check_evaluations(instance, "ct")) == 2
    # The series moves once the destination is right: the streak ends, the check passes.
    two_routes.write(failing_runs_limit=1)
    mended = two_routes.run(route_definitions(load_routes()), "ct", instance)
    assert mended.success and moved_series(mended) == set(study.series_uids)
    assert [e.passed for e in check_evaluations(instance, "ct")] == [True, False, True]


def test_a_run_that_stops_before_its_report_still_shows_on_the_asset(two_routes, instance):
    two_routes.ct.local.stop()
    defs = route_definitions(load_routes())

    result = two_routes.run(defs, "ct", instance)

    assert not result.success
    [observed] = archive_events(instance, "ct", "observations")  # once, not per failing op
    assert observed == {
        "images_moved": 0,
        "series_transferred": 0,
        "series_failed": 0,
        "run_failed": 1,
        "outcome": "failed",
    }
    # The run list says how it ended; the asset's latest-run check is red, then green again.
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags[OUTCOME_TAG], tags[CAUSE_TAG]) == ("failed", "local unreachable")
    assert tags[MODE_TAG] == "all"  # the route's mode, tagged before the run failed
    assert [e.passed for e in check_evaluations(instance, "ct", LATEST_RUN_CHECK)] == [False]
    two_routes.ct.local.start()
    assert two_routes.run(defs, "ct", instance).success
    assert [e.passed for e in check_evaluations(instance, "ct", LATEST_RUN_CHECK)] == [
        False,
        True,
    ]
    [route] = [route for route in load_routes() if route.name == "ct"]
    alone = latest_run_check(route)(build_asset_check_context(instance=instance))
    assert alone.passed

"""The Launchpad of a sync job: prefilled with the route's choices, and refusing what would fail.

No PACS is needed: what the Launchpad shows and checks is computed from the job's config
schema snapshot exactly as Dagster's webserver does (`rootDefaultYaml`, `isRunConfigValid`);
what only the mapping can check is refused by Dagster's `validate_run_config`, which is what
the code server runs before a launched run is created.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml
from dagster import DagsterInstance, DagsterInvalidConfigError, validate_run_config
from dagster._config import validate_config_from_snap
from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap

from dicom_sync_dagster.orchestration.jobs import sync_job
from dicom_sync_dagster.orchestration.route_check import run_request
from dicom_sync_dagster.routes import DEFAULT_ROUTE, Route, parse_routes

from .helpers import site_resources

TICK = "2026-03-01T08:00:00+00:00"
ROUTES = {
    "local": {"ae_title": "LOCAL", "host": "127.0.0.1", "port": 4242},
    "routes": [
        {"name": "ct", "remote": {"ae_title": "CT", "host": "127.0.0.1", "port": 4243}},
        {
            "name": "mr",
            "remote": {"ae_title": "MR", "host": "127.0.0.1", "port": 4244},
            "mode": "fewer_than",
            "image_limit": 50,
            "window_hours": 24,
        },
        {
            "name": "us",
            "remote": {"ae_title": "US", "host": "127.0.0.1", "port": 4245},
            "mode": "all",
            "window_hours": 2.5,
        },
    ],
}


def file_route(name: str) -> Route:
    return next(route for route in parse_routes(ROUTES) if route.name == name)


def launchpad_yaml(job) -> str:
    """What the Launchpad's editor opens with (the webserver's `rootDefaultYaml`)."""
    snap = job.get_job_snapshot()
    schema = snap.config_schema_snapshot
    root = schema.get_config_snap(snap.mode_def_snaps[0].root_config_key)
    return default_values_yaml_from_type_snap(schema, root)


def launchpad_errors(job, start_cycle_config: dict) -> list[str]:
    """The Launchpad's live check (the webserver's `isRunConfigValid`, on the snapshot)."""
    snap = job.get_job_snapshot()
    result = validate_config_from_snap(
        snap.config_schema_snapshot,
        snap.mode_def_snaps[0].root_config_key,
        {"ops": {"start_cycle": {"config": start_cycle_config}}},
    )
    return [error.message for error in result.errors or []]


def start_cycle_config(job, run_config: dict) -> dict:
    return validate_run_config(job, run_config)["ops"]["start_cycle"]["config"]


@pytest.mark.parametrize(
    ("route", "mode", "hours"),
    [
        ("ct", "mode:\n        smallest: {}", "12.0"),
        ("mr", "mode:\n        fewer_than:\n          image_limit: 50", "24.0"),
        ("us", "mode:\n        all: {}", "2.5"),
    ],
)
def test_the_launchpad_opens_with_the_routes_mode_and_window(route, mode, hours):
    shown = launchpad_yaml(sync_job(file_route(route)))

    assert shown == (
        "ops:\n  start_cycle:\n    config:\n      catch_up: true\n      dry_run: false\n"
        f"      {mode}\n      reference_time: ''\n      window_hours: {hours}\n"
    )


def test_the_environment_route_opens_with_the_mode_of_its_variables(monkeypatch):
    monkeypatch.setenv("DICOM_SYNC_MODE", "fewer_than")
    monkeypatch.setenv("DICOM_SYNC_IMAGE_LIMIT", "300")

    shown = yaml.safe_load(launchpad_yaml(sync_job(Route(DEFAULT_ROUTE))))

    assert shown == {
        "ops": {
            "start_cycle": {
                "config": {
                    "mode": {"fewer_than": {"image_limit": 300}},
                    "window_hours": 12.0,
                    "catch_up": True,
                    "dry_run": False,
                    "reference_time": "",
                }
            }
        }
    }


def test_what_the_launchpad_opens_with_launches_the_routes_choices():
    job = sync_job(file_route("mr"))
    shown = yaml.safe_load(launchpad_yaml(job))

    assert launchpad_errors(job, shown["ops"]["start_cycle"]["config"]) == []
    assert start_cycle_config(job, shown) == {
        "mode": "fewer_than",
        "image_limit": 50,
        "window_hours": 24.0,
        "catch_up": True,
        "dry_run": False,
        "reference_time": "",
    }


def test_a_run_config_naming_only_the_tick_keeps_the_routes_mode_and_window():
    """The schedule's runs send only reference_time: the other fields keep their defaults."""
    job = sync_job(file_route("us"))

    config = start_cycle_config(job, run_request(_tick(), "work").run_config)

    assert config["mode"] == "all"
    assert config["window_hours"] == 2.5
    assert config["catch_up"] is True  # after an outage the scheduled run still catches up
    assert config["reference_time"] == TICK


@pytest.mark.parametrize(
    ("choice", "words"),
    [
        ({"mode": {"fewer_than": {}}}, 'Missing required config entry "image_limit"'),
        ({"mode": {"fewer_than": None}}, "fewer_than"),
        ({"mode": {"all": {}, "smallest": {}}}, "only specify a single field"),
        ({"mode": {"biggest": {}}}, "biggest"),
        ({"mode": "fewer_than"}, "must be a dict"),  # the old form: see the README
        ({"image_limit": 5}, 'unexpected config entry "image_limit"'),
        ({"window_hours": "twelve"}, "window_hours"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
def test_the_launchpads_own_check_refuses_what_would_fail(choice, words):
    errors = launchpad_errors(sync_job(file_route("ct")), choice)

    assert errors, f"{choice} passed the Launchpad's check"
    assert any(words in error for error in errors), errors


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ({"window_hours": -5}, "ops.start_cycle.config.window_hours=-5.0 must be > 0 and <= 336"),
        ({"window_hours": 0}, "ops.start_cycle.config.window_hours=0.0 must be > 0 and <= 336"),
        ({"window_hours": 337}, "ops.start_cycle.config.window_hours=337.0 must be > 0 and <= 336"),
        (
            {"mode": {"fewer_than": {"image_limit": 0}}},
            "ops.start_cycle.config.mode.fewer_than.image_limit=0 must be a whole number >= 1 "
            "for mode fewer_than",
        ),
        (
            {"reference_time": "yesterday"},
            "ops.start_cycle.config.reference_time='yesterday' is not an ISO 8601 time",
        ),
    ],
)
def test_a_value_out_of_range_is_refused_before_a_run_is_created(choice, message):
    """Dagster's schema has no ranges: the Launchpad lists them in the descriptions, and the
    config mapping refuses them when the run is launched, before it exists."""
    job = sync_job(file_route("ct"))
    run_config = {"ops": {"start_cycle": {"config": choice}}}
    with pytest.raises(DagsterInvalidConfigError) as refused:
        validate_run_config(job, run_config)
    assert str(refused.value) == message

    env = {
        "DICOM_SYNC_REMOTE_AE": "CT",
        "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
        "DICOM_SYNC_REMOTE_PORT": "4243",
        "DICOM_SYNC_LOCAL_AE": "LOCAL",
        "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
        "DICOM_SYNC_LOCAL_PORT": "4242",
        "DICOM_SYNC_CALLING_AE": "DICOMSYNC",
        "DICOM_SYNC_TIMEZONE": "UTC",
    }
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(DagsterInvalidConfigError, match=message.split(" must")[0]):
            job.execute_in_process(
                run_config=run_config, resources=site_resources(env), instance=instance
            )
        assert instance.get_runs() == []


def test_a_resource_block_changes_one_setting_and_keeps_the_routes_others():
    """Dagster alone resets every field a resource block leaves out to the class default."""
    job = sync_job(file_route("mr"))
    run_config = {"resources": {"sync_options": {"config": {"dimse_timeout": 60.0}}}}

    resolved = validate_run_config(job, run_config)

    options = resolved["resources"]["sync_options"]["config"]
    assert options["dimse_timeout"] == 60.0
    assert options["route"] == "mr"  # the route's own values stay
    assert options["image_limit"] == "50"
    assert resolved["ops"]["start_cycle"]["config"]["image_limit"] == 50


def _tick() -> datetime:
    return datetime.fromisoformat(TICK)

"""dicom_sync.yaml: routes, their validation, and the definitions built from them (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import Definitions

from dicom_sync_dagster.definitions import route_definitions
from dicom_sync_dagster.orchestration.archive import FAILING_CHECK, LATEST_RUN_CHECK, archive_key
from dicom_sync_dagster.orchestration.jobs import CONCURRENCY_TAG
from dicom_sync_dagster.routes import (
    DEFAULT_ROUTE,
    ROUTES_FILE,
    Route,
    load_routes,
    parse_routes,
    read_yaml,
    route_settings,
)
from dicom_sync_dagster.settings import ConfigError

TWO_ROUTES = """
calling_ae: DICOMSYNC
timezone: Europe/Berlin
window_hours: 6
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 4242}
routes:
  - name: ct_north
    remote: {ae_title: CTNORTH, host: 10.1.0.7, port: 104}
  - name: mri_south
    remote: {ae_title: MRISOUTH, host: mri.example.org, port: 11112}
    mode: fewer_than
    image_limit: 50
    window_hours: 24
    schedule: "*/5 * * * *"
    schedule_status: off
"""


def routes_of(text: str) -> list[Route]:
    return parse_routes(read_yaml(text), "dicom_sync.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        routes_of(text)
    return excinfo.value.problems


def test_routes_inherit_the_top_level_and_keep_their_own():
    north, south = routes_of(TWO_ROUTES)

    assert (north.name, north.job_name, north.schedule_name) == (
        "ct_north",
        "sync_ct_north",
        "sync_ct_north_schedule",
    )
    assert north.remote["ae_title"] == "CTNORTH" and north.remote["port"] == "104"
    assert north.local == south.local
    assert north.local["ae_title"] == "LOCALPACS"
    assert north.options["window_hours"] == 6.0
    assert north.options["mode"] == "smallest"
    assert (north.cron, north.schedule_on) == ("* * * * *", True)
    assert south.options["window_hours"] == 24.0
    assert (south.options["mode"], south.options["image_limit"]) == ("fewer_than", "50")
    # YAML reads a bare `off` as false: still understood as "off".
    assert (south.cron, south.schedule_on) == ("*/5 * * * *", False)


def test_without_a_file_there_is_the_one_environment_route(tmp_path):
    [route] = load_routes(env={}, folder=tmp_path)

    assert route.from_env and route.name == DEFAULT_ROUTE
    assert (route.job_name, route.schedule_name, route.check_job_name) == (
        "dicom_sync",
        "every_minute",
        "check_connections",
    )


def test_the_file_in_the_working_folder_or_the_one_named_is_used(tmp_path):
    (tmp_path / "dicom_sync.yaml").write_text(TWO_ROUTES)
    assert [r.name for r in load_routes(env={}, folder=tmp_path)] == ["ct_north", "mri_south"]

    other = tmp_path / "elsewhere.yaml"
    other.write_text(TWO_ROUTES.replace("ct_north", "ct_east"))
    routes = load_routes(env={ROUTES_FILE: str(other)}, folder=tmp_path)
    assert routes[0].name == "ct_east"


def test_none_means_the_environment_variables_even_with_a_file_here(tmp_path):
    (tmp_path / "dicom_sync.yaml").write_text(TWO_ROUTES)
    [route] = load_routes(env={ROUTES_FILE: "none"}, folder=tmp_path)
    assert route.from_env


def test_the_example_file_is_valid():
    example = Path(__file__).resolve().parents[1] / "dicom_sync.example.yaml"
    routes = load_routes(env={ROUTES_FILE: str(example)})
    assert len(routes) >= 2 and all(route.remote["ae_title"] for route in routes)


def test_a_named_file_that_is_missing_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{ROUTES_FILE}='{missing}': no such file"):
        load_routes(env={ROUTES_FILE: str(missing)}, folder=tmp_path)


def test_bad_yaml_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "dicom_sync.yaml"
    path.write_text("routes: [\n  - name: a\n")
    with pytest.raises(ConfigError, match="cannot be read as YAML"):
        load_routes(env={ROUTES_FILE: str(path)}, folder=tmp_path)


def test_every_problem_names_its_route_and_field():
    text = """
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 4242}
routes:
  - name: ct_north
    remote: {ae_title: CTNORTH, host: 10.1.0.7, port: 99999}
    mode: biggest
    schedule: every minute
  - name: mri_south
    remote: {ae_title: THIS_AE_TITLE_IS_TOO_LONG, host: "http://mri", port: 104}
    window_hours: 0
    max_parallel_moves: "four"
"""
    problems = problems_of(text)

    expected = [
        "dicom_sync.yaml: route ct_north.remote.port='99999' is not a TCP port",
        "dicom_sync.yaml: route ct_north.mode='biggest' is not one of smallest, fewer_than, all",
        "dicom_sync.yaml: route ct_north.schedule='every minute' is not a cron expression",
        "dicom_sync.yaml: route mri_south.remote.ae_title='THIS_AE_TITLE_IS_TOO_LONG'",
        "dicom_sync.yaml: route mri_south.remote.host='http://mri'",
        "dicom_sync.yaml: route mri_south.window_hours=0.0 must be > 0",
        "dicom_sync.yaml: route mri_south.max_parallel_moves='four' must be a number",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a mapping with a 'routes' list"),
        ("routes: []", "'routes' must be a non-empty list"),
        ("routes: [ct_north]", "routes[0] must be a mapping"),
        (
            "routes:\n  - name: Bad-Name\n    remote: {ae_title: A, host: h, port: 1}\n"
            "    local: {ae_title: B, host: h, port: 2}",
            "routes[0].name='Bad-Name' must be 1-40 lower-case letters",
        ),
        (
            "routes:\n  - name: a\n    local: {ae_title: B, host: h, port: 2}",
            "route a.remote is not set",
        ),
        (
            "routes:\n  - name: a\n    remote: {ae_title: A, host: h, port: 1, aet: X}\n"
            "    local: {ae_title: B, host: h, port: 2}",
            "route a.remote: unknown field 'aet'",
        ),
        (
            "lokal: 1\nroutes:\n  - name: a\n    remote: {ae_title: A, host: h, port: 1}\n"
            "    local: {ae_title: B, host: h, port: 2}",
            "dicom_sync.yaml: unknown field 'lokal'",
        ),
        (
            "routes:\n  - name: a\n    remote: {ae_title: A, host: h, port: 1}\n"
            "    local: {ae_title: A, host: h, port: 1}",
            "route a: remote and local are the same node (A)",
        ),
        (
            "routes:\n  - name: a\n    remote: {ae_title: A, host: h, port: 1}\n"
            "    local: {ae_title: B, host: h, port: 2}\n    mode: fewer_than",
            "route a.image_limit='' must be a whole number >= 1 for mode fewer_than",
        ),
        (
            "routes:\n  - name: a\n    remote: {ae_title: A, host: h, port: 1}\n"
            "    local: {ae_title: B, host: h, port: 2}\n    schedule_status: sometimes",
            "route a.schedule_status='sometimes' must be 'on' or 'off'",
        ),
    ],
)
def test_malformed_files_are_refused_with_the_reason(text, message):
    problems = problems_of(text)
    assert any(message in p for p in problems), problems


def test_two_routes_of_one_name_are_refused():
    text = TWO_ROUTES.replace("mri_south", "ct_north")
    assert "dicom_sync.yaml: route name 'ct_north' is used 2 times" in problems_of(text)


def test_each_route_gets_its_own_jobs_schedule_asset_and_check():
    routes = routes_of(TWO_ROUTES)
    defs = route_definitions(routes)
    Definitions.validate_loadable(defs)  # as the code server loads it

    for route in routes:
        job = defs.resolve_job_def(route.job_name)
        assert job.tags[CONCURRENCY_TAG] == route.job_name  # one queue slot per route
        assert defs.resolve_job_def(route.check_job_name)
        schedule = defs.resolve_schedule_def(route.schedule_name)
        assert (schedule.job_name, schedule.cron_schedule) == (route.job_name, route.cron)
        assert schedule.default_status.value == ("RUNNING" if route.schedule_on else "STOPPED")
        assert schedule.execution_timezone == "Europe/Berlin"  # cron read in the PACS zone
        options = job.resource_defs["sync_options"].config_field.default_value
        assert (options["route"], options["mode"]) == (route.name, route.options["mode"])
        lock = job.resource_defs["sync_lock"].config_field.default_value
        assert lock["file_name"] == f"dicom-sync-{route.name}.lock"
    specs = {spec.key for spec in defs.resolve_all_asset_specs()}
    assert specs == {archive_key("ct_north"), archive_key("mri_south")}
    check_keys = defs.resolve_asset_graph().asset_check_keys
    assert {(key.asset_key, key.name) for key in check_keys} == {
        (archive_key(route), check)
        for route in ("ct_north", "mri_south")
        for check in (FAILING_CHECK, LATEST_RUN_CHECK)
    }


def test_yaml_1_1_surprises_stay_what_was_written():
    text = """
local: {ae_title: "ON", host: 127.0.0.1, port: 0104}
calling_ae: 1234
routes:
  - name: a
    remote: {ae_title: NO, host: 127.0.0.1, port: 11112}
    schedule_status: off
"""
    [route] = routes_of(text)

    assert (route.local["ae_title"], route.local["port"]) == ("ON", "0104")  # not True, not 68
    assert route.remote["ae_title"] == "NO"
    assert route.options["calling_ae"] == "1234"
    assert route.schedule_on is False
    assert route_settings(route).local.port == 104
    Definitions.validate_loadable(route_definitions([route]))  # text where text is expected


def test_zone_and_calling_ae_variables_are_defaults_for_the_file(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(TWO_ROUTES.replace("timezone: Europe/Berlin\n", ""))
    env = {ROUTES_FILE: str(path), "DICOM_SYNC_TIMEZONE": "Asia/Tokyo"}
    assert {r.options["timezone"] for r in load_routes(env=env)} == {"Asia/Tokyo"}

    path.write_text(TWO_ROUTES)  # the file's own value wins
    assert {r.options["timezone"] for r in load_routes(env=env)} == {"Europe/Berlin"}


def test_a_route_with_its_own_local_does_not_take_the_top_level_move_destination():
    text = """
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 4242}
move_destination: LOCALSTORE
routes:
  - name: a
    remote: {ae_title: A, host: h, port: 1}
  - name: research
    remote: {ae_title: A, host: h, port: 1}
    local: {ae_title: RESEARCH, host: 127.0.0.1, port: 4343}
"""
    shared, research = routes_of(text)

    assert route_settings(shared).destination == "LOCALSTORE"
    assert route_settings(research).destination == "RESEARCH"


def test_a_top_level_mistake_is_reported_once_where_it_is_written():
    problems = problems_of(TWO_ROUTES.replace("port: 4242", "port: lots"))

    assert problems == [
        "dicom_sync.yaml: local.port='lots' is not a TCP port (a whole number 1-65535)"
    ]


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "* * * * * *", "61 * * * *"])
def test_a_cron_dagster_cannot_schedule_is_refused_when_the_file_is_read(cron):
    """Checked through Dagster's public ScheduleDefinition (no dagster._utils import): seconds
    and 30 February are cron to croniter, not to Dagster's scheduler."""
    text = TWO_ROUTES.replace('schedule: "*/5 * * * *"', f'schedule: "{cron}"')
    assert f"dicom_sync.yaml: route mri_south.schedule='{cron}' is not a cron expression" in (
        " ".join(problems_of(text))
    )

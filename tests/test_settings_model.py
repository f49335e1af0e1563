"""The settings model (options.py): every consumer takes the option as it is declared there,
and every check has one wording, whichever source the value comes from (no network)."""

from __future__ import annotations

import argparse

import pytest
from dagster import EnvVar

from dicom_sync_dagster import options as o
from dicom_sync_dagster.cli import _run_config
from dicom_sync_dagster.core.selection import Mode, Selection
from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.dicom.node import Timeouts
from dicom_sync_dagster.orchestration.resources import (
    DicomNodeResource,
    SyncOptionsResource,
    options_resource_from_env,
)
from dicom_sync_dagster.routes import parse_routes, read_yaml
from dicom_sync_dagster.settings import ConfigError, check_selection

NODES = """
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 4242}
routes:
  - name: a
    remote: {ae_title: REMOTEPACS, host: 127.0.0.1, port: 4243}
"""
NUMBERS = [x for x in o.OPTIONS if x.kind is not str and x.high is not None]


def file_problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        parse_routes(read_yaml(NODES + extra), "dicom_sync.yaml")
    return excinfo.value.problems


def node(role: str, port: int) -> DicomNodeResource:
    return DicomNodeResource(role=role, ae_title=role.upper(), host="127.0.0.1", port=str(port))


def launchpad_problems(**options) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        SyncOptionsResource(**{"timezone": "UTC", **options}).settings(
            node("remote", 1), node("local", 2)
        )
    return excinfo.value.problems


def tail(problem: str) -> str:
    """The words after ``<name>=<value>``: the same check says the same thing everywhere."""
    return problem.split(" ", 1)[1]


def test_the_launchpad_shows_each_option_with_the_models_default_and_description():
    fields = defs().resolve_job_def("dicom_sync").resource_defs["sync_options"]
    schema = fields.config_schema.config_type.fields
    for option in o.OPTIONS:
        assert schema[option.name].default_value == option.default, option.name
        assert schema[option.name].description == option.description, option.name


def test_each_variable_reaches_the_launchpad_as_that_variable(monkeypatch):
    for option in o.OPTIONS:
        if option.variable:
            monkeypatch.setenv(option.variable, "x")
    resource = options_resource_from_env()
    for option in o.OPTIONS:
        expected = EnvVar(option.variable) if option.variable else option.default
        assert getattr(resource, option.name) == expected, option.name


def test_the_timeouts_a_run_uses_by_default_are_the_models():
    settings = SyncOptionsResource().settings(node("remote", 1), node("local", 2))
    assert settings.timeouts == Timeouts()
    for option in o.TIMEOUT_OPTIONS:
        assert getattr(Timeouts(), option.timeout) == option.default


@pytest.mark.parametrize("option", NUMBERS, ids=lambda x: x.name)
def test_a_number_at_its_bounds_is_taken_and_just_outside_refused_naming_it(option):
    inside = [option.high] + ([] if option.above else [option.low])
    outside = [option.high + 1, option.low if option.above else option.low - 1]
    for value in inside:
        accepted = parse_routes(read_yaml(NODES + f"{option.name}: {value}\n"))
        assert accepted[0].options[option.name] == value
    for value in outside:
        problems = file_problems(f"{option.name}: {value}\n")
        [problem] = [p for p in problems if option.name in p]
        shown = option.kind(value)
        assert problem.startswith(f"dicom_sync.yaml: {option.name}={shown!r} must be ")


@pytest.mark.parametrize(
    "option", [x for x in NUMBERS if x not in o.RUN_OPTIONS], ids=lambda x: x.name
)
def test_the_launchpad_and_the_file_word_a_range_check_alike(option):
    value = option.kind(option.high + 1)
    [in_file] = file_problems(f"{option.name}: {value}\n")
    [in_launchpad] = launchpad_problems(**{option.name: value})

    assert in_launchpad.startswith(f"{option.name}={value!r} ")
    assert tail(in_launchpad) == tail(in_file.split(": ", 1)[1])


def test_the_window_is_worded_alike_in_the_file_and_on_the_command_line():
    [in_file] = file_problems("window_hours: 400\n")
    args = argparse.Namespace(dry_run=False, all_series=False, min_images=None, window_hours=400)
    with pytest.raises(ConfigError) as excinfo:
        _run_config(args)
    [on_cli] = excinfo.value.problems

    assert on_cli == "--window-hours=400 must be > 0 and <= 336"
    assert tail(on_cli) == tail(in_file.split(": ", 1)[1])


def test_the_image_limit_is_worded_alike_wherever_it_is_given():
    """Before: four wordings (variable, file, `--min-images`, a run's config)."""
    problems = []
    with pytest.raises(ConfigError) as excinfo:
        check_selection("fewer_than", "0")
    problems += excinfo.value.problems
    problems += file_problems("mode: fewer_than\nimage_limit: 0\n")
    args = argparse.Namespace(dry_run=False, all_series=False, min_images=0, window_hours=None)
    with pytest.raises(ConfigError) as excinfo:
        _run_config(args)
    problems += excinfo.value.problems
    with pytest.raises(ValueError) as error:
        Selection(Mode.fewer_than, 0)
    problems.append(str(error.value))

    names = [p.split("=", 1)[0] for p in problems]
    assert names == [
        "DICOM_SYNC_IMAGE_LIMIT",
        "dicom_sync.yaml: image_limit",
        "--min-images",
        "image_limit",
    ]
    assert {tail(p.split(": ", 1)[-1]) for p in problems} == {
        "must be a whole number >= 1 for mode fewer_than"
    }


@pytest.mark.parametrize(
    ("option", "bad", "words"),
    [
        (o.CALLING_AE, "A\\B", "contains a backslash"),
        (o.MOVE_DESTINATION, "A" * 17, "is 17 characters long; an AE title has at most 16"),
        (o.TIMEZONE, "Mars/Base", "is not an IANA time zone (e.g. Europe/Berlin)"),
    ],
    ids=lambda x: getattr(x, "name", None) or "",
)
def test_a_text_option_is_worded_alike_from_the_environment_and_the_file(option, bad, words):
    [in_file] = file_problems(f"{option.name}: '{bad}'\n")
    [in_launchpad] = launchpad_problems(**{option.name: bad})

    assert in_file.startswith(f"dicom_sync.yaml: {option.name}=")
    assert in_launchpad.startswith(f"{option.variable}=")
    assert tail(in_file.split(": ", 1)[1]) == tail(in_launchpad) == words

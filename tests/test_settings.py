"""Settings from the environment, the schedule's mode config, and C-MOVE outcomes (pure)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance

from dicom_sync_dagster.core.selection import Mode, Selection
from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.dicom.outcomes import (
    MoveOutcome,
    MoveResult,
    describe_status,
    outcome_for_status,
)
from dicom_sync_dagster.orchestration.resources import (
    DicomNodeResource,
    SyncLockResource,
    SyncOptionsResource,
)
from dicom_sync_dagster.settings import (
    CALLING_AE,
    IMAGE_LIMIT,
    LOCAL_AE,
    LOCAL_HOST,
    LOCAL_PORT,
    MODE,
    MOVE_DESTINATION,
    REMOTE_AE,
    REMOTE_HOST,
    REMOTE_PORT,
    TIMEZONE,
    ConfigError,
    check_host,
    check_selection,
    settings_from_env,
)

BASE = {
    REMOTE_AE: "REMOTEPACS",
    REMOTE_HOST: "pacs.example.org",
    REMOTE_PORT: "104",
    LOCAL_AE: "LOCALPACS",
    LOCAL_HOST: "127.0.0.1",
    LOCAL_PORT: "4242",
    TIMEZONE: "Europe/Berlin",
}


def with_env(**changes: str | None) -> dict[str, str]:
    """BASE with the settings named by their constant changed; ``None`` removes one."""
    names = {
        "remote_ae": REMOTE_AE,
        "remote_host": REMOTE_HOST,
        "remote_port": REMOTE_PORT,
        "local_ae": LOCAL_AE,
        "local_host": LOCAL_HOST,
        "local_port": LOCAL_PORT,
        "calling_ae": CALLING_AE,
        "move_destination": MOVE_DESTINATION,
        "timezone": TIMEZONE,
    }
    env = dict(BASE)
    for key, value in changes.items():
        env.pop(names[key], None)
        if value is not None:
            env[names[key]] = value
    return env


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as excinfo:
        settings_from_env(env)
    return excinfo.value


# --- valid settings ---------------------------------------------------------------------


def test_valid_settings_and_defaults():
    settings = settings_from_env(BASE)
    assert (
        settings.remote.role,
        settings.remote.ae_title,
        settings.remote.host,
        settings.remote.port,
    ) == ("remote", "REMOTEPACS", "pacs.example.org", 104)
    assert (
        settings.local.role,
        settings.local.ae_title,
        settings.local.host,
        settings.local.port,
    ) == ("local", "LOCALPACS", "127.0.0.1", 4242)
    assert settings.calling_ae == "DICOMSYNC"
    assert settings.move_destination == ""
    assert settings.destination == "LOCALPACS"  # moves go to the local PACS by default
    assert settings.timezone_name == "Europe/Berlin"
    assert settings.zone == ZoneInfo("Europe/Berlin")


def test_explicit_calling_ae_and_move_destination():
    settings = settings_from_env(with_env(calling_ae="SYNCER", move_destination="STORESCP"))
    assert settings.calling_ae == "SYNCER"
    assert settings.move_destination == "STORESCP"
    assert settings.destination == "STORESCP"


def test_empty_calling_ae_and_move_destination_mean_the_defaults():
    settings = settings_from_env(with_env(calling_ae="", move_destination=""))
    assert settings.calling_ae == "DICOMSYNC"
    assert settings.destination == "LOCALPACS"


def test_values_are_stripped_and_limits_accepted():
    settings = settings_from_env(
        with_env(
            remote_ae=" " + "A" * 15, remote_host=" pacs ", remote_port=" 65535 ", local_port="1"
        )
    )
    assert settings.remote.ae_title == "A" * 15
    assert settings.remote.host == "pacs"
    assert settings.remote.port == 65535
    assert settings.local.port == 1
    assert settings_from_env(with_env(local_ae="B" * 16)).local.ae_title == "B" * 16


@pytest.mark.parametrize("tz", ["Asia/Tokyo", ":America/New_York"])
def test_timezone_defaults_to_the_machine_zone(monkeypatch, tz):
    monkeypatch.setenv("TZ", tz)
    expected = tz.lstrip(":")
    for env in (with_env(timezone=None), with_env(timezone=""), with_env(timezone="  ")):
        settings = settings_from_env(env)
        assert settings.timezone_name == expected
        assert settings.zone == ZoneInfo(expected)


def test_settings_from_env_reads_os_environ_by_default(monkeypatch):
    for name, value in with_env(remote_port="11112").items():
        monkeypatch.setenv(name, value)
    for name in (CALLING_AE, MOVE_DESTINATION):
        monkeypatch.delenv(name, raising=False)
    assert settings_from_env().remote.port == 11112


# --- bad values -------------------------------------------------------------------------

AE_VARIABLES = ["remote_ae", "local_ae", "calling_ae", "move_destination"]
BAD_AE_TITLES = [
    ("A" * 17, "17 characters"),
    ("AB\\CD", "backslash"),
    ("AB\x01CD", "control character"),
    ("AB\tCD", "control character"),
    ("AB\x7fCD", "control character"),
    ("    ", "only spaces"),
    ("\u00c4RZTE", "non-ASCII"),
]


@pytest.mark.parametrize("key", AE_VARIABLES)
@pytest.mark.parametrize(("value", "problem"), BAD_AE_TITLES)
def test_bad_ae_title(key, value, problem):
    error = config_error(with_env(**{key: value}))
    variable = {
        "remote_ae": REMOTE_AE,
        "local_ae": LOCAL_AE,
        "calling_ae": CALLING_AE,
        "move_destination": MOVE_DESTINATION,
    }[key]
    assert len(error.problems) == 1
    assert variable in str(error)
    assert f"{variable}={value!r}" in str(error)
    assert problem in str(error)


@pytest.mark.parametrize(("key", "variable"), [("remote_ae", REMOTE_AE), ("local_ae", LOCAL_AE)])
@pytest.mark.parametrize("value", [None, ""])
def test_unset_node_ae_title(key, variable, value):
    error = config_error(with_env(**{key: value}))
    assert error.problems == [f"{variable} is not set (an AE title of 1-16 characters)"]


@pytest.mark.parametrize(
    ("key", "variable"), [("remote_port", REMOTE_PORT), ("local_port", LOCAL_PORT)]
)
@pytest.mark.parametrize("value", ["0", "65536", "abc", "-1", "1.5", "104 4242", "0x68"])
def test_bad_port(key, variable, value):
    error = config_error(with_env(**{key: value}))
    assert len(error.problems) == 1
    assert f"{variable}={value!r}" in str(error)
    assert "not a TCP port" in str(error)


@pytest.mark.parametrize(
    ("key", "variable"), [("remote_port", REMOTE_PORT), ("local_port", LOCAL_PORT)]
)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_port(key, variable, value):
    error = config_error(with_env(**{key: value}))
    assert error.problems == [f"{variable} is not set (a TCP port 1-65535)"]


def test_superscript_port_is_a_config_error():
    value = "\u00b2"
    error = config_error(with_env(remote_port=value))
    assert f"{REMOTE_PORT}={value!r}" in str(error)


@pytest.mark.parametrize(
    ("key", "variable"), [("remote_host", REMOTE_HOST), ("local_host", LOCAL_HOST)]
)
@pytest.mark.parametrize("value", ["pacs host", "pacs\thost", " pacs .example.org "])
def test_host_with_white_space(key, variable, value):
    error = config_error(with_env(**{key: value}))
    assert error.problems == [f"{variable}={value!r} contains white space"]


@pytest.mark.parametrize(
    ("key", "variable"), [("remote_host", REMOTE_HOST), ("local_host", LOCAL_HOST)]
)
@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_host(key, variable, value):
    error = config_error(with_env(**{key: value}))
    assert error.problems == [f"{variable} is not set (a host name or IP address)"]


@pytest.mark.parametrize("value", ["Mars/Olympus", "Europe/Berlín", "+0100", "../etc/passwd"])
def test_bad_timezone(value):
    error = config_error(with_env(timezone=value))
    assert len(error.problems) == 1
    assert f"{TIMEZONE}={value!r}" in str(error)
    assert "not an IANA time zone" in str(error)


def test_all_bad_values_reported_at_once():
    env = with_env(
        remote_ae="A" * 17,
        remote_host="",
        remote_port="0",
        local_ae=None,
        local_host="a b",
        local_port="abc",
        calling_ae="X\\Y",
        move_destination="\x00",
        timezone="Mars/Olympus",
    )
    error = config_error(env)
    long_ae, backslash = "A" * 17, "X\\Y"
    assert len(error.problems) == 9
    text = str(error)
    assert text.startswith("invalid configuration:")
    for needle in (
        f"{REMOTE_AE}={long_ae!r}",
        f"{REMOTE_HOST} is not set",
        f"{REMOTE_PORT}='0'",
        f"{LOCAL_AE} is not set",
        f"{LOCAL_HOST}='a b'",
        f"{LOCAL_PORT}='abc'",
        f"{CALLING_AE}={backslash!r}",
        f"{MOVE_DESTINATION}='\\x00'",
        f"{TIMEZONE}='Mars/Olympus'",
    ):
        assert needle in text
    # One problem per line.
    assert len(text.splitlines()) == 1 + 9


def test_a_bad_setting_fails_the_run_at_start_cycle_as_an_expected_failure(tmp_path):
    """start_cycle turns every bad setting into a Failure naming it (it catches ValueError,
    which ConfigError is): no crash with a traceback, nothing queried (ports nobody uses)."""
    resources = {
        "remote_pacs": DicomNodeResource(role="remote", ae_title="R", host="127.0.0.1", port="0"),
        "local_pacs": DicomNodeResource(role="local", ae_title="L", host="127.0.0.1", port="1"),
        "sync_options": SyncOptionsResource(timezone="UTC", confirm_seconds=601),
        "sync_lock": SyncLockResource(),
    }
    with DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        result = (
            defs()
            .resolve_job_def("dicom_sync")
            .execute_in_process(resources=resources, instance=instance, raise_on_error=False)
        )

    [failure] = [e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    assert (failure.node_name, error.cls_name) == ("start_cycle", "Failure")
    assert f"{REMOTE_PORT}='0' is not a TCP port" in error.message
    assert "confirm_seconds=601.0 must be 0-600" in error.message


# --- check_selection (DICOM_SYNC_MODE / DICOM_SYNC_IMAGE_LIMIT) -------------------------


def selection_of(env: dict[str, str]) -> Selection:
    return check_selection(env.get(MODE), env.get(IMAGE_LIMIT))


@pytest.mark.parametrize("env", [{}, {MODE: ""}, {MODE: "  "}, {MODE: "smallest"}])
def test_mode_defaults_to_smallest(env):
    assert selection_of(env) == Selection(Mode.smallest)


def test_mode_fewer_than_with_limit():
    assert selection_of({MODE: "fewer_than", IMAGE_LIMIT: "50"}) == Selection(Mode.fewer_than, 50)
    assert selection_of({MODE: " fewer_than ", IMAGE_LIMIT: " 1 "}) == Selection(Mode.fewer_than, 1)


@pytest.mark.parametrize("mode", ["all", "smallest"])
def test_limit_ignored_for_other_modes(mode):
    assert selection_of({MODE: mode, IMAGE_LIMIT: "junk"}) == Selection(Mode(mode))


@pytest.mark.parametrize("mode", ["biggest", "ALL", "fewer-than", "Smallest"])
def test_bad_mode_names_the_variable(mode):
    with pytest.raises(ValueError) as excinfo:
        selection_of({MODE: mode})
    message = str(excinfo.value)
    assert f"{MODE}={mode!r}" in message
    for choice in ("smallest", "fewer_than", "all"):
        assert choice in message


@pytest.mark.parametrize("limit", [None, "", "0", "-3", "ten", "2.5", "1e3"])
def test_bad_or_missing_limit_names_the_variable(limit):
    env = {MODE: "fewer_than"}
    if limit is not None:
        env[IMAGE_LIMIT] = limit
    with pytest.raises(ValueError) as excinfo:
        selection_of(env)
    assert f"{IMAGE_LIMIT}={(limit or '')!r}" in str(excinfo.value)


def test_superscript_limit_names_the_variable():
    with pytest.raises(ValueError) as excinfo:
        selection_of({MODE: "fewer_than", IMAGE_LIMIT: "\u00b2"})
    assert IMAGE_LIMIT in str(excinfo.value)


# --- C-MOVE outcomes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0x0000, MoveOutcome.SUCCESS),
        (0xB000, MoveOutcome.WARNING),
        (0xBFFF, MoveOutcome.WARNING),
        (0xFE00, MoveOutcome.CANCELLED),
        (0xA801, MoveOutcome.FAILURE),
        (0xC000, MoveOutcome.FAILURE),
        (0xCFFF, MoveOutcome.FAILURE),
        (0xA701, MoveOutcome.FAILURE),
        (0xA702, MoveOutcome.FAILURE),
        (0xA900, MoveOutcome.FAILURE),
    ],
)
def test_outcome_for_status(code, outcome):
    assert outcome_for_status(code) is outcome


@pytest.mark.parametrize(
    ("result", "transient"),
    [
        (MoveResult(MoveOutcome.FAILURE, status=0xA701), True),  # out of resources
        (MoveResult(MoveOutcome.FAILURE, status=0xA702), True),
        (MoveResult(MoveOutcome.FAILURE, status=0xA801), False),  # unknown destination
        (MoveResult(MoveOutcome.FAILURE, status=0xC000), False),
        (MoveResult(MoveOutcome.TIMEOUT), True),
        (MoveResult(MoveOutcome.ABORTED), True),
        (MoveResult(MoveOutcome.UNREACHABLE), True),
        (MoveResult(MoveOutcome.REJECTED), False),
        (MoveResult(MoveOutcome.CANCELLED, status=0xFE00), False),
        (MoveResult(MoveOutcome.WARNING, status=0xB000), False),
        (MoveResult(MoveOutcome.SUCCESS, status=0x0000), False),
    ],
)
def test_move_result_transient(result, transient):
    assert result.transient is transient


@pytest.mark.parametrize(
    ("code", "prefix", "words"),
    [
        (0xA801, "0xA801 Failure: ", "destination unknown"),
        (0xA701, "0xA701 Failure: ", "out of resources"),
        (0xB000, "0xB000 Warning: ", "sub-operations"),
        (0xC000, "0xC000 Failure: ", "unable to process"),
    ],
)
def test_describe_status_includes_the_hex_code(code, prefix, words):
    text = describe_status(code)
    assert text.startswith(prefix)
    assert words in text.lower()


def test_describe_status_without_text_or_unknown():
    assert describe_status(0x0000).startswith("0x0000 Success")
    assert describe_status(0xFE00).startswith("0xFE00 Cancel")
    assert describe_status(0x1234) == "0x1234 Unknown: unknown status"


@pytest.mark.parametrize("host", ["10.0.0.5:104", "http://pacs.example", "user@pacs", "pacs:4242"])
def test_host_that_is_a_url_or_host_port_is_refused(host):
    with pytest.raises(ConfigError) as error:
        check_host("DICOM_SYNC_LOCAL_HOST", host)
    assert f"DICOM_SYNC_LOCAL_HOST={host!r}" in str(error.value)


def test_ipv6_literal_host_is_accepted():
    assert check_host("DICOM_SYNC_LOCAL_HOST", " ::1 ") == "::1"

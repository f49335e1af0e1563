"""`dicom-sync health` as monitoring runs it: a real process, one line, the Nagios exit code,
from a real instance's runs of the real sync job and the route's check state file."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance

from dicom_sync_dagster.orchestration.check_state import (
    STATE_FILE,
    CheckState,
    write_check_state,
)
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import run_sync
from .test_cli import dicom_sync, project  # noqa: F401 - the fixture

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def _health(site_env: dict, folder, *flags: str) -> tuple[int, list[str]]:
    done = dicom_sync(["health", *flags], site_env, folder)
    return done.returncode, done.stdout.splitlines()


def _write_check(folder, minutes_ago: float, ok: bool) -> None:
    """As the route's schedule check records itself (orchestration/check_state.py)."""
    checked_at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    write_check_state(folder, "default", CheckState(checked_at.isoformat(), ok, {}))


@pytest.mark.servers
def test_health_follows_the_routes_runs_and_checks(site, project, monkeypatch):  # noqa: F811
    env = site.env() | {"DICOM_SYNC_ROUTES_FILE": "none"}

    code, lines = _health(env, project)
    assert (code, lines) == (
        WARNING,
        ["DICOM-SYNC WARNING - default: no successful run or check yet"],
    )

    with DagsterInstance.from_config(str(project)) as instance:
        assert run_sync(site, instance).success
    code, [line] = _health(env, project)
    assert code == OK, line
    assert line.startswith("DICOM-SYNC OK - default: ok, last success 0 min ago | ")
    assert "'default_minutes_since_success'=0." in line and ";7.5;15;0" in line

    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    nowhere = site.env() | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}
    monkeypatch.setattr(type(site), "env", lambda self: nowhere)
    with DagsterInstance.from_config(str(project)) as instance:
        failed = run_sync(site, instance, mode="all")
    code, [line] = _health(env, project)
    assert code == CRITICAL, line
    assert f"DICOM-SYNC CRITICAL - default: FAILING (latest run {failed.run_id[:8]} failed)" in line

    _write_check(project, minutes_ago=0, ok=True)  # the schedule's check, after that run
    code, [line] = _health(env, project)
    assert code == OK, line


def test_health_without_runs_reads_the_check_file_and_its_age(project):  # noqa: F811
    env = {
        "DICOM_SYNC_ROUTES_FILE": "none",
        "DICOM_SYNC_REMOTE_AE": "REMOTEPACS",
        "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
        "DICOM_SYNC_REMOTE_PORT": "11112",
        "DICOM_SYNC_LOCAL_AE": "LOCALPACS",
        "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
        "DICOM_SYNC_LOCAL_PORT": "11113",
        "DICOM_SYNC_TIMEZONE": "Europe/Berlin",
    }
    _write_check(project, minutes_ago=40, ok=True)
    code, [line] = _health(env, project)
    assert code == CRITICAL, line
    assert re.match(r"DICOM-SYNC CRITICAL - default: no success for 4[01] min \| ", line)

    _write_check(project, minutes_ago=40, ok=True)
    code, [line] = _health(env, project, "--warning", "30", "--critical", "60")
    assert code == WARNING, line
    assert re.match(r"DICOM-SYNC WARNING - default: no success for 4[01] min \| ", line)

    _write_check(project, minutes_ago=1, ok=False)
    code, [line] = _health(env, project)
    assert code == CRITICAL and "default: FAILING (latest check failed)" in line

    (project / STATE_FILE.format(suffix="")).write_text("{not json")
    code, [line] = _health(env, project)
    assert code == WARNING  # an unreadable file counts as no check, not as a crash


def test_health_says_unknown_when_the_settings_are_bad(project):  # noqa: F811
    code, [line] = _health(
        {"DICOM_SYNC_ROUTES_FILE": "none", "DICOM_SYNC_REMOTE_PORT": "x"}, project
    )
    assert code == UNKNOWN
    assert line.startswith("DICOM-SYNC UNKNOWN - configuration: ")
    assert "DICOM_SYNC_REMOTE_PORT='x' is not a TCP port" in line

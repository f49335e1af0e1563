"""One rule for `.env` under both entry points: the file in the working folder wins over the
environment (Dagster's CLI applies it before our code runs; `dicom-sync` applies the same).

The variable set both ways is DICOM_SYNC_ROUTES_FILE: the environment says ``none``, the file
names a routes file with one route, ``from_file``; which routes each entry point sees shows
which value it read. No DICOM traffic: both observations come before any.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_cli import dicom_sync
from .test_dagster_dev import _log_tail_on_failure, _start, _wait_until_loaded

ROUTES = """
local: {ae_title: LOCALPACS, host: 127.0.0.1, port: 11112}
routes:
  - name: from_file
    remote: {ae_title: REMOTEPACS, host: 127.0.0.1, port: 11113}
"""


def _dotenv(folder: Path) -> str:
    routes = folder / "routes.yaml"
    routes.write_text(ROUTES)
    return f"DICOM_SYNC_ROUTES_FILE={routes}\n"


def test_dicom_sync_reads_the_dotenv_value_over_the_environment(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / ".env").write_text(_dotenv(tmp_path))

    done = dicom_sync(
        ["run", "--once", "--route", "nosuch"], {"DICOM_SYNC_ROUTES_FILE": "none"}, tmp_path
    )

    assert done.returncode == 2, done.stderr
    assert "--route='nosuch' is not a route (routes: from_file)" in done.stderr
    assert ".env overrides the environment for DICOM_SYNC_ROUTES_FILE" in done.stderr


@pytest.mark.servers
def test_dagster_dev_reads_the_dotenv_value_over_the_environment(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    dev = _start(tmp_path, {"DICOM_SYNC_ROUTES_FILE": "none"}, dotenv=_dotenv(folder))
    try:
        with _log_tail_on_failure(dev):
            location = _wait_until_loaded(dev)
            [repository] = location["repositories"]
            names = {s["name"] for s in repository["schedules"]}
            assert "sync_from_file_schedule" in names
            assert "every_minute" not in names
    finally:
        dev.stop()

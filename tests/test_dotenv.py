"""One rule for `.env` under both entry points: the file in the working folder wins over the
environment (Dagster's CLI applies it before our code runs; `dicom-sync` applies the same).

The variable set both ways is DICOM_SYNC_ROUTES_FILE: the environment says ``none``, the file
names a routes file with one route, ``from_file``; which routes each entry point sees shows
which value it read. No DICOM traffic: the observation comes before any.

`dagster dev`'s side is observed in test_dagster_dev.py (its ``dagster_dev`` fixture: the
environment names a routes file, the .env says ``none``, and the single route's names show),
to share that test's `dagster dev` start.
"""

from __future__ import annotations

from pathlib import Path

from .test_cli import dicom_sync

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

"""`dicom-sync` as a user runs it: a real process against real servers and a real instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from dicom_sync_dagster.synthetic import SyntheticStudy

REPO = Path(__file__).resolve().parents[1]


def dicom_sync(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "dicom_sync_dagster.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with the project's dagster.yaml, as a user's checkout has."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    return folder


@pytest.mark.servers
def test_run_once_moves_reports_and_records_the_run(site, project):
    study = site.add_remote(
        SyntheticStudy(site.ago(hours=1), [2, 3], accession="ACC-CLI", patient_name="DOE^JANE")
    )

    done = dicom_sync(["run", "--once", "--all-series"], site.env(), project)

    assert done.returncode == 0, done.stderr
    assert "Missing on local:     1" in done.stdout
    assert "Successfully transferred: 2/2 series (5 images)" in done.stdout
    assert "DOE" not in done.stdout + done.stderr  # no patient names on the console
    assert site.local.series_instances(study.series_uids[1]) == 3
    os.environ["DAGSTER_HOME"] = str(project)
    try:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs()
    finally:
        del os.environ["DAGSTER_HOME"]
    assert [(r.job_name, r.status) for r in runs] == [("dicom_sync", DagsterRunStatus.SUCCESS)]


@pytest.mark.servers
def test_run_once_reads_dotenv_and_honours_min_images(site, project):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 9]))
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in site.env().items()))

    done = dicom_sync(["run", "--once", "--min-images", "5"], {}, project)

    assert done.returncode == 0, done.stderr
    assert "series with < 5 images" in done.stdout
    assert site.local.series_instances(study.series_uids[0]) == 2
    assert site.local.series_instances(study.series_uids[1]) == 0


@pytest.mark.servers
def test_run_once_exits_1_and_names_the_node_when_the_local_is_down(site, project):
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    site.local.stop()

    done = dicom_sync(["run", "--once"], site.env(), project)

    assert done.returncode == 1
    assert f"local PACS LOCALPACS@127.0.0.1:{site.local.node.port}" in done.stderr


@pytest.mark.servers
def test_echo_says_which_node_answered(site, project):
    site.local.stop()

    done = dicom_sync(["echo"], site.env(), project)

    assert done.returncode == 1
    assert f"remote PACS REMOTEPACS@127.0.0.1:{site.remote.node.port}: OK" in done.stdout
    assert f"local PACS LOCALPACS@127.0.0.1:{site.local.node.port}: FAILED" in done.stdout


def test_bad_configuration_exits_2_naming_variable_and_value(project):
    env = {
        "DICOM_SYNC_REMOTE_AE": "R",
        "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
        "DICOM_SYNC_REMOTE_PORT": "99999",
        "DICOM_SYNC_LOCAL_AE": "L",
        "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
        "DICOM_SYNC_LOCAL_PORT": "104",
    }

    done = dicom_sync(["run", "--once"], env, project)

    assert done.returncode == 2
    assert "DICOM_SYNC_REMOTE_PORT='99999'" in done.stderr
    assert not (project / "storage").exists()  # stopped before Dagster or the network


def test_bad_flag_value_exits_2(project):
    done = dicom_sync(["run", "--once", "--min-images", "0"], {}, project)
    assert done.returncode == 2
    assert "--min-images=0" in done.stderr

"""`dicom-sync` as a user runs it: a real process against real servers and a real instance."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.sandbox import free_port
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


def write_routes(folder: Path, site, routes: list[dict]) -> None:
    """dicom_sync.yaml in ``folder``: ``routes`` from the site's remote to its local."""
    node = lambda server: {  # noqa: E731
        "ae_title": server.node.ae_title,
        "host": server.node.host,
        "port": server.node.port,
    }
    document = {
        "calling_ae": "DICOMSYNC",
        "timezone": "Europe/Berlin",
        "local": node(site.local) if site else {"ae_title": "L", "host": "h", "port": 1},
        "routes": [
            {"remote": node(site.remote) if site else {"ae_title": "R", "host": "h", "port": 2}}
            | route
            for route in routes
        ],
    }
    (folder / "dicom_sync.yaml").write_text(yaml.safe_dump(document))


def recorded_runs(project: Path) -> list[tuple[str, DagsterRunStatus]]:
    os.environ["DAGSTER_HOME"] = str(project)
    try:
        with DagsterInstance.get() as instance:
            return sorted((r.job_name, r.status) for r in instance.get_runs())
    finally:
        del os.environ["DAGSTER_HOME"]


@pytest.mark.servers
def test_run_once_runs_every_route_of_the_routes_file_here(site, project):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3]))
    write_routes(project, site, [{"name": "ct_all", "mode": "all"}, {"name": "ct_small"}])

    done = dicom_sync(["run", "--once"], {}, project)

    assert done.returncode == 0, done.stderr
    assert "Starting sync cycle of route ct_all" in done.stdout
    assert "Starting sync cycle of route ct_small" in done.stdout
    assert site.local.series_instances(study.series_uids[1]) == 3
    assert recorded_runs(project) == [
        ("sync_ct_all", DagsterRunStatus.SUCCESS),
        ("sync_ct_small", DagsterRunStatus.SUCCESS),
    ]

    done = dicom_sync(["run", "--once", "--route", "ct_small"], {}, project)

    assert done.returncode == 0, done.stderr
    assert "route ct_all" not in done.stdout
    assert [job for job, _ in recorded_runs(project)].count("sync_ct_small") == 2


def test_an_unknown_route_exits_2_listing_the_routes(project):
    write_routes(project, None, [{"name": "ct"}, {"name": "mr"}])

    done = dicom_sync(["run", "--once", "--route", "us"], {}, project)

    assert done.returncode == 2
    assert "--route='us' is not a route (routes: ct, mr)" in done.stderr


def test_a_bad_routes_file_exits_2_naming_route_and_field(project):
    write_routes(project, None, [{"name": "ct", "window_hours": -1}])

    done = dicom_sync(["run", "--once"], {}, project)

    assert done.returncode == 2
    assert "route ct.window_hours=-1.0 must be > 0" in done.stderr
    assert not (project / "storage").exists()  # stopped before Dagster or the network


def test_an_unknown_dimse_path_exits_2_naming_the_variable_before_dagster(project):
    done = dicom_sync(
        ["run", "--once"], {**closed_nodes_env(), "DICOM_SYNC_DIMSE_PATH": "fast"}, project
    )

    assert done.returncode == 2, done.stderr
    assert "DICOM_SYNC_DIMSE_PATH='fast' is not one of auto, raw, public" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "storage").exists()  # stopped before Dagster or the network


def closed_nodes_env() -> dict[str, str]:
    """Valid settings for two loopback ports nobody listens on."""
    return {
        "DICOM_SYNC_REMOTE_AE": "R",
        "DICOM_SYNC_REMOTE_HOST": "127.0.0.1",
        "DICOM_SYNC_REMOTE_PORT": str(free_port()),
        "DICOM_SYNC_LOCAL_AE": "L",
        "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
        "DICOM_SYNC_LOCAL_PORT": str(free_port()),
        "DICOM_SYNC_TIMEZONE": "UTC",
    }


def test_a_run_still_going_makes_run_skip_with_exit_3(project):
    os.environ["DAGSTER_HOME"] = str(project)
    try:
        with DagsterInstance.get() as instance:
            job = defs().resolve_job_def("dicom_sync")
            going = instance.create_run_for_job(
                job_def=job, run_config={}, status=DagsterRunStatus.STARTED
            )
    finally:
        del os.environ["DAGSTER_HOME"]

    done = dicom_sync(["run", "--once"], closed_nodes_env(), project)

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"Skipped: a sync run is still in progress (run {going.run_id[:8]}" in done.stdout


def test_ctrl_c_stops_the_loop_with_exit_130(project):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "dicom_sync_dagster.cli", "run"],
        env={**clean, **closed_nodes_env()},
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:  # the first cycle fails at once (nobody listens)
            if line.startswith("Run "):
                break
        process.send_signal(signal.SIGINT)  # while it waits for the next minute
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Stopped." in out


def test_a_bad_mode_variable_exits_2_before_dagster_or_the_network(project):
    env = closed_nodes_env() | {"DICOM_SYNC_MODE": "biggest"}

    done = dicom_sync(["run", "--once"], env, project)

    assert done.returncode == 2
    assert "DICOM_SYNC_MODE='biggest' is not one of smallest, fewer_than, all" in done.stderr
    assert not (project / "storage").exists()


@pytest.mark.servers
def test_echo_checks_every_route_of_the_routes_file(site, project):
    gone = {"ae_title": "GONE", "host": "127.0.0.1", "port": free_port()}
    write_routes(project, site, [{"name": "ct"}, {"name": "gone", "remote": gone}])

    done = dicom_sync(["echo"], {}, project)

    assert done.returncode == 1
    assert f"route ct: remote PACS REMOTEPACS@127.0.0.1:{site.remote.node.port}: OK" in done.stdout
    assert "route gone: remote PACS GONE@127.0.0.1" in done.stdout
    assert "FAILED" in done.stdout.split("route gone: remote PACS")[1].splitlines()[0]
    assert dicom_sync(["echo", "--route", "ct"], {}, project).returncode == 0


def test_run_does_not_import_configure_which_configure_does(project):
    """The cold CLI stays lazy: `dicom-sync run` loads none of configure's modules (seen with
    -X importtime in a real process), while `dicom-sync configure` does."""

    def imported(args: list[str], env: dict[str, str]) -> set[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_SYNC_")}
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "dicom_sync_dagster.cli", *args],
            env={**clean, **env},
            cwd=project,
            capture_output=True,
            text=True,
            timeout=180,
        )
        lines = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
        return {name for name in lines if name.startswith("dicom_sync_dagster.")}

    bad_mode = closed_nodes_env() | {"DICOM_SYNC_MODE": "biggest"}  # stops before Dagster
    ran = imported(["run", "--once"], bad_mode)
    configured = imported(["configure", "--help"], {})

    assert "dicom_sync_dagster.settings" in ran  # it did get as far as the settings
    assert not {name for name in ran if name.startswith("dicom_sync_dagster.configure")}
    assert "dicom_sync_dagster.configure.fields" in configured

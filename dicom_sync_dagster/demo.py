"""`dicom-sync demo`: the whole product on one machine, with no PACS of your own.

Starts two pure-Python PACS (pynetdicom's qrscp) on free loopback ports, fills the "remote"
with synthetic studies of the last 36 hours, points the tool at them and starts `dagster dev`
on 127.0.0.1 with the every-minute schedule on. Ctrl+C stops every process it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from .process_group import start_group, stop_group
from .sandbox import LOOPBACK, Peer, QrscpServer, free_port, wait_for_port
from .settings import DEFAULT_CALLING_AE, machine_zone_name
from .synthetic import SyntheticStudy, store

REMOTE_AE, LOCAL_AE = "DEMO_REMOTE", "DEMO_LOCAL"
PROJECT = Path(__file__).resolve().parents[1]


def demo_studies(
    now: datetime,
) -> tuple[list[SyntheticStudy], list[tuple[SyntheticStudy, list[int]]]]:
    """The remote's studies, and which series of which of them the local already has."""
    hours = lambda h: now - timedelta(hours=h)  # noqa: E731
    studies = [
        SyntheticStudy(hours(1), [60, 2, 40], accession="DEMO0001", modality="CT"),
        SyntheticStudy(hours(4), [25, 30, 3, 20], accession="DEMO0002", modality="MR"),
        SyntheticStudy(hours(7), [2, 1], accession="DEMO0003", modality="CR"),
        SyntheticStudy(hours(9), [12, 4, 8], accession="DEMO0004", modality="MR"),  # partly there
        SyntheticStudy(hours(11), [20, 3], accession="DEMO0005", modality="CT"),  # all there
        SyntheticStudy(hours(20), [5, 2], accession="DEMO0006", modality="CT"),  # outside 12 h
        SyntheticStudy(hours(34), [3], accession="DEMO0007", modality="DX"),  # outside 12 h
    ]
    on_local = [(studies[3], [0]), (studies[4], [0, 1])]
    return studies, on_local


def _write_dagster_home(folder: Path) -> Path:
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    project_yaml = PROJECT / "dagster.yaml"
    if project_yaml.is_file():
        shutil.copy(project_yaml, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def _write_workspace(folder: Path) -> Path:
    """The project's code location under its usual name (schedule state is kept per name)."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: dicom_sync_dagster.definitions\n"
        "      location_name: dicom_sync_dagster\n"
    )
    return workspace


def run_demo(folder: Path, ui_port: int, open_for: float | None = None) -> int:
    """Start everything, print where to look, wait for Ctrl+C (or ``open_for`` seconds)."""
    pacs = folder / "pacs"
    shutil.rmtree(pacs, ignore_errors=True)  # fresh data each time; run history is kept
    servers: list[QrscpServer] = []
    dagster: subprocess.Popen | None = None
    stop = {"now": False}

    def on_signal(signum, frame):  # SIGINT/SIGTERM: leave the loop and clean up
        stop["now"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("Starting two demo PACS (pynetdicom qrscp) on 127.0.0.1 ...", flush=True)
        local = QrscpServer(pacs / "local", LOCAL_AE, [])
        local.start()
        servers.append(local)
        remote = QrscpServer(pacs / "remote", REMOTE_AE, [Peer(LOCAL_AE, local.node.port)])
        remote.start()
        servers.append(remote)

        studies, on_local = demo_studies(datetime.now())
        print(f"Seeding {len(studies)} synthetic studies on the remote ...", flush=True)
        for study in studies:
            store(remote.node, study.datasets())
        for study, series in on_local:
            store(local.node, study.datasets(series))

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DICOM_SYNC_")},
            "DICOM_SYNC_CALLING_AE": DEFAULT_CALLING_AE,
            "DICOM_SYNC_REMOTE_AE": REMOTE_AE,
            "DICOM_SYNC_REMOTE_HOST": LOOPBACK,
            "DICOM_SYNC_REMOTE_PORT": str(remote.node.port),
            "DICOM_SYNC_LOCAL_AE": LOCAL_AE,
            "DICOM_SYNC_LOCAL_HOST": LOOPBACK,
            "DICOM_SYNC_LOCAL_PORT": str(local.node.port),
            "DICOM_SYNC_TIMEZONE": machine_zone_name(),
            "DICOM_SYNC_MODE": "smallest",
            "DAGSTER_HOME": str(_write_dagster_home(folder).resolve()),
        }
        (folder / "demo.json").write_text(
            json.dumps(
                {
                    "ui": f"http://{LOOPBACK}:{ui_port}",
                    "remote": [REMOTE_AE, LOOPBACK, remote.node.port],
                    "local": [LOCAL_AE, LOOPBACK, local.node.port],
                    "pids": {"remote": _pid(remote.process), "local": _pid(local.process)},
                },
                indent=2,
            )
        )
        dagster = start_group(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-h",
                LOOPBACK,
                "-p",
                str(ui_port),
                "-w",
                str(_write_workspace(folder)),
            ],
            cwd=folder,
            env=env,
            log=folder / "dagster.log",
        )
        wait_for_port(ui_port, dagster, seconds=120)
        print(
            f"""
Dagster UI: http://{LOOPBACK}:{ui_port}
  remote PACS {remote.node.ae_title}@{LOOPBACK}:{remote.node.port}
  local PACS  {local.node.ae_title}@{LOOPBACK}:{local.node.port}
  - Overview > Schedules: 'every_minute' is on; the first run starts at the next full minute.
  - Runs: open a run, then the 'report' step for the statistics and the per-series table.
  - Jobs > dicom_sync > Launchpad: opens with the route's mode; mode: {{all: {{}}}} for every series
Everything lives in {folder}. Press Ctrl+C to stop.""",
            flush=True,
        )
        deadline = None if open_for is None else time.monotonic() + open_for
        while not stop["now"] and dagster.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return 0 if dagster.poll() in (None, 0) else 1
    finally:
        print("Stopping ...", flush=True)
        if dagster is not None:
            stop_group(dagster, signal.SIGINT, 30)
        for server in reversed(servers):
            server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print("Demo stopped; nothing left running.", flush=True)


def default_ui_port() -> int:
    """3000 when free, else any free port."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, 3000))
            return 3000
        except OSError:
            return free_port()


def _pid(process: subprocess.Popen | None) -> int | None:
    return process.pid if process else None

"""`dicom-sync demo` as a newcomer runs it: headless, first scheduled run, then Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicom_sync_dagster.dicom import DicomNode, open_session, queries
from dicom_sync_dagster.sandbox import free_port

from .support.dagster_dev import listening

pytestmark = pytest.mark.servers  # starts two qrscp PACS and dagster dev

# accession -> {series number: images} on the demo's local PACS after the first run (smallest
# mode): the smallest series of each study in the last 12 h that the local did not have.
EXPECTED_AFTER_FIRST_RUN = {
    "DEMO0001": {2: 2},
    "DEMO0002": {3: 3},
    "DEMO0003": {2: 1},
    "DEMO0004": {1: 12, 2: 4},  # series 1 was there; series 2 (4 images) is the smallest
    "DEMO0005": {1: 20, 2: 3},  # already complete before the demo started
}


def local_inventory(node: DicomNode) -> dict[str, dict[int, int]]:
    """accession -> {series number: images} as the local PACS answers C-FIND."""
    inventory: dict[str, dict[int, int]] = {}
    with open_session(node, "DEMOTEST") as session:
        studies = {
            queries.text(ds, "StudyInstanceUID"): queries.text(ds, "AccessionNumber")
            for ds in session.find(queries.studies_by_date("19000101-29991231"))
        }
        for study_uid, accession in studies.items():
            series = {
                queries.text(ds, "SeriesInstanceUID"): queries.count(ds, "SeriesNumber")
                for ds in session.find(queries.series_of_study(study_uid))
            }
            inventory[accession] = {
                number: session.count_instances(study_uid, uid) for uid, number in series.items()
            }
    return inventory


def processes_in(folder: Path) -> list[int]:
    """PIDs of processes whose working directory is inside ``folder``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(Path(os.readlink(proc / "cwd"))).startswith(str(folder)):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_demo_syncs_on_its_first_scheduled_run_and_stops_cleanly(tmp_path):
    folder = tmp_path / "demo"
    ui_port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    log = open(tmp_path / "demo.out", "wb")  # noqa: SIM115
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicom_sync_dagster.cli",
            "demo",
            "--folder",
            str(folder),
            "--port",
            str(ui_port),
        ],
        cwd=tmp_path,
        env=clean,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while not listening(ui_port):
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "the UI never came up"
            time.sleep(0.5)
        info = json.loads((folder / "demo.json").read_text())
        local = DicomNode("local", *info["local"])
        remote_port = info["remote"][2]

        inventory: dict[str, dict[int, int]] = {}
        deadline = time.monotonic() + 150  # the first tick comes within a minute
        while inventory != EXPECTED_AFTER_FIRST_RUN and time.monotonic() < deadline:
            time.sleep(2)
            inventory = local_inventory(local)
        assert inventory == EXPECTED_AFTER_FIRST_RUN
        assert "Dagster UI: http://127.0.0.1:" in (tmp_path / "demo.out").read_text()
    finally:
        demo.send_signal(signal.SIGINT)  # what Ctrl+C does
        code = demo.wait(60)
    out = (tmp_path / "demo.out").read_text()
    assert code == 0, out
    assert "nothing left running" in out
    for port in (ui_port, local.port, remote_port):
        assert not listening(port), f"port {port} still listening"
    assert processes_in(folder) == []
    for pid in info["pids"].values():
        assert not Path(f"/proc/{pid}").exists(), f"PACS process {pid} still there"

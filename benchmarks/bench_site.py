"""The benchmark's throw-away site: two Orthanc servers on 127.0.0.1, fast seeding, DCMTK commands.

Nothing here is product code; it only drives the product (``dicom_sync_dagster``) and DCMTK.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pynetdicom import AE

from dicom_sync_dagster.core.selection import Mode, Selection
from dicom_sync_dagster.core.window import Window
from dicom_sync_dagster.cycle import Cycle
from dicom_sync_dagster.dicom import queries
from dicom_sync_dagster.dicom.node import DicomNode
from dicom_sync_dagster.sandbox import LOOPBACK, OrthancServer, Peer
from dicom_sync_dagster.settings import settings_from_values

CALLING_AE = "DICOMSYNC"
REMOTE_AE = "REMOTE"
LOCAL_AE = "LOCAL"
ZONE_NAME = "UTC"  # the synthetic studies are written in UTC wall time
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK's best case: Nagle off, like the tool

QUIET = logging.getLogger("benchmarks.quiet")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False
QUIET.setLevel(logging.WARNING)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def reference_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass
class Site:
    """A REMOTE Orthanc that C-MOVEs to a LOCAL Orthanc; both know the tool's calling AE."""

    folder: Path
    remote: OrthancServer
    local: OrthancServer
    reference: datetime

    @classmethod
    def start(cls, folder: Path) -> Site:
        local = OrthancServer(folder / "local", LOCAL_AE, [Peer(CALLING_AE)]).start()
        try:
            remote = OrthancServer(
                folder / "remote", REMOTE_AE, [Peer(CALLING_AE), Peer(LOCAL_AE, local.node.port)]
            ).start()
        except BaseException:
            local.stop()
            raise
        return cls(folder, remote, local, reference_now())

    def stop(self) -> None:
        self.remote.stop()
        self.local.stop()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the tool's view of the site ------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "DICOM_SYNC_CALLING_AE": CALLING_AE,
            "DICOM_SYNC_REMOTE_AE": REMOTE_AE,
            "DICOM_SYNC_REMOTE_HOST": LOOPBACK,
            "DICOM_SYNC_REMOTE_PORT": str(self.remote.node.port),
            "DICOM_SYNC_LOCAL_AE": LOCAL_AE,
            "DICOM_SYNC_LOCAL_HOST": LOOPBACK,
            "DICOM_SYNC_LOCAL_PORT": str(self.local.node.port),
            "DICOM_SYNC_TIMEZONE": ZONE_NAME,
        }

    def cycle(
        self, mode: Mode = Mode.smallest, window_hours: float = 12.0, max_parallel_moves: int = 2
    ) -> Cycle:
        settings = settings_from_values(
            remote=(REMOTE_AE, LOOPBACK, self.remote.node.port),
            local=(LOCAL_AE, LOOPBACK, self.local.node.port),
            calling_ae=CALLING_AE,
            timezone=ZONE_NAME,
            max_parallel_moves=max_parallel_moves,
        )
        window = Window(self.reference, window_hours, ZoneInfo(ZONE_NAME))
        return Cycle(settings, window, Selection(mode))

    def ago(self, **delta: float) -> datetime:
        """Naive UTC wall time ``delta`` before the reference (what the PACS stores)."""
        return (self.reference - timedelta(**delta)).replace(tzinfo=None)

    # -- the LOCAL server's REST API (the benchmark's own throw-away server) ----------------

    def local_ids(self, uid: str, level: str) -> list[str]:
        found = self.local.rest("/tools/lookup", uid.encode())
        return [item["ID"] for item in found if item["Type"] == level]

    def delete_on_local(self, uid: str, level: str = "Series") -> None:
        """DELETE /series/{id} or /studies/{id} on the LOCAL Orthanc only."""
        for orthanc_id in self.local_ids(uid, level):
            path = f"/{'series' if level == 'Series' else 'studies'}/{orthanc_id}"
            request = urllib.request.Request(
                f"http://{LOOPBACK}:{self.local.http_port}{path}", method="DELETE"
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()

    def local_series_images(self, series_uid: str) -> int:
        return self.local.series_instances(series_uid)


# -- seeding: C-STORE over one association, Nagle off ----------------------------------------


def _associate_for_store(node: DicomNode):
    ae = AE(ae_title="SEEDER")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.network_timeout = 60
    ae.dimse_timeout = STORE_RESPONSE_TIMEOUT
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if not assoc.is_established:
        raise RuntimeError(f"cannot associate with {node} to store")
    if assoc.dul.socket and assoc.dul.socket.socket:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


STORE_RESPONSE_TIMEOUT = 10.0
STORE_RETRIES = 3


def store_fast(node: DicomNode, datasets: Sequence[Dataset]) -> float:
    """C-STORE ``datasets`` to ``node`` over one association with TCP_NODELAY; the seconds.

    (``dicom_sync_dagster.synthetic.store`` leaves Nagle on and runs at ~20 images/s against
    Orthanc; with TCP_NODELAY the same loop does ~250-300 images/s.) Now and then a C-STORE
    response never comes (seen a few times in 100,000 stores, pynetdicom or Orthanc): after
    ``STORE_RESPONSE_TIMEOUT`` the association is reopened and that instance sent again (the
    instances have fixed UIDs, so a second copy is the same instance), up to ``STORE_RETRIES``
    times per instance; it is logged.
    """
    started = time.monotonic()
    assoc = _associate_for_store(node)
    try:
        for ds in datasets:
            retries = 0
            while True:
                status = assoc.send_c_store(ds)
                if status and status.Status == 0x0000:
                    break
                if status or retries >= STORE_RETRIES:
                    raise RuntimeError(f"{node} did not store {ds.SOPInstanceUID}: {status}")
                retries += 1
                say(f"seeding {node}: no C-STORE response, reconnecting (retry {retries} of it)")
                assoc.abort()
                assoc = _associate_for_store(node)
    finally:
        if assoc.is_established:
            assoc.release()
    return time.monotonic() - started


def store_parallel(jobs: Sequence[tuple[DicomNode, Sequence[Dataset]]]) -> float:
    """Run several :func:`store_fast` at once (one thread each); the wall seconds."""
    errors: list[BaseException] = []

    def work(node: DicomNode, datasets: Sequence[Dataset]) -> None:
        try:
            store_fast(node, datasets)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


# -- DCMTK reference commands ------------------------------------------------------------------


def dcmtk(name: str) -> str | None:
    """The path of DCMTK's ``name`` on PATH, skipping Python scripts of that name: pynetdicom
    installs its own ``findscu``/``movescu`` into the venv's bin, which comes first on PATH in
    an activated venv and would make the reference a Python program."""
    for folder in os.get_exec_path():
        path = Path(folder) / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        with open(path, "rb") as handle:
            first = handle.readline(200)
        if not (first.startswith(b"#!") and b"python" in first):
            return str(path)
    return None


def dcmtk_path(name: str) -> str:
    path = dcmtk(name)
    if path is None:
        raise RuntimeError(f"DCMTK's {name} is not on PATH (Debian package dcmtk)")
    return path


def movescu_command(site: Site, study_uid: str, series_uid: str) -> list[str]:
    return [
        dcmtk_path("movescu"), "-S", "-aet", CALLING_AE, "-aec", REMOTE_AE, "-aem", LOCAL_AE,
        "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={study_uid}",
        "-k", f"SeriesInstanceUID={series_uid}",
        LOOPBACK, str(site.remote.node.port),
    ]  # fmt: skip


# The tool's own return keys, so findscu asks exactly the same questions.
STUDY_KEYS = ("StudyInstanceUID", *(k for k in queries.STUDY_RETURN_KEYS if k != "StudyDate"))
SERIES_KEYS = ("SeriesInstanceUID", *queries.SERIES_RETURN_KEYS)


def findscu_studies_command(node: DicomNode, date_range: str) -> list[str]:
    """The same STUDY-level query and return keys the tool sends (queries.studies_by_date)."""
    command = [dcmtk_path("findscu"), "-S", "-aet", CALLING_AE, "-aec", node.ae_title]
    command += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyDate={date_range}"]
    for key in STUDY_KEYS:
        command += ["-k", key]
    return [*command, LOOPBACK, str(node.port)]


def findscu_series_command(node: DicomNode, study_uid: str) -> list[str]:
    """The same SERIES-level query the tool sends per study (queries.series_of_study)."""
    command = [dcmtk_path("findscu"), "-S", "-aet", CALLING_AE, "-aec", node.ae_title]
    command += ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study_uid}"]
    for key in SERIES_KEYS:
        command += ["-k", key]
    return [*command, LOOPBACK, str(node.port)]


def series_query_file(folder: Path, study_uid: str) -> Path:
    """A SERIES-level query as a DICOM file (for findscu with many queries on one association)."""
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / f"{study_uid}.txt"
    lines = [
        "(0008,0052) CS [SERIES]",
        f"(0020,000d) UI [{study_uid}]",
        "(0020,000e) UI",
        "(0008,0060) CS",
        "(0020,0011) IS",
        "(0008,103e) LO",
        "(0020,1209) IS",
    ]
    dump.write_text("\n".join(lines) + "\n")
    out = folder / f"{study_uid}.dcm"
    subprocess.run([dcmtk_path("dump2dcm"), str(dump), str(out)], check=True, capture_output=True)
    return out


def run_quiet(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Run ``command`` to completion, output discarded; its wall seconds. Fails loudly."""
    started = time.monotonic()
    result = subprocess.run(
        command, env=env or DCMTK_ENV, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {result.returncode}: {result.stderr[-500:]!r}")
    return seconds


def run_parallel(commands: list[list[str]], env: dict[str, str] | None = None) -> float:
    """Start every command at once, wait for all; the wall seconds."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            command, env=env or DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for command in commands
    ]
    errors = []
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            errors.append(f"exit {process.returncode}: {stderr[-300:]!r}")
    seconds = time.monotonic() - started
    if errors:
        raise RuntimeError("; ".join(errors))
    return seconds


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rounds(
    repeat: int, sides: dict[str, Callable[[], float]], label: str
) -> dict[str, list[float]]:
    """Warm each side up once, then ``repeat`` rounds; the order of the sides rotates every
    round, so no side always runs first (or right after another).

    Each callable prepares what it needs outside its own clock and returns the value it measured.
    """
    say(f"{label}: warm-up")
    for function in sides.values():
        function()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(sides[name]())
        shown = ", ".join(f"{name} {values[-1]:.4g}" for name, values in samples.items())
        say(f"{label}: round {round_ + 1}/{repeat}: {shown}")
    return samples


def python_executable() -> str:
    return sys.executable

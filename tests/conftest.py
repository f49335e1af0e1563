"""Fixtures: real DICOM servers (Orthanc, DCMTK's dcmqrscp) on free loopback ports.

Without Orthanc/DCMTK installed these tests skip with a reason; with
DICOM_SYNC_REQUIRE_SERVERS=1 (as .ci/run sets) they fail instead, so CI cannot go green
without them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dicom_sync_dagster.dicom.node import DicomNode
from dicom_sync_dagster.sandbox import DcmqrscpServer, OrthancServer, Peer, free_port
from dicom_sync_dagster.synthetic import SyntheticStudy, store

# Hermetic: a site's dicom_sync.yaml in the working folder is not the tests' (the tests that
# use routes name their own file).
os.environ["DICOM_SYNC_ROUTES_FILE"] = "none"

CALLING_AE = "DICOMSYNC"
ZONE_NAME = "Europe/Berlin"
ZONE = ZoneInfo(ZONE_NAME)


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) or os.path.exists(f"/usr/sbin/{binary}"):
        return
    message = f"{binary} not installed (Debian package {package}); real-server tests need it"
    if os.environ.get("DICOM_SYNC_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Site:
    """A remote and a local PACS, and the environment that points the tool at them."""

    remote: OrthancServer | DcmqrscpServer
    local: OrthancServer
    reference: datetime

    def env(self) -> dict[str, str]:
        return {
            "DICOM_SYNC_CALLING_AE": CALLING_AE,
            "DICOM_SYNC_REMOTE_AE": self.remote.node.ae_title,
            "DICOM_SYNC_REMOTE_HOST": self.remote.node.host,
            "DICOM_SYNC_REMOTE_PORT": str(self.remote.node.port),
            "DICOM_SYNC_LOCAL_AE": self.local.node.ae_title,
            "DICOM_SYNC_LOCAL_HOST": self.local.node.host,
            "DICOM_SYNC_LOCAL_PORT": str(self.local.node.port),
            "DICOM_SYNC_TIMEZONE": ZONE_NAME,
        }

    def ago(self, **delta: float) -> datetime:
        """A wall-clock time in the PACS zone, ``delta`` before the reference time."""
        # In UTC first: wall-clock arithmetic would be an hour off across a DST change.
        return (self.reference - timedelta(**delta)).astimezone(ZONE).replace(tzinfo=None)

    def add_remote(self, study: SyntheticStudy) -> SyntheticStudy:
        store(self.remote.node, study.datasets())
        return study

    def add_local(self, study: SyntheticStudy, series=None, images=None) -> None:
        store(self.local.node, study.datasets(series, images))


def _reference() -> datetime:
    # Whole seconds: the run config carries it as ISO text.
    return datetime.now(timezone.utc).replace(microsecond=0)


def discard(server: OrthancServer | DcmqrscpServer) -> None:
    """Stop a fixture's throw-away server at once: SIGKILL by PID (the child we started).
    Orthanc takes 2-3 s to leave after SIGTERM and its storage goes with tmp_path; ~170
    servers a suite run, this was minutes of waiting."""
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.process.wait(30)


@pytest.fixture
def local_orthanc(tmp_path):
    _require("Orthanc", "orthanc")
    server = OrthancServer(tmp_path / "local", "LOCALPACS", [Peer(CALLING_AE)]).start()
    yield server
    discard(server)


@pytest.fixture
def site(tmp_path, local_orthanc) -> Site:
    """Two Orthanc servers: REMOTEPACS moves to LOCALPACS."""
    remote = OrthancServer(
        tmp_path / "remote",
        "REMOTEPACS",
        [Peer(CALLING_AE), Peer(local_orthanc.node.ae_title, local_orthanc.node.port)],
    ).start()
    yield Site(remote, local_orthanc, _reference())
    discard(remote)


@pytest.fixture
def dcmqrscp_site(tmp_path, local_orthanc) -> Site:
    """DCMTK's dcmqrscp (no instance counts in its answers) as the remote."""
    _require("dcmqrscp", "dcmtk")
    remote = DcmqrscpServer(
        tmp_path / "dcmqrscp",
        "QRSCP",
        [Peer(CALLING_AE), Peer(local_orthanc.node.ae_title, local_orthanc.node.port)],
    ).start()
    yield Site(remote, local_orthanc, _reference())
    discard(remote)


@pytest.fixture
def scripted_remote(local_orthanc):
    """Returns a function: (site, study, script, **ScriptedPacs options) -> the started
    scripted SCP (tests/scripted_pacs.py) that becomes ``site.remote``, holding ``study`` and
    moving to the local Orthanc; stopped at teardown. Only for what real servers will not do
    on demand (a chosen status, a stall, a hostile answer)."""
    from .scripted_pacs import ScriptedPacs

    started: list[ScriptedPacs] = []

    def make(
        site: Site,
        study: SyntheticStudy,
        script: list | None = None,
        ae_title: str = "SCRIPTED",
        **options,
    ) -> ScriptedPacs:
        destinations = {local_orthanc.node.ae_title: local_orthanc.node.port}
        remote = ScriptedPacs(ae_title, study.datasets(), destinations, script, **options)
        started.append(remote.start())
        site.remote = remote
        return remote

    yield make
    for remote in started:
        remote.stop()


def scripted_site(local_orthanc: OrthancServer) -> Site:
    """A site whose remote a test starts with ``scripted_remote``."""
    return Site(None, local_orthanc, _reference())


@pytest.fixture
def closed_node() -> DicomNode:
    """A loopback port nobody listens on."""
    return DicomNode("remote", "NOBODY", "127.0.0.1", free_port())


@pytest.fixture(params=["raw", "public"])
def both_paths(request, monkeypatch) -> str:
    """Runs a test once on each way of reading DIMSE responses (DICOM_SYNC_DIMSE_PATH): the
    raw path (required: the test fails if its start-up check does) and pynetdicom's public
    API."""
    monkeypatch.setenv("DICOM_SYNC_DIMSE_PATH", request.param)
    return request.param


@pytest.fixture
def raw_path_only(monkeypatch) -> None:
    """For a guarantee only the raw path gives (the README lists them), e.g. a stale response
    dropped: pynetdicom's public API does not."""
    monkeypatch.setenv("DICOM_SYNC_DIMSE_PATH", "raw")

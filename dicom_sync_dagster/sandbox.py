"""Throw-away PACS servers on loopback for tests and benchmarks: Orthanc and DCMTK's dcmqrscp.

Each runs as a child process on free 127.0.0.1 ports, listening there only (loopback_only),
with its storage in a folder of ours, and is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .dicom.node import DicomNode
from .loopback_only import check_loopback, loopback_env
from .proc_net import LISTEN, socket_inodes, tcp_sockets
from .process_group import start_group, stop_group

LOOPBACK = "127.0.0.1"


def free_port(avoid: Collection[int] = ()) -> int:
    """A TCP port nobody listens on right now, none of ``avoid`` (the kernel may hand out the
    same port to two picks in a row: a server's two ports must differ)."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {seconds}s")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` itself listens on (Linux /proc): a port that answers
    may belong to another process that took it between ``free_port()`` and our bind."""
    inodes = socket_inodes(pid)
    return {s.local_port for s in tcp_sockets() if s.state == LISTEN and s.inode in inodes}


class PortTaken(RuntimeError):
    """The server exited before listening: typically another process had its port."""


def wait_until_listening(
    ports: list[int], process: subprocess.Popen, seconds: float = 20.0
) -> None:
    """Wait until ``process`` itself listens on every one of ``ports``; ``PortTaken`` when it
    exits first. (A connection alone can reach another process's server on the same port.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PortTaken(f"server exited with {process.returncode} before listening on {ports}")
        if set(ports) <= listening_ports(process.pid):
            return
        time.sleep(0.05)
    raise TimeoutError(f"the server does not listen on {LOOPBACK}:{ports} after {seconds}s")


START_ATTEMPTS = 5  # fresh ports each time the chosen ones were taken meanwhile


def start_listening(
    launch: Callable[[], subprocess.Popen],
    ports: Callable[[], list[int]],
    repick: Callable[[], bool],
    seconds: float = 20.0,
) -> subprocess.Popen:
    """``launch()`` a server until it listens on its ``ports()`` itself; when it exits first
    (its port taken by another process since ``free_port()``), ``repick()`` fresh ports and
    launch again; ``repick()`` returns False for ports the caller chose (then: raise)."""
    for attempt in range(START_ATTEMPTS):
        process = launch()
        try:
            wait_until_listening(ports(), process, seconds)
            return process
        except PortTaken:
            if attempt == START_ATTEMPTS - 1 or not repick():
                raise
    raise AssertionError("unreachable")


def stop_process(process: subprocess.Popen, seconds: float = 10.0) -> None:
    """SIGTERM by PID, then SIGKILL if it lingers."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(seconds)


@dataclass
class Peer:
    """An AE a server must know (to accept its queries or to send it a C-MOVE)."""

    ae_title: str
    port: int = 104  # never contacted for an SCU-only peer; servers want a number
    host: str = LOOPBACK


@dataclass
class OrthancTls:
    """DICOM TLS on an Orthanc's DICOM port (Orthanc >= 1.9.0; its own C-STOREs for a C-MOVE
    stay plain). ``trusted``: PEM certificates (a CA will do) that client certificates must
    chain to; Orthanc 1.10 wants the file even when no client certificate is required."""

    certificate: Path
    private_key: Path
    trusted: Path
    client_certificate_required: bool = True


class OrthancServer:
    """Debian's Orthanc with DICOM and REST on loopback. With ``tls`` its DICOM port speaks
    only DICOM TLS; ``node`` carries no client TLS files: add them with dataclasses.replace."""

    def __init__(
        self,
        folder: Path,
        ae_title: str,
        peers: list[Peer],
        port: int | None = None,
        tls: OrthancTls | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.folder = folder
        self.extra = extra or {}  # more Orthanc settings, e.g. {"LimitFindResults": 5}
        self.node = DicomNode(ae_title.lower(), ae_title, LOOPBACK, port or free_port())
        self.http_port = free_port(avoid={self.node.port})
        self.fixed_port = port is not None
        self.peers = peers
        self.tls = tls
        self.process: subprocess.Popen | None = None

    def start(self) -> OrthancServer:
        self.process = start_listening(
            self._launch, lambda: [self.node.port, self.http_port], self._repick
        )
        self._check_loopback(self.node.port, self.http_port)
        return self

    def _repick(self) -> bool:
        if not self.fixed_port:
            self.node = replace(self.node, port=free_port())
        self.http_port = free_port(avoid={self.node.port})
        return True  # a fixed DICOM port may have met a taken HTTP port: try again

    def _launch(self) -> subprocess.Popen:
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": self.node.ae_title,
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "DicomAet": self.node.ae_title,
            "DicomPort": self.node.port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomModalities": {
                p.ae_title.lower(): [p.ae_title, p.host, p.port] for p in self.peers
            },
            "Plugins": [],
            "StableAge": 1,
        }
        if self.tls:
            config |= {
                "DicomTlsEnabled": True,
                "DicomTlsCertificate": str(self.tls.certificate),
                "DicomTlsPrivateKey": str(self.tls.private_key),
                "DicomTlsTrustedCertificates": str(self.tls.trusted),
                "DicomTlsRemoteCertificateRequired": self.tls.client_certificate_required,
            }
        config |= self.extra
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - kept open for the child
        env = loopback_env({**os.environ, "TCP_NODELAY": "1"})  # else Nagle: ~11 images/s
        return subprocess.Popen(
            [binary, str(self.folder / "orthanc.json")], stdout=log, stderr=log, env=env
        )

    def _check_loopback(self, *ports: int) -> None:
        try:
            check_loopback(f"Orthanc {self.node.ae_title}", *ports)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        # Orthanc takes ~5 s to leave after SIGTERM (its DICOM server polls); the storage is
        # throw-away, so give it a second and then SIGKILL.
        if self.process:
            stop_process(self.process, seconds=1.0)

    def rest(self, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}", data=body)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def series_instances(self, series_uid: str) -> int:
        """How many instances of the series Orthanc holds (0 when none), via its REST API."""
        found = self.rest("/tools/lookup", series_uid.encode())
        ids = [item["ID"] for item in found if item["Type"] == "Series"]
        return len(self.rest(f"/series/{ids[0]}")["Instances"]) if ids else 0

    def instance_count(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])


class DcmqrscpServer:
    """DCMTK's dcmqrscp: a Q/R SCP that returns no NumberOf...RelatedInstances counts."""

    def __init__(self, folder: Path, ae_title: str, peers: list[Peer]) -> None:
        self.folder = folder
        self.node = DicomNode(ae_title.lower(), ae_title, LOOPBACK, free_port())
        self.peers = peers
        self.process: subprocess.Popen | None = None

    def start(self) -> DcmqrscpServer:
        self.process = start_listening(self._launch, lambda: [self.node.port], self._repick)
        try:
            check_loopback(f"dcmqrscp {self.node.ae_title}", self.node.port)
        except Exception:
            self.stop()
            raise
        return self

    def _repick(self) -> bool:
        self.node = replace(self.node, port=free_port())
        return True

    def _launch(self) -> subprocess.Popen:
        storage = self.folder / "db"
        storage.mkdir(parents=True, exist_ok=True)
        hosts = "\n".join(
            f"{p.ae_title.lower()} = ({p.ae_title}, {p.host}, {p.port})" for p in self.peers
        )
        (self.folder / "dcmqrscp.cfg").write_text(
            f"NetworkTCPPort = {self.node.port}\nMaxPDUSize = 65536\nMaxAssociations = 16\n"
            f"HostTable BEGIN\n{hosts}\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{self.node.ae_title} {storage} RW (500, 1024mb) ANY\nAETable END\n"
        )
        log = open(self.folder / "dcmqrscp.log", "ab")  # noqa: SIM115 - kept open for the child
        return subprocess.Popen(
            ["dcmqrscp", "-c", str(self.folder / "dcmqrscp.cfg")],
            stdout=log,
            stderr=log,
            env=loopback_env({**os.environ, "TCP_NODELAY": "1"}),
        )

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


class QrscpServer:
    """pynetdicom's own qrscp app (pure Python, SQLite): a PACS wherever pip works."""

    def __init__(
        self, folder: Path, ae_title: str, peers: list[Peer], port: int | None = None
    ) -> None:
        self.folder = folder
        self.node = DicomNode(ae_title.lower(), ae_title, LOOPBACK, port or free_port())
        self.fixed_port = port is not None
        self.peers = peers
        self.process: subprocess.Popen | None = None

    def start(self) -> QrscpServer:
        self.process = start_listening(
            self._launch, lambda: [self.node.port], self._repick, seconds=60
        )
        return self

    def _repick(self) -> bool:
        if not self.fixed_port:
            self.node = replace(self.node, port=free_port())
        return not self.fixed_port

    def _launch(self) -> subprocess.Popen:
        self.folder.mkdir(parents=True, exist_ok=True)
        destinations = "".join(
            f"[{p.ae_title}]\n    address: {p.host}\n    port: {p.port}\n" for p in self.peers
        )
        (self.folder / "qrscp.ini").write_text(
            "[DEFAULT]\n"
            f"    ae_title: {self.node.ae_title}\n    port: {self.node.port}\n"
            "    max_pdu: 16382\n    acse_timeout: 30\n    dimse_timeout: 30\n"
            f"    network_timeout: 60\n    bind_address: {LOOPBACK}\n"
            f"    instance_location: {(self.folder / 'instances').resolve()}\n"
            f"    database_location: {(self.folder / 'instances.sqlite').resolve()}\n"
            "    log_identifier: False\n" + destinations
        )
        return start_group(
            [sys.executable, "-m", "pynetdicom", "qrscp", "-c", str(self.folder / "qrscp.ini")],
            log=self.folder / "qrscp.log",
        )

    def stop(self) -> None:
        if self.process:
            stop_group(self.process, signal.SIGTERM, seconds=10.0)

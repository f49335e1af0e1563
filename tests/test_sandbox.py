"""The throw-away servers the tests run on: a server is started only when it listens itself.

Other test processes on this machine pick ports with ``free_port()`` too: a port can be taken
between the pick and the server's bind. The old check (a connection succeeds) then took the
other process's server for ours, and Orthanc, failing to bind, exited moments later; the next
association got "Connection refused" (the flake of
test_after_an_outage_the_window_reaches_back_to_the_last_run). Here a listening socket of the
test process stands in for that other process.
"""

from __future__ import annotations

import dataclasses
import socket

import pytest

from dicom_sync_dagster.dicom import open_session
from dicom_sync_dagster.dicom.node import Timeouts
from dicom_sync_dagster.sandbox import LOOPBACK, DcmqrscpServer, OrthancServer, Peer

from .conftest import CALLING_AE, _require

pytestmark = pytest.mark.servers


@pytest.fixture
def taken_port():
    """A port some other server listens on (it accepts, never answers)."""
    with socket.socket() as other:
        other.bind((LOOPBACK, 0))
        other.listen()
        yield other.getsockname()[1]


def _echo(node) -> int:
    with open_session(node, CALLING_AE, Timeouts(connect=10, acse=10, dimse=10)) as session:
        return session.echo()


@pytest.mark.parametrize("which", ["dicom", "http"])
def test_orthanc_whose_port_was_taken_meanwhile_starts_on_fresh_ports(tmp_path, taken_port, which):
    _require("Orthanc", "orthanc")
    server = OrthancServer(tmp_path / "o", "SANDBOXPACS", [Peer(CALLING_AE)])
    if which == "dicom":
        server.node = dataclasses.replace(server.node, port=taken_port)
    else:
        server.http_port = taken_port
    server.start()
    try:
        assert taken_port not in (server.node.port, server.http_port)
        assert server.rest("/system")["DicomPort"] == server.node.port
        assert _echo(server.node) == 0x0000
    finally:
        server.stop()


def test_dcmqrscp_whose_port_was_taken_meanwhile_starts_on_a_fresh_port(tmp_path, taken_port):
    _require("dcmqrscp", "dcmtk")
    server = DcmqrscpServer(tmp_path / "q", "QRSCP", [Peer(CALLING_AE)])
    server.node = dataclasses.replace(server.node, port=taken_port)
    server.start()
    try:
        assert server.node.port != taken_port
        assert _echo(server.node) == 0x0000
    finally:
        server.stop()


def test_a_port_the_caller_chose_is_not_silently_changed(tmp_path, taken_port):
    _require("Orthanc", "orthanc")
    server = OrthancServer(tmp_path / "o", "SANDBOXPACS", [Peer(CALLING_AE)], port=taken_port)
    with pytest.raises(RuntimeError, match="exited"):
        server.start()
    server.stop()


def test_orthanc_gets_two_ports_when_the_kernel_hands_out_one_twice(tmp_path, monkeypatch):
    """Two picks in a row can get the same free port from the kernel. Orthanc then listened
    for DICOM on it, failed to bind HTTP to it too and exited just after start() returned
    (its DICOM port listened): the next association was refused (seen as a flake of
    test_a_run_killed_mid_move_does_not_make_the_next_run_skip)."""
    _require("Orthanc", "orthanc")
    from dicom_sync_dagster import sandbox

    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        repeated = [probe.getsockname()[1]] * 2

    class RepeatingSocket(socket.socket):  # the kernel's picks, the first one twice
        def getsockname(self):
            host, port = super().getsockname()
            return (host, repeated.pop()) if repeated else (host, port)

    monkeypatch.setattr(sandbox, "socket", type("M", (), {"socket": RepeatingSocket}))
    server = OrthancServer(tmp_path / "o", "SANDBOXPACS", [Peer(CALLING_AE)])
    monkeypatch.undo()
    server.start()
    try:
        assert server.node.port != server.http_port
        assert server.rest("/system")["DicomPort"] == server.node.port
        assert _echo(server.node) == 0x0000
    finally:
        server.stop()

"""Test servers listen on loopback only (issue 14): Orthanc and dcmqrscp cannot be told where
to listen, so sandbox preloads a bind() shim and checks /proc/net/tcp."""

from __future__ import annotations

import pytest

from dicom_sync_dagster.loopback_only import (
    LoopbackUnavailable,
    check_loopback,
    listening_addresses,
)
from dicom_sync_dagster.sandbox import DcmqrscpServer, OrthancServer, Peer

from .conftest import _require

pytestmark = pytest.mark.servers


def test_orthanc_listens_on_loopback_only_for_dicom_and_http(tmp_path):
    _require("Orthanc", "orthanc")
    server = OrthancServer(tmp_path / "o", "LOOPORTH", [Peer("DICOMSYNC")]).start()
    try:
        assert listening_addresses(server.node.port) == {"127.0.0.1"}
        assert listening_addresses(server.http_port) == {"127.0.0.1"}
        assert server.instance_count() == 0  # and it still answers there
    finally:
        server.stop()


def test_dcmqrscp_listens_on_loopback_only(tmp_path):
    _require("dcmqrscp", "dcmtk")
    server = DcmqrscpServer(tmp_path / "q", "LOOPQR", [Peer("DICOMSYNC")]).start()
    try:
        assert listening_addresses(server.node.port) == {"127.0.0.1"}
    finally:
        server.stop()


def test_a_server_listening_on_every_interface_is_refused():
    import socket

    with socket.create_server(("0.0.0.0", 0)) as wide:
        port = wide.getsockname()[1]
        with pytest.raises(LoopbackUnavailable, match=f"listens on 0.0.0.0:{port}"):
            check_loopback("a server", port)

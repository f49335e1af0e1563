"""Opening an association with a DICOM node: TCP, TLS and ACSE, with every failure named
(unreachable, rejected, TLS, aborted during set-up). Only echo, find and move are requested."""

from __future__ import annotations

import socket

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from .errors import AssociationAborted, AssociationRejected, NodeUnreachable
from .node import DicomNode, Timeouts
from .tls import TlsFailed, TlsFileError, handshake_problem, ssl_context

_CONTEXTS = (
    Verification,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)


def _check_resolvable(node: DicomNode) -> None:
    try:
        socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NodeUnreachable(node, f"cannot resolve host {node.host!r} ({exc.strerror})") from None


def _connect_error(node: DicomNode, timeouts: Timeouts) -> str:
    """Why a TCP connection to ``node`` fails, or '' when it does not (any more)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeouts.connect):
            return ""
    except TimeoutError:
        return f"no answer within the connect timeout of {timeouts.connect:g}s"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or exc})"


def disable_nagle(assoc: Association) -> None:
    """pynetdicom leaves Nagle's algorithm on: each small PDU may then wait for a delayed ACK
    (~40 ms on Linux), which caps request/response traffic at ~25 exchanges a second."""
    sock = assoc.dul.socket.socket if assoc.dul.socket else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(node: DicomNode, calling_ae: str, timeouts: Timeouts) -> Association:
    """An established association with ``node`` as ``calling_ae`` (over TLS when
    ``node.tls``); raises a DicomError saying why there is none."""
    _check_resolvable(node)
    tls_context = None
    if node.tls is not None:
        try:
            tls_context = ssl_context(node.tls)
        except TlsFileError as exc:
            raise TlsFailed(node, f"TLS not possible: {exc}") from None
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.acse
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network
    for context in _CONTEXTS:
        ae.add_requested_context(context)
    tls_args = (tls_context, node.host) if tls_context else None
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, tls_args=tls_args)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise AssociationRejected(
                node,
                f"association rejected (called AE {node.ae_title!r}, calling AE {calling_ae!r}); "
                "check both AE titles are configured on the peer",
            )
        reason = _connect_error(node, timeouts)
        if reason:
            raise NodeUnreachable(node, reason)
        reason = handshake_problem(node, tls_context, timeouts.connect) if tls_context else ""
        if reason:
            raise TlsFailed(node, f"TLS handshake failed: {reason}")
        raise AssociationAborted(
            node,
            f"association aborted during set-up (calling AE {calling_ae!r} may be unknown "
            "to the peer)",
        )
    return assoc

"""A recording relay on the wire between the tool and a real DICOM server.

``DimseTap`` listens on a loopback port of its own and passes every byte on, unchanged, both
ways, to the server it stands in front of. On the way in (from the SCU) it decodes each PDU with
pynetdicom and records what the SCU asked for: the abstract syntaxes it proposed in each
A-ASSOCIATE-RQ, and every DIMSE message it sent (its command set and data set, decoded by
pydicom, the data set in the transfer syntax the server accepted in its A-ASSOCIATE-AC). The
server sees the same bytes it would see without the tap; nothing is answered by the tap.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dimse_messages import _MESSAGE_TYPES
from pynetdicom.dsutils import decode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, P_DATA_TF

from dicom_sync_dagster.dicom.node import DicomNode
from dicom_sync_dagster.sandbox import LOOPBACK

ASSOCIATE_RQ, ASSOCIATE_AC, P_DATA, RELEASE_RQ, ABORT = 0x01, 0x02, 0x04, 0x05, 0x07


def message_name(command_field: int) -> str:
    """pynetdicom's name of a DIMSE command field, e.g. 'C-FIND-RQ'."""
    known = _MESSAGE_TYPES.get(command_field)
    return known[0] if known else f"unknown 0x{command_field:04X}"


@dataclass
class Message:
    """A DIMSE message the SCU sent, on association number ``association`` (1, 2, ... in the
    order the SCU connected): its command set and its data set (the identifier of a C-FIND or
    C-MOVE request), both decoded by pydicom."""

    association: int
    command: Dataset
    data_set: Dataset | None = None

    @property
    def name(self) -> str:
        return message_name(int(self.command.CommandField))


@dataclass
class Association:
    number: int
    proposed: list[str] = field(default_factory=list)  # abstract syntax UIDs the SCU proposed
    ended_by: str = ""  # 'A-RELEASE-RQ', 'A-ABORT' or '' (the SCU closed the socket)
    syntaxes: dict[int, UID] = field(default_factory=dict)  # context ID -> accepted syntax
    open_messages: dict[int, Message] = field(default_factory=dict)  # awaiting their data set
    fragments: dict[tuple[int, bool], bytes] = field(default_factory=dict)


def _exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _pdus(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """(type, whole PDU) as they arrive, until the peer closes."""
    while (head := _exact(sock, 6)) is not None:
        body = _exact(sock, struct.unpack(">I", head[2:6])[0])
        if body is None:
            return
        yield head[0], head + body


class DimseTap:
    """A relay in front of ``upstream``; point the SCU at ``node``. Use as a context manager
    (or ``start()``/``stop()``); read ``messages`` and ``associations`` after ``stop()``, which
    waits until every relayed connection has ended."""

    def __init__(self, upstream: DicomNode) -> None:
        self.upstream = upstream
        self._listener = socket.create_server((LOOPBACK, 0))
        self.node = replace(upstream, port=self._listener.getsockname()[1])
        self.messages: list[Message] = []
        self.associations: list[Association] = []
        self.errors: list[str] = []  # what the tap could not decode: a test should see none
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> DimseTap:
        self._acceptor.start()
        return self

    def __enter__(self) -> DimseTap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def names(self, association: int | None = None) -> list[str]:
        """The DIMSE messages the SCU sent, in order (on one association, or on all)."""
        with self._lock:
            return [m.name for m in self.messages if association in (None, m.association)]

    def stop(self, seconds: float = 30.0) -> None:
        """Stop accepting, let open connections end (``seconds`` at most), then close them."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not)
        self._listener.close()
        self._acceptor.join(seconds)
        for thread in list(self._threads):
            thread.join(seconds)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    # -- relaying --------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            try:
                server = socket.create_connection((self.upstream.host, self.upstream.port), 10)
            except OSError as error:
                self._error(f"cannot reach {self.upstream.port}: {error}")
                client.close()
                continue
            with self._lock:
                association = Association(len(self.associations) + 1)
                self.associations.append(association)
                self._sockets += [client, server]
            for source, sink, record in (
                (client, server, self._from_scu),
                (server, client, self._from_scp),
            ):
                thread = threading.Thread(
                    target=self._relay, args=(source, sink, record, association), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _relay(self, source: socket.socket, sink: socket.socket, record, assoc) -> None:
        """PDU by PDU, each recorded before it is passed on (so a request is recorded before
        the server can answer it)."""
        with contextlib.suppress(OSError):
            for kind, pdu in _pdus(source):
                try:
                    record(kind, pdu, assoc)
                except Exception as error:  # kept for the test; the bytes go on regardless
                    self._error(f"PDU 0x{kind:02X}: {error!r}")
                sink.sendall(pdu)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _from_scp(self, kind: int, pdu: bytes, assoc: Association) -> None:
        if kind == ASSOCIATE_AC:
            accept = A_ASSOCIATE_AC()
            accept.decode(pdu)
            for context in accept.presentation_context:
                if context.result == 0 and context.transfer_syntax:
                    assoc.syntaxes[context.context_id] = UID(context.transfer_syntax)

    def _from_scu(self, kind: int, pdu: bytes, assoc: Association) -> None:
        if kind == ASSOCIATE_RQ:
            request = A_ASSOCIATE_RQ()
            request.decode(pdu)
            with self._lock:
                assoc.proposed += [str(c.abstract_syntax) for c in request.presentation_context]
        elif kind == P_DATA:
            data = P_DATA_TF()
            data.decode(pdu)
            for item in data.presentation_data_value_items:
                self._fragment(assoc, item.presentation_context_id, item.presentation_data_value)
        elif kind in (RELEASE_RQ, ABORT):
            assoc.ended_by = "A-RELEASE-RQ" if kind == RELEASE_RQ else "A-ABORT"

    def _fragment(self, assoc: Association, context: int, value: bytes) -> None:
        """One PDV: gathered until its last fragment, then decoded (a command set is always
        Implicit VR Little Endian; a data set is in the context's accepted syntax)."""
        header, key = value[0], (context, bool(value[0] & 0x01))
        assoc.fragments[key] = assoc.fragments.get(key, b"") + value[1:]
        if not header & 0x02:  # more fragments follow
            return
        whole = BytesIO(assoc.fragments.pop(key))
        if header & 0x01:
            message = Message(assoc.number, decode(whole, True, True))
            with self._lock:
                self.messages.append(message)
            if message.command.CommandDataSetType != 0x0101:  # a data set follows
                assoc.open_messages[context] = message
        else:
            syntax = assoc.syntaxes[context]
            data_set = decode(whole, syntax.is_implicit_VR, syntax.is_little_endian)
            with self._lock:
                assoc.open_messages.pop(context).data_set = data_set

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

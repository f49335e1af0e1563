"""A raw-socket DICOM peer for answers no real server gives on demand: responses after the
final one, stale message IDs, wrong command fields, a connection closed mid-answer, malformed
command sets, endless pending responses.

It accepts any association (Implicit VR Little Endian) and calls ``script(peer, conn,
request)`` for each complete request the SCU sends; the script writes exact PDUs.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
_CANCEL = b"\x00\x00\x00\x01\x02\x00\x00\x00\xff\x0f"  # (0000,0100) = 0x0FFF C-CANCEL-RQ
_NO_DATA_SET = b"\x00\x00\x00\x08\x02\x00\x00\x00\x01\x01"  # (0000,0800) = 0x0101


@dataclass
class Request:
    number: int  # 1, 2, ... on this association
    message_id: int
    context_id: int
    command_field: int = 0x0020  # 0x0020 C-FIND-RQ, 0x0021 C-MOVE-RQ


def _exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    head = _exact(sock, 6)
    return head[0], _exact(sock, struct.unpack(">I", head[2:6])[0])


def _element(command_set: bytes, wanted: int) -> int:
    """A US element (0000,wanted) of a request's command set (Implicit VR Little Endian)."""
    offset = 0
    while offset + 8 <= len(command_set):
        group, element, length = struct.unpack_from("<HHI", command_set, offset)
        if (group, element) == (0, wanted):
            return struct.unpack_from("<H", command_set, offset + 8)[0]
        offset += 8 + length
    raise ValueError(f"a request without (0000,{wanted:04X})")


def _message_id(command_set: bytes) -> int:
    return _element(command_set, 0x0110)


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _accept(request: bytes) -> bytes:
    """An A-ASSOCIATE-AC accepting every presented context in Implicit VR Little Endian."""
    body = struct.pack(">HH", 1, 0) + request[4:36] + b"\0" * 32
    body += _item(0x10, b"1.2.840.10008.3.1.1.1")
    offset = 68
    while offset < len(request):
        kind, _, length = struct.unpack(">BBH", request[offset : offset + 4])
        if kind == 0x20:
            context = request[offset + 4]
            syntax = _item(0x40, str(ImplicitVRLittleEndian).encode())
            body += _item(0x21, bytes([context, 0, 0, 0]) + syntax)
        offset += 4 + length
    body += _item(0x50, _item(0x51, struct.pack(">I", 16384)))
    return struct.pack(">BBI", 0x02, 0, len(body)) + body


def pdv(context_id: int, control: int, data: bytes) -> bytes:
    """A presentation data value: control 3 = last command fragment, 2 = last data fragment."""
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def pdata(*values: bytes) -> bytes:
    body = b"".join(values)
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


def command(**elements: object) -> bytes:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.CommandGroupLength = len(encode(ds, True, True))
    return encode(ds, True, True)


def find_rsp(status: int, message_id: int, has_data: bool = True, field: int = 0x8020) -> bytes:
    return command(
        AffectedSOPClassUID=FIND,
        CommandField=field,
        MessageIDBeingRespondedTo=message_id,
        CommandDataSetType=0x0001 if has_data else 0x0101,
        Status=status,
    )


def identifier(study_uid: str, **elements: object) -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return encode(ds, True, True)


def move_rsp(status: int, message_id: int, **counts: int) -> bytes:
    """A C-MOVE-RSP without a data set; ``counts``: NumberOfRemainingSuboperations=..."""
    return command(
        AffectedSOPClassUID=MOVE,
        CommandField=0x8021,
        MessageIDBeingRespondedTo=message_id,
        CommandDataSetType=0x0101,
        Status=status,
        **counts,
    )


def with_length(command_set: bytes, element: int, length: int) -> bytes:
    """``command_set`` with the length field of (0000,element) set to ``length`` (the value
    bytes left as they are): an element that runs past its data."""
    offset = 0
    while offset + 8 <= len(command_set):
        group, number, size = struct.unpack_from("<HHI", command_set, offset)
        if (group, number) == (0, element):
            return command_set[: offset + 4] + struct.pack("<I", length) + command_set[offset + 8 :]
        offset += 8 + size
    raise ValueError(f"no (0000,{element:04X})")


def answers(request: Request, count: int) -> bytes:
    """``count`` pending answers and a final success, each message in a P-DATA-TF of its own
    (as real servers send them; pynetdicom's own reader takes one message per P-DATA-TF)."""
    context, message_id = request.context_id, request.message_id
    pdus = []
    for n in range(count):
        pdus.append(
            pdata(
                pdv(context, 3, find_rsp(0xFF00, message_id)),
                pdv(context, 2, identifier(f"1.2.{n}")),
            )
        )
    pdus.append(pdata(pdv(context, 3, find_rsp(0x0000, message_id, has_data=False))))
    return b"".join(pdus)


class RawPeer:
    def __init__(self, script) -> None:
        self.script = script
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.errors: list[str] = []
        self.cancelled = threading.Event()  # a C-CANCEL-RQ came
        self.closed = threading.Event()  # an association ended (released, aborted, closed)
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._converse(conn)
        finally:
            self.closed.set()

    def _converse(self, conn: socket.socket) -> None:
        with contextlib.suppress(ConnectionError, OSError), conn:
            _, body = _read_pdu(conn)
            conn.sendall(_accept(body))
            number, cmd, data_expected = 0, b"", False
            while True:
                kind, body = _read_pdu(conn)
                if kind == 0x05:  # A-RELEASE-RQ
                    conn.sendall(struct.pack(">BBI", 0x06, 0, 4) + b"\0" * 4)
                    return
                if kind != 0x04:
                    return
                offset, complete = 0, False
                while offset < len(body):
                    length, context, control = struct.unpack(">IBB", body[offset : offset + 6])
                    if control & 1:
                        cmd += body[offset + 6 : offset + 4 + length]
                        if control & 2:
                            data_expected = _NO_DATA_SET not in cmd
                            complete = not data_expected
                    elif control & 2:
                        complete = True
                    offset += 4 + length
                if not complete:
                    continue
                request, cmd = cmd, b""
                if _CANCEL in request:
                    self.cancelled.set()
                    continue
                number += 1
                field = _element(request, 0x0100)
                self.script(self, conn, Request(number, _message_id(request), context, field))

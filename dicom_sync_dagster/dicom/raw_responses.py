"""A strict reader of C-FIND/C-MOVE responses as they come off pynetdicom's DUL thread.

Command sets are read by hand (always Implicit VR Little Endian, group 0000, PS3.7 E.1) and a
response's data set is checked for structure before pydicom decodes it: an element whose
length runs past its data, a missing or malformed Status, a data set without its command, or
anything else it cannot read makes the response :class:`Invalid`, with the reason. Nothing a
peer sends can raise on the DUL thread or make the reader wait for bytes that will not come.
"""

from __future__ import annotations

import logging
import queue
import struct
import zlib
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.status import STATUS_PENDING, code_to_category

from ..core.text import printable

LOG = logging.getLogger(__name__)

# Command set elements (PS3.7 E.1), by element number (group 0000)
COMMAND_FIELD, RESPONDED_TO, DATA_SET_TYPE = 0x0100, 0x0120, 0x0800
STATUS, ERROR_COMMENT = 0x0900, 0x0902
NO_DATA_SET = 0x0101
SUBOPERATIONS = {"remaining": 0x1020, "completed": 0x1021, "failed": 0x1022, "warning": 0x1023}
RESPONSE_FIELD = {"C-FIND": 0x8020, "C-MOVE": 0x8021}
# A command set is a few hundred bytes and a C-FIND answer a few kilobytes: anything far
# larger is a peer that will not stop, not an answer.
MAX_COMMAND_BYTES = 64 * 1024
MAX_DATA_SET_BYTES = 4 * 1024 * 1024
UNDEFINED = 0xFFFFFFFF  # an undefined length
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2), from pydicom.
LONG_VRS = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)


class MalformedResponse(ValueError):
    """What a peer sent cannot be read; the message says why."""


@dataclass(frozen=True)
class Invalid:
    """Queued for a message that is not a valid response to the request, with the reason."""

    reason: str


@dataclass(frozen=True)
class Response:
    """One C-FIND/C-MOVE response: its command set elements (raw values by element number, each
    checked to be whole) and its data set, still encoded (``None`` when it has none), or, read
    on the public path, already ``decoded`` by pynetdicom."""

    command: dict[int, bytes]
    data_set: bytes | None
    decoded: Dataset | None = None

    @property
    def status(self) -> int:
        return int.from_bytes(self.command[STATUS], "little")

    def number(self, tag: int) -> int | None:
        """A US element, ``None`` when absent or empty."""
        value = self.command.get(tag)
        return int.from_bytes(value, "little") if value else None

    def text(self, tag: int) -> str:
        """A text element, with control characters escaped (peer text)."""
        return printable(self.command.get(tag, b"").decode("latin-1").strip(" \0"))


def is_pending(status: int) -> bool:
    return code_to_category(status) == STATUS_PENDING


def command_elements(command: bytes) -> dict[int, bytes]:
    """The elements of a command set; raises :class:`MalformedResponse` for an element of
    another group, one that runs past the data, or bytes left over."""
    elements, offset = {}, 0
    while offset < len(command):
        if len(command) - offset < 8:
            raise MalformedResponse(f"{len(command) - offset} stray bytes after the last element")
        group, element, length = struct.unpack_from("<HHI", command, offset)
        offset += 8
        if group != 0:
            raise MalformedResponse(f"an element ({group:04X},{element:04X}) in a command set")
        if length > len(command) - offset:
            raise MalformedResponse(
                f"command element (0000,{element:04X}) is {length} bytes long, "
                f"but only {len(command) - offset} follow"
            )
        elements[element] = command[offset : offset + length]
        offset += length
    return elements


def check_response(elements: dict[int, bytes], command_field: int) -> None:
    """What pynetdicom checks and more: the type, a 2-byte Status, a message ID responded to,
    a data set type, and 2-byte sub-operation counts."""
    if COMMAND_FIELD not in elements:
        raise MalformedResponse("no CommandField")
    if elements[COMMAND_FIELD] != command_field.to_bytes(2, "little"):
        raise MalformedResponse(
            f"CommandField 0x{int.from_bytes(elements[COMMAND_FIELD][:4], 'little'):04X} "
            f"is not the response to this request (0x{command_field:04X})"
        )
    for tag, name in ((STATUS, "Status"), (RESPONDED_TO, "MessageIDBeingRespondedTo")):
        if len(elements.get(tag, b"")) != 2:
            problem = "missing" if tag not in elements else f"{len(elements[tag])} bytes long"
            raise MalformedResponse(f"{name} is {problem}, not 2 bytes")
    if len(elements.get(DATA_SET_TYPE, b"")) != 2:
        raise MalformedResponse("CommandDataSetType is missing or not 2 bytes")
    for name, tag in SUBOPERATIONS.items():
        if len(elements.get(tag, b"")) not in (0, 2):
            raise MalformedResponse(f"the {name} sub-operations count is not 2 bytes")


def check_data_set(data: bytes, implicit: bool, little: bool, deflated: bool = False) -> None:
    """Raises :class:`MalformedResponse` unless ``data`` is whole: every element's length
    within the data, every sequence and item closed (pydicom would silently cut it short)."""
    if deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, MAX_DATA_SET_BYTES + 1)
        except zlib.error as exc:
            raise MalformedResponse(f"a deflated data set that cannot be inflated: {exc}") from None
        if len(data) > MAX_DATA_SET_BYTES or not inflater.eof:
            raise MalformedResponse("a deflated data set that is cut short or too large")
    end = _walk(data, 0, len(data), implicit, "<" if little else ">", 0, delimited=False)
    if end != len(data):
        raise MalformedResponse("a data set with bytes left over")


def _walk(
    data: bytes, offset: int, end: int, implicit: bool, order: str, depth: int, delimited: bool
) -> int:
    """Walk the elements of one data set in ``data[offset:end]``; the offset after it (after
    its item delimiter when ``delimited``)."""
    if depth > 16:
        raise MalformedResponse("sequences nested more than 16 deep")
    while offset < end:
        if end - offset < 8:
            raise MalformedResponse(f"a data set element header cut off at byte {offset}")
        group, element = struct.unpack_from(order + "HH", data, offset)
        tag = group << 16 | element
        if tag == _ITEM_END and delimited:
            return offset + 8
        vr = data[offset + 4 : offset + 6]
        if implicit or tag in (_ITEM, _ITEM_END, _SEQUENCE_END):
            (length,), offset = struct.unpack_from(order + "I", data, offset + 4), offset + 8
        elif vr in LONG_VRS:
            if end - offset < 12:
                raise MalformedResponse(f"a data set element header cut off at byte {offset}")
            (length,), offset = struct.unpack_from(order + "I", data, offset + 8), offset + 12
        else:
            (length,), offset = struct.unpack_from(order + "H", data, offset + 6), offset + 8
        if length == UNDEFINED:
            offset = _sequence(data, offset, end, implicit, order, depth)
            continue
        if length > end - offset:
            raise MalformedResponse(
                f"data set element ({group:04X},{element:04X}) is {length} bytes long, "
                f"but only {end - offset} follow"
            )
        offset += length
    if delimited:
        raise MalformedResponse("an item without its delimiter")
    return offset


def _sequence(data: bytes, offset: int, end: int, implicit: bool, order: str, depth: int) -> int:
    """The offset after an undefined-length sequence's delimiter."""
    while end - offset >= 8:
        tag = struct.unpack_from(order + "HH", data, offset)
        tag_value = tag[0] << 16 | tag[1]
        (length,) = struct.unpack_from(order + "I", data, offset + 4)
        offset += 8
        if tag_value == _SEQUENCE_END:
            return offset
        if tag_value != _ITEM:
            raise MalformedResponse(f"({tag[0]:04X},{tag[1]:04X}) where a sequence item belongs")
        if length == UNDEFINED:
            offset = _walk(data, offset, end, implicit, order, depth + 1, delimited=True)
        elif length > end - offset:
            raise MalformedResponse(f"a sequence item of {length} bytes runs past the data")
        else:
            _walk(data, offset, offset + length, implicit, order, depth + 1, delimited=False)
            offset += length
    raise MalformedResponse("a sequence without its delimiter")


class RawResponses:
    """Takes the responses to one C-FIND or C-MOVE request off pynetdicom's DUL thread as
    :class:`Response` objects, in place of its own DIMSE decoding (for every message a pydicom
    Dataset of the command set, a primitive with validating setters, then a status Dataset:
    ~70 % of the CPU of receiving a C-FIND answer or a C-MOVE progress response).

    They go to a queue of its own, which pynetdicom's reactor thread never reads: it cannot
    take a response meant for this request (pynetdicom issue #875) or choke on one. Only
    responses to this request's message ID are taken; nothing after the final one or after
    an :class:`Invalid` one."""

    def __init__(self, command_field: int, message_id: int) -> None:
        self.queue: queue.Queue[Response | Invalid] = queue.Queue()
        self.command_field = command_field
        self.message_id = message_id.to_bytes(2, "little")
        self.command, self.data_set = bytearray(), bytearray()
        self.elements: dict[int, bytes] | None = None  # a command waiting for its data set
        self.done = False
        self.stale = False  # the current message answers another request: dropped

    def receive_primitive(self, primitive: P_DATA) -> None:
        """pynetdicom's DIMSEServiceProvider.receive_primitive, for these responses only."""
        try:
            for _, data in primitive.presentation_data_value_list:
                if self.done:
                    LOG.warning("a DIMSE message after the final response was dropped")
                    return
                self._fragment(bytes(data))
        except MalformedResponse as exc:
            self._invalid(str(exc))
        except Exception as exc:  # nothing a peer sends may kill the DUL thread
            self._invalid(f"unreadable message ({type(exc).__name__})")

    def _fragment(self, data: bytes) -> None:
        if not data:
            raise MalformedResponse("an empty presentation data value")
        header, body, last = data[0], data[1:], data[0] & 2
        if header & 1:  # a command set fragment
            if self.elements is not None or self.data_set:
                raise MalformedResponse("a command set where a data set was due")
            self.command += body
            if len(self.command) > MAX_COMMAND_BYTES:
                raise MalformedResponse(f"a command set of more than {MAX_COMMAND_BYTES} bytes")
            if last:
                elements = command_elements(bytes(self.command))
                self.command = bytearray()
                self._command(elements)
            return
        if self.elements is None:
            raise MalformedResponse("a data set without a command set")
        self.data_set += body
        if len(self.data_set) > MAX_DATA_SET_BYTES:
            raise MalformedResponse(f"a data set of more than {MAX_DATA_SET_BYTES} bytes")
        if last:
            elements, self.elements = self.elements, None
            data_set, self.data_set = bytes(self.data_set), bytearray()
            self._put(Response(elements, data_set))

    def _command(self, elements: dict[int, bytes]) -> None:
        responded_to = elements.get(RESPONDED_TO, b"")
        if len(responded_to) == 2 and responded_to != self.message_id:
            LOG.warning("a response to another request (a stale one) was dropped")
            self.stale = True  # its data set, if any, goes with it
        else:
            check_response(elements, self.command_field)
            self.stale = False
        if elements.get(DATA_SET_TYPE) == NO_DATA_SET.to_bytes(2, "little"):
            self._put(Response(elements, None))
        else:
            self.elements = elements

    def _put(self, response: Response) -> None:
        if self.stale:
            return
        self.done = not is_pending(response.status)
        self.queue.put(response)

    def _invalid(self, reason: str) -> None:
        if not self.done:
            self.done = True
            self.queue.put(Invalid(reason))

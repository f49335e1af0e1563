"""One association with a DICOM node, reused for many C-ECHO/C-FIND/C-MOVE requests."""

from __future__ import annotations

import logging
import queue
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.status import STATUS_PENDING, Status, code_to_category

from . import queries
from .answers import Answer, read_answer
from .errors import (
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DimseTimeout,
    NodeUnreachable,
    QueryFailed,
    QueryTruncated,
    ServiceRefused,
)
from .node import DicomNode, Timeouts
from .outcomes import MoveOutcome, MoveResult, describe_status, outcome_for_status
from .tls import TlsFailed, TlsFileError, handshake_problem, ssl_context

LOG = logging.getLogger(__name__)

# pynetdicom logs whole identifiers at debug level; they may hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
# Its standard event handlers format a debug line for every PDU and DIMSE message even when
# debug logging is off: ~15 % of the CPU of receiving C-FIND answers and C-MOVE progress.
_config.LOG_HANDLER_LEVEL = "none"

_CONTEXTS = (
    Verification,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

T = TypeVar("T")


def _same(answer: Dataset) -> Any:
    return answer


Progress = Callable[[int, int, int, int], None]
"""Called with (completed, failed, warning, remaining) for each pending C-MOVE response."""

# Command set elements (PS3.7 E.1), by element number (group 0000)
_COMMAND_FIELD, _RESPONDED_TO, _DATA_SET_TYPE = 0x0100, 0x0120, 0x0800
_STATUS, _ERROR_COMMENT = 0x0900, 0x0902
_NO_DATA_SET = 0x0101
_SUBOPERATIONS = {"remaining": 0x1020, "completed": 0x1021, "failed": 0x1022, "warning": 0x1023}
_RESPONSE_FIELD = {"C-FIND": 0x8020, "C-MOVE": 0x8021}
_INVALID = object()  # queued for a message that is not a valid response to the request
# pynetdicom's DUL thread looks at its socket every 1 ms while nothing arrives. During a C-MOVE
# only the final response is waited for: 5 ms there saves ~40 % of that thread's CPU and adds
# at most 5 ms to a move.
_POLL_SECONDS = {"C-MOVE": 0.005}
_WAKE_SECONDS = 0.05  # while waiting for a response, look this often whether the peer is gone


@dataclass(frozen=True)
class Response:
    """One C-FIND/C-MOVE response: its command set elements (raw values by tag) and its data
    set, still encoded (``None`` when it has none)."""

    command: dict[int, bytes]
    data_set: bytes | None

    @property
    def status(self) -> int:
        return int.from_bytes(self.command[_STATUS], "little")

    def number(self, tag: int) -> int | None:
        """A US element, ``None`` when absent or empty."""
        value = self.command.get(tag)
        return int.from_bytes(value[:2], "little") if value else None

    def text(self, tag: int) -> str:
        return self.command.get(tag, b"").decode("latin-1").strip(" \0")


def is_pending(status: int) -> bool:
    return code_to_category(status) == STATUS_PENDING


def _command_elements(command: bytes) -> dict[int, bytes]:
    """The elements of a command set: always Implicit VR Little Endian, group 0000, flat."""
    elements, offset = {}, 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, offset)
        offset += 8
        if group == 0:
            elements[element] = command[offset : offset + length]
        offset += length
    return elements


class _RawResponses:
    """Takes the responses to one C-FIND or C-MOVE request off pynetdicom's DUL thread as
    :class:`Response` objects, in place of its own DIMSE decoding (for every message a pydicom
    Dataset of the command set, a primitive with validating setters, then a status Dataset:
    ~70 % of the CPU of receiving a C-FIND answer or a C-MOVE progress response).

    They go to a queue of its own, which pynetdicom's reactor thread never reads: it cannot
    take a response meant for this request (pynetdicom issue #875) or choke on one. Only
    responses to this request's message ID are taken; nothing after the final one."""

    def __init__(self, command_field: int, message_id: int) -> None:
        self.queue: queue.Queue[object] = queue.Queue()
        self.command_field = command_field.to_bytes(2, "little")
        self.message_id = message_id.to_bytes(2, "little")
        self.command, self.data_set = bytearray(), bytearray()
        self.elements: dict[int, bytes] | None = None
        self.done = False

    def receive_primitive(self, primitive: P_DATA) -> None:
        """pynetdicom's DIMSEServiceProvider.receive_primitive, for these responses only."""
        for _, data in primitive.presentation_data_value_list:
            last = data[0] & 2
            if data[0] & 1:  # a command set fragment
                self.command += data[1:]
                if last:
                    self.elements = _command_elements(bytes(self.command))
                    self.command = bytearray()
                    if self.elements.get(_DATA_SET_TYPE) == _NO_DATA_SET.to_bytes(2, "little"):
                        self._put(None)
            else:
                self.data_set += data[1:]
                if last:
                    self._put(bytes(self.data_set))
                    self.data_set = bytearray()

    def _put(self, data_set: bytes | None) -> None:
        elements, self.elements = self.elements, None
        if self.done:
            LOG.warning("a DIMSE message after the final response was dropped")
            return
        valid = (  # what pynetdicom checks: the type, a status and a message ID responded to
            elements is not None
            and elements.get(_COMMAND_FIELD) == self.command_field
            and len(elements.get(_STATUS, b"")) == 2
            and len(elements.get(_RESPONDED_TO, b"")) == 2
        )
        if valid and elements[_RESPONDED_TO] != self.message_id:
            LOG.warning("a response to another request (a stale one) was dropped")
            return
        response = Response(elements, data_set) if valid else _INVALID
        self.done = response is _INVALID or not is_pending(response.status)
        self.queue.put(response)


class DicomSession:
    """An established association; use :func:`open_session` to get one."""

    def __init__(self, node: DicomNode, assoc: Association, timeouts: Timeouts) -> None:
        self.node = node
        self.assoc = assoc
        self.timeouts = timeouts
        self._message_id = 0  # of the last C-FIND/C-MOVE request; 1-65535
        self._syntaxes: dict[str, tuple[bool, bool, bool]] = {}  # see _syntax()

    @contextmanager
    def _service(self, what: str) -> Iterator[None]:
        """pynetdicom raises ValueError/RuntimeError when the peer accepted no presentation
        context for the service, or the association is gone: name it as a DicomError."""
        try:
            yield
        except (ValueError, RuntimeError) as exc:
            raise ServiceRefused(
                self.node,
                f"{what} refused: {exc} (does the peer allow calling AE "
                f"{self.assoc.requestor.ae_title!r} to use it?)",
            ) from None

    def echo(self) -> int:
        """C-ECHO; the response status (0x0000 is success)."""
        started = time.monotonic()
        with self._service("C-ECHO"):
            status = self.assoc.send_c_echo()
        if "Status" not in status:
            raise self._lost("C-ECHO", started)
        return int(status.Status)

    def find(
        self, identifier: Dataset, limit: int | None = None, convert: Callable[[Dataset], T] = _same
    ) -> list[T]:
        """The matches of a Study Root C-FIND (the first ``limit``, then C-CANCEL), each passed
        through ``convert`` as it arrives (so the datasets need not all be kept); raises
        :class:`DicomError` unless it succeeds."""
        started = last = time.monotonic()
        matches: list[T] = []
        model = StudyRootQueryRetrieveInformationModelFind
        cancelled = False
        send = lambda msg_id: self.assoc.send_c_find(identifier, model, msg_id)  # noqa: E731
        with closing(self._responses("C-FIND", send)) as responses:
            for response in responses:
                if response is None:
                    raise self._lost("C-FIND", last)
                last = time.monotonic()
                code = response.status
                if is_pending(code):
                    fast = convert is not _same  # the converter reads values, not a Dataset
                    answer = None if cancelled else self._decode(response.data_set, model, fast)
                    if answer is not None:
                        self._convert(answer, convert, matches)
                    if limit is not None and len(matches) >= limit and not cancelled:
                        self.assoc.send_c_cancel(self._message_id, query_model=model)
                        cancelled = True
                    continue
                if code == Status.SUCCESS or (cancelled and code == Status.CANCEL):
                    return matches
                if code == Status.CANCEL:
                    raise QueryTruncated(
                        self.node, f"C-FIND cut off by the peer after {len(matches)} matches", code
                    )
                category = code_to_category(code)
                raise QueryFailed(
                    self.node,
                    f"C-FIND ended with 0x{code:04X} ({category}) after {len(matches)} matches "
                    f"in {last - started:.1f}s",
                    code,
                )
        raise self._lost("C-FIND", last)

    def count_instances(self, study_uid: str, series_uid: str) -> int:
        """Images of one series, by an IMAGE-level C-FIND (for servers that give no counts)."""
        identifier = queries.instances_of_series(study_uid, series_uid)
        uids = self.find(identifier, convert=lambda ds: queries.text(ds, "SOPInstanceUID"))
        return len(set(uids) - {""})

    def move_series(
        self,
        study_uid: str,
        series_uid: str,
        destination: str,
        on_progress: Progress | None = None,
        instances: Sequence[str] = (),
    ) -> MoveResult:
        """C-MOVE one series (or only ``instances`` of it, at IMAGE level) to ``destination``;
        never raises for DIMSE or association trouble."""
        started = last = time.monotonic()
        counts = {"completed": 0, "failed": 0, "warning": 0, "remaining": 0}
        identifier = queries.move_series(study_uid, series_uid, instances)
        model = StudyRootQueryRetrieveInformationModelMove
        send = lambda msg_id: self.assoc.send_c_move(  # noqa: E731
            identifier, destination, model, msg_id
        )
        with closing(self._responses("C-MOVE", send)) as responses:
            for response in responses:
                if response is None:
                    error = self._lost("C-MOVE", last)
                    timed_out = isinstance(error, DimseTimeout)
                    outcome = MoveOutcome.TIMEOUT if timed_out else MoveOutcome.ABORTED
                    return MoveResult(
                        outcome,
                        None,
                        message=error.reason,
                        seconds=time.monotonic() - started,
                        **counts,
                    )
                last = time.monotonic()
                for key, tag in _SUBOPERATIONS.items():
                    number = response.number(tag)
                    if number is not None:
                        counts[key] = number
                code = response.status
                pending = is_pending(code)
                if not pending and response.number(_SUBOPERATIONS["remaining"]) is None:
                    counts["remaining"] = 0
                if pending:
                    if on_progress:
                        on_progress(
                            counts["completed"],
                            counts["failed"],
                            counts["warning"],
                            counts["remaining"],
                        )
                    continue
                outcome = outcome_for_status(code)
                if outcome is MoveOutcome.SUCCESS and counts["failed"]:
                    outcome = MoveOutcome.WARNING  # a success that admits failed sub-operations
                message = "" if outcome is MoveOutcome.SUCCESS else describe_status(code)
                if response.text(_ERROR_COMMENT):
                    message = f"{message} ({response.text(_ERROR_COMMENT)})"
                return MoveResult(
                    outcome, code, message=message, seconds=time.monotonic() - started, **counts
                )
        error = self._lost("C-MOVE", last)
        return MoveResult(
            MoveOutcome.ABORTED,
            None,
            message=error.reason,
            seconds=time.monotonic() - started,
            **counts,
        )

    def _responses(self, what: str, send: Callable[[int], object]) -> Iterator[Response | None]:
        """Send a request with ``send(message_id)`` (a pynetdicom send_c_*() call: it sends at
        once; the response generator it returns is never started) and yield the responses as
        they come, up to the final one; ``None`` for one that never came (DIMSE timeout,
        abort) or was not valid. The association is aborted unless the request ended with a
        valid final response, so nothing of it can reach a later request."""
        self._message_id = self._message_id % 0xFFFF + 1
        handler = _RawResponses(_RESPONSE_FIELD[what], self._message_id)
        dimse, dul = self.assoc.dimse, self.assoc.dul
        dimse.receive_primitive = handler.receive_primitive
        poll = dul._run_loop_delay
        dul._run_loop_delay = _POLL_SECONDS.get(what, poll)
        sent, final = False, _INVALID
        try:
            with self._service(what):
                send(self._message_id)
            sent = True
            response = self._next_response(handler)
            while isinstance(response, Response) and is_pending(response.status):
                yield response
                response = self._next_response(handler)
            final = response
        finally:  # also when the caller stops early; before pynetdicom's reactor runs again
            del dimse.receive_primitive  # pynetdicom's own again
            dul._run_loop_delay = poll
            if sent and not isinstance(final, Response):
                self._give_up(what, final)
            self.assoc._reactor_checkpoint.set()  # let its reactor run again (send_*() paused it)
        yield final if isinstance(final, Response) else None

    def _give_up(self, what: str, final: object) -> None:
        """No valid final response: abort, as pynetdicom does (it logs why)."""
        if final is None:
            self.assoc._handle_no_response()  # a DIMSE timeout: aborts unless the peer did
            return
        LOG.error(f"{self.node}: {what}: an invalid or unfinished response; aborting")
        self.assoc.abort()

    def _next_response(self, handler: _RawResponses) -> object:
        """The next Response or _INVALID; ``None`` when nothing came within the DIMSE timeout
        or the association ended (aborted by the peer, connection lost)."""
        timeout = self.assoc.dimse.dimse_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            try:
                return handler.queue.get(timeout=_WAKE_SECONDS)
            except queue.Empty:
                if self.assoc.acse.is_aborted() or not self.assoc.dul.is_alive():
                    return None
        return None

    def _syntax(self, model: str) -> tuple[bool, bool, bool]:
        """(implicit VR, little endian, deflated) of the transfer syntax accepted for
        ``model``, looked up once per session."""
        if model not in self._syntaxes:
            context = next(c for c in self.assoc.accepted_contexts if c.abstract_syntax == model)
            syntax = context.transfer_syntax[0]
            self._syntaxes[model] = (
                syntax.is_implicit_VR,
                syntax.is_little_endian,
                syntax.is_deflated,
            )
        return self._syntaxes[model]

    def _convert(self, answer: Dataset | Answer, convert: Callable[[Any], T], out: list[T]) -> None:
        try:
            out.append(convert(answer))
        except Exception as exc:  # pydicom, decoding a value read_answer left to it
            LOG.error(f"{self.node}: a C-FIND answer that cannot be decoded was skipped: {exc}")

    def _decode(self, data_set: bytes | None, model: str, fast: bool = False) -> Any:
        """A response's data set, in the transfer syntax accepted for ``model`` (with ``fast``,
        an :class:`Answer` read without pydicom where it can be); ``None`` when it has none or
        it cannot be decoded (skipped, as pynetdicom's send_c_find does)."""
        if data_set is None:
            return None
        implicit, little_endian, deflated = self._syntax(model)
        if fast and little_endian and not deflated:
            answer = read_answer(data_set, implicit)
            if answer is not None:
                return answer
        try:
            return decode(BytesIO(data_set), implicit, little_endian, deflated)
        except Exception as exc:  # what pydicom raises for a malformed data set varies
            LOG.error(f"{self.node}: a C-FIND answer that cannot be decoded was skipped: {exc}")
            return None

    def _lost(self, what: str, last_response: float) -> DicomError:
        """The error for a response that never came: a DIMSE timeout or an abort."""
        waited = time.monotonic() - last_response
        if self.timeouts.dimse and waited >= self.timeouts.dimse * 0.95:
            return DimseTimeout(
                self.node,
                f"{what}: no response within the DIMSE timeout of {self.timeouts.dimse:g}s",
            )
        return AssociationAborted(
            self.node,
            f"{what}: association aborted or answer invalid (is calling AE "
            f"{self.assoc.requestor.ae_title!r} allowed to query and move there?)",
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


@contextmanager
def open_session(
    node: DicomNode, calling_ae: str, timeouts: Timeouts | None = None
) -> Iterator[DicomSession]:
    """Associate with ``node`` as ``calling_ae`` (over TLS when ``node.tls``); release (or
    abort) on exit, whatever happens."""
    timeouts = timeouts or Timeouts()
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
    try:
        disable_nagle(assoc)
        yield DicomSession(node, assoc, timeouts)
    finally:
        if assoc.is_established:
            assoc.release()
        if not assoc.is_released and not assoc.is_aborted:
            assoc.abort()

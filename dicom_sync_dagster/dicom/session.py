"""One association with a DICOM node, reused for many C-ECHO/C-FIND/C-MOVE requests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.status import STATUS_PENDING, Status, code_to_category

from . import queries
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

# pynetdicom logs whole identifiers at debug level; they may hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

_CONTEXTS = (
    Verification,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

Progress = Callable[[int, int, int, int], None]
"""Called with (completed, failed, warning, remaining) for each pending C-MOVE response."""


class DicomSession:
    """An established association; use :func:`open_session` to get one."""

    def __init__(self, node: DicomNode, assoc: Association, timeouts: Timeouts) -> None:
        self.node = node
        self.assoc = assoc
        self.timeouts = timeouts

    @contextmanager
    def _service(self, what: str) -> Iterator[None]:
        """pynetdicom raises ValueError/RuntimeError when the peer accepted no presentation
        context for the service, or the association is gone: name it as a DicomError."""
        settle_reactor(self.assoc)
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

    def find(self, identifier: Dataset, limit: int | None = None) -> list[Dataset]:
        """The matches of a Study Root C-FIND (the first ``limit``, then C-CANCEL); raises
        :class:`DicomError` unless it succeeds."""
        started = last = time.monotonic()
        matches: list[Dataset] = []
        model = StudyRootQueryRetrieveInformationModelFind
        cancelled = False
        with self._service("C-FIND"):
            responses = self.assoc.send_c_find(identifier, model)
        for status, answer in responses:
            if "Status" not in status:
                raise self._lost("C-FIND", last)
            last = time.monotonic()
            code = int(status.Status)
            if code_to_category(code) == STATUS_PENDING:
                if answer is not None and not cancelled:
                    matches.append(answer)
                if limit is not None and len(matches) >= limit and not cancelled:
                    self.assoc.send_c_cancel(
                        1, query_model=model
                    )  # pynetdicom's default message ID
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
        answers = self.find(queries.instances_of_series(study_uid, series_uid))
        return len({queries.text(ds, "SOPInstanceUID") for ds in answers} - {""})

    def move_series(
        self,
        study_uid: str,
        series_uid: str,
        destination: str,
        on_progress: Progress | None = None,
    ) -> MoveResult:
        """C-MOVE one series to ``destination``; never raises for DIMSE or association trouble."""
        started = last = time.monotonic()
        counts = {"completed": 0, "failed": 0, "warning": 0, "remaining": 0}
        identifier = queries.move_series(study_uid, series_uid)
        with self._service("C-MOVE"):
            responses = self.assoc.send_c_move(
                identifier, destination, StudyRootQueryRetrieveInformationModelMove
            )
        for status, _ in responses:
            if "Status" not in status:
                error = self._lost("C-MOVE", last)
                outcome = (
                    MoveOutcome.TIMEOUT if isinstance(error, DimseTimeout) else MoveOutcome.ABORTED
                )
                return MoveResult(
                    outcome,
                    None,
                    message=error.reason,
                    seconds=time.monotonic() - started,
                    **counts,
                )
            last = time.monotonic()
            for key, keyword in (
                ("completed", "NumberOfCompletedSuboperations"),
                ("failed", "NumberOfFailedSuboperations"),
                ("warning", "NumberOfWarningSuboperations"),
                ("remaining", "NumberOfRemainingSuboperations"),
            ):
                if keyword in status and status[keyword].value is not None:
                    counts[key] = int(status[keyword].value)
            code = int(status.Status)
            pending = code_to_category(code) == STATUS_PENDING
            if not pending and "NumberOfRemainingSuboperations" not in status:
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
            if "ErrorComment" in status and status.ErrorComment:
                message = f"{message} ({status.ErrorComment})"
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


def settle_reactor(assoc: Association) -> None:
    """Before a request on a reused association: make pynetdicom really wait for its reactor
    thread to pause (pynetdicom issue #875). Its send_*() methods wait while ``_is_paused`` is
    false, but the flag is still true from the last pause when the reactor has just been let
    go, so now and then the reactor takes the response off the queue ("Received unexpected
    C-FIND service message") and the request comes back one answer short, or never ends.
    Seen here about once in 5,000 requests on a loaded machine; none with this reset."""
    if assoc.is_alive() and assoc.is_established:
        assoc._is_paused = False  # the reactor sets it again within ~1 ms, when it pauses


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

"""One association with a DICOM node, reused for many C-ECHO/C-FIND/C-MOVE requests."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.dsutils import decode
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import Status, code_to_category

from ..core.frames import valid_uid
from ..core.text import printable
from . import queries
from .answers import Answer, read_answer
from .association import _CONTEXTS, associate, disable_nagle  # noqa: F401 - _CONTEXTS: tests
from .errors import (
    AssociationAborted,
    DicomError,
    DimseTimeout,
    QueryFailed,
    QueryTruncated,
    RequestStopped,
    ServiceRefused,
)
from .node import DicomNode, Timeouts
from .outcomes import (
    MoveOutcome,
    MoveResult,
    describe_status,
    no_transfer_cause,
    outcome_for_status,
)
from .raw_responses import (
    ERROR_COMMENT,
    RESPONSE_FIELD,
    SUBOPERATIONS,
    Invalid,
    RawResponses,
    Response,
    check_data_set,
    is_pending,
)

LOG = logging.getLogger(__name__)

# pynetdicom logs whole identifiers at debug level; they may hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
# Its standard event handlers format a debug line for every PDU and DIMSE message even when
# debug logging is off: ~15 % of the CPU of receiving C-FIND answers and C-MOVE progress.
_config.LOG_HANDLER_LEVEL = "none"


T = TypeVar("T")


def _same(answer: Dataset) -> Any:
    return answer


Progress = Callable[[int, int, int, int], None]
"""Called with (completed, failed, warning, remaining) for each pending C-MOVE response."""

_MODEL = {
    "C-FIND": StudyRootQueryRetrieveInformationModelFind,
    "C-MOVE": StudyRootQueryRetrieveInformationModelMove,
}
# pynetdicom's DUL thread looks at its socket every 1 ms while nothing arrives. During a C-MOVE
# only the final response is waited for: 5 ms there saves ~40 % of that thread's CPU and adds
# at most 5 ms to a move.
_POLL_SECONDS = {"C-MOVE": 0.005}
_IDLE_POLL_SECONDS = 0.005  # any request after _WAKE_SECONDS without a response
_WAKE_SECONDS = 0.05  # while waiting for a response, look this often whether the peer is gone
CANCEL_GRACE_SECONDS = 5.0  # after our C-CANCEL, the peer has this long to end the request
STOP_GRACE_SECONDS = 2.0  # the same when the run is being stopped (Ctrl+C, terminate)


@dataclass(frozen=True)
class Gone:
    """No (further) response: ``kind`` is "dimse" (the DIMSE timeout), "deadline" (the
    request's own deadline), "stopped" (the run is being stopped) or "aborted"."""

    kind: str


class DicomSession:
    """An established association; use :func:`open_session` to get one. Setting ``stop``
    ends a request in progress within seconds: C-CANCEL, then A-ABORT."""

    def __init__(
        self,
        node: DicomNode,
        assoc: Association,
        timeouts: Timeouts,
        stop: threading.Event | None = None,
    ) -> None:
        self.node = node
        self.assoc = assoc
        self.timeouts = timeouts
        self.stop = stop
        self._message_id = 0  # of the last C-FIND/C-MOVE request; 1-65535
        self._broken = False  # the request in progress met something unreadable: abort at once
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
        :class:`DicomError` unless it succeeds. At ``timeouts.find_answers`` answers it cancels
        and raises :class:`QueryTruncated`; it ends by ``timeouts.find_deadline``."""
        started = last = time.monotonic()
        matches: list[T] = []
        answers, cap = 0, self.timeouts.find_answers
        deadline = [started + self.timeouts.find_deadline]
        cancelled = False
        model = _MODEL["C-FIND"]
        send = lambda msg_id: self.assoc.send_c_find(identifier, model, msg_id)  # noqa: E731
        with closing(self._responses("C-FIND", send, lambda: deadline[0])) as responses:
            for response in responses:
                if not isinstance(response, Response):
                    raise self._failed("C-FIND", response, last, cancelled, answers)
                last = time.monotonic()
                code = response.status
                if is_pending(code):
                    answers += 1
                    if not cancelled:
                        fast = convert is not _same  # the converter reads values, not a Dataset
                        answer = self._decode(response.data_set, model, fast)
                        if answer is not None:
                            matches.append(self._converted(convert, answer))
                    wanted = limit is not None and len(matches) >= limit
                    if (wanted or answers >= cap) and not cancelled:
                        self.assoc.send_c_cancel(self._message_id, query_model=model)
                        cancelled = True
                        deadline[0] = min(deadline[0], last + CANCEL_GRACE_SECONDS)
                    continue
                if answers >= cap and not (limit is not None and len(matches) >= limit):
                    raise QueryTruncated(
                        self.node,
                        f"C-FIND cut off at the cap of {cap} answers (max_find_answers)",
                        code,
                    )
                if code == Status.SUCCESS or (cancelled and code == Status.CANCEL):
                    return matches
                if code == Status.CANCEL:
                    raise QueryTruncated(
                        self.node, f"C-FIND cut off by the peer after {len(matches)} matches", code
                    )
                raise QueryFailed(
                    self.node,
                    f"C-FIND ended with 0x{code:04X} ({code_to_category(code)}) after "
                    f"{len(matches)} matches in {last - started:.1f}s"
                    + (f": {response.text(ERROR_COMMENT)}" if response.text(ERROR_COMMENT) else ""),
                    code,
                )
        raise self._lost("C-FIND", last)

    def _converted(self, convert: Callable[[Any], T], answer: Dataset | Answer) -> T:
        try:
            return convert(answer)
        except Exception as exc:  # what pydicom raises for a value it cannot read varies
            self._broken = True
            raise AssociationAborted(
                self.node, f"C-FIND: an answer that cannot be read ({printable(exc, 200)})"
            ) from None

    def _failed(
        self, what: str, gone: Gone | Invalid, last: float, cancelled: bool, answers: int
    ) -> DicomError:
        """The error for a C-FIND that ended without a valid final response."""
        if isinstance(gone, Invalid):
            return AssociationAborted(
                self.node, f"{what}: an invalid response ({gone.reason}); association aborted"
            )
        if gone.kind == "deadline" and cancelled:
            self._broken = True  # it ignored one C-CANCEL already: abort at once
            return DimseTimeout(
                self.node, f"{what}: not ended within {CANCEL_GRACE_SECONDS:g}s of our C-CANCEL"
            )
        if gone.kind == "deadline":
            return DimseTimeout(
                self.node,
                f"{what}: not finished within its deadline of {self.timeouts.find_deadline:g}s "
                f"(find_deadline; {answers} answers so far)",
            )
        if gone.kind == "stopped":
            return RequestStopped(self.node, f"{what}: stopped (the run is being stopped)")
        return self._lost(what, last)

    def instance_uids(self, study_uid: str, series_uid: str) -> set[str]:
        """The valid SOPInstanceUIDs of one series (an IMAGE-level C-FIND); an invalid one is
        never counted or sent on."""
        identifier = queries.instances_of_series(study_uid, series_uid)
        found = self.find(identifier, convert=lambda ds: queries.text(ds, "SOPInstanceUID"))
        return {uid for uid in found if valid_uid(uid)}

    def count_instances(self, study_uid: str, series_uid: str) -> int:
        """Images of one series, by an IMAGE-level C-FIND (for servers that give no counts)."""
        return len(self.instance_uids(study_uid, series_uid))

    def move(
        self,
        study_uid: str,
        series_uid: str,
        destination: str,
        on_progress: Progress | None = None,
        instances: Sequence[str] = (),
    ) -> MoveResult:
        """C-MOVE one series (or only ``instances`` of it, at IMAGE level) to ``destination``;
        never raises for DIMSE or association trouble. Ends by ``timeouts.move_deadline``, and
        after ``timeouts.move_no_progress`` seconds in which the sub-operation counts did not
        change."""
        started = last = time.monotonic()
        counts = {"completed": 0, "failed": 0, "warning": 0, "remaining": 0}
        identifier = queries.move_identifier(study_uid, series_uid, instances)
        send = lambda msg_id: self.assoc.send_c_move(  # noqa: E731
            identifier, destination, _MODEL["C-MOVE"], msg_id
        )
        overall = started + self.timeouts.move_deadline
        progress = [started + self.timeouts.move_no_progress]
        deadline = lambda: min(overall, progress[0])  # noqa: E731
        with closing(self._responses("C-MOVE", send, deadline)) as responses:
            for response in responses:
                if not isinstance(response, Response):
                    outcome, message = self._move_failure(response, last, overall, counts)
                    seconds = time.monotonic() - started
                    return MoveResult(outcome, None, message=message, seconds=seconds, **counts)
                last = time.monotonic()
                before = dict(counts)
                for key, tag in SUBOPERATIONS.items():
                    number = response.number(tag)
                    if number is not None:
                        counts[key] = number
                if counts != before:
                    progress[0] = last + self.timeouts.move_no_progress
                code = response.status
                pending = is_pending(code)
                if not pending and response.number(SUBOPERATIONS["remaining"]) is None:
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
                if response.text(ERROR_COMMENT):
                    message = f"{message} ({response.text(ERROR_COMMENT)})"
                if outcome is MoveOutcome.FAILURE and not any(counts.values()):
                    cause = no_transfer_cause(code, destination, self.node.ae_title)
                    message = f"{message}; {cause}"
                return MoveResult(
                    outcome, code, message=message, seconds=time.monotonic() - started, **counts
                )
        message = self._lost("C-MOVE", last).reason
        seconds = time.monotonic() - started
        return MoveResult(MoveOutcome.ABORTED, None, message=message, seconds=seconds, **counts)

    def _move_failure(
        self, gone: Gone | Invalid, last: float, overall: float, counts: dict[str, int]
    ) -> tuple[MoveOutcome, str]:
        if isinstance(gone, Invalid):
            return MoveOutcome.ABORTED, f"C-MOVE: an invalid response ({gone.reason})"
        if gone.kind == "stopped":
            return MoveOutcome.ABORTED, "C-MOVE: stopped (the run is being stopped)"
        if gone.kind == "deadline" and time.monotonic() >= overall:
            deadline = self.timeouts.move_deadline
            return MoveOutcome.TIMEOUT, f"C-MOVE: not finished within {deadline:g}s (move_deadline)"
        if gone.kind == "deadline":
            return MoveOutcome.TIMEOUT, (
                f"C-MOVE: no progress for {self.timeouts.move_no_progress:g}s "
                f"(move_no_progress_timeout; {counts['completed']} completed, "
                f"{counts['remaining']} remaining)"
            )
        error = self._lost("C-MOVE", last)
        timed_out = isinstance(error, DimseTimeout)
        return (MoveOutcome.TIMEOUT if timed_out else MoveOutcome.ABORTED), error.reason

    def _responses(
        self, what: str, send: Callable[[int], object], deadline: Callable[[], float]
    ) -> Iterator[Response | Invalid | Gone]:
        """Send a request with ``send(message_id)`` (a pynetdicom send_c_*() call: it sends at
        once; the response generator it returns is never started) and yield the responses as
        they come, up to the final one, or an :class:`Invalid` or :class:`Gone` in its place.
        Unless the request ended with a valid final response (also when the caller stops
        early), it is cancelled and the association aborted, so nothing of it can reach a
        later request."""
        if self._stopping():  # nothing new is sent once the run is being stopped
            yield Gone("stopped")
            return
        self._message_id = self._message_id % 0xFFFF + 1
        self._broken = False
        handler = RawResponses(RESPONSE_FIELD[what], self._message_id)
        dimse, dul = self.assoc.dimse, self.assoc.dul
        dimse.receive_primitive = handler.receive_primitive
        poll = dul._run_loop_delay
        dul._run_loop_delay = _POLL_SECONDS.get(what, poll)
        sent, ended = False, False
        try:
            with self._service(what):
                send(self._message_id)
            sent = True
            while True:
                response = self._next_response(handler, deadline())
                if isinstance(response, Response) and is_pending(response.status):
                    yield response
                    continue
                ended = isinstance(response, Response)
                if isinstance(response, Invalid | Gone):
                    self._broken = isinstance(response, Invalid) or response.kind == "aborted"
                yield response
                return
        finally:  # also when the caller stops early; before pynetdicom's reactor runs again
            try:
                if sent and not ended:
                    self._give_up(what, handler)
            finally:
                del dimse.receive_primitive  # pynetdicom's own again
                dul._run_loop_delay = poll
                self.assoc._reactor_checkpoint.set()  # let its reactor run again

    def _give_up(self, what: str, handler: RawResponses) -> None:
        """A request left without its final response: C-CANCEL and a short wait for the peer
        to end it (unless what it sent cannot be trusted), else A-ABORT."""
        clean = False
        try:
            if not self._broken and self.assoc.is_established:
                self.assoc.send_c_cancel(self._message_id, query_model=_MODEL[what])
                until = time.monotonic() + (
                    STOP_GRACE_SECONDS if self._stopping() else CANCEL_GRACE_SECONDS
                )
                response = self._next_response(handler, until, watch_stop=False)
                while isinstance(response, Response) and is_pending(response.status):
                    response = self._next_response(handler, until, watch_stop=False)
                clean = isinstance(response, Response)
        finally:
            if not clean:
                LOG.error(f"{self.node}: {what}: an invalid or unfinished response; aborting")
                self.assoc.abort()

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _next_response(
        self, handler: RawResponses, deadline: float, watch_stop: bool = True
    ) -> Response | Invalid | Gone:
        """The next response, or why there is none: the DIMSE timeout or ``deadline`` passed,
        the run is being stopped, or the association ended (aborted, connection lost)."""
        timeout = self.assoc.dimse.dimse_timeout
        now = time.monotonic()
        until = min(deadline, now + timeout) if timeout else deadline
        while True:
            if watch_stop and self._stopping():
                return Gone("stopped")
            left = until - time.monotonic()
            if left <= 0:
                return Gone("deadline" if until >= deadline else "dimse")
            try:
                return handler.queue.get(timeout=min(_WAKE_SECONDS, left))
            except queue.Empty:
                if self.assoc.acse.is_aborted() or not self.assoc.dul.is_alive():
                    return Gone("aborted")
                # The peer is thinking (a large C-FIND being collected): the DUL thread need
                # not look at the socket every 1 ms meanwhile (_responses restores it).
                dul = self.assoc.dul
                dul._run_loop_delay = max(dul._run_loop_delay, _IDLE_POLL_SECONDS)

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

    def _decode(self, data_set: bytes | None, model: str, fast: bool = False) -> Any:
        """A response's data set, in the transfer syntax accepted for ``model`` (with ``fast``,
        an :class:`Answer` read without pydicom where it can be: its reading proves the top
        level whole), else checked whole first; ``None`` when it has none. One that cannot be
        read fails the request."""
        if data_set is None:
            return None
        implicit, little_endian, deflated = self._syntax(model)
        if fast and little_endian and not deflated:
            answer = read_answer(data_set, implicit)
            if answer is not None:
                return answer
        try:
            check_data_set(data_set, implicit, little_endian, deflated)
            return decode(BytesIO(data_set), implicit, little_endian, deflated)
        except Exception as exc:  # MalformedResponse, or what pydicom raises (it varies)
            self._broken = True
            raise AssociationAborted(
                self.node, f"C-FIND: an answer that cannot be read ({printable(exc, 200)})"
            ) from None

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


@contextmanager
def open_session(
    node: DicomNode,
    calling_ae: str,
    timeouts: Timeouts | None = None,
    stop: threading.Event | None = None,
) -> Iterator[DicomSession]:
    """Associate with ``node`` as ``calling_ae`` (over TLS when ``node.tls``); release (or
    abort) on exit, whatever happens. ``stop``: see :class:`DicomSession`."""
    timeouts = timeouts or Timeouts()
    assoc = associate(node, calling_ae, timeouts)
    try:
        disable_nagle(assoc)
        yield DicomSession(node, assoc, timeouts, stop)
    finally:
        if assoc.is_established:
            assoc.release()
        if not assoc.is_released and not assoc.is_aborted:
            assoc.abort()

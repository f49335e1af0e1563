"""One association with a DICOM node, reused for many C-ECHO/C-FIND/C-MOVE requests: what each
request means (matches, counts, outcomes, errors). The request/response exchange underneath is
exchange.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from functools import cached_property
from io import BytesIO
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.dsutils import decode
from pynetdicom.status import Status, code_to_category

from ..core.frames import valid_uid
from ..core.text import printable
from . import queries
from .answers import Answer, read_answer
from .association import associate, disable_nagle
from .channel import Gone
from .dimse_path import dimse_path
from .errors import (
    AssociationAborted,
    DicomError,
    DimseTimeout,
    QueryFailed,
    QueryTruncated,
    RequestStopped,
)
from .exchange import CANCEL_GRACE_SECONDS, MODEL, Exchange
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
    SUBOPERATIONS,
    Invalid,
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


class DicomSession(Exchange):
    """An established association; use :func:`open_session` to get one. Setting ``stop``
    ends a request in progress within seconds: C-CANCEL, then A-ABORT."""

    @cached_property
    def _syntaxes(self) -> dict[str, tuple[bool, bool, bool]]:
        return {}  # see _syntax()

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
        model = MODEL["C-FIND"]
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
                        answer = response.decoded or self._decode(response.data_set, model, fast)
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
            identifier, destination, MODEL["C-MOVE"], msg_id
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
    path = dimse_path()  # a bad DICOM_SYNC_DIMSE_PATH fails here, before any traffic
    assoc = associate(node, calling_ae, timeouts)
    try:
        disable_nagle(assoc)
        yield DicomSession(node, assoc, timeouts, stop, path)
    finally:
        if assoc.is_established:
            assoc.release()
        if not assoc.is_released and not assoc.is_aborted:
            assoc.abort()

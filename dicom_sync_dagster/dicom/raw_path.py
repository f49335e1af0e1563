"""The raw path: responses taken off pynetdicom's DUL thread by :class:`RawResponses`, in place
of its own DIMSE decoding (~70 % of the CPU of receiving C-FIND answers and C-MOVE progress).

It leans on pynetdicom 3.0's internals: ``dimse.receive_primitive`` overridden on the instance,
``dul._run_loop_delay`` and ``Association._reactor_checkpoint``. dimse_path.py checks at
start-up, with a real exchange, that they still exist and behave; otherwise the public path
(public_path.py) is used."""

from __future__ import annotations

from collections.abc import Callable

from pynetdicom.association import Association

from .channel import Gone
from .raw_responses import RESPONSE_FIELD, Invalid, RawResponses, Response

# pynetdicom's DUL thread looks at its socket every 1 ms while nothing arrives (and reads
# back to back while something does). During a C-MOVE only progress and the final response
# come: 20 ms there adds at most 20 ms to a move and leaves the CPU to the PACS moving the
# images. End to end (benchmarks/run.py --case moves, 4 x 600 images, cold `dicom-sync run`):
# the tool's CPU for the moves fell from 1.4-1.6 s at 5 ms to 0.83 s; the wall-time ratio to
# movescu stayed within the case's noise (README, Performance).
_POLL_SECONDS = {"C-MOVE": 0.02}
_IDLE_POLL_SECONDS = 0.005  # any request while no response comes


class RawChannel:
    """One request's responses read by :class:`RawResponses` into a queue of its own, which
    pynetdicom's reactor never reads (the response generator send_c_*() returns is never
    started). Strict: a malformed, oversized or stale response is :class:`Invalid` or
    dropped."""

    def __init__(self, assoc: Association, what: str, message_id: int) -> None:
        self.assoc, self.message_id = assoc, message_id
        self.handler = RawResponses(RESPONSE_FIELD[what], message_id)
        dul = assoc.dul
        self._poll = dul._run_loop_delay
        assoc.dimse.receive_primitive = self.handler.receive_primitive  # type: ignore[method-assign]
        dul._run_loop_delay = _POLL_SECONDS.get(what, self._poll)

    def send(self, send: Callable[[int], object]) -> None:
        send(self.message_id)

    def get(self, timeout: float) -> Response | Invalid | Gone:
        return self.handler.queue.get(timeout=timeout)

    def waiting(self) -> None:
        # The peer is thinking (a large C-FIND being collected): the DUL thread need not look
        # at the socket every 1 ms meanwhile (close() restores it).
        dul = self.assoc.dul
        dul._run_loop_delay = max(dul._run_loop_delay, _IDLE_POLL_SECONDS)

    def close(self, ended: bool) -> None:
        """pynetdicom's own receiving again, before its reactor runs again."""
        del self.assoc.dimse.receive_primitive
        self.assoc.dul._run_loop_delay = self._poll
        self.assoc._reactor_checkpoint.set()  # let its reactor run again

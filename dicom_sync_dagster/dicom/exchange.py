"""One request and its responses on an association, whichever way the responses are read (the
raw path, raw_path.py, or pynetdicom's public one, public_path.py): deadlines, the run's stop
event, C-CANCEL and A-ABORT are the same on both."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager

from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from .channel import Channel, Gone
from .errors import AssociationAborted, DicomError, DimseTimeout, ServiceRefused
from .node import DicomNode, Timeouts
from .public_path import PublicChannel
from .raw_path import RawChannel
from .raw_responses import Invalid, Response, is_pending

LOG = logging.getLogger(__name__)

MODEL = {
    "C-FIND": StudyRootQueryRetrieveInformationModelFind,
    "C-MOVE": StudyRootQueryRetrieveInformationModelMove,
}
_WAKE_SECONDS = 0.05  # while waiting for a response, look this often whether the peer is gone
CANCEL_GRACE_SECONDS = 5.0  # after our C-CANCEL, the peer has this long to end the request
STOP_GRACE_SECONDS = 2.0  # the same when the run is being stopped (Ctrl+C, terminate)
CHANNELS: dict[str, type[RawChannel] | type[PublicChannel]] = {
    "raw": RawChannel,
    "public": PublicChannel,
}


class Exchange:
    """Requests on one established association, with their responses read the ``path`` way
    ("raw" or "public"). Setting ``stop`` ends a request in progress within seconds:
    C-CANCEL, then A-ABORT."""

    def __init__(
        self,
        node: DicomNode,
        assoc: Association,
        timeouts: Timeouts,
        stop: threading.Event | None = None,
        path: str = "public",
    ) -> None:
        self.node = node
        self.assoc = assoc
        self.timeouts = timeouts
        self.stop = stop
        self.path = path
        self._channel = CHANNELS[path]
        self._message_id = 0  # of the last C-FIND/C-MOVE request; 1-65535
        self._broken = False  # the request in progress met something unreadable: abort at once

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

    def _responses(
        self, what: str, send: Callable[[int], object], deadline: Callable[[], float]
    ) -> Generator[Response | Invalid | Gone, None, None]:
        """Send a request with ``send(message_id)`` (a pynetdicom send_c_*() call: it sends at
        once) and yield the responses as they come, up to the final one, or an
        :class:`Invalid` or :class:`Gone` in its place. Unless the request ended with a valid
        final response (also when the caller stops early), it is cancelled and the
        association aborted, so nothing of it can reach a later request."""
        if self._stopping():  # nothing new is sent once the run is being stopped
            yield Gone("stopped")
            return
        self._message_id = self._message_id % 0xFFFF + 1
        self._broken = False
        channel = self._channel(self.assoc, what, self._message_id)
        sent, ended = False, False
        try:
            with self._service(what):
                channel.send(send)
            sent = True
            while True:
                response = self._next_response(channel, deadline())
                if isinstance(response, Response) and is_pending(response.status):
                    yield response
                    continue
                ended = isinstance(response, Response)
                if isinstance(response, Invalid | Gone):
                    self._broken = isinstance(response, Invalid) or response.kind == "aborted"
                yield response
                return
        finally:  # also when the caller stops early
            try:
                if sent and not ended:
                    self._give_up(what, channel)
            finally:
                channel.close(ended)

    def _give_up(self, what: str, channel: Channel) -> None:
        """A request left without its final response: C-CANCEL and a short wait for the peer
        to end it (unless what it sent cannot be trusted), else A-ABORT."""
        clean = False
        try:
            if not self._broken and self.assoc.is_established:
                self.assoc.send_c_cancel(self._message_id, query_model=MODEL[what])
                until = time.monotonic() + (
                    STOP_GRACE_SECONDS if self._stopping() else CANCEL_GRACE_SECONDS
                )
                response = self._next_response(channel, until, watch_stop=False)
                while isinstance(response, Response) and is_pending(response.status):
                    response = self._next_response(channel, until, watch_stop=False)
                clean = isinstance(response, Response)
        finally:
            if not clean:
                LOG.error(f"{self.node}: {what}: an invalid or unfinished response; aborting")
                self.assoc.abort()

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _next_response(
        self, channel: Channel, deadline: float, watch_stop: bool = True
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
                return channel.get(timeout=min(_WAKE_SECONDS, left))
            except queue.Empty:
                if self.assoc.acse.is_aborted() or not self.assoc.dul.is_alive():
                    return Gone("aborted")
                channel.waiting()

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

"""The public path: responses read through pynetdicom's documented API, the (status,
identifier) generator that ``send_c_find`` / ``send_c_move`` return, nothing private.

The generator is run by a thread of the request's own, into a queue: the session waits on that
queue with its deadlines and stop event exactly as on the raw path, and can C-CANCEL or
A-ABORT while pynetdicom waits for a response. What it does not do that the raw path does:
drop a stale response (one to an earlier request) or refuse a malformed or oversized one
before pynetdicom has decoded it (see the README, "When things go wrong")."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from .channel import Gone
from .raw_responses import ERROR_COMMENT, STATUS, SUBOPERATIONS, Invalid, Response, is_pending

JOIN_SECONDS = 5.0  # after the final response, for pynetdicom's generator to finish

Responses = Iterator[tuple[Dataset, Dataset | None]]


def response_of(status: Dataset, identifier: Dataset | None) -> Response:
    """A pynetdicom (status, identifier) pair as a :class:`Response` (the identifier already
    decoded, as ``decoded``)."""
    command = {STATUS: int(status.Status).to_bytes(2, "little")}
    comment = status.get("ErrorComment")
    if comment:
        command[ERROR_COMMENT] = str(comment).encode("latin-1", "replace")
    for name, tag in SUBOPERATIONS.items():
        count = status.get(f"NumberOf{name.capitalize()}Suboperations")
        if count is not None:
            command[tag] = int(count).to_bytes(2, "little")
    return Response(command, None, identifier)


class PublicChannel:
    """One request's responses from pynetdicom's own generator, read by a thread into a
    queue."""

    def __init__(self, assoc: Association, what: str, message_id: int) -> None:
        self.assoc, self.what, self.message_id = assoc, what, message_id
        self.queue: queue.Queue[Response | Invalid | Gone] = queue.Queue()
        self.thread: threading.Thread | None = None

    def send(self, send: Callable[[int], object]) -> None:
        responses = cast(Responses, send(self.message_id))  # sent; responses not yet read
        self.thread = threading.Thread(
            target=self._read, args=(responses,), name=f"{self.what}-responses", daemon=True
        )
        self.thread.start()

    def _read(self, responses: Responses) -> None:
        final = False
        try:
            for status, identifier in responses:
                if "Status" not in status:
                    break  # an empty status: pynetdicom gave up (timeout, abort, invalid)
                response = response_of(status, identifier)
                final = not is_pending(response.status)
                self.queue.put(response)
        except Exception as exc:  # nothing a peer sends may end this thread unreported
            self.queue.put(Invalid(f"pynetdicom could not read a response ({type(exc).__name__})"))
            return
        if not final:
            self.queue.put(Gone("aborted"))

    def get(self, timeout: float) -> Response | Invalid | Gone:
        return self.queue.get(timeout=timeout)

    def waiting(self) -> None:
        pass

    def close(self, ended: bool) -> None:
        """While the association lives on (a final response came, also one after our
        C-CANCEL), wait for pynetdicom's generator to end (it lets its reactor run again), so
        it cannot race the next request. An aborted association's thread ends by itself
        (within the DIMSE timeout)."""
        if self.thread is not None and self.assoc.is_established:
            self.thread.join(JOIN_SECONDS)

"""What the two ways of reading responses (raw_path.py, public_path.py) have in common."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .raw_responses import Invalid, Response


@dataclass(frozen=True)
class Gone:
    """No (further) response: ``kind`` is "dimse" (the DIMSE timeout), "deadline" (the
    request's own deadline), "stopped" (the run is being stopped) or "aborted"."""

    kind: str


class Channel(Protocol):
    """The responses to one request, as they come."""

    def send(self, send: Callable[[int], object]) -> None:
        """Send the request: ``send(message_id)`` is a pynetdicom send_c_*() call."""

    def get(self, timeout: float) -> Response | Invalid | Gone:
        """The next response; raises queue.Empty when none came within ``timeout``."""

    def waiting(self) -> None:
        """Called while no response comes (the peer is thinking)."""

    def close(self, ended: bool) -> None:
        """The request is over (``ended``: with a valid final response)."""

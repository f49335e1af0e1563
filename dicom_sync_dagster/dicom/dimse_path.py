"""Which way C-FIND/C-MOVE responses are read: the raw path (raw_path.py, on pynetdicom 3.0's
internals) or pynetdicom's public API (public_path.py).

``DICOM_SYNC_DIMSE_PATH``: ``auto`` (the default) checks once per process, with a real
exchange against pynetdicom's own C-FIND SCP in this process on 127.0.0.1, that the internals
the raw path relies on still exist and behave, and uses the raw path only if they do;
``public`` always uses the public path; ``raw`` requires the raw path (an error if the check
fails). Which path is in use is logged once."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from .association import associate
from .node import DicomNode, Timeouts
from .queries import studies_by_date, text

LOG = logging.getLogger(__name__)

ENV = "DICOM_SYNC_DIMSE_PATH"
CHOICES = ("auto", "raw", "public")
PROBE_SECONDS = 10.0  # the whole check; a raw path that hangs fails it
_PROBE_UIDS = ("1.2.826.0.1.3680043.9.1", "1.2.826.0.1.3680043.9.2")
_lock = threading.Lock()
_probe_problem: str | None = None  # "" once the check passed
_logged: set[str] = set()


class DimsePathError(ValueError):
    """``DICOM_SYNC_DIMSE_PATH`` is not a choice, or ``raw`` was required and cannot be."""


def wanted_path() -> str:
    """``DICOM_SYNC_DIMSE_PATH`` as a choice; ``DimsePathError`` naming it when it is none."""
    value = os.environ.get(ENV, "")
    wanted = value.strip().lower() or "auto"
    if wanted not in CHOICES:
        raise DimsePathError(f"{ENV}={value!r} is not one of {', '.join(CHOICES)}")
    return wanted


def check_early() -> None:
    """Checks the setting now and starts the raw path's check in the background (a few tenths
    of a second), so that the first request finds it done instead of waiting for it."""
    if wanted_path() != "public":
        threading.Thread(target=probe, name="dimse-path-check-early", daemon=True).start()


def dimse_path() -> str:
    """ "raw" or "public", per ``DICOM_SYNC_DIMSE_PATH`` and the start-up check."""
    wanted = wanted_path()
    if wanted == "public":
        _log_once(logging.INFO, f"DIMSE responses: pynetdicom's public API ({ENV}=public)")
        return "public"
    problem = probe()
    if not problem:
        _log_once(logging.INFO, "DIMSE responses: the raw path (pynetdicom's internals checked)")
        return "raw"
    if wanted == "raw":
        raise DimsePathError(f"{ENV}=raw, but the raw path failed its check: {problem}")
    _log_once(
        logging.WARNING,
        f"DIMSE responses: pynetdicom's public API (slower), the raw path failed its check: "
        f"{problem}",
    )
    return "public"


def probe(again: bool = False) -> str:
    """'' when the raw path works with the installed pynetdicom, else what went wrong; checked
    once per process (``again``: check anew)."""
    global _probe_problem
    with _lock:
        if _probe_problem is None or again:
            _probe_problem = _run_probe()
        return _probe_problem


def _log_once(level: int, message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        LOG.log(level, message)


def _run_probe() -> str:
    """Runs the check in a thread of its own: a raw path that hangs in pynetdicom's pause
    protocol must not hang the caller."""
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(_exchange()), daemon=True)
    thread.name = "dimse-path-check"
    thread.start()
    thread.join(PROBE_SECONDS + 5)
    return out[0] if out else f"no answer within {PROBE_SECONDS + 5:g}s (a hang)"


def _answers(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    for uid in _PROBE_UIDS:
        answer = Dataset()
        answer.QueryRetrieveLevel = "STUDY"
        answer.StudyInstanceUID = uid
        yield 0xFF00, answer
    yield 0x0000, None


def _exchange() -> str:
    """Two C-FINDs and a C-ECHO on one association with pynetdicom's own SCP on 127.0.0.1:
    each C-FIND must bring both answers through the raw path (none through pynetdicom's own
    queue) and the C-ECHO after them must work (its reactor runs again)."""
    from .session import DicomSession  # here: session.py imports this module

    scp = AE(ae_title="PATHCHECK")
    scp.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    scp.add_supported_context(Verification)
    handlers: list = [(evt.EVT_C_FIND, _answers)]
    try:
        server = scp.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    except Exception as exc:
        return f"cannot start the check's own SCP ({type(exc).__name__}: {exc})"
    assert server is not None  # block=False returns the server
    try:
        node = DicomNode("check", "PATHCHECK", "127.0.0.1", server.server_address[1])
        timeouts = Timeouts(dimse=PROBE_SECONDS, find_deadline=PROBE_SECONDS)
        assoc = associate(node, "PATHCHECK", timeouts)
        try:
            session = DicomSession(node, assoc, timeouts, path="raw")
            for _ in range(2):
                found = session.find(
                    studies_by_date("20000101"), convert=lambda a: text(a, "StudyInstanceUID")
                )
                if tuple(found) != _PROBE_UIDS:
                    return f"a C-FIND on the raw path brought {len(found)} of 2 answers"
                if not assoc.dimse.msg_queue.empty():
                    return "responses reached pynetdicom's own queue, not the raw path"
            if session.echo() != 0:
                return "the C-ECHO after the C-FINDs failed"
        finally:
            if assoc.is_established:
                assoc.release()
            if not assoc.is_released:
                assoc.abort()
        return ""
    except Exception as exc:  # what a changed pynetdicom raises is not known in advance
        return f"{type(exc).__name__}: {exc}"
    finally:  # in the background: socketserver takes up to its 0.5 s poll interval to stop
        threading.Thread(target=server.shutdown, name="dimse-path-check-stop", daemon=True).start()

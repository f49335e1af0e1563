"""A DICOM node (AE title, host, port, optional TLS) and the timeouts used to talk to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import options as o

if TYPE_CHECKING:  # tls.py imports this module
    from .tls import TlsFiles


@dataclass(frozen=True)
class DicomNode:
    """A peer application entity. ``role`` names it in messages ("remote", "local").
    With ``tls``, associations use DICOM TLS and check the certificate against ``host``."""

    role: str
    ae_title: str
    host: str
    port: int
    tls: TlsFiles | None = None

    def __str__(self) -> str:
        return f"{self.role} PACS {self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``connect``: TCP connect; ``acse``: association set-up and release;
    ``dimse``: waiting for one response; ``network``: an idle association;
    ``find_deadline``: one C-FIND from request to final response; ``move_no_progress``: a
    C-MOVE whose sub-operation counts do not change; ``move_deadline``: one C-MOVE.
    And a limit: ``find_answers``, the answers taken per C-FIND (then C-CANCEL). The defaults
    (and ranges) are those of :mod:`dicom_sync_dagster.options`."""

    connect: float = o.CONNECT_TIMEOUT.default
    acse: float = o.ACSE_TIMEOUT.default
    dimse: float = o.DIMSE_TIMEOUT.default
    network: float = o.NETWORK_TIMEOUT.default
    find_deadline: float = o.FIND_DEADLINE.default
    move_no_progress: float = o.MOVE_NO_PROGRESS_TIMEOUT.default
    move_deadline: float = o.MOVE_DEADLINE.default
    find_answers: int = o.MAX_FIND_ANSWERS.default

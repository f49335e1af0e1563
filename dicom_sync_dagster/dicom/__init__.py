"""DICOM networking on pynetdicom: echo, find, move, with timeouts and typed results. No Dagster."""

from .errors import (
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DimseTimeout,
    NodeUnreachable,
    QueryFailed,
    QueryTruncated,
    RequestStopped,
    ServiceRefused,
)
from .node import DicomNode, Timeouts
from .outcomes import MoveOutcome, MoveResult
from .session import DicomSession, open_session
from .tls import TlsFailed, TlsFiles

__all__ = [
    "AssociationAborted",
    "AssociationRejected",
    "DicomError",
    "DicomNode",
    "DicomSession",
    "DimseTimeout",
    "MoveOutcome",
    "MoveResult",
    "NodeUnreachable",
    "QueryFailed",
    "QueryTruncated",
    "RequestStopped",
    "ServiceRefused",
    "Timeouts",
    "TlsFailed",
    "TlsFiles",
    "open_session",
]

"""Errors from talking to a DICOM node; each names the node (role, AE title, host, port)."""

from __future__ import annotations

from .node import DicomNode


class DicomError(Exception):
    """A DICOM exchange with ``node`` failed."""

    def __init__(self, node: DicomNode, message: str) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.reason = message


class NodeUnreachable(DicomError):
    """No TCP connection (down, wrong host/port, connect timeout)."""


class AssociationRejected(DicomError):
    """The peer refused the association (e.g. it does not know our or its AE title)."""


class ServiceRefused(AssociationRejected):
    """The peer accepted the association but not the service (no accepted presentation
    context for C-FIND or C-MOVE): typically AE permissions on the peer."""


class AssociationAborted(DicomError):
    """The peer or the network ended the association mid-way."""


class DimseTimeout(DicomError):
    """The peer stopped answering within the DIMSE timeout; the association was aborted."""


class RequestStopped(DicomError):
    """The run was being stopped (Ctrl+C, Dagster's terminate): the request was cancelled."""


class QueryFailed(DicomError):
    """A C-FIND ended with a failure status."""

    def __init__(self, node: DicomNode, message: str, status: int) -> None:
        super().__init__(node, message)
        self.status = status


class QueryTruncated(QueryFailed):
    """The peer stopped answering a C-FIND at its own limit of matches (Orthanc's
    ``LimitFindResults`` ends with 0xFE00 Cancel): narrow the query and ask again."""

"""Typed results of a C-MOVE, with pynetdicom's own status tables for the wording."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pynetdicom.status import (
    QR_MOVE_SERVICE_CLASS_STATUS,
    STATUS_CANCEL,
    STATUS_SUCCESS,
    STATUS_WARNING,
    Status,
    code_to_category,
)


class MoveOutcome(str, Enum):
    SUCCESS = "success"
    WARNING = "warning"  # 0xB000: some sub-operations failed or warned
    FAILURE = "failure"  # 0xA701/0xA702/0xA801/0xA900/0xCxxx ...
    CANCELLED = "cancelled"  # 0xFE00
    REJECTED = "rejected"  # association rejected
    ABORTED = "aborted"  # association aborted or invalid response
    TIMEOUT = "timeout"  # no response within the DIMSE timeout
    UNREACHABLE = "unreachable"  # no connection


# Failures worth another try within a run: the peer may be busy or the network may recover.
TRANSIENT = {MoveOutcome.ABORTED, MoveOutcome.TIMEOUT, MoveOutcome.UNREACHABLE}
TRANSIENT_STATUSES = {0xA701, 0xA702}


@dataclass(frozen=True)
class MoveResult:
    """How one C-MOVE ended, with the sub-operation counts of the last response."""

    outcome: MoveOutcome
    status: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    message: str = ""
    seconds: float = 0.0

    @property
    def transient(self) -> bool:
        return self.outcome in TRANSIENT or self.status in TRANSIENT_STATUSES


def describe_status(code: int) -> str:
    """``0xA801 Refused: Move Destination unknown`` style text for a C-MOVE status."""
    category, text = QR_MOVE_SERVICE_CLASS_STATUS.get(code, ("Unknown", "unknown status"))
    return f"0x{code:04X} {category}: {text}" if text else f"0x{code:04X} {category}"


def outcome_for_status(code: int) -> MoveOutcome:
    """The outcome of a final C-MOVE response status."""
    category = code_to_category(code)
    if category == STATUS_SUCCESS:
        return MoveOutcome.SUCCESS
    if category == STATUS_CANCEL:
        return MoveOutcome.CANCELLED
    if category == STATUS_WARNING:
        return MoveOutcome.WARNING
    return MoveOutcome.FAILURE  # failure, or a code pynetdicom does not know


MOVE_DESTINATION_UNKNOWN = Status.MOVE_DESTINATION_UNKNOWN


def no_transfer_cause(code: int | None, destination: str, remote_ae: str) -> str:
    """Why a C-MOVE that failed before any sub-operation most likely did: the remote does
    not know the move destination, or cannot reach it (Orthanc answers both with 0xC000)."""
    fix = f"add it, with the local PACS's host and port, to the DICOM nodes {remote_ae} knows"
    if code == MOVE_DESTINATION_UNKNOWN:
        return f"the remote PACS {remote_ae} does not know move destination {destination} ({fix})"
    return (
        f"no image sent: most likely the remote PACS {remote_ae} does not know move destination "
        f"{destination} ({fix}) or cannot reach it (check the host and port it has for "
        f"{destination}, and firewalls)"
    )

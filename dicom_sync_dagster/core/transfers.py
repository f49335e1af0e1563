"""What became of each planned series: its transfer record, and a cycle's records together."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class Transfer:
    """One planned series after its C-MOVE; ``transferred`` only when the local confirmed it."""

    study_uid: str
    series_uid: str
    accession: str
    modality: str
    series_number: int | None
    series_description: str
    images: int | None
    outcome: str  # a MoveOutcome value, or "dry run"
    transferred: bool
    completed: int = 0
    failed: int = 0
    warning: int = 0
    local_images: int | None = None
    seconds: float = 0.0
    error: str = ""
    attempts: int = 1
    study_datetime: str = ""  # ISO 8601 UTC; empty when the study has no usable date/time
    finished_at: str = ""  # ISO 8601 UTC, when the series was confirmed (or given up)
    local_images_before: int = 0  # the local count the plan saw, before the move

    @property
    def confirmed_images(self) -> int:
        """Images of the series the local PACS gained, by its own count after the move (what
        the remote's ``completed`` claims is not taken for it)."""
        if self.local_images is None:
            return 0
        return max(0, self.local_images - self.local_images_before)


@dataclass(frozen=True)
class TransferRun:
    """The transfers of one cycle and the wall time they took together."""

    transfers: list[Transfer]
    seconds: float = 0.0


def transfers_frame(transfers: list[Transfer]) -> pd.DataFrame:
    return pd.DataFrame([asdict(t) for t in transfers], columns=list(Transfer.__dataclass_fields__))

"""A cycle's statistics: what was found, planned and moved."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from .plan import ABSENT, MOVE
from .transfers import Transfer


@dataclass(frozen=True)
class CycleSummary:
    mode: str
    dry_run: bool
    reference_time: str
    date_range: str
    remote_studies: int
    local_studies: int
    windowed_studies: int
    missing_studies: int
    series_planned: int
    series_transferred: int
    series_failed: int
    images_moved: int  # confirmed on the local PACS
    seconds: float
    images_reported_by_remote: int = 0  # the remote's completed sub-operations, beside them

    @property
    def images_per_minute(self) -> float:
        return self.images_moved / (self.seconds / 60) if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.series_failed == 0

    @property
    def claims_note(self) -> str:
        """How the remote's count differs from the local's, or empty when they agree."""
        claimed, confirmed = self.images_reported_by_remote, self.images_moved
        if claimed == confirmed:
            return ""
        return (
            f"the remote reported {claimed} images sent, the local PACS confirmed {confirmed} "
            f"new images ({confirmed - claimed:+d}); the figures count the local's"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "images_per_minute": round(self.images_per_minute, 1)}


def missing_study_count(classified: pd.DataFrame, plan: pd.DataFrame) -> int:
    """Windowed studies absent from the local PACS or with at least one series to move."""
    windowed = classified[classified["in_window"]]
    absent = set(windowed.loc[windowed["status"] == ABSENT, "study_uid"])
    return len(absent | set(plan.loc[plan["action"] == MOVE, "study_uid"]))


def summarize(
    *,
    mode: str,
    dry_run: bool,
    reference_time: str,
    date_range: str,
    remote_studies: int,
    local_studies: int,
    windowed_studies: int,
    missing_studies: int,
    series_planned: int,
    transfers: list[Transfer],
    seconds: float,
) -> CycleSummary:
    transferred = sum(t.transferred for t in transfers)
    return CycleSummary(
        mode=mode,
        dry_run=dry_run,
        reference_time=reference_time,
        date_range=date_range,
        remote_studies=remote_studies,
        local_studies=local_studies,
        windowed_studies=windowed_studies,
        missing_studies=missing_studies,
        series_planned=series_planned,
        series_transferred=transferred,
        series_failed=0 if dry_run else series_planned - transferred,
        images_moved=sum(t.confirmed_images for t in transfers),
        seconds=seconds,
        images_reported_by_remote=sum(t.completed for t in transfers),
    )

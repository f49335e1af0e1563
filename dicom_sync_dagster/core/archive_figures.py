"""The numbers the archive asset plots run after run."""

from __future__ import annotations

from datetime import datetime
from statistics import median

from .summary import CycleSummary
from .transfers import Transfer


def arrival_minutes(transfers: list[Transfer]) -> list[float]:
    """Minutes from study time to confirmed arrival on the local PACS, per transferred series
    whose study has a date and time."""
    return [
        (
            datetime.fromisoformat(t.finished_at) - datetime.fromisoformat(t.study_datetime)
        ).total_seconds()
        / 60
        for t in transfers
        if t.transferred and t.study_datetime and t.finished_at
    ]


def archive_figures(summary: CycleSummary, transfers: list[Transfer]) -> dict[str, float]:
    """The numbers the archive asset plots run after run."""
    minutes = arrival_minutes(transfers)
    figures: dict[str, float] = {
        "images_moved": summary.images_moved,
        "images_reported_by_remote": summary.images_reported_by_remote,
        "series_transferred": summary.series_transferred,
        "series_failed": summary.series_failed,
        "images_per_minute": round(summary.images_per_minute, 1),
        "missing_studies": summary.missing_studies,
    }
    if minutes:
        figures["minutes_to_arrival_median"] = round(median(minutes), 1)
        figures["minutes_to_arrival_max"] = round(max(minutes), 1)
    return figures

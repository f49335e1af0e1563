"""What a cycle did: per-series transfer records and the run's statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from statistics import median

import pandas as pd

from .plan import ABSENT, MOVE


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


def format_summary(summary: CycleSummary) -> str:
    """The seed's console summary."""
    lines = [
        "RESULTS SUMMARY",
        f"Remote studies found: {summary.remote_studies}",
        f"Local studies found:  {summary.local_studies}",
        f"In the window:        {summary.windowed_studies}",
        f"Missing on local:     {summary.missing_studies}",
        "",
        f"Found {summary.series_planned} series to transfer ({summary.mode})",
    ]
    if summary.dry_run:
        lines.append("Dry run: nothing was moved.")
        return "\n".join(lines)
    lines += [
        "",
        "Transfer statistics:",
        f"  Successfully transferred: {summary.series_transferred}/{summary.series_planned} series "
        f"({summary.images_moved} images)",
        f"  Failed: {summary.series_failed} series",
        *([f"  Note: {summary.claims_note}"] if summary.claims_note else []),
        f"  Total time: {summary.seconds / 60:.1f} minutes ({summary.seconds:.1f} s)",
        f"  Transfer rate: {summary.images_per_minute:.1f} images/minute",
    ]
    return "\n".join(lines)


def transfers_frame(transfers: list[Transfer]) -> pd.DataFrame:
    return pd.DataFrame([asdict(t) for t in transfers], columns=list(Transfer.__dataclass_fields__))


def failure_streaks(
    previous: dict[str, tuple[int, str]], failing_now: set[str], now: str
) -> dict[str, tuple[int, str]]:
    """For each series failing now: in how many runs in a row it has failed (this one
    included) and since when, carrying on the streaks the previous run recorded."""
    return {
        uid: (previous[uid][0] + 1, previous[uid][1]) if uid in previous else (1, now)
        for uid in failing_now
    }


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


def failure_causes(errors: list[str], shown: int = 3) -> str:
    """The distinct errors of the failed series, most frequent first, with how many series
    each: one line for a run failure instead of the same error once per series."""
    counts = pd.Series([e or "no error recorded" for e in errors], dtype=object).value_counts()
    parts = [f"{count} series: {error}" for error, count in counts.head(shown).items()]
    if len(counts) > shown:
        parts.append(f"{int(counts.iloc[shown:].sum())} series: {len(counts) - shown} other errors")
    return " | ".join(parts)


def over_limit(streaks: dict[str, tuple[int, str]], limit: int) -> dict[str, tuple[int, str]]:
    """The series that have failed in more runs in a row than ``limit``."""
    return {uid: streak for uid, streak in streaks.items() if streak[0] > limit}

"""Compatibility: the names this module held, now in modules of one job each."""

from .archive_figures import archive_figures, arrival_minutes
from .failures import failure_causes, failure_streaks, over_limit
from .summary import CycleSummary, missing_study_count, summarize
from .summary_text import format_summary
from .transfers import Transfer, TransferRun, transfers_frame

__all__ = [
    "CycleSummary",
    "Transfer",
    "TransferRun",
    "archive_figures",
    "arrival_minutes",
    "failure_causes",
    "failure_streaks",
    "format_summary",
    "missing_study_count",
    "over_limit",
    "summarize",
    "transfers_frame",
]

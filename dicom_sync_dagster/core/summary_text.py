"""A cycle's statistics as text: the console summary and the report's one-line summary."""

from __future__ import annotations

from .summary import CycleSummary


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


def summary_line(summary: CycleSummary) -> str:
    """One line at the top of the report, e.g. ``7/7 series, 185 images, 1,226 images/min;
    0 failed``."""
    if summary.dry_run:
        return f"dry run: {summary.series_planned} series planned, nothing moved"
    # From the figure as the report shows it (one decimal), so line and figure never disagree.
    per_minute = round(summary.images_per_minute, 1)
    return (
        f"{summary.series_transferred}/{summary.series_planned} series, "
        f"{summary.images_moved:,} images, {per_minute:,.0f} images/min; "
        f"{summary.series_failed} failed"
    )

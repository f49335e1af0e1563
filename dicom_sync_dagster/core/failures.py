"""Failed series across runs: streaks of consecutive failing runs and the causes in a line."""

from __future__ import annotations

import pandas as pd


def failure_streaks(
    previous: dict[str, tuple[int, str]], failing_now: set[str], now: str
) -> dict[str, tuple[int, str]]:
    """For each series failing now: in how many runs in a row it has failed (this one
    included) and since when, carrying on the streaks the previous run recorded."""
    return {
        uid: (previous[uid][0] + 1, previous[uid][1]) if uid in previous else (1, now)
        for uid in failing_now
    }


def over_limit(streaks: dict[str, tuple[int, str]], limit: int) -> dict[str, tuple[int, str]]:
    """The series that have failed in more runs in a row than ``limit``."""
    return {uid: streak for uid, streak in streaks.items() if streak[0] > limit}


def failure_causes(errors: list[str], shown: int = 3) -> str:
    """The distinct errors of the failed series, most frequent first, with how many series
    each: one line for a run failure instead of the same error once per series."""
    counts = pd.Series([e or "no error recorded" for e in errors], dtype=object).value_counts()
    parts = [f"{count} series: {error}" for error, count in counts.head(shown).items()]
    if len(counts) > shown:
        parts.append(f"{int(counts.iloc[shown:].sum())} series: {len(counts) - shown} other errors")
    return " | ".join(parts)

"""The study-level check of one cycle: both PACS queried at once, the plan made, nothing moved.

The schedule runs it in the code server every minute and asks for a sync run only when it finds
something to move, or when it cannot tell. No Dagster here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from .core.plan import MOVE
from .cycle import Cycle, Log, Plan, plan_cycle, query_studies


@dataclass(frozen=True)
class CheckResult:
    """What a check saw: the plan (with its settled studies) and the figures a user reads."""

    plan: Plan
    remote_studies: int
    local_studies: int
    seconds: float

    @property
    def series_to_move(self) -> int:
        return int((self.plan.rows["action"] == MOVE).sum())

    @property
    def work(self) -> bool:
        """True when a sync run has something to do."""
        return self.series_to_move > 0

    def summary(self) -> str:
        """One line, e.g. ``remote 2000 studies, local 2000, in the window 1000, missing 0``."""
        return (
            f"remote {self.remote_studies} studies, local {self.local_studies}, "
            f"in the window {self.plan.windowed_studies}, missing {self.plan.missing_studies}, "
            f"series to move {self.series_to_move} (checked in {self.seconds:.1f} s)"
        )

    def as_dict(self) -> dict[str, int | float]:
        return {
            "remote_studies": self.remote_studies,
            "local_studies": self.local_studies,
            "windowed_studies": self.plan.windowed_studies,
            "missing_studies": self.plan.missing_studies,
            "series_to_move": self.series_to_move,
            "seconds": round(self.seconds, 3),
        }


def check_cycle(
    cycle: Cycle, settled: Mapping[str, tuple[int, int]] | None = None, log: Log | None = None
) -> CheckResult:
    """Query both nodes at the same time, then plan as a run would; raises DicomError."""
    log = log or logging.getLogger(__name__)
    started = time.monotonic()
    with ThreadPoolExecutor(2, thread_name_prefix="check-query") as pool:
        remote = pool.submit(query_studies, cycle, cycle.settings.remote, log)
        local = pool.submit(query_studies, cycle, cycle.settings.local, log)
        remote_studies: pd.DataFrame = remote.result()
        local_studies: pd.DataFrame = local.result()
    plan = plan_cycle(cycle, remote_studies, local_studies, log, settled)
    return CheckResult(plan, len(remote_studies), len(local_studies), time.monotonic() - started)

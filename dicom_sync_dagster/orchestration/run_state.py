"""What the sync job's ops hand one another within a run, kept in the run's process.

The ops pass nothing through Dagster outputs (their outputs are ``Nothing``: the step order
and the run page's graph stay, the values do not go through an IO manager). Each value output
cost four events in the run's event log (output, handled, loaded, input: ~35 KB a run at 2,000
studies). The job runs in one process (``in_process_executor``), so the values live here,
keyed by run id; ``dicom-sync run`` and the tests read them with :func:`state_of`.
A re-execution of single steps from the UI finds no state in its new process and fails
saying so: re-execute the whole run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import pandas as pd
from dagster import Failure

from ..core.summary import CycleSummary
from ..core.transfers import TransferRun
from ..cycle import Cycle, Plan

KEPT_RUNS = 4  # the latest runs' states a process keeps (a long-lived one must not grow)


@dataclass
class RunState:
    """One run's values, filled in step by step."""

    cycle: Cycle
    remote_studies: pd.DataFrame | None = None
    local_studies: pd.DataFrame | None = None
    plan: Plan | None = None
    transfers: TransferRun | None = None
    summary: CycleSummary | None = None


_states: OrderedDict[str, RunState] = OrderedDict()
_lock = threading.Lock()


def begin(run_id: str, cycle: Cycle) -> RunState:
    """A fresh state for ``run_id``; the oldest beyond KEPT_RUNS are dropped."""
    state = RunState(cycle)
    with _lock:
        _states[run_id] = state
        while len(_states) > KEPT_RUNS:
            _states.popitem(last=False)
    return state


def state_of(run_id: str) -> RunState | None:
    """The state of a run executed in this process (None: unknown here, or dropped)."""
    with _lock:
        return _states.get(run_id)


def take(run_id: str) -> RunState | None:
    """The state of ``run_id``, forgotten by this process."""
    with _lock:
        return _states.pop(run_id, None)


def required(run_id: str) -> RunState:
    """The state the previous steps of this run left, for a step that needs it."""
    state = state_of(run_id)
    if state is None:
        raise Failure(
            description="this step needs the values of the run's earlier steps, which live in "
            "the run's own process: re-execute the whole run, not single steps"
        )
    return state

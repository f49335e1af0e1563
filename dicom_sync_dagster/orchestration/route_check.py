"""The every-minute check of a route, evaluated by its schedule in the code server.

It queries both PACS and plans as a run would, but moves nothing: a minute with nothing to
move is a skipped tick whose reason carries the figures, not a run. A run is requested when
the check finds something to move, fails (a node down: the run then fails naming it, as every
run did before) or cannot finish well inside Dagster's 60-second evaluation timeout.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timezone

from dagster import DagsterInstance, RunRequest, SkipReason, build_resources

from ..check import CheckResult, check_cycle
from ..core.window import Window
from ..cycle import Cycle
from ..dicom import DicomError
from ..routes import Route
from ..settings import ConfigError
from .catch_up import route_window_hours
from .check_state import CheckState, write_check_state
from .resources import route_resources
from .settled_state import load_settled, save_settled
from .tags import CHECK_TAG

LOG = logging.getLogger("dicom_sync_dagster.check")
CHECK_DEADLINE_SECONDS = 20.0  # Dagster gives a schedule evaluation 60 s
SKIP_REASON_CHARS = 900

_checks: dict[str, Future] = {}  # per route: the latest check, which may still be running
_checks_lock = threading.Lock()
_pool = ThreadPoolExecutor(thread_name_prefix="route-check")


def route_cycle(instance: DagsterInstance, route: Route, tick: datetime) -> Cycle:
    """The route's settings, mode and window (with catch-up) from its resources, as the
    run's ``start_cycle`` takes them; raises ConfigError naming what is wrong or missing."""
    resources = {k: v for k, v in route_resources(route).items() if k != "sync_lock"}
    with build_resources(resources) as built:
        options = built.sync_options
        settings = options.settings(built.remote_pacs, built.local_pacs)
        selection = options.selection()
        hours, _ = route_window_hours(instance, route.job_name, options, tick)
    return Cycle(settings, Window(tick, hours, settings.zone), selection)


def run_request(tick: datetime, why: str) -> RunRequest:
    """A full sync cycle for the tick (the run looks again for itself)."""
    return RunRequest(
        run_config={"ops": {"start_cycle": {"config": {"reference_time": tick.isoformat()}}}},
        tags={CHECK_TAG: why[:200]},
    )


def _record(instance: DagsterInstance, route: Route, **fields) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        write_check_state(instance.root_directory, route.name, CheckState(now, **fields))
    except OSError as exc:  # the check's verdict stands; say why the record is missing
        LOG.warning(f"route {route.name}: could not record the check: {exc}")


def _start(route: Route, cycle: Cycle, settled) -> Future | None:
    """The route's check in a thread of its own; None while the previous one still runs."""
    with _checks_lock:
        previous = _checks.get(route.name)
        if previous is not None and not previous.done():
            return None
        future = _pool.submit(check_cycle, cycle, settled, LOG)
        _checks[route.name] = future
        return future


def check_route(
    instance: DagsterInstance,
    route: Route,
    tick: datetime,
    deadline: float = CHECK_DEADLINE_SECONDS,
) -> RunRequest | SkipReason:
    """A skipped tick with the figures when nothing is to move, else a run request."""
    try:
        cycle = route_cycle(instance, route, tick)
    except ValueError as exc:  # ConfigError and a bad window: no run would do better
        setup = "run `dicom-sync configure`" if route.from_env else "mend dicom_sync.yaml"
        return SkipReason(f"not checked: {str(exc)[:SKIP_REASON_CHARS]} ({setup})")
    mode = cycle.selection.describe()
    settled = load_settled(instance, route.name, mode)
    future = _start(route, cycle, settled)
    if future is None:
        why = "the previous check is still waiting for a PACS"
        _record(instance, route, ok=False, figures={}, error=why)
        return run_request(tick, why)
    try:
        result: CheckResult = future.result(timeout=deadline)
    except FutureTimeout:
        why = f"the check did not finish within {deadline:g} s"
        _record(instance, route, ok=False, figures={}, error=why)
        return run_request(tick, why)
    except (DicomError, ConfigError) as exc:
        _record(instance, route, ok=False, figures={}, error=str(exc))
        return run_request(tick, f"the check failed: {exc}")
    except Exception as exc:  # a bug: the run does the whole cycle and shows what happens
        LOG.exception(f"route {route.name}: the check failed unexpectedly")
        _record(instance, route, ok=False, figures={}, error=repr(exc))
        return run_request(tick, f"the check failed unexpectedly: {exc!r}")
    save_settled(instance, route.name, mode, result.plan.settled)
    figures = result.as_dict()
    if result.work:
        _record(instance, route, ok=True, figures=figures)
        return run_request(tick, f"{result.series_to_move} series to move")
    reference = tick.isoformat()
    _record(instance, route, ok=True, figures=figures, reference_time=reference)
    return SkipReason(f"nothing to move: {result.summary()}")

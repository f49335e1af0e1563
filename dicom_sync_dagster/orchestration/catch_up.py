"""Up to when the remote was last examined: the reference time of the latest run of a route
that got as far as its report (not a dry run), kept as a run tag, or of the latest check that
found nothing to move. After an outage the next window stretches back to it, so studies
acquired while nothing ran are not skipped."""

from datetime import datetime

from dagster import DagsterInstance, RunsFilter

from ..core.window import catch_up_hours
from .check_state import read_check_state
from .resources import SyncOptionsResource
from .tags import OUTCOME_TAG, OUTCOMES, REFERENCE_TAG

LOOK_AT_RUNS = 20  # dry runs in between carry no reference


def last_covered_reference(instance: DagsterInstance, job_name: str, route: str) -> datetime | None:
    """The later of: the reference time of the latest run of ``job_name`` that examined the
    remote, and that of the route's latest check that found nothing to move."""
    check = read_check_state(instance.root_directory, route)
    from_check = check.covered_reference() if check else None
    from_runs = _last_run_reference(instance, job_name)
    known = [t for t in (from_check, from_runs) if t is not None]
    return max(known) if known else None


def _last_run_reference(instance: DagsterInstance, job_name: str) -> datetime | None:
    records = instance.get_run_records(
        filters=RunsFilter(job_name=job_name, tags={OUTCOME_TAG: OUTCOMES}), limit=LOOK_AT_RUNS
    )
    for record in records:
        value = record.dagster_run.tags.get(REFERENCE_TAG)
        if value:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue
    return None


def route_window_hours(
    instance: DagsterInstance,
    job_name: str,
    options: SyncOptionsResource,
    reference: datetime,
    window_hours: float | None = None,
) -> tuple[float, datetime | None]:
    """The window for a run or check ending at ``reference``: ``window_hours`` (default: the
    route's), stretched back to the last examination after an outage (at most
    ``catch_up_max_hours``); and that last examination, if any."""
    last = last_covered_reference(instance, job_name, options.route)
    base = options.window_hours if window_hours is None else window_hours
    hours = catch_up_hours(base, reference, last, options.catch_up_max_hours)
    return hours, last

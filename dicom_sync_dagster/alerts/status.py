"""A route's health from the instance: its latest finished sync run, its schedule check's
state file, the latest verdict of its asset check. Read by the alert sensors and by
`dicom-sync health`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from dagster import AssetCheckKey, DagsterInstance, DagsterRunStatus, RunsFilter

from ..orchestration.archive import FAILING_CHECK, archive_key
from ..orchestration.check_state import read_check_state
from ..routes import Route

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class RouteStatus:
    route: str
    job_name: str
    last_run_id: str = ""
    last_run_ok: bool | None = None  # None: no finished run yet
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None  # a successful run or check, whichever is later
    checked_at: datetime | None = None  # the schedule check's latest record
    check_ok: bool | None = None
    series_failing: bool = False  # the asset check's latest verdict failed

    @property
    def failing(self) -> bool:
        """The latest word on the route, a run or a check, is a failure."""
        latest = [(self.last_run_at, self.last_run_ok)] if self.last_run_at else []
        if self.checked_at:
            latest.append((self.checked_at, self.check_ok))
        return bool(latest) and max(latest, key=lambda item: item[0])[1] is False

    def minutes_since_success(self, now: datetime) -> float | None:
        if self.last_success_at is None:
            return None
        return (now - self.last_success_at).total_seconds() / 60


def _time(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else None


def _parse(text: str) -> datetime | None:
    """An ISO time with its zone (one without cannot be compared safely: ignored)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def route_status(instance: DagsterInstance, route: Route) -> RouteStatus:
    finished = instance.get_run_records(
        filters=RunsFilter(job_name=route.job_name, statuses=FINISHED), limit=1
    )
    succeeded = instance.get_run_records(
        filters=RunsFilter(job_name=route.job_name, statuses=[DagsterRunStatus.SUCCESS]), limit=1
    )
    check = read_check_state(instance.root_directory, route.name)
    checked_at = _parse(check.checked_at) if check else None
    successes = [_time(succeeded[0].end_time)] if succeeded else []
    if checked_at and check and check.ok:
        successes.append(checked_at)
    last = finished[0] if finished else None
    key = AssetCheckKey(archive_key(route.name), FAILING_CHECK)
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    verdict = history[0].event if history else None
    data = verdict.dagster_event.event_specific_data if verdict and verdict.dagster_event else None
    return RouteStatus(
        route=route.name,
        job_name=route.job_name,
        last_run_id=last.dagster_run.run_id if last else "",
        last_run_ok=None if last is None else last.dagster_run.status == DagsterRunStatus.SUCCESS,
        last_run_at=_time(last.end_time) if last else None,
        last_success_at=max((t for t in successes if t), default=None),
        checked_at=checked_at,
        check_ok=check.ok if checked_at and check else None,
        series_failing=bool(data is not None and getattr(data, "passed", True) is False),
    )

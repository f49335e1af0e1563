"""`dicom-sync health`: one line and a Nagios plugin exit code from what the instance knows
about each route (its latest finished sync run, its schedule check's state file, the asset
check), for the hospital's own monitoring: it works when the Dagster daemon, which sends the
alerts, is itself down.

    0 OK        every route's latest run or check succeeded, recently enough
    1 WARNING   a route has not succeeded for --warning minutes, has never finished a run,
                or has series failing repeatedly
    2 CRITICAL  a route's latest run or check failed, or none succeeded for --critical minutes
    3 UNKNOWN   the settings or the instance cannot be read
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dagster import DagsterInstance

from .alerts.status import RouteStatus, route_status
from .routes import Route

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
PREFIX = "DICOM-SYNC"


@dataclass(frozen=True)
class Thresholds:
    warning_minutes: float
    critical_minutes: float


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{(now - moment).total_seconds() / 60:.0f} min ago"


def route_verdict(status: RouteStatus, now: datetime, limits: Thresholds) -> tuple[int, str]:
    """The route's state and a few words on it."""
    minutes = status.minutes_since_success(now)
    success = f"last success {_ago(status.last_success_at, now)}"
    if status.failing:
        check_last = status.checked_at and (
            status.last_run_at is None or status.checked_at >= status.last_run_at
        )
        last = "check" if check_last else f"run {status.last_run_id[:8]}"
        return CRITICAL, f"{status.route}: FAILING (latest {last} failed), {success}"
    if minutes is None:
        return WARNING, f"{status.route}: no successful run or check yet"
    if minutes > limits.critical_minutes:
        return CRITICAL, f"{status.route}: no success for {minutes:.0f} min"
    if minutes > limits.warning_minutes:
        return WARNING, f"{status.route}: no success for {minutes:.0f} min"
    if status.series_failing:
        return WARNING, f"{status.route}: series keep failing, {success}"
    return OK, f"{status.route}: ok, {success}"


def health_line(
    instance: DagsterInstance, routes: list[Route], now: datetime, limits: Thresholds
) -> tuple[int, str]:
    """The worst state over the routes, and the line: the verdicts, worst first, then the
    performance data (minutes since each route's last success)."""
    verdicts, perfdata = [], []
    for route in routes:
        status = route_status(instance, route)
        verdicts.append(route_verdict(status, now, limits))
        minutes = status.minutes_since_success(now)
        if minutes is not None:
            perfdata.append(
                f"'{route.name}_minutes_since_success'={minutes:.1f};"
                f"{limits.warning_minutes:g};{limits.critical_minutes:g};0"
            )
    worst = max(code for code, _ in verdicts)
    words = "; ".join(text for _, text in sorted(verdicts, key=lambda v: -v[0]))
    return worst, f"{PREFIX} {LABELS[worst]} - {words} | {' '.join(perfdata)}".rstrip(" |")


def unknown_line(problem: str) -> tuple[int, str]:
    return UNKNOWN, f"{PREFIX} UNKNOWN - {' '.join(problem.split())}"

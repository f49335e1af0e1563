"""The alert sensors: Dagster's run-status sensors (a sync run failed / succeeded) and a
sensor for "no successful check for N minutes". Dagster calls them once per finished run; the
debounce is ours (state.py): one message when a route starts failing, one when it works
again, one when its series keep failing, one when its checks stop succeeding."""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_status_sensor,
    sensor,
)

from ..orchestration.archive import FAILING_CHECK
from ..orchestration.tags import ROUTE_TAG
from ..routes import Route
from .channels import Alert, DeliveryFailed, deliver
from .messages import no_check_alert, run_alert
from .settings import AlertSettings
from .state import RouteAlertState, alert_state
from .status import route_status

ALERTED_STATUSES = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
ON_FAILURE, ON_SUCCESS, NO_CHECK = (
    "dicom_sync_alert_on_failure",
    "dicom_sync_alert_on_success",
    "dicom_sync_alert_no_check",
)


def _check_passed(instance: DagsterInstance, run_id: str) -> bool | None:
    """The verdict of no_series_failing_repeatedly in this run, if the run evaluated it."""
    verdict = None
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if isinstance(data, AssetCheckEvaluation) and data.check_name == FAILING_CHECK:
            verdict = data.passed
    return verdict


def _newer_run_finished(instance: DagsterInstance, run: DagsterRun, end: float | None) -> bool:
    """Whether a later run of the same job has already finished (success or failure)."""
    latest = instance.get_run_records(
        filters=RunsFilter(job_name=run.job_name, statuses=ALERTED_STATUSES), limit=1
    )
    if not latest or latest[0].dagster_run.run_id == run.run_id:
        return False
    other_end = latest[0].end_time
    return end is not None and other_end is not None and other_end > end


def _send(settings: AlertSettings, alerts: list[Alert], log) -> None:
    """Deliver each alert; raise when one reached no channel at all. The state is then not
    saved, so the route's next finished run (not a retry of this one: Dagster moves the
    sensor's cursor on) says it again; the tick shows the failure."""
    problems = []
    for alert in alerts:
        delivered, failures = deliver(settings, alert)
        for failure in failures:
            log.error(f"alert {alert.kind} of route {alert.route} not delivered: {failure}")
        if failures and not delivered:
            problems.append(f"{alert.title}: {'; '.join(failures)}")
        elif delivered:
            log.info(f"alert sent: {alert.title}")
    if problems:
        raise DeliveryFailed("; ".join(problems))


def on_finished_run(
    instance: DagsterInstance, run: DagsterRun, settings: AlertSettings, log
) -> list[Alert]:
    """The alerts a finished sync run calls for (sent), given what was said before."""
    route = run.tags.get(ROUTE_TAG, "")
    record = instance.get_run_record_by_id(run.run_id)
    end_time = record.end_time if record else None
    if _newer_run_finished(instance, run, end_time):
        return []  # the failure and success sensors may see runs out of order: the newer wins
    ok = run.status == DagsterRunStatus.SUCCESS
    check = _check_passed(instance, run.run_id)
    with alert_state(instance.root_directory) as states:
        state = states.setdefault(route, RouteAlertState())
        alerts = []
        if not ok and not state.failing:
            alerts.append(run_alert("failing", route, run, end_time, instance, settings))
            state.failing = True
        elif ok and state.failing:
            alerts.append(run_alert("recovered", route, run, end_time, instance, settings))
            state.failing = False
        if check is False and not state.series_failing:
            alerts.append(run_alert("series_failing", route, run, end_time, instance, settings))
            state.series_failing = True
        elif check is True and state.series_failing:
            alerts.append(run_alert("series_recovered", route, run, end_time, instance, settings))
            state.series_failing = False
        _send(settings, alerts, log)
    return alerts


def on_quiet_routes(
    instance: DagsterInstance, routes: list[Route], settings: AlertSettings, now: datetime, log
) -> list[Alert]:
    """One alert per route that has had no successful run or check for ``no_check_minutes``
    (not while it is already known to be failing: that message went out), and one when it
    has again. A route that never succeeded is left to the failure alert and the health check."""
    with alert_state(instance.root_directory) as states:
        alerts = []
        for route in routes:
            status = route_status(instance, route)
            minutes = status.minutes_since_success(now)
            if minutes is None:
                continue
            state = states.setdefault(route.name, RouteAlertState())
            quiet = minutes > settings.no_check_minutes
            if quiet and not state.no_check and not state.failing:
                last = status.last_success_at
                alerts.append(no_check_alert(route.name, route.job_name, minutes, last, settings))
                state.no_check = True
            elif not quiet and state.no_check:
                alerts.append(no_check_alert(route.name, route.job_name, None, None, settings))
                state.no_check = False
        _send(settings, alerts, log)
    return alerts


def alert_sensors(
    routes: list[Route], jobs: list[JobDefinition], settings: AlertSettings
) -> list[SensorDefinition]:
    """The three sensors, running by default; none when no channel is configured."""
    if not settings.enabled:
        return []

    def run_sensor(name: str, status: DagsterRunStatus, description: str) -> SensorDefinition:
        @run_status_sensor(
            name=name,
            run_status=status,
            monitored_jobs=jobs,
            default_status=DefaultSensorStatus.RUNNING,
            description=description,
        )
        def _sensor(context: RunStatusSensorContext) -> None:
            on_finished_run(context.instance, context.dagster_run, settings, context.log)

        return _sensor

    @sensor(
        name=NO_CHECK,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Alerts once when a route has had no successful check for "
        f"{settings.no_check_minutes:g} minutes.",
    )
    def _no_check(context: SensorEvaluationContext) -> SkipReason:
        sent = on_quiet_routes(
            context.instance, routes, settings, datetime.now(timezone.utc), context.log
        )
        return SkipReason(f"{len(sent)} alerts sent" if sent else "every route checked lately")

    return [
        run_sensor(
            ON_FAILURE,
            DagsterRunStatus.FAILURE,
            "Alerts once when a route's sync runs start failing (debounced).",
        ),
        run_sensor(
            ON_SUCCESS,
            DagsterRunStatus.SUCCESS,
            "Alerts once when a failing route's sync runs succeed again.",
        ),
        _no_check,
    ]

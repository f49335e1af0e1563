"""The code location `dagster dev` loads (see workspace.yaml): per route a sync job, its
schedule, a connection-check job and the local archive asset with its checks; the alert
sensors when alerts are configured."""

import dagster as dg
from dagster import Definitions

from .alerts.sensors import alert_sensors
from .alerts.settings import AlertSettings, load_alert_settings
from .orchestration.archive import archive_spec, failing_series_check, latest_run_check
from .orchestration.jobs import check_job, sync_job
from .orchestration.retention import prune_daily, prune_run_history
from .orchestration.schedules import sync_schedule
from .routes import Route, load_routes


def route_definitions(routes: list[Route], alerts: AlertSettings | None = None) -> Definitions:
    jobs, schedules, sync_jobs = [], [], []
    for route in routes:
        job = sync_job(route)
        sync_jobs.append(job)
        jobs += [job, check_job(route)]
        schedules.append(sync_schedule(route, job))
    return Definitions(
        assets=[archive_spec(route) for route in routes],
        asset_checks=[
            *(failing_series_check(route) for route in routes),
            *(latest_run_check(route) for route in routes),
        ],
        jobs=[*jobs, prune_run_history],
        schedules=[*schedules, prune_daily],
        sensors=alert_sensors(routes, sync_jobs, alerts or AlertSettings()),
    )


@dg.definitions
def defs() -> Definitions:
    """The routes (dicom_sync.yaml or the DICOM_SYNC_* variables) and the alert settings, read
    when Dagster loads the code location, not when this module is imported."""
    return route_definitions(load_routes(), load_alert_settings())

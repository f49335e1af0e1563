"""The code location `dagster dev` loads (see workspace.yaml): per route a sync job, its
schedule, a connection-check job and the local archive asset with its check."""

from dagster import Definitions

from .orchestration.archive import archive_spec, failing_series_check, latest_run_check
from .orchestration.jobs import check_job, sync_job
from .orchestration.retention import prune_daily, prune_run_history
from .orchestration.schedules import sync_schedule
from .routes import Route, load_routes


def route_definitions(routes: list[Route]) -> Definitions:
    jobs, schedules = [], []
    for route in routes:
        job = sync_job(route)
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
    )


ROUTES = load_routes()
defs = route_definitions(ROUTES)

"""The jobs of a route: sync (start -> query both nodes -> plan -> move -> report) and the
connection check. Each route's jobs carry the route's own resources."""

import os

from dagster import JobDefinition, graph, in_process_executor, mem_io_manager

from ..routes import Route
from ..settings import IMAGE_LIMIT, MODE, ConfigError, check_selection
from .ops import (
    check_nodes,
    move_series,
    plan_transfers,
    query_local_studies,
    query_remote_studies,
    report,
    start_cycle,
)
from .resources import route_resources

CONCURRENCY_TAG = "dicom-sync/job"  # dagster.yaml allows one queued run per value at a time
ROUTE_TAG = "dicom-sync/route"
MAX_RUNTIME_SECONDS = 3600


@graph(description="Move what the remote PACS has and the local PACS lacks, for the last hours.")
def sync_cycle() -> None:
    cycle = start_cycle()
    remote = query_remote_studies(cycle)
    local = query_local_studies(cycle)
    plan = plan_transfers(cycle, remote, local)
    transfers = move_series(cycle, plan)
    report(cycle, remote, local, plan, transfers)


@graph(
    description="C-ECHO both PACS, C-FIND one study on each, and show which optional return "
    "keys (instance counts, modalities) each fills."
)
def connection_check() -> None:
    check_nodes()


def _resources(route: Route) -> dict[str, object]:
    # Frames stay in memory (one process per run): nothing pickled to disk 1,440 times a day.
    return {**route_resources(route), "io_manager": mem_io_manager}


def launchpad_config(route: Route) -> dict[str, object]:
    """The run config the Launchpad opens with: the route's mode (and image limit) and window,
    to edit rather than type. A run config naming ``start_cycle`` replaces this block whole,
    so the schedule's runs (which send only their tick time) keep the route's defaults and
    the catch-up window. Empty when the route's mode is invalid (its runs report that)."""
    if route.from_env:
        mode, limit = os.environ.get(MODE, ""), os.environ.get(IMAGE_LIMIT, "")
    else:
        mode, limit = str(route.options["mode"]), str(route.options["image_limit"])
    try:
        selection = check_selection(mode, limit)
    except ConfigError:
        return {}
    config: dict[str, object] = {"mode": selection.mode.value}
    if selection.image_limit is not None:
        config["image_limit"] = selection.image_limit
    config["window_hours"] = float(route.options["window_hours"])
    config["dry_run"] = False
    return {"ops": {"start_cycle": {"config": config}}}


def sync_job(route: Route) -> JobDefinition:
    """The route's sync job: one process (a process per step would cost seconds a minute)."""
    return sync_cycle.to_job(
        name=route.job_name,
        description=f"Route {route.name}: move what the remote PACS has and the local PACS "
        f"lacks, for the last {float(route.options['window_hours']):g} hours (the route's "
        "window; longer after an outage, see catch_up_max_hours).",
        executor_def=in_process_executor,
        resource_defs=_resources(route),
        config=launchpad_config(route) or None,
        # One run of a route at a time (dagster.yaml); a run that outlives max_runtime (its
        # process killed, a PACS hung) is failed by run monitoring, so it cannot block the
        # queue and the schedule for ever.
        tags={
            CONCURRENCY_TAG: route.job_name,
            ROUTE_TAG: route.name,
            "dagster/max_runtime": str(MAX_RUNTIME_SECONDS),
        },
    )


def check_job(route: Route) -> JobDefinition:
    return connection_check.to_job(
        name=route.check_job_name,
        description=f"Route {route.name}: C-ECHO both PACS, C-FIND one study on each, and show "
        "which optional return keys each fills.",
        executor_def=in_process_executor,
        resource_defs=_resources(route),
        tags={ROUTE_TAG: route.name},
    )

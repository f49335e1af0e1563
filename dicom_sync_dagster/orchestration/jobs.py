"""The jobs of a route: sync (start -> query both nodes -> plan -> move -> report) and the
connection check. Each route's jobs carry the route's own resources."""

from dagster import JobDefinition, graph, in_process_executor, mem_io_manager

from ..routes import Route
from .console import concise_console_logger
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
from .tags import CONCURRENCY_TAG, ROUTE_TAG

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


def sync_job(route: Route) -> JobDefinition:
    """The route's sync job: one process (a process per step would cost seconds a minute)."""
    return sync_cycle.to_job(
        name=route.job_name,
        description=f"Route {route.name}: move what the remote PACS has and the local PACS "
        f"lacks, for the last {float(route.options['window_hours']):g} hours (the route's "
        "window; longer after an outage, see catch_up_max_hours).",
        executor_def=in_process_executor,
        resource_defs=_resources(route),
        logger_defs={"console": concise_console_logger},
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
        logger_defs={"console": concise_console_logger},
        tags={ROUTE_TAG: route.name},
    )

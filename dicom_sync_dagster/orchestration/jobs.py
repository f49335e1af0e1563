"""The jobs of a route: sync (start -> query both nodes -> plan -> move -> report) and the
connection check. Each route's jobs carry the route's own resources."""

from dagster import ConfigMapping, JobDefinition, graph, in_process_executor, mem_io_manager

from ..routes import Route
from .console import concise_console_logger
from .launchpad import sync_config_mapping
from .ops import (
    check_nodes,
    move_series,
    plan_transfers,
    query_local_studies,
    query_remote_studies,
    start_cycle,
)
from .report_op import report
from .resources import route_resources
from .tags import CONCURRENCY_TAG, ROUTE_TAG

MAX_RUNTIME_SECONDS = 3600


@graph(description="Move what the remote PACS has and the local PACS lacks, for the last hours.")
def sync_cycle() -> None:
    # Nothing-typed edges: they order the steps; the values stay in the run's process
    # (run_state), not in Dagster outputs that cost four events each in the event log.
    cycle = start_cycle()
    remote = query_remote_studies(cycle=cycle)
    local = query_local_studies(cycle=cycle)
    plan = plan_transfers(remote_studies=remote, local_studies=local)
    report(transfers=move_series(plan=plan))


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
    """The route's sync job: one process (a process per step would cost seconds a minute);
    its run config prefilled with the route's mode and window (launchpad)."""
    job = _sync_job(route)
    return _sync_job(route, sync_config_mapping(job, route))


def _sync_job(route: Route, config: ConfigMapping | None = None) -> JobDefinition:
    return sync_cycle.to_job(
        name=route.job_name,
        config=config,
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

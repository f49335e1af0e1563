"""Running the sync job in-process against a test site."""

from __future__ import annotations

from dagster import DagsterInstance, ExecuteInProcessResult

from dicom_sync_dagster.core.transfers import Transfer
from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.orchestration.resources import (
    DicomNodeResource,
    SyncLockResource,
    SyncOptionsResource,
)
from dicom_sync_dagster.orchestration.run_state import RunState, state_of


def site_resources(env: dict[str, str], lock_wait: float = 10.0, **options) -> dict[str, object]:
    return {
        "remote_pacs": DicomNodeResource(
            role="remote",
            ae_title=env["DICOM_SYNC_REMOTE_AE"],
            host=env["DICOM_SYNC_REMOTE_HOST"],
            port=env["DICOM_SYNC_REMOTE_PORT"],
        ),
        "local_pacs": DicomNodeResource(
            role="local",
            ae_title=env["DICOM_SYNC_LOCAL_AE"],
            host=env["DICOM_SYNC_LOCAL_HOST"],
            port=env["DICOM_SYNC_LOCAL_PORT"],
        ),
        "sync_lock": SyncLockResource(wait_seconds=lock_wait),
        "sync_options": SyncOptionsResource(
            calling_ae=env["DICOM_SYNC_CALLING_AE"],
            timezone=env["DICOM_SYNC_TIMEZONE"],
            move_destination=env.get("DICOM_SYNC_MOVE_DESTINATION", ""),
            **options,
        ),
    }


def run_sync(
    site, instance: DagsterInstance | None = None, options=None, **config
) -> ExecuteInProcessResult:
    """Execute the dicom_sync job once with ``config`` for the start_cycle op (``mode="all"``,
    ``image_limit=N`` written as the mode selector)."""
    config.setdefault("reference_time", site.reference.isoformat())
    if isinstance(config.get("mode"), str):
        limit = config.pop("image_limit", None)
        config["mode"] = {config["mode"]: {} if limit is None else {"image_limit": limit}}
    job = defs().resolve_job_def("dicom_sync")
    return job.execute_in_process(
        run_config={"ops": {"start_cycle": {"config": config}}},
        resources=site_resources(site.env(), **(options or {})),
        instance=instance,
        raise_on_error=False,
    )


def run_state_of(result: ExecuteInProcessResult) -> RunState:
    """What the run's ops handed one another (cycle, studies, plan, transfers, summary)."""
    state = state_of(result.run_id)
    assert state is not None, "the run left no state in this process"
    return state


def plan_of(result: ExecuteInProcessResult):
    return run_state_of(result).plan.rows


def transfers_of(result: ExecuteInProcessResult) -> list[Transfer]:
    return run_state_of(result).transfers.transfers


def moved_series(result: ExecuteInProcessResult) -> set[str]:
    return {t.series_uid for t in transfers_of(result) if t.transferred}


def step_metadata(result: ExecuteInProcessResult, step: str) -> dict[str, object]:
    """A step's metadata: from its output on success, from its failure otherwise."""
    for event in result.all_node_events:
        if event.node_name != step:
            continue
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.event_specific_data.metadata.items()}
        if event.event_type_value == "STEP_FAILURE":
            user = event.event_specific_data.user_failure_data
            return {k: v.value for k, v in user.metadata.items()}
    raise AssertionError(f"the {step} op emitted neither an output nor a failure")


def report_metadata(result: ExecuteInProcessResult) -> dict[str, object]:
    return step_metadata(result, "report")

"""The local archive of each route as a Dagster asset, and its asset check.

The sync job reports on the asset after every run: a materialization when the run moved
images, an observation otherwise (also when it stopped before its report, e.g. a node down),
with the same numeric metadata so the asset page plots them run after run. The check
``no_series_failing_repeatedly`` fails when a series has failed in more runs in a row than the
route's ``failing_runs_limit``; every report that tried moves evaluates it, and it can also be
run on its own from the asset page.
"""

from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSpec,
    DagsterRunStatus,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from ..core.failures import over_limit
from ..routes import Route
from .failure_history import previous_streaks

ARCHIVE_PREFIX = "local_archive"
FAILING_CHECK = "no_series_failing_repeatedly"
LATEST_RUN_CHECK = "latest_sync_run_succeeded"  # red after a failed run, green after a good one
ARCHIVE_GROUP = "pacs"


FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def archive_key(route_name: str) -> AssetKey:
    return AssetKey([ARCHIVE_PREFIX, route_name])


def archive_spec(route: Route) -> AssetSpec:
    return AssetSpec(
        key=archive_key(route.name),
        description=f"What route {route.name} brings to the local PACS. Updated by the "
        f"{route.job_name} job: a materialization per run that moved images, an observation "
        "otherwise.",
        group_name=ARCHIVE_GROUP,
        kinds={"dicom"},
        metadata={"route": route.name, "job": route.job_name},
    )


# What a run that stopped before its report (a node down, a bad setting) records; run_failed
# (1 here, 0 or 1 from the report) makes failed runs stand out on the asset's plots.
FAILED_BEFORE_REPORT = {
    "images_moved": 0,
    "series_transferred": 0,
    "series_failed": 0,
    "run_failed": 1,
    "outcome": "failed",
}


def archive_event(
    route_name: str, moved: bool, metadata: dict[str, Any]
) -> AssetMaterialization | AssetObservation:
    """A run's figures on the route's archive asset: a materialization if it moved images."""
    if moved:
        return AssetMaterialization(asset_key=archive_key(route_name), metadata=metadata)
    return AssetObservation(asset_key=archive_key(route_name), metadata=metadata)


def _check_outcome(
    streaks: dict[str, tuple[int, str]], limit: int, errors: dict[str, str] | None = None
) -> tuple[bool, dict]:
    over = over_limit(streaks, limit)
    errors = errors or {}
    worst = max((runs for runs, _ in streaks.values()), default=0)
    metadata = {
        "failing_runs_limit": limit,
        "series_failing": len(streaks),
        "series_over_limit": len(over),
        "longest_streak_runs": worst,
        "over_limit": MetadataValue.json(
            {
                uid: {"failing_runs": runs, "since": since}
                | ({"last_error": errors[uid]} if errors.get(uid) else {})
                for uid, (runs, since) in over.items()
            }
        ),
    }
    return not over, metadata


def failing_check_evaluation(
    route_name: str,
    streaks: dict[str, tuple[int, str]],
    limit: int,
    errors: dict[str, str] | None = None,
) -> AssetCheckEvaluation:
    """The check's verdict for the streaks the report just recorded; ``errors``: this run's
    error per failed series, shown for those over the limit."""
    passed, metadata = _check_outcome(streaks, limit, errors)
    return AssetCheckEvaluation(
        asset_key=archive_key(route_name),
        check_name=FAILING_CHECK,
        passed=passed,
        metadata=metadata,
        severity=AssetCheckSeverity.ERROR,
    )


def failing_series_check(route: Route):
    """The check on its own: reads the streaks the route's latest reported run recorded."""
    limit = int(route.options["failing_runs_limit"])

    @asset_check(
        asset=archive_key(route.name),
        name=FAILING_CHECK,
        description=f"Fails when a series of route {route.name} has failed in more than "
        f"{limit} sync runs in a row (the route's failing_runs_limit).",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        streaks = previous_streaks(context.instance, route.job_name, run_id="")
        passed, metadata = _check_outcome(streaks, limit)
        return AssetCheckResult(passed=passed, metadata=metadata)

    return _check


def latest_run_evaluation(route_name: str, ok: bool, cause: str = "") -> AssetCheckEvaluation:
    """The verdict of the run that just ended: the asset turns red after a failed sync run
    and green again after a good one."""
    return AssetCheckEvaluation(
        asset_key=archive_key(route_name),
        check_name=LATEST_RUN_CHECK,
        passed=ok,
        metadata={"cause": cause or ("none" if ok else "failed")},
        severity=AssetCheckSeverity.ERROR,
    )


def latest_run_check(route: Route):
    """The check on its own: whether the route's latest finished sync run succeeded."""

    @asset_check(
        asset=archive_key(route.name),
        name=LATEST_RUN_CHECK,
        description=f"Fails while the latest sync run of route {route.name} ({route.job_name}) "
        "failed; passes again after a run that succeeds. Every sync run evaluates it.",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        records = context.instance.get_run_records(
            filters=RunsFilter(job_name=route.job_name, statuses=FINISHED), limit=1
        )
        if not records:
            return AssetCheckResult(passed=True, metadata={"latest_run": "none yet"})
        run = records[0].dagster_run
        ok = run.status == DagsterRunStatus.SUCCESS
        return AssetCheckResult(
            passed=ok,
            metadata={"latest_run": run.run_id, "status": run.status.value},
            severity=AssetCheckSeverity.ERROR,
        )

    return _check

"""The ops of the sync job (but its report, in :mod:`.report_op`) and of the connection
check. Each is a thin call into :mod:`dicom_sync_dagster.cycle`; the values they hand on live in
the run's :mod:`.run_state`, their ``Nothing`` outputs only order the steps."""

from datetime import datetime, timezone
from typing import Any

import pandas as pd
from dagster import (
    DagsterEventType,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    TableColumn,
    TableRecord,
    TableSchema,
    op,
)

from ..connections import OPTIONAL_KEYS, check_node
from ..core.plan import MOVE
from ..core.summary_text import summary_line
from ..core.transfers import TransferRun
from ..core.window import Window
from ..cycle import Cycle, plan_cycle, query_studies
from ..dicom import (
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DimseTimeout,
    NodeUnreachable,
    TlsFailed,
)
from ..settings import ConfigError
from ..transfer import transfer
from .archive import FAILED_BEFORE_REPORT, archive_event, latest_run_evaluation
from .catch_up import route_window_hours
from .check_events import record_check_evaluation
from .config import SyncRunConfig
from .report_op import report, run_tags, summary_for
from .resources import DicomNodeResource, SyncLockResource, SyncOptionsResource
from .run_state import begin, required
from .settled_state import load_settled, save_settled
from .tables import PLAN_TABLE_COLUMNS, table
from .tags import CAUSE_TAG, MODE_TAG, OUTCOME_TAG

# Names other modules and tests import from here.
__all__ = ["OUTCOME_TAG", "report", "run_tags", "summary_for", "summary_line"]


def _failed(context: OpExecutionContext, route: str, failure: Failure, cause: str) -> Failure:
    """``failure``, after marking the run: tagged failed with a short cause (the run list says
    how it ended), an observation on the route's archive and its latest-run check turned red
    (the asset page shows it), once per run."""
    earlier = context.instance.all_logs(context.run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
    if not earlier:
        context.instance.add_run_tags(context.run_id, {OUTCOME_TAG: "failed", CAUSE_TAG: cause})
        context.log_event(archive_event(route, False, FAILED_BEFORE_REPORT))
        record_check_evaluation(context, latest_run_evaluation(route, False, cause))
    return failure


def dicom_cause(exc: DicomError) -> str:
    """A few words for the run list, e.g. ``remote unreachable``, ``local refused``."""
    kinds = [
        (TlsFailed, "TLS failed"),
        (NodeUnreachable, "unreachable"),
        (AssociationRejected, "refused"),
        (AssociationAborted, "aborted"),
        (DimseTimeout, "timed out"),
    ]
    kind = next((words for cls, words in kinds if isinstance(exc, cls)), "query failed")
    return f"{exc.node.role} {kind}"


def _fail_on_dicom_error(context: OpExecutionContext, route: str, exc: DicomError) -> Failure:
    node = exc.node
    return _failed(
        context,
        route,
        Failure(
            description=str(exc),
            metadata={
                "node": node.role,
                "ae_title": node.ae_title,
                "host": node.host,
                "port": node.port,
            },
        ),
        dicom_cause(exc),
    )


@op(out=Out(Nothing, description="Validated settings, window and mode of this run."))
def start_cycle(
    context: OpExecutionContext,
    config: SyncRunConfig,
    remote_pacs: DicomNodeResource,
    local_pacs: DicomNodeResource,
    sync_options: SyncOptionsResource,
    sync_lock: SyncLockResource,
) -> None:
    """Validate every setting and the run config before any network traffic. Requiring
    ``sync_lock`` holds the one-sync-at-a-time lock for the whole run."""
    try:
        settings = sync_options.settings(remote_pacs, local_pacs)
        reference = config.reference(settings.zone)
        hours = base = config.hours(sync_options.window_hours)
        if config.catch_up:  # after an outage, stretch back to the last examination
            hours, last = route_window_hours(
                context.instance, context.job_name, sync_options, reference, base
            )
            _log_catch_up(context, sync_options, base, hours, reference, last)
        window = Window(reference, hours, settings.zone)
        selection = config.selection(sync_options.selection())
        cycle = Cycle(settings, window, selection, config.dry_run)
    except ValueError as exc:  # ConfigError included
        raise _failed(
            context, sync_options.route, Failure(description=str(exc)), "config"
        ) from None
    # The runs list can then be filtered on the mode, also for runs that fail later.
    context.instance.add_run_tags(context.run_id, {MODE_TAG: selection.mode.value})
    context.add_output_metadata(
        {
            "route": sync_options.route,
            "remote": str(settings.remote),
            "local": str(settings.local),
            "move_destination": settings.destination,
            "mode": cycle.selection.describe(),
            "dry_run": cycle.dry_run,
            "reference_time": window.reference.isoformat(timespec="seconds"),
            "window_hours": window.hours,
            "date_range": window.date_range_query,
            "timezone": settings.timezone_name,
        }
    )
    begin(context.run_id, cycle)


def _log_catch_up(
    context: OpExecutionContext,
    options: SyncOptionsResource,
    base: float,
    hours: float,
    reference: datetime,
    last: datetime | None,
) -> None:
    if last is None or hours <= base:
        return
    gap = (reference - last).total_seconds() / 3600
    context.log.warning(
        f"the remote was last examined {gap:.1f} h before this run's reference time: the "
        f"window stretches back {hours:.1f} h to catch up"
        + (
            f" (at most catch_up_max_hours={options.catch_up_max_hours:g}; studies before "
            "that are not examined: launch a run with a larger window_hours for them)"
            if gap > hours
            else ""
        )
    )


def _query(context: OpExecutionContext, cycle: Cycle, role: str, route: str) -> pd.DataFrame:
    node = cycle.settings.remote if role == "remote" else cycle.settings.local
    try:
        studies = query_studies(cycle, node, context.log)
    except DicomError as exc:
        raise _fail_on_dicom_error(context, route, exc) from None
    context.log.info(f"{node}: {len(studies)} studies dated {cycle.window.date_range_query}")
    # Its duration is the step's own (the run page shows it): not repeated as metadata.
    context.add_output_metadata({"studies": len(studies), "node": str(node)})
    return studies


@op(
    ins={"cycle": In(Nothing)},
    out=Out(Nothing, description="Remote studies dated yesterday to today."),
)
def query_remote_studies(context: OpExecutionContext, sync_options: SyncOptionsResource) -> None:
    """C-FIND the remote PACS's studies of the date range (Study Root, STUDY level)."""
    state = required(context.run_id)
    state.remote_studies = _query(context, state.cycle, "remote", sync_options.route)


@op(
    ins={"cycle": In(Nothing)},
    out=Out(Nothing, description="Local studies dated yesterday to today."),
)
def query_local_studies(context: OpExecutionContext, sync_options: SyncOptionsResource) -> None:
    """C-FIND the local PACS's studies of the date range. A dead local fails the run."""
    state = required(context.run_id)
    state.local_studies = _query(context, state.cycle, "local", sync_options.route)


def actionable(rows: pd.DataFrame) -> pd.DataFrame:
    """The plan rows a user acts on: series to move and flagged studies (time missing or
    after the reference). The others are counted per reason, not listed: a row per complete
    study would be ~150 KB of event log a run at 2,000 studies."""
    return rows[(rows["action"] == MOVE) | (rows["note"] != "")]


@op(
    ins={"remote_studies": In(Nothing), "local_studies": In(Nothing)},
    out=Out(Nothing, description="One row per series examined, with its action and reason."),
)
def plan_transfers(context: OpExecutionContext, sync_options: SyncOptionsResource) -> None:
    """Window, diff down to series, select by mode: one row per series with its reason."""
    state = required(context.run_id)
    cycle = state.cycle
    route, mode = sync_options.route, cycle.selection.describe()
    try:
        settled = load_settled(context.instance, route, mode)
        plan = plan_cycle(cycle, state.remote_studies, state.local_studies, context.log, settled)
        save_settled(context.instance, route, mode, plan.settled)
    except DicomError as exc:
        raise _fail_on_dicom_error(context, route, exc) from None
    moves = plan.moves
    context.add_output_metadata(
        {
            "windowed_studies": plan.windowed_studies,
            "missing_studies": plan.missing_studies,
            "series_planned": len(moves),
            "images_planned": int(moves["remote_images"].fillna(0).sum()),
            "reasons": MetadataValue.json(plan.rows["reason"].value_counts().to_dict()),
            "queries": MetadataValue.json(dict(plan.queries)),
            "plan": table(actionable(plan.rows), PLAN_TABLE_COLUMNS),
        }
    )
    state.plan = plan


@op(
    ins={"plan": In(Nothing)},
    out=Out(Nothing, description="One record per planned series, and the wall time."),
)
def move_series(context: OpExecutionContext) -> None:
    """C-MOVE each planned series to the move destination and confirm it on the local PACS."""
    state = required(context.run_id)
    cycle, plan = state.cycle, state.plan
    assert plan is not None
    if cycle.dry_run:
        context.log.info(f"dry run: {len(plan.moves)} series planned, nothing moved")
        state.transfers = TransferRun([])
        return
    state.transfers = moved = transfer(cycle, plan, context.log)
    context.add_output_metadata(
        {
            "series_transferred": sum(t.transferred for t in moved.transfers),
            "series_failed": sum(not t.transferred for t in moved.transfers),
            "images_moved": sum(t.confirmed_images for t in moved.transfers),
            "images_reported_by_remote": sum(t.completed for t in moved.transfers),
            "parallel_moves": min(cycle.settings.max_parallel_moves, len(moved.transfers)),
            "seconds": moved.seconds,
        }
    )


@op
def check_nodes(
    context: OpExecutionContext,
    remote_pacs: DicomNodeResource,
    local_pacs: DicomNodeResource,
    sync_options: SyncOptionsResource,
) -> None:
    """C-ECHO both nodes, C-FIND one study on each, and say which optional keys they fill."""
    try:
        settings = sync_options.settings(remote_pacs, local_pacs)
    except ConfigError as exc:
        raise Failure(description=str(exc)) from None
    window = Window(datetime.now(timezone.utc), 12, settings.zone)
    checks = [
        check_node(n, settings, window.date_range_query) for n in (settings.remote, settings.local)
    ]
    shown = {None: "not tested (no study dated today or yesterday)", True: "yes", False: "no"}
    keys = TableSchema(
        columns=[TableColumn("key", "string")]
        + [TableColumn(c.node.role, "string") for c in checks]
    )
    metadata: dict[str, Any] = {f"{c.node.role}": f"{c.node}: {c.verdict()}" for c in checks}
    metadata["optional_return_keys"] = MetadataValue.table(
        [
            TableRecord({"key": key, **{c.node.role: shown[c.supports[key]] for c in checks}})
            for key in OPTIONAL_KEYS
        ],
        schema=keys,
    )
    metadata["note"] = (
        "Where a node does not fill the instance counts, the sync counts with IMAGE-level "
        "C-FINDs (one per series it has to examine)."
    )
    for check in checks:
        (context.log.info if check.ok else context.log.error)(f"{check.node}: {check.verdict()}")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise Failure(
            description="; ".join(f"{c.node}: {c.error}" for c in failed), metadata=metadata
        )
    context.add_output_metadata(metadata)

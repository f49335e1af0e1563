"""The ops of the sync job. Each is a thin call into :mod:`dicom_sync_dagster.cycle`."""

import time
from datetime import datetime, timezone

import pandas as pd
from dagster import (
    DagsterEventType,
    Failure,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    TableColumn,
    TableRecord,
    TableSchema,
    op,
)

from ..connections import OPTIONAL_KEYS, check_node
from ..core.plan import MOVE
from ..core.report import (
    CycleSummary,
    TransferRun,
    archive_figures,
    failure_causes,
    failure_streaks,
    summarize,
    transfers_frame,
)
from ..core.window import Window
from ..cycle import Cycle, Plan, plan_cycle, query_studies
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
from .archive import (
    FAILED_BEFORE_REPORT,
    archive_event,
    failing_check_evaluation,
    latest_run_evaluation,
)
from .catch_up import route_window_hours
from .check_events import record_check_evaluation
from .config import SyncRunConfig
from .failure_history import FAILURE_STREAKS_KEY, previous_streaks
from .resources import DicomNodeResource, SyncLockResource, SyncOptionsResource
from .settled_state import load_settled, save_settled
from .tags import CAUSE_TAG, OUTCOME_TAG, REFERENCE_TAG

TABLE_ROWS = 500  # rows of a metadata table; the counts always cover everything

# What a user reads first: which series, how it ended and why; the long study UID last.
REPORT_COLUMNS = [
    ("accession", "string"),
    ("modality", "string"),
    ("series_number", "int"),
    ("outcome", "string"),
    ("error", "string"),
    ("series_description", "string"),
    ("images", "int"),
    ("seconds", "float"),
    ("attempts", "int"),
    ("study_uid", "string"),
]
# The report's figures in the order a user reads them; the settings of the run after them.
REPORT_FIGURES = [
    "remote_studies",
    "local_studies",
    "windowed_studies",
    "missing_studies",
    "series_planned",
    "series_transferred",
    "series_failed",
    "images_moved",
    "images_per_minute",
    "seconds",
]


def summary_line(summary: CycleSummary) -> str:
    """One line at the top of the report, e.g. ``7/7 series, 185 images, 1,226 images/min;
    0 failed``."""
    if summary.dry_run:
        return f"dry run: {summary.series_planned} series planned, nothing moved"
    # From the figure as the report shows it (one decimal), so line and figure never disagree.
    per_minute = round(summary.images_per_minute, 1)
    return (
        f"{summary.series_transferred}/{summary.series_planned} series, "
        f"{summary.images_moved:,} images, {per_minute:,.0f} images/min; "
        f"{summary.series_failed} failed"
    )


PLAN_TABLE_COLUMNS = [
    ("study_uid", "string"),
    ("accession", "string"),
    ("modality", "string"),
    ("series_number", "int"),
    ("series_description", "string"),
    ("remote_images", "int"),
    ("local_images", "int"),
    ("action", "string"),
    ("reason", "string"),
    ("note", "string"),
]
FAILURE_COLUMNS = [
    *REPORT_COLUMNS,
    ("failing_runs", "int"),
    ("failing_since", "string"),
    ("series_uid", "string"),
]


def _table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> MetadataValue:
    records = []
    for row in frame.head(TABLE_ROWS).to_dict("records"):
        records.append(
            TableRecord({name: (None if pd.isna(row[name]) else row[name]) for name, _ in columns})
        )
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    return MetadataValue.table(records, schema=schema)


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


@op(out=Out(Cycle, description="Validated settings, window and mode of this run."))
def start_cycle(
    context: OpExecutionContext,
    config: SyncRunConfig,
    remote_pacs: DicomNodeResource,
    local_pacs: DicomNodeResource,
    sync_options: SyncOptionsResource,
    sync_lock: SyncLockResource,
) -> Cycle:
    """Validate every setting and the run config before any network traffic. Requiring
    ``sync_lock`` holds the one-sync-at-a-time lock for the whole run."""
    try:
        settings = sync_options.settings(remote_pacs, local_pacs)
        reference = config.reference(settings.zone)
        hours = config.hours(sync_options.window_hours)
        if config.window_hours is None:  # the route's window: catch up after an outage
            hours, last = route_window_hours(
                context.instance, context.job_name, sync_options, reference
            )
            _log_catch_up(context, sync_options, hours, reference, last)
        window = Window(reference, hours, settings.zone)
        selection = config.selection(sync_options.selection())
        cycle = Cycle(settings, window, selection, config.dry_run)
    except ValueError as exc:  # ConfigError included
        raise _failed(
            context, sync_options.route, Failure(description=str(exc)), "config"
        ) from None
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
    return cycle


def _log_catch_up(
    context: OpExecutionContext,
    options: SyncOptionsResource,
    hours: float,
    reference: datetime,
    last: datetime | None,
) -> None:
    if last is None or hours <= options.window_hours:
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
    started = time.monotonic()
    try:
        studies = query_studies(cycle, node, context.log)
    except DicomError as exc:
        raise _fail_on_dicom_error(context, route, exc) from None
    context.log.info(f"{node}: {len(studies)} studies dated {cycle.window.date_range_query}")
    context.add_output_metadata(
        {
            "studies": len(studies),
            "node": str(node),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return studies


@op(out=Out(pd.DataFrame, description="Remote studies dated yesterday to today."))
def query_remote_studies(
    context: OpExecutionContext, cycle: Cycle, sync_options: SyncOptionsResource
) -> pd.DataFrame:
    """C-FIND the remote PACS's studies of the date range (Study Root, STUDY level)."""
    return _query(context, cycle, "remote", sync_options.route)


@op(out=Out(pd.DataFrame, description="Local studies dated yesterday to today."))
def query_local_studies(
    context: OpExecutionContext, cycle: Cycle, sync_options: SyncOptionsResource
) -> pd.DataFrame:
    """C-FIND the local PACS's studies of the date range. A dead local fails the run."""
    return _query(context, cycle, "local", sync_options.route)


def actionable(rows: pd.DataFrame) -> pd.DataFrame:
    """The plan rows a user acts on: series to move and flagged studies (time missing or
    after the reference). The others are counted per reason, not listed: a row per complete
    study would be ~150 KB of event log a run at 2,000 studies."""
    return rows[(rows["action"] == MOVE) | (rows["note"] != "")]


@op(ins={"remote_studies": In(pd.DataFrame), "local_studies": In(pd.DataFrame)}, out=Out(Plan))
def plan_transfers(
    context: OpExecutionContext,
    cycle: Cycle,
    remote_studies: pd.DataFrame,
    local_studies: pd.DataFrame,
    sync_options: SyncOptionsResource,
) -> Plan:
    """Window, diff down to series, select by mode: one row per series with its reason."""
    route, mode = sync_options.route, cycle.selection.describe()
    try:
        settled = load_settled(context.instance, route, mode)
        plan = plan_cycle(cycle, remote_studies, local_studies, context.log, settled)
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
            **{k: v for k, v in plan.queries.items()},
            "plan": _table(actionable(plan.rows), PLAN_TABLE_COLUMNS),
        }
    )
    return plan


@op(out=Out(TransferRun, description="One record per planned series, and the wall time."))
def move_series(context: OpExecutionContext, cycle: Cycle, plan: Plan) -> TransferRun:
    """C-MOVE each planned series to the move destination and confirm it on the local PACS."""
    if cycle.dry_run:
        context.log.info(f"dry run: {len(plan.moves)} series planned, nothing moved")
        return TransferRun([])
    moved = transfer(cycle, plan, context.log)
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
    return moved


def summary_for(
    cycle: Cycle, remote: pd.DataFrame, local: pd.DataFrame, plan: Plan, moved: TransferRun
) -> CycleSummary:
    return summarize(
        mode=cycle.selection.describe(),
        dry_run=cycle.dry_run,
        reference_time=cycle.window.reference.isoformat(timespec="seconds"),
        date_range=cycle.window.date_range_query,
        remote_studies=len(remote),
        local_studies=len(local),
        windowed_studies=plan.windowed_studies,
        missing_studies=plan.missing_studies,
        series_planned=int((plan.rows["action"] == MOVE).sum()),
        transfers=moved.transfers,
        seconds=moved.seconds,
    )


def run_tags(summary: CycleSummary) -> dict[str, str]:
    """Tags that say what a run did: the retention job deletes only "idle" runs; the next
    run's window reaches back at least to the reference time of a run that was not dry."""
    outcome = "failed" if not summary.ok else "moved" if summary.series_transferred else "idle"
    tags = {
        OUTCOME_TAG: outcome,
        "dicom-sync/series-planned": str(summary.series_planned),
        "dicom-sync/images-moved": str(summary.images_moved),
    }
    if not summary.dry_run:
        tags[REFERENCE_TAG] = summary.reference_time
    if not summary.ok:
        tags[CAUSE_TAG] = f"{summary.series_failed} series failed"
    return tags


@op(out=Out(CycleSummary))
def report(
    context: OpExecutionContext,
    cycle: Cycle,
    remote_studies: pd.DataFrame,
    local_studies: pd.DataFrame,
    plan: Plan,
    transfers: TransferRun,
    sync_options: SyncOptionsResource,
) -> CycleSummary:
    """Statistics and one row per planned series; the figures on the route's archive asset;
    fails the run when any series failed."""
    summary = summary_for(cycle, remote_studies, local_studies, plan, transfers)
    frame = transfers_frame(transfers.transfers)
    # The UI shows the first rows of metadata unfolded: the summary line and the figures first.
    figures = summary.as_dict()
    metadata = {
        "summary": summary_line(summary),
        **{key: figures[key] for key in REPORT_FIGURES},
        "transfers": _table(frame, REPORT_COLUMNS),
        **{key: value for key, value in figures.items() if key not in REPORT_FIGURES},
    }
    if summary.claims_note:
        context.log.warning(summary.claims_note)
    tags = run_tags(summary)
    context.instance.add_run_tags(context.run_id, tags)
    route, limit = sync_options.route, sync_options.failing_runs_limit
    failed = frame[~frame["transferred"]].copy()
    streaks = {}
    if not summary.ok:
        streaks = failure_streaks(
            previous_streaks(context.instance, context.job_name, context.run_id),
            set(failed["series_uid"]),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
    figures = {
        **archive_figures(summary, transfers.transfers),
        "run_failed": int(not summary.ok),
        "outcome": tags[OUTCOME_TAG],
    }
    context.log_event(archive_event(route, summary.images_moved > 0, figures))
    record_check_evaluation(
        context, latest_run_evaluation(route, summary.ok, tags.get(CAUSE_TAG, ""))
    )
    if not cycle.dry_run:  # a dry run tried nothing: it neither breaks nor mends a streak
        errors = {} if failed.empty else failed.set_index("series_uid")["error"].to_dict()
        record_check_evaluation(context, failing_check_evaluation(route, streaks, limit, errors))
    if not summary.ok:
        failed["failing_runs"] = failed["series_uid"].map(lambda uid: streaks[uid][0])
        failed["failing_since"] = failed["series_uid"].map(lambda uid: streaks[uid][1])
        for row in failed[failed["failing_runs"] > limit].itertuples():
            context.log.warning(
                f"series {row.series_number} of study {row.accession or row.study_uid} has "
                f"failed in {row.failing_runs} runs in a row, since {row.failing_since}"
            )
        raise Failure(
            description=(
                f"{summary.series_failed} of {summary.series_planned} series not transferred - "
                + failure_causes(list(failed["error"]))
            ),
            metadata={
                **metadata,
                "failures": _table(failed, FAILURE_COLUMNS),
                FAILURE_STREAKS_KEY: MetadataValue.json(
                    {uid: list(streak) for uid, streak in sorted(streaks.items())}
                ),
            },
        )
    context.add_output_metadata(metadata)
    return summary


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
    metadata: dict[str, object] = {f"{c.node.role}": f"{c.node}: {c.verdict()}" for c in checks}
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

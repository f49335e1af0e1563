"""The sync job's last op, ``report``: the run's statistics and transfers table, its tags, the
figures on the route's archive asset and the asset checks; it fails the run when a series
failed."""

from datetime import datetime, timezone
from typing import Any

import pandas as pd
from dagster import Failure, In, MetadataValue, Nothing, OpExecutionContext, Out, op

from ..core.archive_figures import archive_figures
from ..core.failures import failure_causes, failure_streaks
from ..core.plan import MOVE
from ..core.summary import CycleSummary, summarize
from ..core.summary_text import summary_line
from ..core.transfers import TransferRun, transfers_frame
from ..cycle import Cycle, Plan
from .archive import archive_event, failing_check_evaluation, latest_run_evaluation
from .check_events import record_check_evaluation
from .failure_history import FAILURE_STREAKS_KEY, previous_streaks
from .resources import SyncOptionsResource
from .run_state import RunState, required
from .tables import FAILURE_COLUMNS, REPORT_COLUMNS, table
from .tags import CAUSE_TAG, OUTCOME_TAG, REFERENCE_TAG

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


def report_metadata(summary: CycleSummary, frame: pd.DataFrame) -> dict[str, object]:
    """The UI shows the first rows of metadata unfolded: the summary line and the figures
    first, then the transfers table, then the run's settings."""
    figures = summary.as_dict()
    return {
        "summary": summary_line(summary),
        **{key: figures[key] for key in REPORT_FIGURES},
        "transfers": table(frame, REPORT_COLUMNS),
        **{key: value for key, value in figures.items() if key not in REPORT_FIGURES},
    }


def _record_on_archive(
    context: OpExecutionContext,
    state: RunState,
    route: str,
    limit: int,
    tags: dict[str, str],
    failed: pd.DataFrame,
    streaks: dict[str, tuple[int, str]],
) -> None:
    """The run's figures on the archive asset and the verdicts of its two checks."""
    summary, transfers = state.summary, state.transfers
    assert summary is not None and transfers is not None
    figures = {
        **archive_figures(summary, transfers.transfers),
        "run_failed": int(not summary.ok),
        "outcome": tags[OUTCOME_TAG],
    }
    context.log_event(archive_event(route, summary.images_moved > 0, figures))
    record_check_evaluation(
        context, latest_run_evaluation(route, summary.ok, tags.get(CAUSE_TAG, ""))
    )
    if not state.cycle.dry_run:  # a dry run tried nothing: it neither breaks nor mends a streak
        errors = {} if failed.empty else failed.set_index("series_uid")["error"].to_dict()
        record_check_evaluation(context, failing_check_evaluation(route, streaks, limit, errors))


def _run_failure(
    context: OpExecutionContext,
    summary: CycleSummary,
    failed: pd.DataFrame,
    streaks: dict[str, tuple[int, str]],
    limit: int,
    metadata: dict[str, Any],
) -> Failure:
    """The run's failure: the report's metadata, the failed series with their streaks; a
    warning per series that has failed in more runs in a row than ``limit``."""
    failed["failing_runs"] = failed["series_uid"].map(lambda uid: streaks[uid][0])
    failed["failing_since"] = failed["series_uid"].map(lambda uid: streaks[uid][1])
    for row in failed[failed["failing_runs"] > limit].itertuples():
        context.log.warning(
            f"series {row.series_number} of study {row.accession or row.study_uid} has "
            f"failed in {row.failing_runs} runs in a row, since {row.failing_since}"
        )
    return Failure(
        description=(
            f"{summary.series_failed} of {summary.series_planned} series not transferred - "
            + failure_causes(list(failed["error"]))
        ),
        metadata={
            **metadata,
            "failures": table(failed, FAILURE_COLUMNS),
            FAILURE_STREAKS_KEY: MetadataValue.json(
                {uid: list(streak) for uid, streak in sorted(streaks.items())}
            ),
        },
    )


@op(ins={"transfers": In(Nothing)}, out=Out(Nothing))
def report(context: OpExecutionContext, sync_options: SyncOptionsResource) -> None:
    """Statistics and one row per planned series; the figures on the route's archive asset;
    fails the run when any series failed."""
    state = required(context.run_id)
    assert state.remote_studies is not None and state.local_studies is not None
    assert state.plan is not None and state.transfers is not None
    summary = summary_for(
        state.cycle, state.remote_studies, state.local_studies, state.plan, state.transfers
    )
    state.summary = summary
    frame = transfers_frame(state.transfers.transfers)
    metadata = report_metadata(summary, frame)
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
    _record_on_archive(context, state, route, limit, tags, failed, streaks)
    if not summary.ok:
        raise _run_failure(context, summary, failed, streaks, limit, metadata)
    context.add_output_metadata(metadata)

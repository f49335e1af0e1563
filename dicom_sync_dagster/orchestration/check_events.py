"""Asset check results recorded from the report op, the one place that needs an untyped call."""

from __future__ import annotations

from dagster import AssetCheckEvaluation, OpExecutionContext


def record_check_evaluation(context: OpExecutionContext, evaluation: AssetCheckEvaluation) -> None:
    """Record ``evaluation`` in the run of ``context``'s op.

    Dagster 1.13.27 has no typed way to do this from a plain op: yielding an AssetCheckResult
    fails ("expected to find an AssetsDefinition" - the check must belong to an asset with
    check specs), and ``DagsterInstance.report_runless_asset_event`` would detach it from the
    run. ``log_event`` does take an AssetCheckEvaluation (its body has that branch) though its
    signature names only materializations, observations and expectation results: this is the
    only call relying on that."""
    context.log_event(evaluation)  # type: ignore[arg-type]

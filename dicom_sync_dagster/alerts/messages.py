"""The words of each alert: route, node, AE and what failed, with a link to the run. Built
from the run's own events (failure descriptions, the nodes start_cycle used), which never
hold patient data: the tool does not query names or birth dates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRun

from .channels import Alert
from .settings import AlertSettings

MAX_ERROR_CHARS = 600
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


def _when(timestamp: float | None) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else None
    return moment.isoformat(timespec="seconds") if moment else "?"


def _nodes(instance: DagsterInstance, run_id: str) -> str:
    """``remote ..., local ..., move destination ...`` as the run's start_cycle recorded them."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event and event.step_key == "start_cycle":
            output: Any = event.event_specific_data  # StepOutputData (not exported)
            meta = {k: v.value for k, v in output.metadata.items()}
            parts = [str(meta.get(k, "")) for k in ("remote", "local")]
            destination = meta.get("move_destination")
            return "; ".join([p for p in parts if p] + [f"move destination {destination}"])
    return ""


def _what_failed(instance: DagsterInstance, run_id: str) -> list[str]:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        failure: Any = event.event_specific_data  # StepFailureData (not exported)
        error = failure.error
        text = error.message.strip() if error else "failed"
        text = text.removeprefix(FAILURE_PREFIX)
        if len(text) > MAX_ERROR_CHARS:
            text = text[:MAX_ERROR_CHARS] + " ..."
        lines = [f"What failed: step {event.step_key}: {text}"]
        data = failure.user_failure_data
        meta = {k: v.value for k, v in data.metadata.items()} if data else {}
        if meta.get("ae_title"):
            lines.append(
                f"Node: {meta.get('node')} PACS {meta['ae_title']}@{meta.get('host')}:"
                f"{meta.get('port')}"
            )
        return lines
    return ["What failed: the run (no step failure recorded; see the run's log)"]


def run_alert(
    kind: str,
    route: str,
    run: DagsterRun,
    end_time: float | None,
    instance: DagsterInstance,
    settings: AlertSettings,
) -> Alert:
    """A message about a finished sync run of ``route``."""
    status = run.status.value.lower()
    lines = [f"Run {run.run_id[:8]} of job {run.job_name} ({status}, {_when(end_time)})"]
    nodes = _nodes(instance, run.run_id)
    if nodes:
        lines.append(f"Nodes: {nodes}")
    if kind == "failing":
        title = f"dicom-sync: route {route} is failing"
        lines += _what_failed(instance, run.run_id)
    elif kind == "recovered":
        title = f"dicom-sync: route {route} works again"
    elif kind == "series_failing":
        title = f"dicom-sync: route {route}: series keep failing"
        lines.append(
            "The asset check no_series_failing_repeatedly failed: some series have failed in "
            "more runs in a row than failing_runs_limit; the run's failure table and the "
            "check list them by UID."
        )
    else:
        title = f"dicom-sync: route {route}: no series keeps failing"
    return Alert(kind, route, title, lines, settings.run_url(run.run_id))


def no_check_alert(
    route: str,
    job_name: str,
    minutes: float | None,
    last: datetime | None,
    settings: AlertSettings,
) -> Alert:
    """No successful check for ``minutes`` (since ``last``); ``None``: checks succeed again."""
    url = settings.job_url(job_name)
    if minutes is None or last is None:
        title = f"dicom-sync: route {route}: checks succeed again"
        return Alert("checks_back", route, title, [f"Job {job_name}: a check succeeded."], url)
    return Alert(
        "no_check",
        route,
        f"dicom-sync: route {route}: no successful check for {minutes:.0f} minutes",
        [
            f"Job {job_name}: the last successful run or check was at "
            f"{last.isoformat(timespec='seconds')} (limit: {settings.no_check_minutes:g} min).",
            "Is the schedule on and the Dagster daemon running? `dicom-sync health` says what "
            "the instance knows.",
        ],
        url,
    )

"""What users pay under `dagster dev` (see bench_user.py): a route left idle with its schedule
on and off, and a new study arriving, as the schedule ships.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from bench_common import (
    Context,
    Row,
    check,
    dagster_dev,
    graphql,
    seed_both,
    single_image_studies,
    small_synced_site,
    wait_loaded,
)
from bench_meter import cpu_delta, du_bytes, run_measured, sleep_until_second, tree_cpu
from bench_site import (
    DCMTK_ENV,
    ZONE_NAME,
    Site,
    findscu_studies_command,
    median,
    rounds,
    say,
    store_fast,
)

from dicom_sync_dagster.core.window import Window
from dicom_sync_dagster.orchestration.check_state import check_state_path
from dicom_sync_dagster.routes import DEFAULT_ROUTE, OPTION_DEFAULTS
from dicom_sync_dagster.synthetic import SyntheticStudy

SCHEDULE = "every_minute"  # the schedule of the one route the DICOM_SYNC_* variables make
WINDOW_SECOND = 40  # measuring minutes run from :40 to :40, so each holds one tick (at :00)
ARRIVAL_TIMEOUT_S = 300.0

_LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { ... on RepositoryLocation { repositories { name
    schedules { name scheduleState { id status } } } } } } } } }"""
_START = """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  __typename ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message } } }"""
_STOP = """mutation($id: String!) { stopRunningSchedule(id: $id) {
  __typename ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message } } }"""
_TICKS = """query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
  ... on Schedule { scheduleState { ticks(limit: 100) { status timestamp skipReason runIds } } }
} }"""
_RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"


def date_range() -> str:
    """The StudyDate range the route's queries use now (window 12 h, zone UTC)."""
    hours = float(OPTION_DEFAULTS["window_hours"])  # type: ignore[arg-type]
    return Window(datetime.now(timezone.utc), hours, ZoneInfo(ZONE_NAME)).date_range_query


def findscu_both(site: Site) -> tuple[float, float]:
    """Wall and CPU seconds of DCMTK's findscu asking the route's two study queries in turn."""
    walls, cpus = zip(
        *(
            run_measured(findscu_studies_command(node, date_range()), DCMTK_ENV)
            for node in (site.remote.node, site.local.node)
        ),
        strict=True,
    )
    return sum(walls), sum(cpus)


class Dev:
    """A running `dagster dev` and its one schedule, driven over GraphQL."""

    def __init__(self, process, port: int, home: Path) -> None:
        self.process, self.port, self.home = process, port, home
        entry = graphql(port, _LOCATION)["workspaceOrError"]["locationEntries"][0]
        repository = entry["locationOrLoadError"]["repositories"][0]
        self.selector = {
            "repositoryLocationName": entry["name"],
            "repositoryName": repository["name"],
            "scheduleName": SCHEDULE,
        }
        found = [s for s in repository["schedules"] if s["name"] == SCHEDULE]
        check(bool(found), f"no schedule {SCHEDULE} in {repository['schedules']}")
        self.state_id = found[0]["scheduleState"]["id"]

    def switch(self, on: bool) -> None:
        if on:
            data = graphql(self.port, _START, {"selector": self.selector})["startSchedule"]
        else:
            data = graphql(self.port, _STOP, {"id": self.state_id})["stopRunningSchedule"]
        check(data["__typename"] == "ScheduleStateResult", f"schedule on={on}: {data}")

    def ticks(self) -> list[dict]:
        found = graphql(self.port, _TICKS, {"selector": self.selector})["scheduleOrError"]
        return found["scheduleState"]["ticks"]

    def runs(self) -> int:
        return len(graphql(self.port, _RUNS)["runsOrError"]["results"])

    def wait_first_check(self, seconds: float = 180) -> None:
        """Until the schedule's check has written its record (the first tick is evaluated)."""
        path = check_state_path(self.home, DEFAULT_ROUTE)
        deadline = time.monotonic() + seconds
        while not path.exists():
            check(self.process.poll() is None, f"dagster dev exited {self.process.returncode}")
            check(time.monotonic() < deadline, f"no schedule check recorded in {seconds} s")
            time.sleep(0.5)


# -- idle: CPU per minute and the instance's growth, automation on and off ----------------------


def case_idle(ctx: Context) -> list[Row]:
    count, minutes = ctx.sizes.user_studies, ctx.sizes.idle_minutes
    block = ctx.sizes.idle_block_minutes
    folder = ctx.folder("u-idle")
    with Site.start(folder) as site:
        seconds = seed_both(site, single_image_studies(site, count, hours=23))
        say(f"idle: seeded {count} studies on both in {seconds:.1f} s")
        say(f"idle: reference: {' '.join(findscu_studies_command(site.remote.node, '<range>'))}")
        walls: list[float] = []

        def reference() -> float:
            wall, cpu = findscu_both(site)
            walls.append(wall)
            return cpu

        found = rounds(ctx.repeat, {"2 findscu CPU": reference}, "idle findscu")
        cpu_ref, wall_ref = median(found["2 findscu CPU"]), median(walls[1:])
        with dagster_dev(site, folder, ctx.dagster_yaml, schedule=None) as (process, port, home, _):
            wait_loaded(process, port)
            dev = Dev(process, port, home)
            loaded = time.time()
            dev.wait_first_check()
            say(
                f"idle: first check recorded {time.time() - loaded:.0f} s after the code "
                f"location loaded; measuring {minutes} min on, {minutes} min off, blocks of {block}"
            )
            runs_before = dev.runs()
            per_minute: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
            growth: dict[str, list[int]] = {"on": [], "off": []}
            on = True  # as shipped
            mark = sleep_until_second(WINDOW_SECOND, not_before=loaded + 60)
            for index in range(2 * (minutes // block)):
                phase = "on" if on else "off"
                if index:  # the previous block has just ended at mark
                    dev.switch(on)
                size, start, last = du_bytes(home), time.monotonic(), tree_cpu(process.pid)
                for _ in range(block):
                    mark = sleep_until_second(WINDOW_SECOND, not_before=mark + 1)
                    now, reading = time.monotonic(), tree_cpu(process.pid)
                    delta = cpu_delta(last, reading)
                    per_minute[phase].append({k: v * 60 / (now - start) for k, v in delta.items()})
                    start, last = now, reading
                    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(delta.items()))
                    say(f"idle: automation {phase}: {sum(delta.values()):.2f} CPU-s ({parts})")
                growth[phase].append(du_bytes(home) - size)
                on = not on
            runs = dev.runs() - runs_before
            ticks = [t for t in dev.ticks() if t["timestamp"] >= loaded]
    return _idle_rows(count, per_minute, growth, block, cpu_ref, wall_ref, runs, ticks, found)


def _idle_rows(
    count: int,
    per_minute: dict[str, list[dict[str, float]]],
    growth: dict[str, list[int]],
    block: int,
    cpu_ref: float,
    wall_ref: float,
    runs: int,
    ticks: list[dict],
    found: dict[str, list[float]],
) -> list[Row]:
    totals = {phase: [sum(m.values()) for m in ms] for phase, ms in per_minute.items()}
    on, off = median(totals["on"]), median(totals["off"])
    kb = {phase: sum(g) / 1024 / (block * len(g)) for phase, g in growth.items()}
    skipped = [t for t in ticks if t["status"] == "SKIPPED"]
    reasons = sorted({(t["skipReason"] or "")[:120] for t in skipped})
    note = f"ticks since load: {len(ticks)} ({len(skipped)} skipped); e.g. {reasons[:1]}"
    rows = [
        Row(
            f"idle {count} studies, `dagster dev`: CPU of the process tree per minute, "
            "automation on minus off (vs 2 findscu CPU)",
            "CPU s/min",
            on - off,
            cpu_ref,
            (on - off) / cpu_ref,
            "ratio <= 3",
            (on - off) / cpu_ref <= 3,
            note=note,
            samples={**totals, **found},
        ),
        Row("  automation on: whole tree", "CPU s/min", on, note="attribution"),
        Row("  automation off: whole tree", "CPU s/min", off, note="attribution"),
    ]
    kinds = sorted({k for ms in per_minute.values() for m in ms for k in m})
    for kind in kinds:
        part = {p: median([m.get(kind, 0.0) for m in ms]) for p, ms in per_minute.items()}
        rows.append(Row(f"  on minus off: {kind}", "CPU s/min", part["on"] - part["off"],
                        note="attribution"))  # fmt: skip
    rows += [
        Row("  2 findscu, wall", "s", wall_ref, note="attribution"),
        Row("  sync runs launched during the measured minutes", "runs", runs, note="attribution"),
        Row(
            "idle: growth of the instance folder (du) per minute, automation on",
            "KB/min",
            kb["on"],
            goal="tool <= 20 KB",
            ok=kb["on"] <= 20,
            samples={"on": [float(g) for g in growth["on"]]},
        ),
        Row("  the same, automation off", "KB/min", kb["off"], note="attribution"),
    ]
    return rows


# -- arrival: a new study on the remote reaches the local ----------------------------------------


def case_arrival(ctx: Context) -> list[Row]:
    images, repeat = ctx.sizes.arrival_images, ctx.repeat
    folder = ctx.folder("u-arrival")
    waits: list[float] = []
    totals: list[float] = []
    with (
        small_synced_site(ctx, "u-arrival") as site,
        dagster_dev(site, folder, ctx.dagster_yaml, schedule=None) as (process, port, home, _),
    ):
        wait_loaded(process, port)
        dev = Dev(process, port, home)
        dev.wait_first_check()
        for index in range(repeat):
            # Studies arrive at any second of a minute: spread the rounds over the minute.
            sleep_until_second((index + 0.5) * 60 / repeat)
            when = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=1)
            study = SyntheticStudy(when, [images], accession=f"ARRIVE{index}")
            store_fast(site.remote.node, study.datasets())
            stored_wall, stored = time.time(), time.monotonic()
            series = study.series_uids[0]
            while (got := site.local.series_instances(series)) < images:
                waited = time.monotonic() - stored
                check(waited < ARRIVAL_TIMEOUT_S, f"after {waited:.0f} s the local has {got}")
                check(process.poll() is None, f"dagster dev exited {process.returncode}")
                time.sleep(0.25)
            totals.append(time.monotonic() - stored)
            waits.append(60 - stored_wall % 60)
            say(f"arrival: round {index + 1}/{repeat}: stored at :{stored_wall % 60:02.0f}, "
                f"complete on the local {totals[-1]:.1f} s later")  # fmt: skip
    total = median(totals)
    return [
        Row(
            f"arrival: a new {images}-image study on the remote is complete on the local "
            "(`dagster dev`, schedule as shipped; local Orthanc REST)",
            "s",
            total,
            goal="tool <= 120 s",
            ok=total <= 120,
            samples={"seconds": totals, "wait for the tick": waits},
        ),
        Row(f"  worst of {len(totals)} rounds", "s", max(totals), note="attribution"),
        Row("  stored -> next tick (:00)", "s", median(waits), note="attribution"),
        Row("  next tick -> complete on the local", "s",
            median([t - w for t, w in zip(totals, waits, strict=True)]), note="attribution"),
    ]  # fmt: skip

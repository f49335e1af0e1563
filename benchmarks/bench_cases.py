"""The benchmark cases. Each starts its own pair of Orthanc servers, seeds them, and measures.

Every case returns :class:`Row` objects for the table; rows without a goal are for attribution.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_common import (
    BIN,
    HERE,
    Context,
    Row,
    check,
    dagster_dev,
    dagster_env,
    dagster_home,
    seed_both,
    single_image_studies,
    small_synced_site,
    wait_loaded,
)
from bench_site import (
    CALLING_AE,
    QUIET,
    Site,
    dcmtk_path,
    findscu_series_command,
    findscu_studies_command,
    median,
    movescu_command,
    rounds,
    run_parallel,
    run_quiet,
    say,
    series_query_file,
    store_fast,
    store_parallel,
)

from dicom_sync_dagster.core.selection import Mode
from dicom_sync_dagster.cycle import Cycle, Plan, plan_cycle, query_studies
from dicom_sync_dagster.dicom import open_session, queries
from dicom_sync_dagster.sandbox import LOOPBACK
from dicom_sync_dagster.synthetic import SyntheticStudy
from dicom_sync_dagster.transfer import transfer


def _plan(cycle: Cycle) -> Plan:
    remote = query_studies(cycle, cycle.settings.remote)
    local = query_studies(cycle, cycle.settings.local)
    return plan_cycle(cycle, remote, local, QUIET)


@contextlib.contextmanager
def _public_path() -> Iterator[None]:
    """Sessions opened inside read DIMSE responses through pynetdicom's public API (the
    fallback when the raw path fails its start-up check), for an attribution row."""
    before = os.environ.get("DICOM_SYNC_DIMSE_PATH")
    os.environ["DICOM_SYNC_DIMSE_PATH"] = "public"
    try:
        yield
    finally:
        if before is None:
            del os.environ["DICOM_SYNC_DIMSE_PATH"]
        else:
            os.environ["DICOM_SYNC_DIMSE_PATH"] = before


def _throughput_rows(
    case: str, goal: float, samples: dict[str, list[float]], extra: tuple[str, ...] = ()
) -> list[Row]:
    tool, reference = median(samples["tool"]), median(samples["reference"])
    ratio = tool / reference
    rows = [
        Row(
            case,
            "images/s",
            tool,
            reference,
            ratio,
            f"ratio >= {goal}",
            ratio >= goal,
            samples=samples,
        )
    ]
    for name in extra:
        rows.append(Row(f"  {name}", "images/s", median(samples[name]), reference,
                        median(samples[name]) / reference, note="attribution"))  # fmt: skip
    return rows


# -- 1. one series of 500 images: tool's C-MOVE vs movescu -------------------------------------


def case_move(ctx: Context) -> list[Row]:
    images = ctx.sizes.move_images
    with Site.start(ctx.folder("1-move")) as site:
        study = SyntheticStudy(site.ago(hours=1), [images], accession="BENCH-MOVE")
        seconds = store_fast(site.remote.node, study.datasets())
        say(f"1 move: seeded {images} images in {seconds:.1f} s")
        cycle = site.cycle(Mode.smallest)
        plan = _plan(cycle)
        check(len(plan.moves) == 1, f"expected one series to move, plan has {len(plan.moves)}")
        study_uid, series_uid = study.study_uid, study.series_uids[0]

        def fresh_local() -> None:
            site.delete_on_local(series_uid, "Series")
            check(site.local_series_images(series_uid) == 0, "local still has the series")

        def arrived() -> None:
            got = site.local_series_images(series_uid)
            check(got == images, f"local has {got} of {images} images after the move")

        def tool() -> float:
            fresh_local()
            started = time.monotonic()
            moved = transfer(cycle, plan, QUIET)
            seconds = time.monotonic() - started
            check(moved.transfers[0].transferred, f"tool did not transfer: {moved.transfers[0]}")
            arrived()
            return images / seconds

        def move_only() -> float:
            fresh_local()
            with open_session(cycle.settings.remote, CALLING_AE) as session:
                started = time.monotonic()
                result = session.move(study_uid, series_uid, "LOCAL")
                seconds = time.monotonic() - started
            check(result.completed == images, f"session.move: {result}")
            arrived()
            return images / seconds

        def move_only_public() -> float:
            with _public_path():
                return move_only()

        def reference() -> float:
            fresh_local()
            seconds = run_quiet(movescu_command(site, study_uid, series_uid))
            arrived()
            return images / seconds

        samples = rounds(
            ctx.repeat,
            {
                "tool": tool,
                "reference": reference,
                "session.move only": move_only,
                "session.move only, public path": move_only_public,
            },
            "1 move",
        )
    return _throughput_rows(
        f"1 C-MOVE 1 series x {images} img (cycle.transfer vs movescu)",
        0.95,
        samples,
        extra=("session.move only", "session.move only, public path"),
    )


# -- 2. one study of 4 series: transfer with 4 parallel moves vs 4 movescu ---------------------


def case_parallel(ctx: Context) -> list[Row]:
    count, size = ctx.sizes.parallel_series, ctx.sizes.parallel_images
    images = count * size
    with Site.start(ctx.folder("2-parallel")) as site:
        study = SyntheticStudy(site.ago(hours=1), [size] * count, accession="BENCH-PAR")
        seconds = store_fast(site.remote.node, study.datasets())
        say(f"2 parallel: seeded {images} images in {seconds:.1f} s")
        cycle = site.cycle(Mode.all, max_parallel_moves=count)
        plan = _plan(cycle)
        check(len(plan.moves) == count, f"expected {count} series, plan has {len(plan.moves)}")

        def fresh_local() -> None:
            site.delete_on_local(study.study_uid, "Study")
            check(not site.local_ids(study.study_uid, "Study"), "local still has the study")

        def arrived() -> None:
            got = [site.local_series_images(uid) for uid in study.series_uids]
            check(got == [size] * count, f"local has {got} images per series after the moves")

        def tool() -> float:
            fresh_local()
            started = time.monotonic()
            moved = transfer(cycle, plan, QUIET)
            seconds = time.monotonic() - started
            check(all(t.transferred for t in moved.transfers), "tool did not transfer all")
            arrived()
            return images / seconds

        def reference() -> float:
            fresh_local()
            commands = [movescu_command(site, study.study_uid, uid) for uid in study.series_uids]
            seconds = run_parallel(commands)
            arrived()
            return images / seconds

        samples = rounds(ctx.repeat, {"tool": tool, "reference": reference}, "2 parallel")
    return _throughput_rows(
        f"2 C-MOVE {count}x{size} img, {count} parallel (transfer vs {count} movescu)",
        0.90,
        samples,
    )


# -- 3. nothing missing, 2,000 studies on both: query + plan vs two findscu --------------------


def case_query(ctx: Context) -> list[Row]:
    count = ctx.sizes.query_studies
    with Site.start(ctx.folder("3-query")) as site:
        studies = single_image_studies(site, count, hours=23)
        seconds = seed_both(site, studies)
        say(f"3 query: seeded {count} studies on both in {seconds:.1f} s "
            f"({2 * count / seconds:.0f} images/s)")  # fmt: skip
        cycle = site.cycle(Mode.smallest, window_hours=24)
        date_range = cycle.window.date_range_query
        parts: dict[str, list[float]] = {"query remote": [], "query local": [], "plan_cycle": []}

        def tool() -> float:
            started = time.monotonic()
            remote = query_studies(cycle, cycle.settings.remote)
            queried_remote = time.monotonic()
            local = query_studies(cycle, cycle.settings.local)
            queried_local = time.monotonic()
            plan = plan_cycle(cycle, remote, local, QUIET)
            done = time.monotonic()
            check(len(remote) == count and len(local) == count, "not every study was found")
            check(plan.windowed_studies == count, f"windowed {plan.windowed_studies} of {count}")
            check(plan.moves.empty and not any(plan.queries.values()), f"{plan.queries}")
            parts["query remote"].append(queried_remote - started)
            parts["query local"].append(queried_local - queried_remote)
            parts["plan_cycle"].append(done - queried_local)
            return done - started

        def reference() -> float:
            remote = run_quiet(findscu_studies_command(cycle.settings.remote, date_range))
            return remote + run_quiet(findscu_studies_command(cycle.settings.local, date_range))

        samples = rounds(ctx.repeat, {"tool": tool, "reference": reference}, "3 query")
    tool_s, ref_s = median(samples["tool"]), median(samples["reference"])
    rows = [
        Row(
            f"3 nothing missing, {count} studies: query both + plan (vs 2 findscu)",
            "s",
            tool_s,
            ref_s,
            tool_s / ref_s,
            "ratio <= 1.5",
            tool_s / ref_s <= 1.5,
            samples=samples,
        )
    ]
    # parts holds the warm-up too: drop it
    for name, values in parts.items():
        rows.append(Row(f"  {name}", "s", median(values[1:]), note="attribution"))
    return rows


# -- 4. drill-down: 200 studies each missing one series ----------------------------------------


def case_drilldown(ctx: Context) -> list[Row]:
    count, per_round = ctx.sizes.drill_studies, ctx.sizes.findscu_per_round
    with Site.start(ctx.folder("4-drilldown")) as site:
        studies = [
            SyntheticStudy(site.ago(hours=1 + 10 * i / count), [1, 2], accession=f"D{i:05d}")
            for i in range(count)
        ]
        seconds = store_parallel(
            [
                (site.remote.node, [ds for s in studies for ds in s.datasets()]),
                (site.local.node, [ds for s in studies for ds in s.datasets([0])]),
            ]
        )
        say(f"4 drill-down: seeded {count} studies (local lacks one series each) in {seconds:.1f}s")
        cycle = site.cycle(Mode.all)
        remote = query_studies(cycle, cycle.settings.remote)
        local = query_studies(cycle, cycle.settings.local)
        uids = [s.study_uid for s in studies]
        sample = [uids[i * len(uids) // per_round] for i in range(per_round)]
        nodes = [cycle.settings.remote, cycle.settings.local]
        files = {
            node.role: [series_query_file(ctx.folder("4-drilldown/queries"), uid) for uid in sample]
            for node in nodes[:1]
        }

        def tool() -> float:
            started = time.monotonic()
            plan = plan_cycle(cycle, remote, local, QUIET)
            seconds = time.monotonic() - started
            made = plan.queries["remote_series_queries"] + plan.queries["local_series_queries"]
            check(made == 2 * count, f"expected {2 * count} series queries: {plan.queries}")
            if len(plan.moves) != count:
                reasons = plan.moves["reason"].value_counts().to_dict()
                say(f"4 drill-down: WARNING: expected {count} series to move, plan has "
                    f"{len(plan.moves)}: {reasons}")  # fmt: skip
            return 1000 * seconds / made

        def reference() -> float:
            times = [
                run_quiet(findscu_series_command(nodes[i % 2], uid)) for i, uid in enumerate(sample)
            ]
            return 1000 * median(times)

        def one_association() -> float:
            node = cycle.settings.remote
            command = [dcmtk_path("findscu"), "-S", "-aet", CALLING_AE, "-aec", node.ae_title]
            command += [LOOPBACK]
            command += [str(node.port), *map(str, files[node.role])]
            return 1000 * run_quiet(command) / len(sample)

        def session_find() -> float:
            times = []
            with open_session(cycle.settings.remote, CALLING_AE) as session:
                for uid in sample:
                    started = time.monotonic()
                    session.find(queries.series_of_study(uid))
                    times.append(time.monotonic() - started)
            return 1000 * median(times)

        def session_find_public() -> float:
            with _public_path():
                return session_find()

        samples = rounds(
            ctx.repeat,
            {
                "tool": tool,
                "reference": reference,
                "findscu, all queries on 1 association": one_association,
                "session.find, open association": session_find,
                "session.find, open association, public path": session_find_public,
            },
            "4 drill-down",
        )
    tool_ms, ref_ms = median(samples["tool"]), median(samples["reference"])
    rows = [
        Row(
            f"4 drill-down, {count} studies missing 1 series: ms per series query"
            " (plan_cycle vs 1 findscu each)",
            "ms/query",
            tool_ms,
            ref_ms,
            tool_ms / ref_ms,
            "tool <= 10 ms",
            tool_ms <= 10,
            samples=samples,
        )
    ]
    for name in (
        "findscu, all queries on 1 association",
        "session.find, open association",
        "session.find, open association, public path",
    ):
        rows.append(Row(f"  {name}", "ms/query", median(samples[name]), note="attribution"))
    return rows


# -- 5. dicom-sync run --once with nothing to do -----------------------------------------------


def case_cli(ctx: Context) -> list[Row]:
    folder = ctx.folder("5-cli")
    with small_synced_site(ctx, "5-cli") as site:
        home = dagster_home(folder, ctx.dagster_yaml)
        cwd = folder / "cwd"  # not the repo: the CLI would read a .env there
        cwd.mkdir(exist_ok=True)
        env = dagster_env(site, home)
        command = [str(BIN / "dicom-sync"), "run", "--once"]

        def tool() -> float:
            return run_quiet(command, env=env, cwd=cwd)

        def imports() -> float:
            code = "import dicom_sync_dagster.definitions"
            return run_quiet([sys.executable, "-c", code], env=env, cwd=cwd)

        def bare() -> float:
            return run_quiet([sys.executable, "-c", "import dagster"], env=env, cwd=cwd)

        samples = rounds(
            ctx.repeat,
            {
                "tool": tool,
                "python -c 'import dicom_sync_dagster.definitions'": imports,
                "python -c 'import dagster'": bare,
            },
            "5 cli",
        )
    tool_s = median(samples["tool"])
    rows = [
        Row(
            "5 `dicom-sync run --once`, nothing to do (wall, subprocess)",
            "s",
            tool_s,
            goal="tool <= 4 s",
            ok=tool_s <= 4,
            samples=samples,
        )
    ]
    for name in list(samples)[1:]:
        rows.append(Row(f"  {name}", "s", median(samples[name]), note="attribution"))
    return rows


# -- 6. a run launched in dagster dev over GraphQL ---------------------------------------------


def _run_phases(home: Path, runs: list[tuple[str, float]]) -> dict[str, list[float]]:
    """From the instance's event log: where each run's time went (seconds)."""
    from dagster import DagsterEventType, DagsterInstance

    marks = [
        ("client submit -> RUN_ENQUEUED (GraphQL)", None, DagsterEventType.RUN_ENQUEUED),
        (
            "RUN_ENQUEUED -> RUN_STARTING (run queue daemon picks it up)",
            DagsterEventType.RUN_ENQUEUED,
            DagsterEventType.RUN_STARTING,
        ),
        (
            "RUN_STARTING -> RUN_START (run worker process launch + imports)",
            DagsterEventType.RUN_STARTING,
            DagsterEventType.RUN_START,
        ),
        ("RUN_START -> RUN_SUCCESS (the six ops)", DagsterEventType.RUN_START,
         DagsterEventType.RUN_SUCCESS),
    ]  # fmt: skip
    phases: dict[str, list[float]] = {name: [] for name, _, _ in marks}
    with DagsterInstance.from_config(str(home)) as instance:
        for run_id, submitted in runs:
            stamps: dict[object, float] = {None: submitted}
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event and event.event_type not in stamps:
                    stamps[event.event_type] = record.timestamp
            for name, first, last in marks:
                if first in stamps and last in stamps:
                    phases[name].append(stamps[last] - stamps[first])
    return phases


def case_dev(ctx: Context) -> list[Row]:
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    folder = ctx.folder("6-dev")
    terminal = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    with (
        small_synced_site(ctx, "6-dev") as site,
        dagster_dev(site, folder, ctx.dagster_yaml) as (process, port, home, started),
    ):
        wait_loaded(process, port)
        startup = time.monotonic() - started
        say(f"6 dagster dev: code location loaded {startup:.1f} s after start")
        client = DagsterGraphQLClient(LOOPBACK, port_number=port)
        runs: list[tuple[str, float]] = []

        def tool() -> float:
            submitted_wall, submitted = time.time(), time.monotonic()
            run_id = client.submit_job_execution(
                "dicom_sync",
                run_config={"ops": {"start_cycle": {"config": {"mode": {"smallest": {}}}}}},
            )
            status = client.get_run_status(run_id)
            while status not in terminal:
                check(time.monotonic() - submitted < 180, f"run {run_id} still {status}")
                time.sleep(0.05)
                status = client.get_run_status(run_id)
            seconds = time.monotonic() - submitted
            check(status == DagsterRunStatus.SUCCESS, f"run {run_id} ended {status}")
            runs.append((run_id, submitted_wall))
            return seconds

        samples = rounds(ctx.repeat, {"tool": tool}, "6 dagster dev")
        phases = _run_phases(home, runs[1:])
    tool_s = median(samples["tool"])
    rows = [
        Row(
            "6 run in `dagster dev` via GraphQL, nothing to do: submit -> SUCCESS",
            "s",
            tool_s,
            goal="tool <= 8 s",
            ok=tool_s <= 8,
            samples=samples,
        ),
        Row("  dagster dev start -> code location loaded", "s", startup, note="attribution"),
    ]
    for name, values in phases.items():
        rows.append(Row(f"  {name}", "s", median(values), note="attribution"))
    return rows


# -- 7. 20,000 studies: peak memory of query + plan --------------------------------------------


def _memory_child(args: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(HERE / "memory_child.py"), *args],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory child failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def case_memory(ctx: Context) -> list[Row]:
    count = ctx.sizes.memory_studies
    with Site.start(ctx.folder("7-memory")) as site:
        studies = single_image_studies(site, count, hours=23)
        sample = ctx.sizes.memory_seed_sample
        seconds = seed_both(site, studies[:sample])
        rate = 2 * sample / seconds
        estimate = 2 * (count - sample) / rate
        say(f"7 memory: seeding rate {rate:.0f} images/s (both servers at once): the other "
            f"{count - sample} studies on both would take ~{estimate:.0f} s")  # fmt: skip
        mode = ctx.memory_mode
        if mode == "auto":
            mode = "real" if estimate <= ctx.sizes.memory_seed_budget_s else "synthetic"
        if mode == "real":
            seconds = seed_both(site, studies[sample:])
            say(f"7 memory: seeded the other {count - sample} studies on both in {seconds:.0f} s")
            how = (
                f"real: {count} studies x 1 image seeded on both Orthancs, measured "
                "query_studies x2 + plan_cycle over DICOM"
            )
        else:
            how = (
                f"synthetic: seeding would take ~{estimate:.0f} s > "
                f"{ctx.sizes.memory_seed_budget_s:.0f} s, so the {count}-row remote and local "
                "frames were built with core.frames.study_frame; plan_cycle on them"
            )
        say(f"7 memory: measured the {mode} way")
        args = [
            "--mode", mode, "--rows", str(count),
            "--remote-port", str(site.remote.node.port),
            "--local-port", str(site.local.node.port),
            "--reference", site.reference.isoformat(),
        ]  # fmt: skip
        results: list[dict[str, object]] = []

        def tool() -> float:
            result = _memory_child(args)
            check(result["windowed"] == count, f"windowed {result['windowed']} of {count}")
            results.append(result)
            return float(result["peak_rss_mb"])  # type: ignore[arg-type]

        def traced() -> float:
            result = _memory_child([*args, "--tracemalloc"])
            results.append(result)
            return float(result["tracemalloc_peak_mb"])  # type: ignore[arg-type]

        # Memory is deterministic to within a few MB and each child queries 2 x N studies:
        # at most 3 rounds, and one traced child (tracemalloc makes it ~2x slower).
        samples = rounds(min(ctx.repeat, 3), {"tool": tool}, "7 memory")
        say("7 memory: one more child with tracemalloc on")
        samples["tracemalloc peak of query+plan"] = [traced()]
    plain = [r for r in results if "tracemalloc_peak_mb" not in r][1:]
    peak = median(samples["tool"])
    rows = [
        Row(
            f"7 {count} studies: peak RSS of query+plan in a run-worker-like process ({mode})",
            "MB",
            peak,
            goal="tool <= 400 MB",
            ok=peak <= 400,
            note=how,
            samples=samples,
        ),
        Row(
            "  RSS after imports (dagster definitions, pandas, pynetdicom)",
            "MB",
            median([float(r["baseline_rss_mb"]) for r in plain]),  # type: ignore[arg-type]
            note="attribution",
        ),
        Row(
            "  RSS at the end (frames and plan still referenced)",
            "MB",
            median([float(r["final_rss_mb"]) for r in plain]),  # type: ignore[arg-type]
            note="attribution",
        ),
        Row(
            "  tracemalloc peak during query+plan (Python + numpy allocations)",
            "MB",
            median(samples["tracemalloc peak of query+plan"]),
            note="attribution",
        ),
        Row(
            "  seconds of query+plan (untraced child)",
            "s",
            median([float(r["seconds"]) for r in plain]),  # type: ignore[arg-type]
            note="attribution",
        ),
    ]
    return rows


CASES: dict[str, tuple[str, Callable[[Context], list[Row]]]] = {
    "move": ("1: one 500-image series, tool C-MOVE vs movescu", case_move),
    "parallel": ("2: 4x200-image study, 4 parallel moves vs 4 movescu", case_parallel),
    "query": ("3: nothing missing, 2,000 studies: query+plan vs 2 findscu", case_query),
    "drilldown": ("4: 200 studies missing a series: ms per series query", case_drilldown),
    "cli": ("5: dicom-sync run --once, nothing to do", case_cli),
    "dev": ("6: dagster dev run over GraphQL, submit -> SUCCESS", case_dev),
    "memory": ("7: 20,000 studies: peak memory of query+plan", case_memory),
}

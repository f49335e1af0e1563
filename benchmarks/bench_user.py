"""What users pay, end to end: the product as a user runs it (`dagster dev` with its schedule,
`dicom-sync run --once` as a fresh process), each against its reference in the same process.

    idle     a route under `dagster dev`, nothing to move: CPU of the whole process tree per
             minute (automation on minus off) vs `findscu` of the two study queries; and the
             instance folder's growth per idle minute
    arrival  a new study on the remote reaches the local, automation as shipped
    cold     `dicom-sync run --once` on full PACS minus on empty PACS vs 2 `findscu` (wall);
             and the run on empty PACS alone
    moves    4 series at the defaults: `run --once --all-series` minus a no-op run vs 4 movescu
    partial  one series with half of it on the local vs the same with none of it there

See benchmarks/README.md. Not run by CI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench_common import (
    BIN,
    Context,
    Row,
    check,
    dagster_env,
    dagster_home,
    seed_both,
    single_image_studies,
)
from bench_meter import run_measured
from bench_site import (
    Site,
    median,
    movescu_command,
    rounds,
    run_parallel,
    say,
    store_fast,
)
from bench_user_dev import case_arrival, case_idle, findscu_both

from dicom_sync_dagster.routes import OPTION_DEFAULTS
from dicom_sync_dagster.synthetic import SyntheticStudy

# -- cold `dicom-sync run --once` ----------------------------------------------------------------


class Cli:
    """`dicom-sync run --once` of a site with its own DAGSTER_HOME, from a folder without .env.
    Calling it runs it and returns the wall seconds from process start to exit; its CPU seconds
    (user + system, with its children) go to ``cpu``."""

    def __init__(self, site: Site, folder: Path, ctx: Context, *flags: str) -> None:
        home = dagster_home(folder, ctx.dagster_yaml)
        self.cwd = folder / "cwd"
        self.cwd.mkdir(exist_ok=True)
        self.env = dagster_env(site, home)
        self.command = self.command_of(flags)
        self.cpu: list[float] = []
        shown = " ".join([Path(self.command[0]).name, *self.command[1:]])
        say(f"command: {shown} (DAGSTER_HOME and DICOM_SYNC_* of {folder.name})")

    def command_of(self, flags: tuple[str, ...]) -> list[str]:
        return [str(BIN / "dicom-sync"), "run", "--once", *flags]

    def __call__(self) -> float:
        wall, cpu = run_measured(self.command, self.env, self.cwd)
        self.cpu.append(cpu)
        return wall


class DagsterFloor(Cli):
    """benchmarks/dagster_floor.py as a fresh process, with its own DAGSTER_HOME like ``Cli``."""

    def command_of(self, flags: tuple[str, ...]) -> list[str]:
        return [str(BIN / "python"), str(Path(__file__).with_name("dagster_floor.py"))]


def paired(samples: dict[str, list[float]], side: str, base: str) -> float:
    """Median over rounds of ``side`` minus ``base`` measured in the same round."""
    return median([a - b for a, b in zip(samples[side], samples[base], strict=True)])


def case_cold(ctx: Context) -> list[Row]:
    count = ctx.sizes.user_studies
    with (
        Site.start(ctx.folder("u-cold-full")) as full,
        Site.start(ctx.folder("u-cold-empty")) as empty,
    ):
        seconds = seed_both(full, single_image_studies(full, count, hours=23))
        say(f"cold: seeded {count} studies on both in {seconds:.1f} s")
        cpus: list[float] = []

        def reference() -> float:
            wall, cpu = findscu_both(full)
            cpus.append(cpu)
            return wall

        on_full, on_empty = (
            Cli(full, ctx.folder("u-cold-full"), ctx),
            Cli(empty, ctx.folder("u-cold-empty"), ctx),
        )
        floor = DagsterFloor(empty, ctx.folder("u-cold-floor"), ctx)
        samples = rounds(
            ctx.repeat,
            {"full": on_full, "empty": on_empty, "2 findscu": reference, "floor": floor},
            "cold",
        )
    full_s, empty_s, ref_s = (median(samples[k]) for k in ("full", "empty", "2 findscu"))
    floor_s = median(samples["floor"])
    added = paired(samples, "full", "empty")
    return [
        Row(
            f"cold `dicom-sync run --once`, {count} studies on both minus empty PACS "
            "(wall, vs 2 findscu)",
            "s",
            added,
            ref_s,
            added / ref_s,
            "ratio <= 1.5",
            added / ref_s <= 1.5,
            samples=samples,
        ),
        Row(f"  run --once, {count} studies on both (wall)", "s", full_s, note="attribution"),
        Row(
            f"  run --once, {count} studies on both (CPU)",
            "s",
            median(on_full.cpu[1:]),
            note="attribution",
        ),
        Row("  run --once, empty PACS (CPU)", "s", median(on_empty.cpu[1:]), note="attribution"),
        Row("  2 findscu (CPU)", "s", median(cpus[1:]), note="attribution"),
        Row(
            "cold `dicom-sync run --once` on empty PACS (wall)",
            "s",
            empty_s,
            goal="tool <= 3 s",
            ok=empty_s <= 3,
        ),
        Row(
            "  Dagster's floor: a trivial 2-op job in process, cold, same instance kind (wall)",
            "s",
            floor_s,
            note="attribution (benchmarks/dagster_floor.py)",
        ),
        Row(
            "  run --once on empty PACS minus Dagster's floor (wall)",
            "s",
            paired(samples, "empty", "floor"),
            note="attribution",
        ),
    ]


# -- moves at the defaults, and a half-present series --------------------------------------------


def _local_images(site: Site, study: SyntheticStudy) -> list[int]:
    return [site.local_series_images(uid) for uid in study.series_uids]


def case_moves(ctx: Context) -> list[Row]:
    count, size = ctx.sizes.user_series, ctx.sizes.user_images
    images = count * size
    folder = ctx.folder("u-moves")
    with Site.start(folder) as site:
        study = SyntheticStudy(site.ago(hours=1), [size] * count, accession="USER-MOVES")
        seconds = store_fast(site.remote.node, study.datasets())
        say(f"moves: seeded {images} images in {seconds:.1f} s; defaults: max_parallel_moves "
            f"{OPTION_DEFAULTS['max_parallel_moves']}")  # fmt: skip
        run = Cli(site, folder, ctx, "--all-series")
        cpus: dict[str, list[float]] = {"run": [], "no-op run": []}
        movescu = [movescu_command(site, study.study_uid, uid) for uid in study.series_uids]

        def fresh_local() -> None:
            site.delete_on_local(study.study_uid, "Study")
            check(not site.local_ids(study.study_uid, "Study"), "local still has the study")

        def arrived() -> None:
            got = _local_images(site, study)
            check(got == [size] * count, f"local has {got} images per series")

        def tool() -> float:
            fresh_local()
            seconds = run()
            cpus["run"].append(run.cpu[-1])
            arrived()
            return seconds

        def noop() -> float:
            if _local_images(site, study) != [size] * count:
                run_parallel(movescu)  # outside the clock: the no-op run needs all there
            seconds = run()
            cpus["no-op run"].append(run.cpu[-1])
            arrived()
            return seconds

        def reference() -> float:
            fresh_local()
            seconds = run_parallel(movescu)
            arrived()
            return seconds

        samples = rounds(
            ctx.repeat, {"run": tool, "no-op run": noop, "4 movescu": reference}, "moves"
        )
    moved_s = paired(samples, "run", "no-op run")
    tool_rate, ref_rate = images / moved_s, images / median(samples["4 movescu"])
    return [
        Row(
            f"moves {count}x{size} img at the defaults: `run --once --all-series` minus a "
            f"no-op run (vs {count} parallel movescu)",
            "images/s",
            tool_rate,
            ref_rate,
            tool_rate / ref_rate,
            "ratio >= 0.9",
            tool_rate / ref_rate >= 0.9,
            samples=samples,
        ),
        Row("  run --once --all-series (wall)", "s", median(samples["run"]), note="attribution"),
        Row("  no-op run (wall)", "s", median(samples["no-op run"]), note="attribution"),
        Row(
            "  run minus no-op run (CPU of dicom-sync)",
            "s",
            paired(cpus, "run", "no-op run"),
            note="attribution",
        ),
        Row("  run minus no-op run (wall)", "s", moved_s, note="attribution"),
    ]


def case_partial(ctx: Context) -> list[Row]:
    size = ctx.sizes.user_images
    half = size // 2
    folder = ctx.folder("u-partial")
    with Site.start(folder) as site:
        study = SyntheticStudy(site.ago(hours=1), [size], accession="USER-PARTIAL")
        store_fast(site.remote.node, study.datasets())
        run = Cli(site, folder, ctx, "--all-series")
        series = study.series_uids[0]

        def local_with(images: int) -> None:
            site.delete_on_local(series, "Series")
            if images:
                store_fast(site.local.node, study.datasets(images=images))
            got = site.local_series_images(series)
            check(got == images, f"local has {got} images, wanted {images} before the run")

        def timed() -> float:
            seconds = run()
            got = site.local_series_images(series)
            check(got == size, f"local has {got} of {size} images after the run")
            return seconds

        def partial() -> float:
            local_with(half)
            return timed()

        def whole() -> float:
            local_with(0)
            return timed()

        def noop() -> float:
            if site.local_series_images(series) != size:
                local_with(size)
            return timed()

        samples = rounds(
            ctx.repeat,
            {f"{half} of {size} local": partial, "none local": whole, "no-op run": noop},
            "partial",
        )
    base = median(samples["no-op run"])
    part_s = paired(samples, f"{half} of {size} local", "no-op run")
    whole_s = paired(samples, "none local", "no-op run")
    return [
        Row(
            f"partial: 1 series of {size} img, {half} already local: `run --once --all-series` "
            "minus a no-op run (vs none local)",
            "s",
            part_s,
            whole_s,
            part_s / whole_s,
            "ratio <= 0.65",
            part_s / whole_s <= 0.65,
            samples=samples,
        ),
        Row("  no-op run (wall)", "s", base, note="attribution"),
        Row(
            f"  {half} of {size} local: run (wall)",
            "s",
            median(samples[f"{half} of {size} local"]),
            note="attribution",
        ),
        Row("  none local: run (wall)", "s", median(samples["none local"]), note="attribution"),
    ]


CASES: dict[str, tuple[str, Callable[[Context], list[Row]]]] = {
    "idle": ("8: idle route in dagster dev: CPU/min on-off vs findscu, instance growth", case_idle),
    "arrival": ("9: a new study reaches the local, schedule as shipped", case_arrival),
    "cold": ("10: cold run --once, full minus empty PACS vs findscu; empty alone", case_cold),
    "moves": ("11: 4 series at the defaults: run --once minus no-op vs 4 movescu", case_moves),
    "partial": ("12: a series half on the local vs none there: run --once", case_partial),
}

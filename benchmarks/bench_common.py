"""What the cases share: sizes, the run's context, table rows, seeding studies, `dagster dev`
(from tests/support, as the tests start it).

Used by bench_cases.py (the tool's parts against DCMTK) and bench_user.py (what users pay).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_site import Site, say, store_parallel

from dicom_sync_dagster.synthetic import SyntheticStudy

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/run.py` puts only benchmarks/ there
    sys.path.insert(0, str(REPO))

from tests.support.dagster_dev import (  # noqa: E402 - after the path above
    clean_env,
    dagster_home,
    graphql,
    running_dagster_dev,
    wait_until_loaded,
)

__all__ = ["dagster_home", "graphql"]  # used by bench_cases.py, bench_user*.py
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Sizes:
    move_images: int = 500
    parallel_series: int = 4
    parallel_images: int = 200
    query_studies: int = 2000
    drill_studies: int = 200
    findscu_per_round: int = 10
    small_site_studies: int = 10
    memory_studies: int = 20000
    memory_seed_sample: int = 500
    memory_seed_budget_s: float = 300.0
    # bench_user.py: what users pay
    user_studies: int = 2000  # on both nodes, of the last 24 h: idle and cold cases
    idle_minutes: int = 4  # per phase (automation on, automation off)
    idle_block_minutes: int = 2  # the phases alternate in blocks of this many minutes
    user_series: int = 4
    user_images: int = 600  # per series: the moves and the partial-series cases
    arrival_images: int = 20

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            move_images=100,
            parallel_images=50,
            query_studies=300,
            drill_studies=40,
            findscu_per_round=5,
            small_site_studies=5,
            memory_studies=2000,
            memory_seed_sample=200,
            user_studies=500,
            idle_minutes=2,
            idle_block_minutes=1,
            user_images=150,
        )


@dataclass
class Context:
    work: Path
    sizes: Sizes
    repeat: int
    memory_mode: str = "auto"
    dagster_yaml: Path = REPO / "dagster.yaml"

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Row:
    case: str
    metric: str
    tool: float | None
    reference: float | None = None
    ratio: float | None = None
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# -- studies -----------------------------------------------------------------------------------


def single_image_studies(site: Site, count: int, hours: float) -> list[SyntheticStudy]:
    step = hours * 3600 / max(count, 1)
    return [
        SyntheticStudy(site.ago(seconds=60 + i * step), [1], accession=f"B{i:06d}")
        for i in range(count)
    ]


def seed_both(site: Site, studies: list[SyntheticStudy]) -> float:
    """The same instances on both servers, stored at once (each thread its own Dataset objects:
    pynetdicom encodes in place, so two threads must not share them)."""
    return store_parallel(
        [
            (site.remote.node, [ds for study in studies for ds in study.datasets()]),
            (site.local.node, [ds for study in studies for ds in study.datasets()]),
        ]
    )


def small_synced_site(ctx: Context, name: str) -> Site:
    site = Site.start(ctx.folder(name))
    studies = single_image_studies(site, ctx.sizes.small_site_studies, hours=6)
    seed_both(site, studies)
    return site


# -- the tool's instance and `dagster dev` -----------------------------------------------------


def dagster_env(site: Site, home: Path, **extra: str) -> dict[str, str]:
    """This environment without DICOM_SYNC_* and DAGSTER_*, plus the site's nodes and ``extra``."""
    return clean_env(site.env(), extra, {"DAGSTER_HOME": str(home)})


@contextlib.contextmanager
def dagster_dev(
    site: Site, folder: Path, dagster_yaml: Path, schedule: str | None = "off"
) -> Iterator[tuple[subprocess.Popen, int, Path, float]]:
    """`python -m dagster dev` on the code location, in its own process group and DAGSTER_HOME
    (tests/support/dagster_dev.py); ``schedule`` is DICOM_SYNC_SCHEDULE (None: not set, the
    schedule as shipped, on). Yields the process, its port, DAGSTER_HOME and the monotonic
    start time."""
    extra = {} if schedule is None else {"DICOM_SYNC_SCHEDULE": schedule}
    with running_dagster_dev(
        folder, clean_env(site.env(), extra), dagster_yaml=dagster_yaml
    ) as dev:
        say(
            f"command: {' '.join(dev.process.args[1:])} (DAGSTER_HOME={dev.home}, "
            f"DICOM_SYNC_SCHEDULE={'not set' if schedule is None else schedule})"
        )
        yield dev.process, dev.port, dev.home, dev.started_at


def wait_loaded(process: subprocess.Popen, port: int, seconds: float = 120) -> None:
    wait_until_loaded(port, [process], seconds, poll=0.1)

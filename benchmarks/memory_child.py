"""Case 7's measuring process: query + plan on N studies, then its peak memory as JSON.

Run by ``benchmarks/run.py`` in a fresh interpreter per measurement, so the peak RSS
(``ru_maxrss``) belongs to this work alone. It first imports the code location (as a Dagster run
worker does), so the RSS baseline is a run worker's, not a bare interpreter's.

--mode real       query_studies on both Orthancs (which hold N studies) + plan_cycle
--mode synthetic  remote and local frames of N rows built with core.frames.study_frame + plan_cycle
                  (plan_cycle still opens its two associations; with nothing missing it sends no
                  query)
--tracemalloc     also trace Python allocations during the work (slower; peak reported)
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dicom_sync_dagster.definitions  # noqa: F401 - a run worker's imports, for the baseline
from dicom_sync_dagster.core.frames import study_frame
from dicom_sync_dagster.core.selection import Selection
from dicom_sync_dagster.core.window import Window
from dicom_sync_dagster.cycle import Cycle, plan_cycle, query_studies
from dicom_sync_dagster.settings import settings_from_values

QUIET = logging.getLogger("benchmarks.memory")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def status_mb(field: str) -> float:
    """A /proc/self/status field in MB: VmRSS (now) or VmHWM (this process image's peak RSS).

    Not ``ru_maxrss``: Linux carries it over from the parent across fork+exec, so a child of a
    big parent (the benchmark holds the seeding datasets) would report the parent's RSS.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_rows(count: int, reference: datetime) -> list[dict[str, object]]:
    """Rows shaped like queries.study_row answers: N single-image studies over the last 23 h."""
    step = 23 * 3600 / count
    rows = []
    for i in range(count):
        when = reference.replace(tzinfo=None) - timedelta(seconds=60 + i * step)
        rows.append(
            {
                "study_uid": f"1.2.826.0.1.3680043.8.498.{10**12 + i * 7919}.{i}",
                "study_date": when.strftime("%Y%m%d"),
                "study_time": when.strftime("%H%M%S"),
                "tz_offset": "",
                "accession": f"B{i:06d}",
                "modalities": "OT",
                "description": "Synthetic study",
                "series_count": 1,
                "images": 1,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["real", "synthetic"], required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--remote-port", type=int, required=True)
    parser.add_argument("--local-port", type=int, required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()

    reference = datetime.fromisoformat(args.reference)
    settings = settings_from_values(
        remote=("REMOTE", "127.0.0.1", args.remote_port),
        local=("LOCAL", "127.0.0.1", args.local_port),
        calling_ae="DICOMSYNC",
        timezone="UTC",
    )
    cycle = Cycle(settings, Window(reference, 24, ZoneInfo("UTC")), Selection())
    baseline = status_mb("VmRSS")
    baseline_peak = status_mb("VmHWM")
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    started = time.monotonic()
    if args.mode == "real":
        remote = query_studies(cycle, settings.remote)
        local = query_studies(cycle, settings.local)
    else:
        rows = synthetic_rows(args.rows, reference)
        remote = study_frame(rows)
        local = study_frame(rows)
        del rows
    plan = plan_cycle(cycle, remote, local, QUIET)
    seconds = time.monotonic() - started
    result = {
        "mode": args.mode,
        "remote_rows": len(remote),
        "local_rows": len(local),
        "windowed": plan.windowed_studies,
        "moves": len(plan.moves),
        "seconds": round(seconds, 3),
        "baseline_rss_mb": round(baseline, 1),
        "baseline_peak_rss_mb": round(baseline_peak, 1),
        "final_rss_mb": round(status_mb("VmRSS"), 1),
        "peak_rss_mb": round(status_mb("VmHWM"), 1),  # imports included
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.tracemalloc:
        import tracemalloc

        result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

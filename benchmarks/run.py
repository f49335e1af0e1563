"""Benchmarks of dicom-sync-dagster against DCMTK on two throw-away Orthanc servers (127.0.0.1).

    python benchmarks/run.py                    # every case, 5 rounds each (~10-15 min)
    python benchmarks/run.py --quick            # 2 rounds, smaller sizes (~3 min)
    python benchmarks/run.py --case move --case query --repeat 3
    python benchmarks/run.py --list

Each case starts its own pair of Orthanc servers on free loopback ports, seeds them, warms each
side up once, then runs N rounds alternating the tool with the reference in this process, and
reports medians. See benchmarks/README.md. Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from bench_cases import CASES as PART_CASES
from bench_common import Context, Row, Sizes
from bench_site import dcmtk, say
from bench_user import CASES as USER_CASES

CASES = {**PART_CASES, **USER_CASES}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def revision() -> str:
    """The product's commit, and whether its package folder has uncommitted changes."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "dicom_sync_dagster"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {head}" + (" + uncommitted changes in dicom_sync_dagster/" if dirty else "")


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "images/s" or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    header = ["case", "unit", "tool", "reference", "ratio", "goal", "met"]
    lines = [
        [
            row.case,
            row.metric,
            _number(row.tool, row.metric),
            _number(row.reference, row.metric),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            row.goal or row.note,
            "-" if row.ok is None else ("yes" if row.ok else "NO"),
        ]
        for row in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-|-".join("-" * w for w in widths))
    for line in lines:
        out.append(" | ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
    return "\n".join(out)


LEGEND = (
    "Medians of the rounds. ratio = tool / reference. For images/s rows (cases 1-2) a higher\n"
    "number is faster, so ratio >= 1 means the tool is at least as fast as DCMTK; for s, ms and\n"
    "MB rows lower is better, so ratio <= 1 means the tool is at least as fast. Indented rows\n"
    "break a case down (attribution) and have no goal. DCMTK runs with TCP_NODELAY=1."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, help="rounds per case (default 5, --quick 2)")
    parser.add_argument("--quick", action="store_true", help="2 rounds and smaller sizes")
    parser.add_argument(
        "--case",
        action="append",
        choices=list(CASES),
        help="run only this case (repeatable; default: all)",
    )
    parser.add_argument(
        "--memory-mode",
        choices=["auto", "real", "synthetic"],
        default="auto",
        help="case 7: seed Orthanc for real, or build the frames synthetically; auto seeds "
        "only if the measured seeding rate says it takes <= 5 minutes",
    )
    parser.add_argument(
        "--dagster-yaml",
        type=Path,
        help="cases 5-6 and 8-12: use this instance config instead of the repo's dagster.yaml "
        "(to try a change before making it)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, (description, _) in CASES.items():
            print(f"{name:10} {description}")
        return 0
    sizes = Sizes.quick() if args.quick else Sizes()
    repeat = args.repeat or (2 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be >= 1")
    missing = [b for b in ("findscu", "movescu", "dump2dcm") if not dcmtk(b)]
    if not (shutil.which("Orthanc") or Path("/usr/sbin/Orthanc").exists()):
        missing.append("Orthanc")
    if missing:
        print(f"missing: {', '.join(missing)} (Debian packages orthanc, dcmtk)", file=sys.stderr)
        return 2

    # SIGTERM: unwind like Ctrl+C, so every server this script started is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="dicom-sync-bench-"))
    context = Context(work, sizes, repeat, args.memory_mode)
    if args.dagster_yaml:
        context.dagster_yaml = args.dagster_yaml.resolve()
    names = args.case or list(CASES)
    say(f"{machine()}; {repeat} rounds; sizes {asdict(sizes)}; work folder {work}")
    rows: list[Row] = []
    failed: list[str] = []
    started = time.monotonic()
    try:
        for name in names:
            description, function = CASES[name]
            say(f"=== case {description} (load average {os.getloadavg()[0]:.2f})")
            case_started = time.monotonic()
            try:
                rows += function(context)
            except Exception as exc:
                traceback.print_exc()
                failed.append(name)
                rows.append(Row(f"{description}", "-", None, note=f"FAILED: {exc}"[:60]))
            say(f"=== case {name} took {time.monotonic() - case_started:.0f} s "
                f"(load average {os.getloadavg()[0]:.2f})")  # fmt: skip
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Machine: {machine()}")
    print(f"Product: {revision()}")
    print(f"Rounds per case: {repeat}{' (quick sizes)' if args.quick else ''}; "
          f"total {time.monotonic() - started:.0f} s")  # fmt: skip
    print(LEGEND)
    print()
    print(table(rows))
    notes = [row for row in rows if row.note and not row.note.startswith(("attribution", "FAIL"))]
    for row in notes:
        print(f"\n{row.case.strip()}: {row.note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "repeat": repeat,
                    "quick": args.quick,
                    "rows": [asdict(replace(row)) for row in rows],
                },
                indent=2,
                default=str,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

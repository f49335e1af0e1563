"""Meters for what users pay: CPU of a whole process tree, CPU of a command, a folder's size,
and sleeping to a wall-clock second (to align measurements with schedule ticks).

Everything reads /proc or the kernel's rusage; nothing here runs inside the measured processes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    seconds: float  # utime + stime + cutime + cstime: its own CPU and that of reaped children
    kind: str


def _kind(pid: int) -> str:
    """Which part of `dagster dev` a process is, from its command line."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    line = b" ".join(words).decode(errors="replace")
    for needle, kind in (
        ("dagster-webserver", "webserver"),
        ("dagster_webserver", "webserver"),
        ("dagster-daemon", "daemon"),
        ("dagster._daemon", "daemon"),
        ("api grpc", "code server"),
        ("code-server", "code server"),
        ("execute_run", "run worker"),
        ("dagster dev", "dagster dev"),
    ):
        if needle in line:
            return kind
    return "other"


def _procs() -> dict[int, Proc]:
    out: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        rest = text[text.rindex(")") + 2 :].split()  # rest[0] is field 3 (state)
        ticks = sum(int(rest[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        out[int(name)] = Proc(int(name), int(rest[1]), ticks / TICK, "")
    return out


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds so far of ``root`` and all its descendants, per kind of process (see
    :func:`_kind`), with each process's reaped children in its own figure.

    Differences of two readings are honest for the tree as a whole: a child that ends between
    the readings shows up in its parent's cutime/cstime once reaped, or as a zombie before.
    (Per kind, a child that ends moves its seconds to its parent's kind.) A process that leaves
    the tree by being re-parented to init would be lost; `dagster dev` does not do that.
    """
    procs = _procs()
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    totals: dict[str, float] = {}
    todo = [root] if root in procs else []
    while todo:
        pid = todo.pop()
        kind = _kind(pid) if pid != root else "dagster dev"
        totals[kind] = totals.get(kind, 0.0) + procs[pid].seconds
        todo.extend(children.get(pid, []))
    return totals


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    kinds = set(before) | set(after)
    return {kind: after.get(kind, 0.0) - before.get(kind, 0.0) for kind in kinds}


def run_measured(
    command: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> tuple[float, float]:
    """Run ``command`` (output discarded); its wall seconds (start to exit) and its CPU seconds
    (user + system, its own and its children's, from the kernel via ``os.wait4``)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read()[-500:]
            raise RuntimeError(f"{command[0]} exited {process.returncode}: {tail!r}")
    return wall, usage.ru_utime + usage.ru_stime


def du_bytes(folder: Path) -> int:
    """Disk usage of ``folder`` as `du -s` counts it: allocated blocks of every file and
    folder in it, each inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, _, files in os.walk(folder):
        for path in [top, *(os.path.join(top, name) for name in files)]:
            try:
                info = os.lstat(path)
            except OSError:  # removed while we walk
                continue
            key = (info.st_dev, info.st_ino)
            if key not in seen:
                seen.add(key)
                total += info.st_blocks * 512
    return total


def sleep_until_second(second: float, not_before: float | None = None) -> float:
    """Sleep until the next wall-clock time at ``second`` past a full minute (UTC), at or after
    ``not_before`` (a time.time(), default now); returns that time.time()."""
    start = time.time() if not_before is None else max(not_before, time.time())
    target = start - start % 60 + second
    if target < start:
        target += 60
    while (left := target - time.time()) > 0:
        time.sleep(min(left, 5))
    return target

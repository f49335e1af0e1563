"""Runs that died without saying so (SIGKILL, a crash, a power cut) are marked failed, so they
cannot make the schedule and `dicom-sync run` skip for ever (without the daemon's run
monitoring nothing else would).

A sync run holds its route's lock file for its whole life and writes its run id and process
id into it. A run of the route still recorded as started is dead when the lock is free, the
lock file names that run, and that process is gone: no process has its pid, or the one that
has it started at another moment (after a reboot, a pid is soon another process's). (One
host, as the lock itself.)
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import socket
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from ..routes import DEFAULT_ROUTE, state_suffix
from .private_files import open_private

_HOLDER = re.compile(
    r"^run ([0-9a-f-]{8,64}) \(pid (\d+)(?:, started (\d+), boot ([0-9a-f-]{36}))?\)$"
)
LIVE = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# On the runs `dicom-sync run` executes in its own process:
# "<run id> <pid> <start ticks> <boot id> <pid namespace> <host>". Such a run killed before it
# wrote the lock (starting, or waiting for another run's lock) is dead once that process is
# gone. The run id keeps a re-execution (which copies its parent's tags) from being judged by
# its parent's process; boot, namespace and host keep another machine, another boot or
# another container from being judged by this one's processes.
PROCESS_TAG = "dicom-sync/process"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@functools.cache
def _here() -> tuple[str, str, str] | None:
    """This boot of this machine (its boot id: unlike the boot time, no clock step changes it),
    this pid namespace and this host: where a recorded process can be judged. Read once."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return None
    return (boot, namespace, socket.gethostname()) if boot else None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux /proc): with the pid and
    the boot it names one process. ``None`` when it cannot be read."""
    stat = _read(f"/proc/{pid}/stat")
    try:
        return str(int(stat.rsplit(")", 1)[1].split()[19])) if stat else None
    except (ValueError, IndexError):
        return None


def lock_text(run_id: str, pid: int) -> str:
    """What a run writes into the lock file it holds: its run id, its pid, and when that
    process started in which boot."""
    started, here = process_start(pid), _here()
    known = f", started {started}, boot {here[0]}" if started and here else ""
    return f"run {run_id} (pid {pid}{known})"


def process_tags(run_id: str) -> dict[str, str]:
    """Tags for run ``run_id`` this process executes itself (PROCESS_TAG); none when this
    process cannot be named."""
    pid = os.getpid()
    started, here = process_start(pid), _here()
    if started is None or here is None:
        return {}
    return {PROCESS_TAG: " ".join([run_id, str(pid), started, *here])}


def _process_gone(run: DagsterRun) -> bool:
    """Whether ``run`` was executed by a process of this boot, pid namespace and host
    (PROCESS_TAG) that is gone."""
    fields = run.tags.get(PROCESS_TAG, "").split(" ")
    if len(fields) != 6:
        return False
    run_id, pid, started, boot, namespace, host = fields
    if run_id != run.run_id or not pid.isdigit() or int(pid) == os.getpid():
        return False
    if (boot, namespace, host) != _here():
        return False  # another machine, boot or container: not ours to judge
    return not _alive(int(pid), started, boot)


def _route_of(job_name: str) -> str:
    return DEFAULT_ROUTE if job_name == "dicom_sync" else job_name.removeprefix("sync_")


def lock_path(instance: DagsterInstance, job_name: str) -> Path:
    from .resources import LOCK_FILE  # resources imports this module

    suffix = state_suffix(_route_of(job_name))
    return Path(instance.root_directory) / LOCK_FILE.format(suffix=suffix)


def _alive(pid: int, started: str | None, boot: str | None) -> bool:
    """Whether process ``pid`` still runs: it lives, in the same boot, and started when
    recorded (a lock without ``started``, from an older version: the pid alone)."""
    here = _here()
    if boot is not None and here is not None and boot != here[0]:
        return False  # the machine has restarted since
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return started is None or process_start(pid) in (started, None)


def dead_holder(path: Path) -> str | None:
    """The run id the lock file names when the lock is free and that run's process is gone;
    ``None`` when the lock is held, unreadable, or its process still lives."""
    try:
        fd = open_private(path, os.O_RDWR)
    except OSError:
        return None  # no lock file (no run got as far as the lock), or a link: not ours
    with open(fd, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a live process holds it
        try:
            match = _HOLDER.match(handle.read(200).strip())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    if match is None or _alive(int(match[2]), match[3], match[4]) or int(match[2]) == os.getpid():
        return None
    return match[1]


def fail_dead_runs(instance: DagsterInstance, job_name: str) -> list[str]:
    """Mark failed the started runs of ``job_name`` whose process died holding the route's
    lock, and those `dicom-sync run` executed in a process that is gone (PROCESS_TAG); their
    run ids."""
    statuses = [*LIVE, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]
    records = instance.get_run_records(filters=RunsFilter(job_name=job_name, statuses=statuses))
    if not records:
        return []
    dead = dead_holder(lock_path(instance, job_name))
    failed = []
    for record in records:
        run = record.dagster_run
        holder = dead is not None and run.run_id == dead and run.status in LIVE
        if holder or _process_gone(run):
            instance.report_run_failed(
                run,
                "the run's process is gone (killed?)"
                + (" and its lock is free" if holder else "")
                + ": marked failed so that the next run can start",
            )
            failed.append(run.run_id)
    return failed

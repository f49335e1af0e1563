"""Child processes in a process group of their own, stopped as a whole.

`dagster dev` starts a webserver, a daemon, a code server and run workers; they all stay in the
group of the process we started, so one signal to the group reaches them all, as Ctrl+C in a
terminal does. Used by the demo at runtime, and by the tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def start_group(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``command`` as the leader of a new process group (a session of its own), its
    stdout and stderr appended to ``log``; ``cwd`` and ``env`` default to this process's."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(
    process: subprocess.Popen, first: int = signal.SIGINT, seconds: float = 30.0
) -> bool:
    """Send ``first`` to the process group that ``process`` leads, wait up to ``seconds`` for
    it to exit, then SIGKILL whatever is left of the group (children that outlived it too).
    True when ``process`` exited within ``seconds`` of ``first`` (or had exited before)."""
    clean = True
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            clean = False
        except ProcessLookupError:
            pass
    # Only the group of a child we started (its PID is its group's ID).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return clean

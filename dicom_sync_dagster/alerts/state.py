"""What the alerts last said per route (the debounce): a small JSON file in the instance
folder. (Each route's schedule check keeps its own, orchestration/check_state.py.)"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..orchestration.private_files import open_private, read_private, replace_private

ALERT_STATE_FILE = "dicom-sync-alerts.json"


@dataclass
class RouteAlertState:
    """What the last messages told about a route (a route never seen counts as healthy)."""

    failing: bool = False
    series_failing: bool = False
    no_check: bool = False


@contextmanager
def alert_state(root: str | Path) -> Iterator[dict[str, RouteAlertState]]:
    """The routes' alert states, locked against other sensors for a read-modify-write; saved
    when the block ends without an exception (then the messages went out)."""
    path = Path(root) / ALERT_STATE_FILE
    with os.fdopen(open_private(path.with_suffix(".lock")), "r") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            raw = json.loads(read_private(path))
        except (OSError, ValueError):
            raw = {}
        known = set(RouteAlertState.__dataclass_fields__)
        states = {
            route: RouteAlertState(**{k: v for k, v in value.items() if k in known})
            for route, value in raw.items()
            if isinstance(value, dict)
        }
        yield states
        replace_private(path, json.dumps({r: asdict(s) for r, s in states.items()}, indent=1))

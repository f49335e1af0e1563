"""What the alerts last said per route (the debounce), and the checks' own state files; both
small JSON files in the instance folder."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..routes import state_suffix

ALERT_STATE_FILE = "dicom-sync-alerts.json"
CHECK_STATE_FILE = "dicom-sync-check{suffix}.json"  # written by each route's schedule check


@dataclass
class RouteAlertState:
    """What the last messages told about a route (a route never seen counts as healthy)."""

    failing: bool = False
    failing_since: str = ""
    series_failing: bool = False
    no_check: bool = False


@contextmanager
def alert_state(root: str | Path) -> Iterator[dict[str, RouteAlertState]]:
    """The routes' alert states, locked against other sensors for a read-modify-write; saved
    when the block ends without an exception (then the messages went out)."""
    path = Path(root) / ALERT_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            raw = {}
        known = set(RouteAlertState.__dataclass_fields__)
        states = {
            route: RouteAlertState(**{k: v for k, v in value.items() if k in known})
            for route, value in raw.items()
            if isinstance(value, dict)
        }
        yield states
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({r: asdict(s) for r, s in states.items()}, indent=1))
        temporary.replace(path)


@dataclass(frozen=True)
class CheckState:
    """A route's latest schedule check: when, whether it succeeded, and its figures."""

    checked_at: datetime
    ok: bool
    figures: dict


def read_check_state(root: str | Path, route: str) -> CheckState | None:
    """The route's check file, or ``None`` when it is missing or unreadable."""
    path = Path(root) / CHECK_STATE_FILE.format(suffix=state_suffix(route))
    try:
        raw = json.loads(path.read_text())
        checked_at = datetime.fromisoformat(str(raw["checked_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if checked_at.tzinfo is None:
        return None  # a time without a zone cannot be compared safely
    figures = raw.get("figures") if isinstance(raw.get("figures"), dict) else {}
    return CheckState(checked_at, bool(raw.get("ok")), figures)

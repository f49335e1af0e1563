"""Which studies the last plan found nothing to move in, per mode, kept in the instance folder
so the next run need not list their series again while their counts stay the same."""

import json
from pathlib import Path

from dagster import DagsterInstance

from ..routes import state_suffix

STATE_FILE = "dicom-sync-settled{suffix}.json"  # one per route


def _path(instance: DagsterInstance, route: str) -> Path:
    return Path(instance.root_directory) / STATE_FILE.format(suffix=state_suffix(route))


def load_settled(instance: DagsterInstance, route: str, mode: str) -> dict[str, tuple[int, int]]:
    """The settled studies recorded for ``mode`` (a Selection.describe() text); empty when
    there are none or the file is unreadable (the run then simply looks at every study)."""
    try:
        state = json.loads(_path(instance, route).read_text())
    except (OSError, ValueError):
        return {}
    if state.get("mode") != mode:
        return {}
    return {uid: (int(r), int(lo)) for uid, (r, lo) in state.get("studies", {}).items()}


def save_settled(
    instance: DagsterInstance, route: str, mode: str, studies: dict[str, tuple[int, int]]
) -> None:
    """Replace the record (only studies still in the window are kept, so it stays small)."""
    path = _path(instance, route)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"mode": mode, "studies": studies}))
    temporary.replace(path)

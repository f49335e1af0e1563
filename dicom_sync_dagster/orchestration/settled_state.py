"""Which studies the last plan found nothing to move in, per mode, kept in the instance folder
so the next run need not list their series again while their counts stay the same. The file
holds StudyInstanceUIDs: 0600, never written through a link (private_files)."""

import json
from pathlib import Path

from dagster import DagsterInstance

from ..routes import state_suffix
from .private_files import read_private, replace_private

STATE_FILE = "dicom-sync-settled{suffix}.json"  # one per route


def _path(instance: DagsterInstance, route: str) -> Path:
    return Path(instance.root_directory) / STATE_FILE.format(suffix=state_suffix(route))


def load_settled(instance: DagsterInstance, route: str, mode: str) -> dict[str, tuple[int, int]]:
    """The settled studies recorded for ``mode`` (a Selection.describe() text); empty when
    there are none or the file is unreadable (the run then simply looks at every study)."""
    try:
        state = json.loads(read_private(_path(instance, route)))
        if not isinstance(state, dict) or state.get("mode") != mode:
            return {}
        return {str(u): (int(r), int(lo)) for u, (r, lo) in state.get("studies", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def save_settled(
    instance: DagsterInstance, route: str, mode: str, studies: dict[str, tuple[int, int]]
) -> None:
    """Replace the record (only studies still in the window are kept, so it stays small)."""
    replace_private(_path(instance, route), json.dumps({"mode": mode, "studies": studies}))

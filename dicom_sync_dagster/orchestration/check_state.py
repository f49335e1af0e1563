"""The latest check of each route, kept in the instance folder: when it ran, whether it could
tell, its figures, and (for a check that found nothing to move) the reference time up to which
the remote was examined, which the catch-up window reaches back to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..routes import state_suffix
from .private_files import read_private, replace_private

STATE_FILE = "dicom-sync-check{suffix}.json"  # one per route


def check_state_path(root_directory: str | Path, route: str) -> Path:
    return Path(root_directory) / STATE_FILE.format(suffix=state_suffix(route))


@dataclass(frozen=True)
class CheckState:
    checked_at: str  # ISO 8601, UTC
    ok: bool  # the check could tell (both nodes answered)
    figures: dict[str, float]
    reference_time: str = ""  # ISO 8601; set when the check found nothing to move
    error: str = ""

    def covered_reference(self) -> datetime | None:
        if not (self.ok and self.reference_time):
            return None
        try:
            return datetime.fromisoformat(self.reference_time)
        except ValueError:
            return None


def read_check_state(root_directory: str | Path, route: str) -> CheckState | None:
    """The route's latest check, or None when there is none (or the file is unreadable)."""
    try:
        data = json.loads(read_private(check_state_path(root_directory, route)))
        return CheckState(
            checked_at=str(data["checked_at"]),
            ok=bool(data["ok"]),
            figures=dict(data.get("figures", {})),
            reference_time=str(data.get("reference_time", "")),
            error=str(data.get("error", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_check_state(root_directory: str | Path, route: str, state: CheckState) -> None:
    """Replace the record atomically (a private file; a link planted there is not followed)."""
    replace_private(check_state_path(root_directory, route), json.dumps(asdict(state)))

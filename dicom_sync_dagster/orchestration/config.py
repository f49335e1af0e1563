"""Configuration of the sync job's start_cycle op: what the Launchpad's choices become (see
launchpad.py, which checks them first). Errors name the Launchpad's config path."""

from datetime import datetime, timezone, tzinfo

from dagster import Config
from pydantic import Field

from ..core.selection import Mode, Selection
from ..options import WINDOW_HOURS

PATH = "ops.start_cycle.config."  # the Launchpad's path of the fields, for errors


class SyncRunConfig(Config):
    """What one sync run does."""

    mode: Mode | None = Field(
        default=None,
        description="smallest: per study the series with the fewest images; fewer_than: every "
        "series with fewer than image_limit images; all: every series. Only series not yet "
        "complete on the local PACS are moved. Empty: the route's mode (DICOM_SYNC_MODE or "
        "dicom_sync.yaml).",
    )
    image_limit: int | None = Field(
        default=None, description="For mode fewer_than: move series with fewer images than this."
    )
    window_hours: float | None = Field(
        default=None,
        description="Look at studies acquired within this many hours before now; empty: the "
        "route's window (12 unless dicom_sync.yaml says otherwise).",
    )
    catch_up: bool = Field(
        default=True,
        description="After an outage, stretch the window back to the last run that examined "
        "the remote (at most catch_up_max_hours).",
    )
    dry_run: bool = Field(default=False, description="Plan and report, but move nothing.")
    reference_time: str = Field(
        default="",
        description="ISO 8601 time the window ends at; empty: the schedule tick, or now.",
    )

    def selection(self, route_default: Selection) -> Selection:
        """The mode chosen for this run, else the route's (with this run's limit, if any)."""
        mode = self.mode or route_default.mode
        limit = self.image_limit
        if limit is None and mode is route_default.mode:
            limit = route_default.image_limit
        if self.image_limit is not None and mode is not Mode.fewer_than:
            raise ValueError(
                f"{PATH}image_limit={self.image_limit!r} is only for mode fewer_than, "
                f"and this run's mode is {mode.value} (set mode: {{fewer_than: {{image_limit: "
                f"{self.image_limit}}}}})"
            )
        try:
            return Selection(mode, limit)
        except ValueError as exc:
            raise ValueError(f"{PATH}mode: {exc}") from None

    def hours(self, route_default: float) -> float:
        hours = route_default if self.window_hours is None else self.window_hours
        problem = WINDOW_HOURS.problem(f"{PATH}window_hours", hours)
        if problem:
            raise ValueError(problem)
        return hours

    def reference(self, zone: tzinfo) -> datetime:
        """The window's end; a time without offset is read in the PACS zone."""
        if not self.reference_time:
            return datetime.now(timezone.utc)
        try:
            parsed = datetime.fromisoformat(self.reference_time)
        except ValueError:
            raise ValueError(
                f"{PATH}reference_time={self.reference_time!r} is not an ISO 8601 time"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)

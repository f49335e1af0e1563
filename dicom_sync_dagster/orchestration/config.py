"""Run configuration of the sync job, as chosen in the Launchpad."""

from datetime import datetime, timezone, tzinfo

from dagster import Config
from pydantic import Field

from ..core.selection import Mode, Selection


class SyncRunConfig(Config):
    """What one sync run does."""

    mode: Mode = Field(
        default=Mode.smallest,
        description="smallest: per study the series with the fewest images; fewer_than: every "
        "series with fewer than image_limit images; all: every series. Only series not yet "
        "complete on the local PACS are moved.",
    )
    image_limit: int | None = Field(
        default=None, description="For mode fewer_than: move series with fewer images than this."
    )
    window_hours: float = Field(
        default=12.0, description="Look at studies acquired within this many hours before now."
    )
    dry_run: bool = Field(default=False, description="Plan and report, but move nothing.")
    reference_time: str = Field(
        default="",
        description="ISO 8601 time the window ends at; empty: the schedule tick, or now.",
    )

    def selection(self) -> Selection:
        try:
            return Selection(self.mode, self.image_limit)
        except ValueError as exc:
            raise ValueError(f"run config: {exc}") from None

    def reference(self, zone: tzinfo) -> datetime:
        """The window's end; a time without offset is read in the PACS zone."""
        if not self.reference_time:
            return datetime.now(timezone.utc)
        try:
            parsed = datetime.fromisoformat(self.reference_time)
        except ValueError:
            raise ValueError(
                f"run config: reference_time={self.reference_time!r} is not an ISO 8601 time"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)

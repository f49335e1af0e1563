"""What each node answers: C-ECHO, a one-row C-FIND, and which optional return keys it fills."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from .core.frames import valid_uid
from .dicom import DicomError, DicomNode, open_session, queries
from .settings import SyncSettings

OPTIONAL_KEYS = (
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
    "ModalitiesInStudy",
)


@dataclass
class NodeCheck:
    """The verdict for one node; ``supports`` is None for a key that could not be tested
    (no study in the date range)."""

    node: DicomNode
    echo_ms: float | None = None
    find_ms: float | None = None
    error: str = ""
    supports: dict[str, bool | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error

    def verdict(self) -> str:
        if not self.ok:
            return f"FAILED - {self.error}"
        return f"OK: C-ECHO {self.echo_ms:.0f} ms, C-FIND {self.find_ms:.0f} ms"


def check_node(node: DicomNode, settings: SyncSettings, date_range: str) -> NodeCheck:
    """C-ECHO, then one study of ``date_range`` and its series, over one association."""
    check = NodeCheck(node, supports=dict.fromkeys(OPTIONAL_KEYS))
    try:
        with open_session(node, settings.calling_ae, settings.timeouts) as session:
            started = time.monotonic()
            status = session.echo()
            check.echo_ms = (time.monotonic() - started) * 1000
            if status != 0:
                check.error = f"C-ECHO answered 0x{status:04X}"
                return check
            started = time.monotonic()
            studies: list[Dataset] = session.find(queries.studies_by_date(date_range), limit=1)
            check.find_ms = (time.monotonic() - started) * 1000
            if studies:
                study = studies[0]
                for key in ("NumberOfStudyRelatedInstances", "ModalitiesInStudy"):
                    check.supports[key] = queries.text(study, key) != ""
                uid = queries.text(study, "StudyInstanceUID")
                valid = valid_uid(uid)  # an invalid one is never sent
                series: list[Dataset] = (
                    session.find(queries.series_of_study(uid), limit=1) if valid else []
                )
                if series:
                    has_count = queries.text(series[0], "NumberOfSeriesRelatedInstances") != ""
                    check.supports["NumberOfSeriesRelatedInstances"] = has_count
    except DicomError as exc:
        check.error = exc.reason
    return check

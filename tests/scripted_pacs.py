"""A scripted pynetdicom Q/R SCP, for faults that real servers will not produce on demand:
a chosen C-MOVE failure status, a partial move, a stall, an abort mid-move.

It holds its instances in memory, answers Study Root C-FINDs about them (with instance
counts) and performs C-MOVEs for real (C-STOREs to the destination, e.g. a real Orthanc),
except where its script says otherwise. Each C-MOVE request takes the next script step:
  "ok"                 move the series
  0xA701 (any int)     answer that final status at once, move nothing
  ("partial", k)       move k instances, then end with 0xB000 (the rest counted failed)
  ("stall", seconds)   send nothing for that long, then move the series
  ("abort", k)         move k instances, then abort the association
  ("quiet", k)         move the series; pending responses only for the first k instances and
                       a final response without sub-operation counts (both allowed by PS3.4;
                       pynetdicom always sends them, so they are held back / taken off the
                       primitives on their way out)
  ("duplicate", k)     send the first k instances twice instead of the last k: every C-STORE
                       succeeds, so the final response claims them all completed
When the script runs out, every further request is "ok".

``extra_studies`` are study-level answers given to every study query by date besides those of
its instances (a broken or hostile remote: invalid UIDs, impossible counts); ``finds`` records
the StudyInstanceUID of every C-FIND it was asked.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.sop_class import (
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom_sync_dagster.dicom import DicomNode
from dicom_sync_dagster.sandbox import LOOPBACK, free_port


class ScriptedPacs:
    def __init__(
        self,
        ae_title: str,
        datasets: Iterable[Dataset],
        destinations: dict[str, int],
        script: list | None = None,
        extra_studies: Iterable[Dataset] = (),
    ) -> None:
        self.node = DicomNode("remote", ae_title, LOOPBACK, free_port())
        self.instances: dict[str, dict[str, list[Dataset]]] = defaultdict(lambda: defaultdict(list))
        for ds in datasets:
            self.instances[ds.StudyInstanceUID][ds.SeriesInstanceUID].append(ds)
        self.destinations = destinations
        self.script = list(script or [])
        self.moves: list[str] = []  # SeriesInstanceUIDs asked for, in order
        self.extra_studies = list(extra_studies)
        self.finds: list[str] = []  # StudyInstanceUID of each C-FIND identifier
        self.move_levels: list[str] = []  # the QueryRetrieveLevel of each C-MOVE request
        self.release = threading.Event()
        self.server = None

    def start(self) -> ScriptedPacs:
        ae = AE(ae_title=self.node.ae_title)
        for context in (
            Verification,
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
        ):
            ae.add_supported_context(context)
        ae.add_requested_context(SecondaryCaptureImageStorage)
        handlers = [(evt.EVT_C_FIND, self._find), (evt.EVT_C_MOVE, self._move)]
        self.server = ae.start_server(
            (LOOPBACK, self.node.port), block=False, evt_handlers=handlers
        )
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server:
            self.server.shutdown()

    # -- C-FIND ---------------------------------------------------------------------------
    def _find(self, event):
        query = event.identifier
        level = query.QueryRetrieveLevel
        self.finds.append(str(query.get("StudyInstanceUID", "")))
        wanted = set(str(query.get("StudyInstanceUID", "")).split("\\")) - {""}
        if level == "STUDY" and not wanted:
            for answer in self.extra_studies:
                yield 0xFF00, answer
        for study_uid, series in self.instances.items():
            if wanted and study_uid not in wanted:
                continue
            first = next(iter(series.values()))[0]
            if level == "STUDY":
                yield (
                    0xFF00,
                    self._answer(
                        first,
                        "STUDY",
                        NumberOfStudyRelatedInstances=sum(len(v) for v in series.values()),
                        NumberOfStudyRelatedSeries=len(series),
                    ),
                )
                continue
            for series_uid, instances in series.items():
                if query.get("SeriesInstanceUID") and query.SeriesInstanceUID != series_uid:
                    continue
                if level == "SERIES":
                    yield (
                        0xFF00,
                        self._answer(
                            instances[0], "SERIES", NumberOfSeriesRelatedInstances=len(instances)
                        ),
                    )
                elif level == "IMAGE":
                    for ds in instances:
                        yield 0xFF00, self._answer(ds, "IMAGE")

    @staticmethod
    def _answer(ds: Dataset, level: str, **counts: int) -> Dataset:
        answer = Dataset()
        answer.QueryRetrieveLevel = level
        keywords = ["StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber"]
        if level in ("SERIES", "IMAGE"):
            keywords += ["SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"]
        if level == "IMAGE":
            keywords.append("SOPInstanceUID")
        for keyword in keywords:
            setattr(answer, keyword, ds.get(keyword, ""))
        for keyword, value in counts.items():
            setattr(answer, keyword, value)
        return answer

    # -- C-MOVE ---------------------------------------------------------------------------
    def _move(self, event):
        query = event.identifier
        series_uid = str(query.SeriesInstanceUID)
        self.moves.append(series_uid)
        self.move_levels.append(str(query.QueryRetrieveLevel))
        instances = self.instances[str(query.StudyInstanceUID)][series_uid]
        step = self.script.pop(0) if self.script else "ok"
        if event.move_destination.strip() not in self.destinations:
            yield None, None  # pynetdicom answers 0xA801 Move Destination Unknown
            return
        yield LOOPBACK, self.destinations[event.move_destination.strip()]
        yield len(instances)
        if isinstance(step, int):
            yield step, None
            return
        kind, arg = (step, None) if isinstance(step, str) else step
        if kind == "stall":
            self.release.wait(arg)
        if kind == "quiet":
            _quiet_after(event.assoc, arg)
        count = arg if kind in ("partial", "abort") else len(instances)
        sent = instances[:count]
        if kind == "duplicate":
            sent = instances[: len(instances) - arg] + instances[:arg]
        for ds in sent:
            yield 0xFF00, ds
        if kind == "partial":
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = [ds.SOPInstanceUID for ds in instances[count:]]
            yield 0xB000, failed
        elif kind == "abort":
            time.sleep(0.1)
            event.assoc.abort()


COUNTS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)


def _quiet_after(assoc, pending: int) -> None:
    """No pending C-MOVE response after ``pending`` completed sub-operations, and the next
    final response without its four counts."""
    send = assoc.dimse.send_msg

    def send_msg(primitive, context_id):
        if isinstance(primitive, C_MOVE) and primitive.Status in (0xFF00, 0xFF01):
            if (primitive.NumberOfCompletedSuboperations or 0) > pending:
                return None
        elif isinstance(primitive, C_MOVE) and primitive.Status is not None:
            for name in COUNTS:
                setattr(primitive, name, None)
            assoc.dimse.send_msg = send  # once
        return send(primitive, context_id)

    assoc.dimse.send_msg = send_msg

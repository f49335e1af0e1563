"""Synthetic studies for tests, the demo and benchmarks, and a C-STORE to put them on a PACS."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pynetdicom import AE

from .dicom.node import DicomNode
from .dicom.session import disable_nagle

_PIXELS = bytes(range(64)) * 2  # 8x8, 16 bits


@dataclass
class SyntheticStudy:
    """A study of ``series_sizes`` images per series, acquired at ``when`` (local wall time)."""

    when: datetime
    series_sizes: Sequence[int]
    accession: str = ""
    modality: str = "CT"
    study_time: str | None = None  # overrides the TM written, e.g. "1230" or "" for none
    tz_offset: str | None = None
    patient_name: str = "SYNTHETIC^PATIENT"
    charset: str = "ISO_IR 192"  # SpecificCharacterSet, e.g. "ISO_IR 100" (Latin-1)
    series_label: str = "Series"  # SeriesDescription is "<label> <n> (<k> images)"
    study_uid: str = field(default_factory=generate_uid)
    series_uids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        while len(self.series_uids) < len(self.series_sizes):
            self.series_uids.append(generate_uid())

    def datasets(
        self, series: Iterable[int] | None = None, images: int | None = None
    ) -> list[Dataset]:
        """The instances of the chosen series (all by default); ``images`` caps each series."""
        indexes = range(len(self.series_sizes)) if series is None else series
        out: list[Dataset] = []
        for index in indexes:
            count = (
                self.series_sizes[index]
                if images is None
                else min(images, self.series_sizes[index])
            )
            out.extend(self._instance(index, number) for number in range(1, count + 1))
        return out

    def _instance(self, series_index: int, number: int) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = SecondaryCaptureImageStorage
        # Deterministic per (series, number), so a re-send is the same instance.
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[self.series_uids[series_index], str(number)])
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SpecificCharacterSet = self.charset
        ds.PatientName = self.patient_name
        ds.PatientID = f"PID{self.study_uid[-6:]}"
        ds.PatientBirthDate = "19700101"
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = self.series_uids[series_index]
        ds.StudyDate = self.when.strftime("%Y%m%d")
        ds.StudyTime = self.when.strftime("%H%M%S") if self.study_time is None else self.study_time
        if self.tz_offset:
            ds.TimezoneOffsetFromUTC = self.tz_offset
        ds.AccessionNumber = self.accession
        ds.StudyDescription = "Synthetic study"
        ds.Modality = self.modality
        ds.SeriesNumber = series_index + 1
        ds.SeriesDescription = (
            f"{self.series_label} {series_index + 1} ({self.series_sizes[series_index]} images)"
        )
        ds.InstanceNumber = number
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = _PIXELS
        return ds


def store(node: DicomNode, datasets: Sequence[Dataset], calling_ae: str = "SEEDER") -> int:
    """C-STORE ``datasets`` to ``node`` over one association (a new one, up to 3 times, when
    a store gets no answer, as on a loaded machine); the number stored."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    pending, stored, tries = list(datasets), 0, 0
    while pending:
        tries += 1
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
        if not assoc.is_established:
            raise RuntimeError(f"cannot associate with {node} to store")
        disable_nagle(assoc)
        try:
            while pending:
                status = assoc.send_c_store(pending[0])
                if "Status" not in status and tries < 3:
                    break  # no answer: associate again and go on from this one
                if status.get("Status") != 0x0000:
                    raise RuntimeError(
                        f"{node} did not store {pending[0].SOPInstanceUID}: {status}"
                    )
                pending.pop(0)
                stored += 1
        finally:
            if assoc.is_established:
                assoc.release()
    return stored

"""Study Root C-FIND identifiers and how their answers become frame rows."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..core.frames import MAX_COUNT, uid_problem
from ..core.text import printable
from .answers import Answer

STUDY_RETURN_KEYS = (
    "StudyDate",
    "StudyTime",
    "TimezoneOffsetFromUTC",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_RETURN_KEYS = (
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)


def _checked(*uids: str) -> None:
    """A safety net: an invalid UID is never sent (the frames drop such answers first)."""
    for uid in uids:
        problem = uid_problem(uid)
        if problem:
            raise ValueError(f"UID '{printable(uid, 100)}' {problem}; not sent")


def _identifier(level: str, **matching: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in matching.items():
        setattr(ds, keyword, value)
    return ds


def studies_by_date(date_range: str, time_range: str = "") -> Dataset:
    """All studies with StudyDate in ``date_range`` (``YYYYMMDD-YYYYMMDD``), and StudyTime in
    ``time_range`` (``HHMMSS-HHMMSS``) when given."""
    ds = _identifier("STUDY", StudyInstanceUID="")
    for keyword in STUDY_RETURN_KEYS:
        setattr(ds, keyword, "")
    ds.StudyDate = date_range
    ds.StudyTime = time_range
    return ds


def studies_by_uid(uids: list[str]) -> Dataset:
    """The studies with any of ``uids`` (UID list matching), whatever their date."""
    _checked(*uids)
    ds = _identifier("STUDY", StudyInstanceUID="\\".join(uids))
    for keyword in STUDY_RETURN_KEYS:
        setattr(ds, keyword, "")
    return ds


def series_of_study(study_uid: str) -> Dataset:
    _checked(study_uid)
    ds = _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="")
    for keyword in SERIES_RETURN_KEYS:
        setattr(ds, keyword, "")
    return ds


def instances_of_series(study_uid: str, series_uid: str) -> Dataset:
    _checked(study_uid, series_uid)
    return _identifier(
        "IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=""
    )


def move_identifier(study_uid: str, series_uid: str, instances: Sequence[str] = ()) -> Dataset:
    """The series, or only ``instances`` of it (IMAGE level, a SOPInstanceUID list)."""
    _checked(study_uid, series_uid, *instances)
    if not instances:
        return _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)
    ds = _identifier("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)
    ds.SOPInstanceUID = list(instances) if len(instances) > 1 else instances[0]
    return ds


_TEXT_VRS = {"SH", "LO"}  # padding stripped per value, not only at the end (convert_text)
_ELEMENTS: dict[str, tuple[int, str]] = {}


def _element(keyword: str) -> tuple[int, str]:
    """(tag, dictionary VR) of a keyword, cached."""
    if keyword not in _ELEMENTS:
        tag = tag_for_keyword(keyword)
        _ELEMENTS[keyword] = (tag, dictionary_VR(tag)) if tag is not None else (-1, "")
    return _ELEMENTS[keyword]


def _raw_text(ds: Dataset, keyword: str) -> str | None:
    """What :func:`text` returns, read from the undecoded bytes of a plain-ASCII value (pydicom's
    conversion costs ~15x more); ``None`` when pydicom must convert it: already converted, a VR
    other than the dictionary's, non-ASCII or escape sequences (character sets), several IS."""
    tag, vr = _element(keyword)
    if tag < 0:
        return None
    if tag not in ds:
        return ""
    raw = ds.get_item(tag, keep_deferred=True)
    if not isinstance(raw, RawDataElement) or raw.VR not in (None, vr) or raw.value is None:
        return None
    return _ascii_text(raw.value, vr)


def _answer_text(answer: Answer, keyword: str) -> str | None:
    """:func:`_raw_text` for an :class:`Answer` read without pydicom."""
    tag, vr = _element(keyword)
    if tag < 0:
        return None
    found = answer.elements.get(tag)
    if found is None:
        return ""
    element_vr, value = found
    if element_vr not in (None, vr):
        return None
    return _ascii_text(value, vr)


def _ascii_text(value: bytes, vr: str) -> str | None:
    """The text of a plain-ASCII value with the dictionary's ``vr``; None: pydicom must."""
    if not value.isascii() or 27 in value:  # 27: ESC, the start of an escape sequence
        return None
    whole = value.decode("ascii").rstrip(" \0")
    if "\\" not in whole:
        return whole.strip()
    values = whole.split("\\")
    if vr == "IS":
        return None
    return "\\".join(v.rstrip(" \0") for v in values) if vr in _TEXT_VRS else "\\".join(values)


def text(ds: Dataset | Answer, keyword: str) -> str:
    """An element's value as text ('' when absent or empty; multiple values joined by '\\')."""
    if isinstance(ds, Answer):
        fast = _answer_text(ds, keyword)
        if fast is not None:
            return fast
        ds = ds.dataset()
    fast = _raw_text(ds, keyword)
    if fast is not None:
        return fast
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def count(ds: Dataset | Answer, keyword: str) -> int | None:
    """An IS/US count, ``None`` when the server did not give one or gave one no PACS holds
    (negative, or more than MAX_COUNT)."""
    value = text(ds, keyword)
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number <= MAX_COUNT else None


def study_row(ds: Dataset | Answer) -> dict[str, object]:
    """A study answer as a frame row; peer text made printable (core.text.printable)."""
    return {
        "study_uid": _shown(ds, "StudyInstanceUID"),
        "study_date": _shown(ds, "StudyDate"),
        "study_time": _shown(ds, "StudyTime"),
        "tz_offset": _shown(ds, "TimezoneOffsetFromUTC"),
        "accession": _shown(ds, "AccessionNumber"),
        "modalities": _shown(ds, "ModalitiesInStudy"),
        "description": _shown(ds, "StudyDescription"),
        "series_count": count(ds, "NumberOfStudyRelatedSeries"),
        "images": count(ds, "NumberOfStudyRelatedInstances"),
    }


def series_row(ds: Dataset | Answer) -> dict[str, object]:
    """A series answer as a frame row; peer text made printable."""
    return {
        "study_uid": _shown(ds, "StudyInstanceUID"),
        "series_uid": _shown(ds, "SeriesInstanceUID"),
        "modality": _shown(ds, "Modality"),
        "series_number": count(ds, "SeriesNumber"),
        "description": _shown(ds, "SeriesDescription"),
        "images": count(ds, "NumberOfSeriesRelatedInstances"),
    }


_MAX_SHOWN = 1024  # no text field of these answers is longer (LO: 64 characters)


def _shown(ds: Dataset | Answer, keyword: str) -> str:
    """:func:`text`, safe to print and log: control characters and escape sequences escaped,
    cut short (an invalid UID then stays invalid and is dropped)."""
    return printable(text(ds, keyword), _MAX_SHOWN)

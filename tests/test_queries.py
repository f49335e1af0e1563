"""C-FIND answers read from raw element bytes give what pydicom's own conversion gives."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom_sync_dagster.dicom import queries


def converted_by_pydicom(ds: Dataset, keyword: str) -> str:
    """The reference: the value as pydicom converts it, in text()'s format."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def answer(keyword: str, raw: bytes, vr: str | None = None, charset: str = "") -> Dataset:
    """A dataset as a C-FIND answer arrives: elements still undecoded (implicit VR: no VR)."""
    tag = tag_for_keyword(keyword)
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, vr is None, True)
    return ds


CASES = [
    ("StudyInstanceUID", b"1.2.840.113619.2.55.3\x00"),
    ("StudyDate", b"20261128"),
    ("StudyTime", b"093015.123 "),
    ("StudyTime", b"0930  "),
    ("AccessionNumber", b" ACC 42  "),
    ("AccessionNumber", b""),
    ("ModalitiesInStudy", b"CT\\MR "),
    ("ModalitiesInStudy", b"CT\\ MR\\SR "),
    ("StudyDescription", b"Thorax  \\  Abdomen "),
    ("StudyDescription", b"  leading spaces kept? "),
    ("NumberOfStudyRelatedInstances", b"  12 "),
    ("NumberOfStudyRelatedInstances", b"12\\13 "),
    ("NumberOfStudyRelatedSeries", b"+3"),
    ("SeriesNumber", b"-1"),
    ("TimezoneOffsetFromUTC", b"+0100"),
    ("SeriesDescription", "Schädel nativ".encode("latin-1")),
    ("SeriesDescription", b"\x1b$B;3ED\x1b(B"),  # ISO 2022 escape sequence: pydicom decodes
]


@pytest.mark.parametrize("vr_given", [False, True], ids=["implicit", "explicit"])
@pytest.mark.parametrize(("keyword", "raw"), CASES)
def test_raw_reading_gives_what_pydicom_gives(keyword, raw, vr_given):
    vr = dictionary_VR(tag_for_keyword(keyword)) if vr_given else None
    charset = "ISO 2022 IR 87" if raw.startswith(b"\x1b") else "ISO_IR 100"

    fast = queries.text(answer(keyword, raw, vr, charset), keyword)

    assert fast == converted_by_pydicom(answer(keyword, raw, vr, charset), keyword)


def test_a_missing_element_is_empty_and_a_count_none():
    ds = answer("StudyDate", b"20261128")
    assert queries.text(ds, "AccessionNumber") == ""
    assert queries.count(ds, "NumberOfStudyRelatedInstances") is None


def test_a_study_row_from_raw_elements():
    ds = Dataset()
    for keyword, raw in [
        ("StudyInstanceUID", b"1.2.3\x00"),
        ("StudyDate", b"20261128"),
        ("StudyTime", b"0930"),
        ("AccessionNumber", b"ACC1 "),
        ("ModalitiesInStudy", b"CT\\PR"),
        ("NumberOfStudyRelatedInstances", b"7 "),
    ]:
        tag = tag_for_keyword(keyword)
        ds[tag] = RawDataElement(tag, None, len(raw), raw, 0, True, True)

    row = queries.study_row(ds)

    assert row["study_uid"] == "1.2.3"
    assert (row["study_date"], row["study_time"], row["accession"]) == ("20261128", "0930", "ACC1")
    assert row["modalities"] == "CT\\PR"
    assert (row["images"], row["series_count"]) == (7, None)


def encoded(elements: list[tuple[str, bytes]], explicit: bool) -> bytes:
    """A little-endian data set as it comes off the wire (elements in tag order)."""
    from struct import pack

    out = b""
    for keyword, raw in sorted(elements, key=lambda e: tag_for_keyword(e[0])):
        tag = tag_for_keyword(keyword)
        group, element = tag >> 16, tag & 0xFFFF
        if explicit:
            out += pack("<HH2sH", group, element, dictionary_VR(tag).encode(), len(raw)) + raw
        else:
            out += pack("<HHI", group, element, len(raw)) + raw
    return out


@pytest.mark.parametrize("explicit", [False, True], ids=["implicit", "explicit"])
@pytest.mark.parametrize(("keyword", "raw"), CASES)
def test_answers_read_without_pydicom_give_what_pydicom_gives(keyword, raw, explicit):
    from pynetdicom.dsutils import decode

    from dicom_sync_dagster.dicom.answers import read_answer

    charset = b"ISO 2022 IR 87" if raw.startswith(b"\x1b") else b"ISO_IR 100"
    data = encoded([("SpecificCharacterSet", charset), (keyword, raw)], explicit)
    answer = read_answer(data, implicit=not explicit)
    assert answer is not None

    reference = decode(__import__("io").BytesIO(data), not explicit, True, False)
    assert queries.text(answer, keyword) == converted_by_pydicom(reference, keyword)


def test_answers_that_need_pydicom_or_are_cut_short_are_not_read_raw():
    from dicom_sync_dagster.dicom.answers import read_answer

    whole = encoded([("StudyDate", b"20261128"), ("AccessionNumber", b"A1")], explicit=False)
    for cut in range(1, len(whole)):  # an element or its header running past the end
        if cut in (16,):  # exactly the first element: a valid, shorter data set
            continue
        assert read_answer(whole[:cut], implicit=True) is None, cut
    sequence = b"\x08\x00\x15\x11\xff\xff\xff\xff"  # (0008,1115) of undefined length
    assert read_answer(sequence, implicit=True) is None
    assert queries.study_row(read_answer(whole, implicit=True))["accession"] == "A1"

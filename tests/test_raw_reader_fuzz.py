"""The raw response reader (dicom/raw_responses.py) against random and cut-short input: it
must fail fast and cleanly every time (an Invalid with a reason, or a whole Response; never an
exception on pynetdicom's DUL thread, never a wait for bytes that will not come). And the data
set check: a data set cut anywhere but at an element boundary is refused."""

from __future__ import annotations

import random
import time

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

from dicom_sync_dagster.dicom.raw_responses import (
    MalformedResponse,
    RawResponses,
    Response,
    check_data_set,
)

from .raw_peer import find_rsp, identifier

ROUNDS = 3000
MESSAGE_ID = 7


class Primitive:
    """What pynetdicom hands receive_primitive: (context ID, PDV bytes) pairs."""

    def __init__(self, *values: bytes) -> None:
        self.presentation_data_value_list = [(1, value) for value in values]


def read(*values: bytes) -> list[object]:
    reader = RawResponses(0x8020, MESSAGE_ID)
    reader.receive_primitive(Primitive(*values))
    out = []
    while not reader.queue.empty():
        out.append(reader.queue.get_nowait())
    return out


def answer_data_set() -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7"
    ds.AccessionNumber = "ACC-1"
    ds.StudyDescription = "CT THORAX"
    ds.NumberOfStudyRelatedInstances = 120
    ds.ReferencedStudySequence = [Dataset()]
    ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = "1.2.3"
    return encode(ds, True, True)


def test_random_command_sets_never_raise_and_never_pass_as_valid():
    rng = random.Random(14)
    good = find_rsp(0xFF00, MESSAGE_ID, has_data=False)
    started = time.monotonic()
    passed = 0
    for _ in range(ROUNDS):
        kind = rng.randrange(3)
        if kind == 0:  # random bytes
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))
        elif kind == 1:  # a real one with bytes flipped
            data = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:  # a real one cut short
            data = good[: rng.randrange(len(good))]
        out = read(b"\x03" + data)  # a last command fragment
        for item in out:
            if isinstance(item, Response):  # whatever passes is whole and of this request
                assert len(item.command[0x0900]) == 2 and item.command[0x0120] == b"\x07\x00"
                passed += 1
            else:  # refused with a reason of the reader's, not by its catch-all
                assert not item.reason.startswith("unreadable message"), item
    assert passed > 0  # the valid ones (a flip in a value) still pass
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("cut", range(1, 86))
def test_a_command_set_cut_anywhere_is_invalid(cut):
    command = find_rsp(0x0000, MESSAGE_ID, has_data=False)
    assert cut < len(command)
    [item] = read(b"\x03" + command[:cut])
    assert not isinstance(item, Response)
    assert item.reason  # says why


def test_a_data_set_cut_anywhere_but_between_elements_is_refused():
    data = answer_data_set()
    boundaries, offset = {0, len(data)}, 0
    while offset < len(data):  # implicit VR LE, top level (the sequence has a defined length)
        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + length
        boundaries.add(offset)
    for cut in range(len(data) + 1):
        if cut in boundaries:
            check_data_set(data[:cut], True, True)  # a shorter, whole data set
        else:
            with pytest.raises(MalformedResponse):
                check_data_set(data[:cut], True, True)


def test_undefined_length_sequences_are_walked_and_a_missing_delimiter_refused():
    item = b"\x08\x00\x55\x11\x06\x00\x00\x001.2.3\x00"  # (0008,1155) UI
    sequence = (
        b"\x08\x00\x10\x11\xff\xff\xff\xff"  # (0008,1110) SQ, undefined length
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # item, undefined length
        + item
        + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"  # item delimiter
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # sequence delimiter
    )
    data = identifier("1.2.3") + sequence
    check_data_set(data, True, True)
    for cut in range(len(identifier("1.2.3")) + 1, len(data)):
        with pytest.raises(MalformedResponse):
            check_data_set(data[:cut], True, True)


def test_fragments_out_of_order_are_invalid_not_a_crash():
    command = find_rsp(0xFF00, MESSAGE_ID)  # announces a data set
    assert "data set without a command" in read(b"\x02" + identifier("1.2"))[0].reason
    assert (
        "command set where a data set was due"
        in read(b"\x03" + command, b"\x03" + command)[0].reason
    )
    assert "empty presentation data value" in read(b"")[0].reason
    [response] = read(b"\x03" + command, b"\x02" + identifier("1.2"))
    assert isinstance(response, Response) and response.data_set == identifier("1.2")

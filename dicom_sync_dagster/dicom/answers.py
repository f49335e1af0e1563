"""C-FIND answers read straight from their bytes: the top-level elements of a little-endian data
set, scanned with ``struct``, no pydicom objects. Reading 2,000 study answers this way costs a
fraction of pydicom's decoding; a value pydicom must convert (another VR than the dictionary's,
non-ASCII text, escape sequences, several IS values) is taken from a pydicom decoding of the
same bytes, made once per answer and only then."""

from __future__ import annotations

from io import BytesIO
from struct import Struct

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode

from .raw_responses import LONG_VRS, UNDEFINED

_HEADER = Struct("<HHI")  # implicit VR: group, element, 4-byte length
_EXPLICIT = Struct("<HH2sH")  # explicit VR: group, element, VR, 2-byte length
_LONG = Struct("<I")


class Answer:
    """One answer's top-level elements: tag -> (VR or None for implicit VR, value bytes)."""

    __slots__ = ("_data", "_dataset", "elements", "implicit")

    def __init__(self, data: bytes, implicit: bool, elements: dict[int, tuple[str | None, bytes]]):
        self._data, self.implicit, self.elements = data, implicit, elements
        self._dataset: Dataset | None = None

    def dataset(self) -> Dataset:
        """The same answer decoded by pydicom (made once, when first needed)."""
        if self._dataset is None:
            self._dataset = decode(BytesIO(self._data), self.implicit, True, False)
        return self._dataset


def read_answer(data: bytes, implicit: bool) -> Answer | None:
    """The answer's elements; None when its bytes need pydicom (a sequence or an item of
    undefined length) or are malformed (an element running past the end)."""
    elements: dict[int, tuple[str | None, bytes]] = {}
    position, end = 0, len(data)
    while position < end:
        if position + 8 > end:
            return None
        if implicit:
            group, element, length = _HEADER.unpack_from(data, position)
            vr = None
            position += 8
        else:
            group, element, raw_vr, length = _EXPLICIT.unpack_from(data, position)
            if raw_vr in LONG_VRS:
                if position + 12 > end:
                    return None
                (length,) = _LONG.unpack_from(data, position + 8)
                position += 12
            else:
                position += 8
            vr = raw_vr.decode("latin-1")
        if length == UNDEFINED or position + length > end:
            return None
        elements[group << 16 | element] = (vr, data[position : position + length])
        position += length
    return Answer(data, implicit, elements)

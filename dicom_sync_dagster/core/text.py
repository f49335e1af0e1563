"""Text from peers and files made safe to print, log or show: no control characters, no
terminal escape sequences, no text-direction overrides, no endless values."""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates can make a line read differently from what it holds.
_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(char: str) -> bool:
    return (
        char in _SHORT
        or char in _BIDI_CONTROLS
        or unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs")
    )


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as text with control characters (ESC, newline, ...) and bidi controls
    escaped (``\\x1b``, ``\\n``), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
        return "".join(_escaped(c) if _unsafe(c) else c for c in text) + "..."
    if text.isascii() and text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escaped(c) if _unsafe(c) else c for c in text)


def shorten(value: object, limit: int = 80) -> str:
    """``repr``-style text of a value for a message, cut after ``limit`` characters with the
    length said (a 10 MB value is not echoed)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes | list | dict) else len(text)
    return f"{text[:limit]}... ({size} characters)"

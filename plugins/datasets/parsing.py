"""Strict reading of label files, shared by the dataset parsers.

Python is lenient where a label file must not be: ``int()`` and ``str.isdigit()`` accept any Unicode digit
(``'٣'``, full-width ``'３'``; ``'²'`` passes ``isdigit()`` and then makes ``int()`` raise), ``int()`` accepts
``'1_0'`` and numbers of any size, ``float()`` accepts ``'nan'``, and ``read_text()`` raises a bare
``UnicodeDecodeError``. A file holding such things is damaged or not what it claims to be, so numbers here are
ASCII digits only and bounded, and every failure is a message naming what was expected and what was found.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from harness.api import DataError

INT64_MAX = 2**63 - 1
"""The largest frame number the int64 frame-id arrays hold."""

_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


class FieldError(ValueError):
    """What is wrong with one field; the caller prefixes the file and line."""


def ascii_int(text: str, what: str, maximum: int = INT64_MAX, minimum: int = 0) -> int:
    """The integer ``text`` spells in ASCII digits (surrounding whitespace allowed), in ``minimum-maximum``.

    Raises :class:`FieldError` naming ``what`` when it is not one, or lies outside the range (never wraps)."""
    text = text.strip()
    if not _INT.fullmatch(text):
        raise FieldError(f"{what}: expected ASCII digits, found {_shorten(text)!r}")
    if len(text.lstrip("0")) > len(str(maximum)) or not minimum <= int(text) <= maximum:
        raise FieldError(f"{what} {_shorten(text)} is out of range {minimum}-{maximum}")
    return int(text)


def ascii_float(text: str, what: str) -> float:
    """The finite number ``text`` spells in ASCII (``0.5``, ``-1e-3``); :class:`FieldError` otherwise."""
    text = text.strip()
    if not _FLOAT.fullmatch(text) or not math.isfinite(value := float(text)):
        raise FieldError(f"{what}: expected a finite decimal number, found {_shorten(text)!r}")
    return value


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; a :class:`DataError` naming the byte offset and line where it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {line}: expected UTF-8 text, found byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start} ({exc.reason})") from None


def read_lines(path: Path, expected: str) -> list[str]:
    """The lines of a label file that must hold something; a :class:`DataError` saying so when it is empty
    or blank (``expected`` says what it should hold)."""
    lines = read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: the file is empty; expected {expected}")
    return lines


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"

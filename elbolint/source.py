"""Reading source files safely: bytes in, text or a clear reason out. Never raises for bad input."""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class Source:
    path: Path
    data: bytes
    text: Optional[str] = None
    encoding: str = "utf-8"
    #: (code, message, line, column) when the file cannot be linted.
    problem: Optional[tuple[str, str, int, int]] = None


def read_source(path: Path, data: Optional[bytes] = None) -> Source:
    """Read and decode `path` (or the given bytes, e.g. stdin) honouring PEP 263 cookies and BOMs."""
    if data is None:
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            return Source(path, b"", problem=("ELB900", "is a directory, not a file", 1, 1))
        except OSError as error:
            reason = error.strerror or str(error)
            return Source(path, b"", problem=("ELB900", f"cannot read file: {reason}", 1, 1))
    return decode(path, data)


def decode(path: Path, data: bytes) -> Source:
    if b"\x00" in data:
        return Source(path, data, problem=("ELB000", "not a text file (contains NUL bytes)", 1, 1))
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        # An unknown codec in the coding cookie, or a BOM that contradicts the cookie.
        return Source(path, data, problem=("ELB000", f"bad encoding declaration: {error}", 1, 1))
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        line, column = _error_position(data, error)
        return Source(
            path, data, encoding=encoding,
            problem=("ELB000", f"cannot decode file as {encoding}: {_reason(error)}", line, column),
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return Source(path, data, text=text, encoding=encoding)


def _reason(error: Exception) -> str:
    return getattr(error, "reason", None) or str(error)


def _error_position(data: bytes, error: Exception) -> tuple[int, int]:
    start = getattr(error, "start", None)
    if start is None:
        return 1, 1
    before = data[:start]
    line = before.count(b"\n") + 1
    column = start - (before.rfind(b"\n") + 1) + 1
    return line, column

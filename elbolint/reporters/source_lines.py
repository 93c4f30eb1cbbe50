"""The source lines a finding points at, for the formats that show or hash them (`full`, `gitlab`).

Why here and lazily: reporters receive only Diagnostics (the workers drop the sources), so a format
that needs the text reads the file again from `d.path`, once per file and only when asked. Never
raises: a file that is gone, unreadable, undecodable or changed so that the finding no longer fits
(fewer lines than the finding's) gives None, and the caller shows no snippet. Notebooks: a finding
with `cell` set is relative to that cell, so the lines are the cell's own source. Stdin (`-`, or
`--stdin-filename` naming a file) is read from disk, which may differ from what was linted: a line
shorter than the finding's start column gives None rather than a wrong caret.

`json_region` gives a notebook finding's place in the `.ipynb` file itself (the JSON lines that hold
the flagged code), for the formats whose consumers draw on the file as stored (GitHub, SARIF, GitLab).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from elbolint.diagnostics import Diagnostic
from elbolint.source import decode

if TYPE_CHECKING:  # imported when a notebook finding needs it
    from elbolint.notebook import JsonCells

#: Lines as Python counts them (the same split as linter.python_lines).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SourceLines:
    """Reads each file at most once per report."""

    def __init__(self) -> None:
        self._files: dict[Path, Optional[list[str]]] = {}
        self._notebooks: dict[Path, Optional[list]] = {}
        self._json: dict[Path, Optional[JsonCells]] = {}

    def lines(self, d: Diagnostic) -> Optional[list[str]]:
        """The lines `d`'s positions refer to (a notebook cell's for a notebook finding), or None."""
        if str(d.path) == "-":
            return None
        if d.cell is not None:
            cells = self._cells(d.path)
            if cells is None or not 1 <= d.cell <= len(cells):
                return None
            return cells[d.cell - 1]
        if d.path not in self._files:
            self._files[d.path] = _read_lines(d.path)
        return self._files[d.path]

    def span(self, d: Diagnostic) -> Optional[list[str]]:
        """The lines from `d.start.line` to `d.end.line`, or None when they are not all there or the
        first is shorter than the start column (the file changed since it was linted)."""
        lines = self.lines(d)
        first, last = d.start.line, max(d.start.line, d.end.line)
        if lines is None or not 1 <= first <= last <= len(lines):
            return None
        if d.start.column - 1 > len(lines[first - 1]):
            return None
        return lines[first - 1:last]

    def json_region(self, d: Diagnostic) -> Optional[tuple[int, int, int, int]]:
        """(start line, start column, end line, end column) of a notebook finding in the notebook's
        JSON text, or None (not a notebook finding, stdin, the file is gone or changed since)."""
        if d.cell is None or self.span(d) is None:
            return None
        if d.path not in self._json:
            from elbolint.notebook import JsonCells

            text = _read_text(d.path)
            try:
                self._json[d.path] = None if text is None else JsonCells.parse(text)
            except (ValueError, RecursionError, MemoryError):
                self._json[d.path] = None
        cells = self._json[d.path]
        if cells is None:
            return None
        start = cells.position(d.cell - 1, d.start.line, d.start.column)
        end = cells.position(d.cell - 1, d.end.line, d.end.column, end=True) \
            if (d.end.line, d.end.column) >= (d.start.line, d.start.column) else None
        if start is None:
            return None
        if end is None or end < start:
            end = start
        return (*start, *end)

    def _cells(self, path: Path) -> Optional[list]:
        if path not in self._notebooks:
            self._notebooks[path] = _read_cells(path)
        return self._notebooks[path]


def _read_text(path: Path) -> Optional[str]:
    try:
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    return decode(path, data).text  # PEP 263 cookies and BOMs, as the linter reads it; None if undecodable


def _read_lines(path: Path) -> Optional[list[str]]:
    text = _read_text(path)
    return None if text is None else _LINE_BREAK.split(text)


def _read_cells(path: Path) -> Optional[list]:
    """Every cell's lines (markdown included: cell numbers count all cells), or None."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        raw = json.loads(text)
        cells = raw["cells"]
        result = []
        for cell in cells:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            result.append(_LINE_BREAK.split(source) if isinstance(source, str) else None)
        return result
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None

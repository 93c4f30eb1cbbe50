"""GitHub Actions workflow commands: `::error file=...,line=...,col=...,title=...::message`.

Notebooks: GitHub draws an annotation on a line of the file as stored, and a `.ipynb` is stored as
JSON, so a notebook finding's `line`/`col`/`endLine`/`endColumn` are those of the flagged code inside
the cell's `source` strings in that JSON (the line the "Files changed" source view shows for it), and
the message ends with the position a notebook reader uses: `(cell 3, line 1, column 20)`.
ruff instead gives every notebook finding the fallback position 1:1 ("we can't give a reasonable
location for the structured formats"): the annotation then sits on the notebook's `{`, outside any
diff hunk, and says nothing of the cell. We keep ruff's fallback (line 1, no column) only where the
JSON position cannot be had: stdin, or a file that is gone or changed since it was linted."""

from __future__ import annotations

from elbolint.diagnostics import Diagnostic, Severity
from elbolint.reporters import display_path, with_cell
from elbolint.reporters.source_lines import SourceLines


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(diagnostics: list[Diagnostic]) -> str:
    lines = []
    sources = SourceLines()
    for d in diagnostics:
        level = "error" if d.severity is Severity.ERROR else "warning"
        if d.cell is None:
            where = [f"line={d.start.line}", f"col={d.start.column}",
                     f"endLine={d.end.line}", f"endColumn={d.end.column}"]
        else:
            region = sources.json_region(d)
            where = ["line=1"] if region is None else [
                f"line={region[0]}", f"col={region[1]}", f"endLine={region[2]}", f"endColumn={region[3]}"]
        properties = ",".join(
            [f"file={_escape_property(display_path(d.path))}", *where,
             f"title={_escape_property(f'elbolint ({d.code})')}"]
        )
        lines.append(f"::{level} {properties}::{_escape_data(f'{d.code} [{d.name}] {with_cell(d)}')}")
    return "\n".join(lines) + ("\n" if lines else "")

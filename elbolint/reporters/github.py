"""GitHub Actions workflow commands: `::error file=...,line=...,col=...,title=...::message`
(for a notebook, the line is relative to the cell named in the message)."""

from __future__ import annotations

from elbolint.diagnostics import Diagnostic, Severity
from elbolint.reporters import display_path, with_cell


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(diagnostics: list[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        level = "error" if d.severity is Severity.ERROR else "warning"
        properties = ",".join(
            [
                f"file={_escape_property(display_path(d.path))}",
                f"line={d.start.line}",
                f"col={d.start.column}",
                f"endLine={d.end.line}",
                f"endColumn={d.end.column}",
                f"title={_escape_property(f'elbolint ({d.code})')}",
            ]
        )
        lines.append(f"::{level} {properties}::{_escape_data(f'{d.code} [{d.name}] {with_cell(d)}')}")
    return "\n".join(lines) + ("\n" if lines else "")

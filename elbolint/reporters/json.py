"""JSON with ruff's fields (code, message, filename, location, end_location, fix, url, noqa_row),
plus `name`, `severity` and, in dynamic mode, `dynamic`; tools that read ruff's JSON read ours.
`url` (the code's documentation page) is left out while the project has no published address
(`reporters.rule_url`)."""

from __future__ import annotations

import json

from elbolint.diagnostics import Diagnostic, Position
from elbolint.reporters import display_path, rule_url


def _location(position: Position) -> dict:
    return {"row": position.line, "column": position.column}


def as_dict(d: Diagnostic) -> dict:
    fix = None
    if d.fix is not None:
        fix = {
            "applicability": "unsafe" if d.fix.unsafe else "safe",
            "message": d.fix.message,
            "edits": [
                {"content": e.content, "location": _location(e.start), "end_location": _location(e.end)}
                for e in d.fix.edits
            ],
        }
    row = {
        "cell": d.cell,  # notebooks: rows and columns are relative to this cell
        "code": d.code,
        "name": d.name,
        "severity": d.severity.value,
        "message": d.message,
        "filename": display_path(d.path),
        "location": _location(d.start),
        "end_location": _location(d.end),
        "fix": fix,
        "url": rule_url(d.code),
        "noqa_row": d.line,
    }
    if row["url"] is None:
        del row["url"]
    if d.dynamic is not None:
        row["dynamic"] = d.dynamic
    return row


def render(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([as_dict(d) for d in diagnostics], indent=2) + "\n"

"""GitLab Code Quality JSON (`artifacts:reports:codequality`): an array of issues, each with the
fields GitLab requires (`description`, `check_name`, `fingerprint`, `severity`, `location.path`,
`location.lines.begin`) plus `location.lines.end` and ruff's `location.positions` (line and column).

Severity: GitLab knows info < minor < major < critical < blocker. ruff reports every finding as
`major`; elbolint's errors (certain bugs) are `major` and its warnings `minor`.

Fingerprint: GitLab matches issues between the base and the merge request by fingerprint, so it must
not change when unrelated lines are added above a finding, and it must be unique (GitLab shows only
the first issue of a fingerprint). ruff hashes the rule and the path and re-hashes on a collision;
elbolint hashes the path, the code, the message and the stripped text of the finding's first line
(not its number), and a finding identical in all four to an earlier one of the same report adds its
rank among them. When the file cannot be read back, the line's text is left out. Paths are relative
to the working directory: run it from the repository root, as GitLab expects.

Notebooks: GitLab shows an issue on a line of the file as stored (the merge request diff, the
`#L` link), so a notebook finding's `lines` and `positions` are those of the flagged code in the
notebook's JSON (as for GitHub and SARIF), line 1 when that cannot be had; the description ends with
the cell position `(cell 3, line 1, column 20)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath

from elbolint.diagnostics import Diagnostic, Severity
from elbolint.reporters import display_path, with_cell
from elbolint.reporters.source_lines import SourceLines

SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor"}


def render(diagnostics: list[Diagnostic]) -> str:
    sources = SourceLines()
    seen: dict[str, int] = {}
    issues = []
    for d in diagnostics:
        path = PurePath(display_path(d.path)).as_posix()
        lines = sources.lines(d)
        content = lines[d.line - 1].strip() if lines is not None and 1 <= d.line <= len(lines) else ""
        key = "\0".join([path, d.code, d.message, content])
        rank = seen.get(key, 0)
        seen[key] = rank + 1
        fingerprint = hashlib.sha256(f"{key}\0{rank}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
        begin, end = (d.start.line, d.start.column), (d.end.line, d.end.column)
        if d.cell is not None:
            region = sources.json_region(d)
            begin, end = ((1, 1), (1, 1)) if region is None else (region[:2], region[2:])
        issues.append(
            {
                "check_name": d.code,
                "description": f"{d.code} [{d.name}] {with_cell(d)}",
                "severity": SEVERITY[d.severity],
                "fingerprint": fingerprint,
                "location": {
                    "path": path,
                    "lines": {"begin": begin[0], "end": max(begin[0], end[0])},
                    "positions": {
                        "begin": {"line": begin[0], "column": begin[1]},
                        "end": {"line": end[0], "column": end[1]},
                    },
                },
            }
        )
    return json.dumps(issues, indent=2) + "\n"

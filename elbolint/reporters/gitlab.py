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
        issues.append(
            {
                "check_name": d.code,
                "description": f"{d.code} [{d.name}] {with_cell(d)}",
                "severity": SEVERITY[d.severity],
                "fingerprint": fingerprint,
                "location": {
                    "path": path,
                    "lines": {"begin": d.start.line, "end": max(d.start.line, d.end.line)},
                    "positions": {
                        "begin": {"line": d.start.line, "column": d.start.column},
                        "end": {"line": d.end.line, "column": d.end.column},
                    },
                },
            }
        )
    return json.dumps(issues, indent=2) + "\n"

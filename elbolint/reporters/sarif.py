"""SARIF 2.1.0, the format GitHub code scanning and many IDEs import.

Notebooks: a viewer shows a result's `physicalLocation.region` on the artifact as stored, and a
`.ipynb` is stored as JSON, so a notebook finding's region is the flagged code's place in that JSON
(inside the cell's `source` strings; see notebook.JsonCells), and the cell is the location's
`logicalLocations` entry (`name` "cell 3", `fullyQualifiedName` "model.ipynb:cell 3", `decoratedName`
the JSON Pointer "/cells/2", `kind` "object": a cell is an object of the notebook's JSON). The
location's `message` reads "cell 3, line 1, column 20" and its `properties` carry `cell` and
`cellRegion` (the region in cell coordinates, as the text and JSON formats give it). When the JSON
position cannot be had (stdin, a file changed since), the region is line 1, ruff's fallback for
every notebook finding. Fixes are not offered for notebooks (their edits are in cell coordinates).

For code scanning: each rule carries its documentation as `help` (text and Markdown, the same as
`elbolint rule CODE`); paths are relative to `%SRCROOT%` (the working directory, given in
`originalUriBaseIds`), so an upload from any checkout location matches the repository; each result
has a `partialFingerprints` entry that hashes the rule, the file and the flagged line's text (not its
number), so alerts survive unrelated edits above them; fixes are included as SARIF `fixes`. The optional
`helpUri` and `informationUri` are left out while the project has no published address
(`reporters.rule_url`): no link to an address that does not exist."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from elbolint import __version__, reporters
from elbolint.diagnostics import Diagnostic, Severity
from elbolint.reporters import cell_position, display_path, rule_url, with_cell
from elbolint.reporters.source_lines import SourceLines


def _rules_metadata() -> list[dict[str, Any]]:
    from elbolint.registry import all_rules, extra_codes

    rows = []
    for rule in all_rules():
        rows.append(_with_help_uri(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.summary()},
                "fullDescription": {"text": rule.documentation()},
                "help": {"text": rule.documentation(), "markdown": rule.documentation()},
                "defaultConfiguration": {"level": _level(rule.severity)},
            }
        ))
    for code in extra_codes():
        rows.append(_with_help_uri(
            {
                "id": code.code,
                "name": code.name,
                "shortDescription": {"text": code.summary},
                "help": {"text": code.summary, "markdown": code.summary},
                "defaultConfiguration": {"level": _level(code.severity)},
            }
        ))
    return rows


def _with_help_uri(row: dict[str, Any]) -> dict[str, Any]:
    """`helpUri` (optional in SARIF) only when the code's page has a published address."""
    url = rule_url(row["id"])
    if url is not None:
        row["helpUri"] = url
    return row


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def _artifact(path: Path) -> dict:
    """Relative to %SRCROOT% (the working directory) when below it, else an absolute file URI."""
    try:
        return {"uri": path.resolve().relative_to(Path.cwd().resolve()).as_posix(), "uriBaseId": "%SRCROOT%"}
    except ValueError:
        return {"uri": path.resolve().as_uri()}


def _fingerprint(d: Diagnostic, sources: SourceLines, seen: dict) -> str:
    """Stable across edits elsewhere in the file: rule, file, cell and the flagged line's text; a
    counter tells identical lines in one file apart."""
    span = sources.span(d)
    line = span[0] if span else ""
    base = f"{d.code}|{Path(d.path).as_posix()}|{d.cell}|{line.strip()}"
    seen[base] = seen.get(base, 0) + 1
    return hashlib.sha256(f"{base}|{seen[base]}".encode()).hexdigest()[:32]


def _fixes(d: Diagnostic, artifact: dict) -> list[dict]:
    if d.fix is None or not d.fix.edits or d.cell is not None:
        return []
    replacements = [{
        "deletedRegion": {"startLine": e.start.line, "startColumn": e.start.column,
                          "endLine": e.end.line, "endColumn": e.end.column},
        "insertedContent": {"text": e.content},
    } for e in d.fix.edits]
    return [{"description": {"text": d.fix.message},
             "artifactChanges": [{"artifactLocation": artifact, "replacements": replacements}]}]


def _region(start_line: int, start_column: int, end_line: int, end_column: int) -> dict:
    return {"startLine": start_line, "startColumn": start_column, "endLine": end_line, "endColumn": end_column}


def _location(d: Diagnostic, artifact: dict, sources: SourceLines) -> dict:
    cell_region = _region(d.start.line, d.start.column, d.end.line, d.end.column)
    if d.cell is None:
        return {"physicalLocation": {"artifactLocation": artifact, "region": cell_region}}
    in_json = sources.json_region(d)
    return {
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {"startLine": 1} if in_json is None else _region(*in_json),
        },
        "logicalLocations": [{
            "name": f"cell {d.cell}",
            "fullyQualifiedName": f"{Path(display_path(d.path)).as_posix()}:cell {d.cell}",
            "decoratedName": f"/cells/{d.cell - 1}",
            "kind": "object",
        }],
        "message": {"text": cell_position(d)},
        "properties": {"cell": d.cell, "cellRegion": cell_region},
    }


def _driver() -> dict[str, Any]:
    """The tool's description; `informationUri` (optional in SARIF) only when the project has a published address."""
    driver: dict[str, Any] = {"name": "elbolint", "version": __version__}
    if reporters.REPOSITORY_URL is not None:
        driver["informationUri"] = reporters.REPOSITORY_URL
    driver["rules"] = _rules_metadata()
    return driver


def render(diagnostics: list[Diagnostic]) -> str:
    results = []
    sources = SourceLines()
    seen: dict[str, int] = {}
    for d in diagnostics:
        artifact = _artifact(d.path)
        result = {
            "ruleId": d.code,
            "level": _level(d.severity),
            "message": {"text": f"[{d.name}] {with_cell(d)}"},
            "locations": [_location(d, artifact, sources)],
        }
        result["partialFingerprints"] = {"elbolintLine/v1": _fingerprint(d, sources, seen)}
        fixes = _fixes(d, artifact)
        if fixes:
            result["fixes"] = fixes
        if d.dynamic is not None:
            result["properties"] = {"dynamic": d.dynamic}
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": _driver()},
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().resolve().as_uri() + "/"}},
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"

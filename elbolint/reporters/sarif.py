"""SARIF 2.1.0, the format GitHub code scanning and many IDEs import. A notebook finding's region is
relative to its cell; the cell number is in the message."""

from __future__ import annotations

import json
from pathlib import Path

from elbolint import __version__
from elbolint.diagnostics import Diagnostic, Severity
from elbolint.reporters import rule_url, with_cell


def _rules_metadata() -> list[dict]:
    from elbolint.registry import all_rules, extra_codes

    rows = []
    for rule in all_rules():
        rows.append(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.summary()},
                "fullDescription": {"text": rule.documentation()},
                "helpUri": rule_url(rule.code),
                "defaultConfiguration": {"level": _level(rule.severity)},
            }
        )
    for code in extra_codes():
        rows.append(
            {
                "id": code.code,
                "name": code.name,
                "shortDescription": {"text": code.summary},
                "helpUri": rule_url(code.code),
                "defaultConfiguration": {"level": _level(code.severity)},
            }
        )
    return rows


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def _uri(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def render(diagnostics: list[Diagnostic]) -> str:
    results = []
    for d in diagnostics:
        result = {
            "ruleId": d.code,
            "level": _level(d.severity),
            "message": {"text": f"[{d.name}] {with_cell(d)}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(d.path)},
                        "region": {
                            "startLine": d.start.line,
                            "startColumn": d.start.column,
                            "endLine": d.end.line,
                            "endColumn": d.end.column,
                        },
                    }
                }
            ],
        }
        if d.dynamic is not None:
            result["properties"] = {"dynamic": d.dynamic}
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "elbolint",
                        "version": __version__,
                        "informationUri": "https://github.com/elbolint/elbolint",
                        "rules": _rules_metadata(),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"

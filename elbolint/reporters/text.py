"""`path:line:col: CODE [name] message`, one finding per line (what editors and CI logs parse);
in a notebook `path:cell N:line:col: ...`, as ruff prints it.
A finding with a fix is marked `[*]` after its code, as ruff marks it (`elbolint --fix` applies it).
Dynamic-mode evidence, when present, follows on an indented line. `colorize` styles such a report
for a terminal (the CLI calls it only when stdout is one and NO_COLOR is not set)."""

from __future__ import annotations

import re

from elbolint.diagnostics import Diagnostic
from elbolint.reporters import display_path


def render(diagnostics: list[Diagnostic]) -> str:
    lines = []
    previous = None  # the last evidence printed: the same run's evidence is not repeated
    for d in diagnostics:
        cell = f"cell {d.cell}:" if d.cell is not None else ""
        fixable = " [*]" if d.fix is not None and not d.fix.unsafe else ""
        lines.append(f"{display_path(d.path)}:{cell}{d.line}:{d.column}: {d.code}{fixable} [{d.name}] {d.message}")
        if d.dynamic and d.dynamic.get("summary"):
            evidence = (d.path, d.dynamic["summary"])
            summary = "(same run as above)" if evidence == previous else d.dynamic["summary"]
            status = d.dynamic["status"]
            if status == "not-run" and summary.startswith("not run: "):
                summary = summary[len("not run: "):]  # the status already says it
            lines.append(f"  {status}: {summary}")
            previous = evidence
    return "\n".join(lines) + ("\n" if lines else "")


_HEADER = re.compile(r"^(?P<where>\S.*?:(?:cell \d+:)?\d+:\d+:) (?P<code>ELB\d+)(?P<fix> \[\*\])? ")


def colorize(report: str) -> str:
    """Bold location, red code, cyan fix marker: ruff's colours, ANSI escapes only."""
    def style(match: re.Match) -> str:
        fix = f"\x1b[36m{match['fix']}\x1b[0m" if match["fix"] else ""
        return f"\x1b[1m{match['where']}\x1b[0m \x1b[1;31m{match['code']}\x1b[0m{fix} "

    return "\n".join(_HEADER.sub(style, line) for line in report.split("\n"))

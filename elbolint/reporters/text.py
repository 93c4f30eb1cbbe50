"""`path:line:col: CODE [name] message`, one finding per line (what editors and CI logs parse);
in a notebook `path:cell N:line:col: ...`, as ruff prints it.
Dynamic-mode evidence, when present, follows on an indented line."""

from __future__ import annotations

from elbolint.diagnostics import Diagnostic
from elbolint.reporters import display_path


def render(diagnostics: list[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        cell = f"cell {d.cell}:" if d.cell is not None else ""
        lines.append(f"{display_path(d.path)}:{cell}{d.line}:{d.column}: {d.code} [{d.name}] {d.message}")
        if d.dynamic and d.dynamic.get("summary"):
            lines.append(f"  {d.dynamic['status']}: {d.dynamic['summary']}")
    return "\n".join(lines) + ("\n" if lines else "")

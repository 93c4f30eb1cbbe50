"""Reporters turn a list of Diagnostics into text for one output format. They never know rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from elbolint.diagnostics import Diagnostic

Reporter = Callable[[list[Diagnostic]], str]


def display_path(path: Path) -> str:
    """Paths relative to the working directory when below it, as ruff and flake8 print them."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def cell_position(d: Diagnostic) -> str:
    """Where a notebook finding is, in the words of a notebook's reader: `cell 3, line 1, column 20`."""
    return f"cell {d.cell}, line {d.start.line}, column {d.start.column}"


def with_cell(d: Diagnostic) -> str:
    """The message, plus "(cell N, line L, column C)" for formats that have no place for a notebook
    cell (their line and column are in the notebook's JSON text, or missing)."""
    return d.message if d.cell is None else f"{d.message} ({cell_position(d)})"


#: The public repository's address, None while the project publishes none. Each code has a generated
#: page under docs/rules/ (elbolint/docs.py); once this is set, every output format links to it.
REPOSITORY_URL: Optional[str] = None


def rule_url(code: str) -> Optional[str]:
    """The address of a code's documentation page, or None when there is no published address: the
    formats then leave their link field out rather than point at an address that does not exist
    (`elbolint rule CODE` prints the same page)."""
    if REPOSITORY_URL is None:
        return None
    return f"{REPOSITORY_URL}/blob/main/docs/rules/{code}.md"


#: Output format -> the reporter module that renders it (imported only when chosen: a run pays for
#: its own format, not for the HTML report's templates).
_MODULES = {"text": "text", "concise": "text", "full": "full", "json": "json", "sarif": "sarif",
            "github": "github", "gitlab": "gitlab", "junit": "junit", "html": "html"}


def get_reporter(name: str) -> Reporter:
    import importlib

    module = importlib.import_module(f"elbolint.reporters.{_MODULES[name]}")
    render: Reporter = module.render
    return render


FORMATS = tuple(_MODULES)

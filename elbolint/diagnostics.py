"""Values that describe findings. They know nothing about output formats (see reporters/)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class Severity(str, enum.Enum):
    """How sure a rule is that the pattern breaks training: errors are certain bugs."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Code:
    """A code the engine or dynamic mode emits itself (not a static rule)."""

    code: str
    name: str
    severity: Severity
    summary: str


@dataclass(frozen=True)
class Position:
    """1-based line, 1-based column (as editors and ruff count them)."""

    line: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text between `start` and `end` (end exclusive) by `content`."""

    start: Position
    end: Position
    content: str


@dataclass(frozen=True)
class Fix:
    """A suggested change. `node`/`replacement` are LibCST nodes used by the fixer;
    `edits` is the same change as text, for JSON/SARIF consumers."""

    message: str
    edits: tuple[Edit, ...]
    node: Any = field(default=None, compare=False, repr=False)
    replacement: Any = field(default=None, compare=False, repr=False)
    #: An unsafe fix changes what the program computes (not only how it is spelled or guarded); it is
    #: applied only with --unsafe-fixes, as in ruff.
    unsafe: bool = False


@dataclass
class Diagnostic:
    path: Path
    start: Position
    end: Position
    code: str
    name: str
    message: str
    severity: Severity = Severity.ERROR
    fix: Optional[Fix] = None
    #: Filled in by dynamic mode: a static finding's verdict (`status` confirmed / not-reproduced /
    #: unconfirmed / not-run, `summary`, `evidence`, `trace`) or a dynamic row's observation; declared
    #: in elbolint/dynamic/verdicts/contract.py (Verdict, Observation).
    dynamic: Optional[dict] = None
    #: For a notebook: the 1-based cell (among all cells, as ruff counts); `start`/`end` are then
    #: relative to that cell.
    cell: Optional[int] = None

    @property
    def line(self) -> int:
        return self.start.line

    @property
    def column(self) -> int:
        return self.start.column

    def sort_key(self) -> tuple:
        return (str(self.path), self.cell or 0, self.start.line, self.start.column, self.code)

"""Shared test helpers: the repository root, fixture expectations, and a linter shortcut."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from elbolint.config import Config
from elbolint.linter import lint_file
from elbolint.registry import all_rules

# Every dynamic trace and verdict of every test (in-process, and in the elbolint processes the tests
# start, which inherit the environment) is checked against elbolint/dynamic/verdicts/contract.py.
os.environ.setdefault("ELBOLINT_CHECK_TRACES", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
_EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)")


def expected_findings(path: Path) -> list[tuple[int, str]]:
    """(line, code) for every `# expect: CODE[, CODE]` comment in a fixture."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            found += [(number, code.strip()) for code in match.group("codes").split(",")]
    return sorted(found)


def enabled_for_fixture(path: Path) -> set[str]:
    """Default codes, plus the folder's own code when that rule is opt-in (fixtures/ELB012/...)."""
    enabled = Config().enabled_codes()
    folder = path.relative_to(FIXTURES).parts[0]
    if re.fullmatch(r"ELB[0-9]{3}", folder):
        enabled.add(folder)
    return enabled


def lint(path: Path, enabled: set[str] | None = None, data: bytes | None = None):
    enabled = enabled if enabled is not None else Config().enabled_codes()
    return lint_file(path, all_rules(), {}, enabled, data=data).diagnostics


@pytest.fixture
def root() -> Path:
    return ROOT

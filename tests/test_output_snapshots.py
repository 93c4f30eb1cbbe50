"""Every fixture as a user sees it: the `full` output (the message over the source line with carets) and the
`--diff` that `--fix` would apply, as one snapshot per fixture (ruff's way).

Why: tests/test_message_snapshots.py pins each finding's message and its fix's edits, but not what they
become once rendered: a caret under the wrong columns, a source excerpt of the wrong line, two fixes that
touch each other or an edit that produces a different file than the one the message promises all pass
there. Accept a reviewed change with `python -m pytest tests/test_output_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import os

import pytest

from conftest import FIXTURES, ROOT, linted_fixture
from elbolint.fixes import unified_diff
from elbolint.reporters import full

FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.py") if p.relative_to(FIXTURES).parts[0] != "dynamic")


def rendered(path) -> str:
    """`--output-format full` of the file, then its `--diff` (or a line saying there is nothing to fix)."""
    result, fixed = linted_fixture(path)  # linted from the checkout's root, as `elbolint fixtures/...` is
    cwd = os.getcwd()
    os.chdir(ROOT)  # the source lines under each message are read from the relative path
    try:
        shown = full.render(result.diagnostics) if result.diagnostics else "(no findings)"
    finally:
        os.chdir(cwd)
    diff = unified_diff(result, fixed) if fixed is not None else "(nothing to fix)\n"
    return f"{shown}\n--- --diff ---\n{diff}"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_full_output_and_diff(path, snapshot):
    assert rendered(path) == snapshot

"""Shared test helpers: the repository root, fixture expectations, and a linter shortcut."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Optional

import pytest

from elbolint.config import Config
from elbolint.fixes import fixed_bytes
from elbolint.linter import FileResult, lint_file
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


@functools.lru_cache(maxsize=None)
def linted_fixture(path: Path) -> tuple[FileResult, Optional[bytes]]:
    """A fixture linted as `elbolint fixtures/...` from the checkout's root lints it (default codes plus
    the folder's opt-in code), and the bytes `--fix` would write. tests/test_fixtures.py (codes and
    lines), test_message_snapshots.py (messages and fixes) and test_output_snapshots.py (the rendered
    output and the diff) read the same run, so it is made once per session; the CST is dropped once the
    fixed bytes are known (the cache keeps findings, source bytes and fixed bytes)."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = lint_file(path.relative_to(ROOT), all_rules(), {}, enabled_for_fixture(path))
        fixed = fixed_bytes(result)
    finally:
        os.chdir(cwd)
    return dataclasses.replace(result, module=None), fixed


@pytest.fixture
def root() -> Path:
    return ROOT


#: Static tests that are end to end and slow (many processes, real tools, TensorFlow imported in-process):
#: marked `slow` here, in one place, so that the developer's loop
#: `python -m pytest -m "not dynamic and not slow and not browser"` stays short. CI runs everything.
SLOW_MODULES = {
    "test_isolation.py": "crashes, memory caps and signals on real worker processes",
    "test_fuzz.py": "generated programs (hypothesis)",
    "test_bad_input.py": "every bad input through the real CLI",
    "test_never_executes.py": "every output format through the real CLI, checked for side effects",
    "test_fix_safety.py": "encodings, line endings and Ctrl-C through the real CLI",
    "test_flake8_plugin.py": "the real flake8",
    "test_precommit.py": "the real pre-commit",
    "test_server.py": "a real language-server client",
    "test_editor_snippets.py": "the README's editor snippets against the real CLI",
    "test_notebook_positions.py": "Vim and the editors' matchers against the real CLI",
    "test_packaging.py": "builds the wheel",
    "test_cache.py": "concurrent real runs sharing a cache",
    "test_support_table.py": "imports TensorFlow Probability to check the support table against it",
    "test_readme_samples.py": "the README's commands through the real CLI",
    "test_dynamic_attribution.py": "some of its checks run models",
    "test_notebooks.py": "one check runs a notebook in dynamic mode",
}
#: Single slow tests in otherwise fast modules (by name): Ctrl-C and SIGTERM on 600-file runs, real subprocesses,
#: and the exhaustive equivalence proofs of the speed work (triage vs the full parse on every fixture, positions
#: and children vs LibCST's on every node of every fixture: about 20 s together, every CI run has them).
SLOW_TESTS = re.compile(r"ctrl_c|sigterm|real_subprocess|process_pool|fixture_parity|"
                        r"positions_match_position_provider|every_node_of_every_fixture|visit_of_every_fixture")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in SLOW_MODULES or SLOW_TESTS.search(item.name):
            item.add_marker(pytest.mark.slow)

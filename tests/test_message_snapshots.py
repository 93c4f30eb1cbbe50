"""The full text of every finding on every fixture, with its fix, as a snapshot (ruff's way).

Why: a message or a fix that would mislead if followed ("divide by N" where the KL is already
divided, "NaN ELBO" in a maximum-likelihood fit, a fix naming `tfb` in a file without it) is a
bug even when the code and line are right; tests/test_fixtures.py checks codes and lines only.
A changed message fails here with a diff; after reading the diff, accept it with
`python -m pytest tests/test_message_snapshots.py --snapshot-update` (syrupy).
"""

from __future__ import annotations

import pytest

from conftest import FIXTURES, linted_fixture

FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.py") if p.relative_to(FIXTURES).parts[0] != "dynamic")


def rendered(path) -> str:
    """One block per finding: position, code, message, then the fix (description and new text)."""
    blocks = []
    for d in linted_fixture(path)[0].diagnostics:
        lines = [f"{d.line}:{d.column} {d.code} [{d.name}] {d.message}"]
        if d.fix is not None:
            lines.append(f"  fix ({'unsafe' if d.fix.unsafe else 'safe'}): {d.fix.message}")
            for edit in d.fix.edits:
                lines.append(f"    {edit.start.line}:{edit.start.column}-{edit.end.line}:{edit.end.column} -> "
                             f"{edit.content!r}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n" if blocks else "(no findings)\n"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_messages_and_fixes(path, snapshot):
    assert rendered(path) == snapshot

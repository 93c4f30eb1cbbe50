"""Every file under fixtures/ is linted; `# expect: CODE` marks each line that must be reported.
A missing or an extra finding fails with a readable diff."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, expected_findings, linted_fixture

FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.py") if "dynamic" not in p.relative_to(FIXTURES).parts[:1])


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_findings_match_expectations(path):
    expected = expected_findings(path)
    diagnostics = linted_fixture(path)[0].diagnostics
    actual = sorted((d.line, d.code) for d in diagnostics)
    if actual != expected:
        missing = sorted(set(expected) - set(actual))
        extra = [d for d in diagnostics if (d.line, d.code) not in set(expected)]
        lines = [f"{path.relative_to(FIXTURES)}:"]
        lines += [f"  missing {code} on line {line}" for line, code in missing]
        lines += [f"  extra   {d.code} on line {d.line}:{d.column}: {d.message}" for d in extra]
        pytest.fail("\n".join(lines), pytrace=False)


def test_there_are_fixtures():
    assert len(FIXTURE_FILES) >= 10

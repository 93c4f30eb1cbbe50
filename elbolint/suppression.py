"""`# noqa` and `# noqa: ELB001, ELB002` on the reported line, as in ruff and flake8, and
`# elbolint: noqa` (optionally `: ELB001, ...`) on a line of its own for the whole file, as ruff's
`# ruff: noqa`."""

from __future__ import annotations

import re
from typing import Optional

# Patterns, compiled by `re` on first use (its cache): compiling both at import cost ~1 ms of every
# run, also of runs the cache answers, which never look at a comment.
_NOQA = r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?"


def noqa_codes(line: str) -> Optional[frozenset[str]]:
    """None if the line has no noqa; an empty set for a bare `# noqa` (everything); else the codes."""
    match = re.search(_NOQA, line, re.IGNORECASE)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(c.upper() for c in re.split(r"[\s,]+", codes.strip()) if c)


_FILE_NOQA = r"^\s*#\s*elbolint\s*:\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?\s*$"


def file_noqa(lines: list[str]) -> Optional[frozenset[str]]:
    """None if no line is `# elbolint: noqa`; an empty set for the bare form (everything); else the
    codes (all such lines together)."""
    found: Optional[set[str]] = None
    for line in lines:
        if "noqa" not in line:
            continue
        match = re.match(_FILE_NOQA, line, re.IGNORECASE)
        if match is None:
            continue
        if not match.group("codes"):
            return frozenset()
        found = (found or set()) | {c.upper() for c in re.split(r"[\s,]+", match.group("codes").strip()) if c}
    return frozenset(found) if found is not None else None


def noqa_column(line: str) -> int:
    """1-based column of a line's `# noqa` comment (for reporting it as unused)."""
    match = re.search(_NOQA, line, re.IGNORECASE)
    return match.start() + 1 if match else 1


def is_suppressed(lines: list[str], line: int, code: str) -> bool:
    if not 1 <= line <= len(lines):
        return False
    codes = noqa_codes(lines[line - 1])
    return codes is not None and (not codes or code in codes)

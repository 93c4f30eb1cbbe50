"""`# noqa` and `# noqa: ELB001, ELB002` on the reported line, as in ruff and flake8."""

from __future__ import annotations

import re
from typing import Optional

_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE
)


def noqa_codes(line: str) -> Optional[frozenset[str]]:
    """None if the line has no noqa; an empty set for a bare `# noqa` (everything); else the codes."""
    match = _NOQA.search(line)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(c.upper() for c in re.split(r"[\s,]+", codes.strip()) if c)


def is_suppressed(lines: list[str], line: int, code: str) -> bool:
    if not 1 <= line <= len(lines):
        return False
    codes = noqa_codes(lines[line - 1])
    return codes is not None and (not codes or code in codes)

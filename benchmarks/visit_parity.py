"""Lint every file twice in one process: with `walk.visit` as built, and with LibCST's own `node.visit`
in its place; print each file whose findings differ, then the counts.

Why: `walk.visit` replaces `CSTNode.visit` in the rules' small searches for speed, and must give the
same callbacks in the same order; this proves it on whole corpora (tests/test_speed_children.py
proves it node by node on the fixtures).

Usage: python benchmarks/visit_parity.py PATH...
"""

from __future__ import annotations

import sys
from pathlib import Path

import elbolint.walk as walk
from elbolint.linter import lint_file
from elbolint.registry import all_rules


def main(roots: list[Path]) -> int:
    rules = all_rules()
    codes = {rule.code for rule in rules}
    fast = walk.visit

    def slow(node, visitor) -> None:
        node.visit(visitor)

    holders = [m for m in list(sys.modules.values()) if m is not None and getattr(m, "visit", None) is fast]
    print(f"modules using walk.visit: {len(holders)}", file=sys.stderr)

    def findings(path: Path, visit) -> list:
        for module in holders:
            module.visit = visit
        result = lint_file(path, rules, {}, codes)
        return [(d.code, d.line, d.column, d.message) for d in result.diagnostics]

    files = differing = 0
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            files += 1
            built, reference = findings(path, fast), findings(path, slow)
            if built != reference:
                differing += 1
                print("DIFF", path, built, reference, flush=True)
    print(f"files {files}, differing {differing}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main([Path(a) for a in sys.argv[1:]]))

"""What counts as test code, for every rule and analysis that treats tests differently (ELB006's
scalar targets, the Training analysis's "trained only where its own test trains").

Test code is a test module (`test_*.py`, `*_test.py`, `*_tests.py`, `conftest.py`, or a file
within three levels under a `tests/` folder — not any folder of an absolute path: a checkout may
live in one), a test class (`Test*`, `*Test`, `*Tests`, `*TestCase`, or a `...TestCase` base) or a
`test*` def.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Iterable

import libcst as cst

_TEST_FILE = re.compile(r"(^test_.*|.*_tests?|^conftest)\.py$")
_TEST_FOLDER = "tests"


def is_test_path(path) -> bool:
    if path is None:
        return False
    try:
        pure = PurePath(str(path))
    except TypeError:
        return False
    return bool(_TEST_FILE.match(pure.name)) or _TEST_FOLDER in pure.parts[-4:-1]


def is_test_class(node: cst.ClassDef) -> bool:
    name = node.name.value
    if name.startswith("Test") or name.endswith(("Test", "Tests", "TestCase")):
        return True
    for base in node.bases:
        value = base.value
        last = value.attr if isinstance(value, cst.Attribute) else value
        if isinstance(last, cst.Name) and last.value.endswith("TestCase"):
            return True
    return False


def in_test_code(owners: Iterable[cst.CSTNode]) -> bool:
    """Whether the enclosing defs and classes (`owners`, outermost first) make this test code."""
    for owner in owners:
        if isinstance(owner, cst.FunctionDef) and owner.name.value.startswith("test"):
            return True
        if isinstance(owner, cst.ClassDef) and is_test_class(owner):
            return True
    return False

"""Apply fixes: node replacements collected per file, applied by one transformer, written atomically.

A file is rewritten only if the fixed code still parses; the write goes to a temporary file in the
same directory, keeps the original's permissions, and replaces the original with os.replace, so an
interrupted or failed fix never leaves a half-written file. Notebooks are fixed cell by cell
(see notebook.py) and written the same way.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Diagnostic


class _ReplaceNodes(cst.CSTTransformer):
    def __init__(self, replacements: dict[int, cst.CSTNode]) -> None:
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original_node, updated_node):
        replacement = self.replacements.get(id(original_node))
        return replacement if replacement is not None else updated_node


def fixed_module(module: cst.Module, diagnostics: list[Diagnostic]) -> Optional[cst.Module]:
    """The module with every fix applied, or None if nothing applies or the result does not parse."""
    replacements = {id(d.fix.node): d.fix.replacement for d in diagnostics if d.fix and d.fix.node is not None}
    if not replacements:
        return None
    new_module = module.visit(_ReplaceNodes(replacements))
    try:
        cst.parse_module(new_module.bytes)
    except cst.ParserSyntaxError:
        return None
    return new_module


def fixed_bytes(result) -> Optional[bytes]:
    """The fixed content of one linted file (a FileResult), or None when no fix applies.
    A notebook applies the fixes to its cells' sources and keeps the rest of its JSON."""
    if result.notebook is not None:
        return result.notebook.fixed(result.diagnostics)
    if result.module is None:
        return None
    new_module = fixed_module(result.module, result.diagnostics)
    return new_module.bytes if new_module is not None else None


def unified_diff(result, fixed: bytes) -> str:
    """The change `fixed` makes to the file of `result`, as `diff -u` prints it (for --diff)."""
    encoding = result.source.encoding if result.source is not None else "utf-8"
    if result.notebook is not None:  # the notebook's JSON, not the virtual module of its cells
        before, encoding = result.notebook.original, "utf-8"
    else:
        before = result.source.data.decode(encoding, errors="replace") if result.source is not None else ""
    after = fixed.decode(encoding, errors="replace")
    name = result.path.as_posix()
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}",
    ))


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and os.replace; the original survives any error."""
    directory = path.resolve().parent
    mode = path.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".elbolint", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path.resolve())
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise

"""Apply fixes: node replacements collected per file, applied by one transformer, written atomically.

A file is rewritten only if the fixed code still parses; the write goes to a temporary file in the
same directory, keeps the original's permissions, and replaces the original with os.replace, so an
interrupted or failed fix never leaves a half-written file. Notebooks are fixed cell by cell
(see notebook.py) and written the same way.

`--fix` must lose nothing, so a write is also refused (an OSError, reported as ELB900) when the file
changed on disk after it was read (an editor or another tool saved it meanwhile: writing would
discard that work), when it is read-only (the user protected it; os.replace would ignore that), or
when it is not a regular file.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Diagnostic


class _ReplaceNodes(cst.CSTTransformer):
    """Replace nodes by identity, outermost first: a replacement built by a rule holds the original
    children, so a fix nested inside another fix's node (`Adam(Adam())`: both get `clipnorm`) is
    applied by the next pass, on the child that the outer replacement kept."""

    def __init__(self, replacements: dict[int, cst.CSTNode]) -> None:
        super().__init__()
        self.replacements = replacements
        self.applied: set[int] = set()
        self._replacing = 0  # replaced nodes the traversal is inside

    def on_visit(self, node) -> bool:
        if id(node) in self.replacements:
            self._replacing += 1
        return True

    def on_leave(self, original_node, updated_node):
        key = id(original_node)
        if key not in self.replacements:
            return updated_node
        self._replacing -= 1
        if self._replacing:
            return updated_node  # inside another replacement: the next pass
        self.applied.add(key)
        return self.replacements[key]


#: Nested fixes need one pass per level; real code nests two at most.
_MAX_PASSES = 8


def fixed_module(module: cst.Module, diagnostics: list[Diagnostic]) -> Optional[cst.Module]:
    """The module with every fix applied, or None if nothing applies or the result does not parse."""
    replacements = {id(d.fix.node): d.fix.replacement for d in diagnostics if d.fix and d.fix.node is not None}
    if not replacements:
        return None
    new_module = module
    for _ in range(_MAX_PASSES):
        transformer = _ReplaceNodes(replacements)
        new_module = new_module.visit(transformer)
        replacements = {k: v for k, v in replacements.items() if k not in transformer.applied}
        if not replacements or not transformer.applied:
            break
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
    # git's a/ b/ prefixes for relative paths; an absolute path is shown as it is (not `a//tmp/x.py`)
    old, new = (name, name) if result.path.is_absolute() else (f"a/{name}", f"b/{name}")
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), old, new,
    ))


class FileChangedError(OSError):
    """The file's bytes on disk are no longer those that were linted: someone else wrote it since."""

    def __init__(self, path: Path) -> None:
        # No errno: nothing failed in the system; the message is the whole story (ELB900 shows strerror).
        super().__init__(None, "the file changed on disk after it was read; fixes not written", str(path))

    def __str__(self) -> str:
        return f"{self.strerror}: {self.filename}"


class ReadOnlyFileError(PermissionError):
    """The file has no write bit: the user protected it, so --fix leaves it alone (even as root)."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.EACCES, "file is read-only; fixes not written", str(path))


class NotARegularFileError(OSError):
    """A FIFO or device: reading it to compare would block or consume it, and replacing it would be wrong."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.EINVAL, "not a regular file; fixes not written", str(path))


def original_bytes(result) -> Optional[bytes]:
    """The bytes a FileResult's fixes were computed from, to pass as write_atomically's `original`.

    Why not always `result.source.data`: for a notebook that is the virtual module of its code cells,
    not the file. Its file bytes are the JSON text it was read as (a notebook is UTF-8; only a BOM
    would differ, and then the write is refused as "changed": safe, never lossy)."""
    if result.notebook is not None:
        data = getattr(result.notebook, "data", None)
        return data if data else result.notebook.original.encode("utf-8")  # b"": not recorded
    return result.source.data if result.source is not None else None


def write_atomically(path: Path, data: bytes, original: Optional[bytes] = None) -> None:
    """Write `data` to `path` via a temporary file and os.replace; the original survives any error.

    `original` is the content that was read and linted: if the file no longer holds exactly those
    bytes, FileChangedError is raised and nothing is written, so a concurrent save is never lost.
    The check runs again just before os.replace, which leaves only the replace itself as a window.
    A symlink stays a symlink: its target is rewritten. Mode and (when permitted) owner are kept.
    """
    target = path.resolve()
    info = os.stat(target)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFileError(path)
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):  # root passes os.access: look at the bits
        raise ReadOnlyFileError(path)
    _check_unchanged(path, target, original)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".elbolint", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_owner(temporary, info)
        os.chmod(temporary, stat.S_IMODE(info.st_mode))  # after chown, which may clear setuid bits
        _check_unchanged(path, target, original)
        os.replace(temporary, target)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _sync_directory(target.parent)


def _check_unchanged(path: Path, target: Path, original: Optional[bytes]) -> None:
    if original is None:
        return
    try:
        current = target.read_bytes()
    except FileNotFoundError:  # deleted or renamed away since it was read: recreating it would be wrong
        raise FileChangedError(path) from None
    if current != original:
        raise FileChangedError(path)


def _keep_owner(temporary: str, info: os.stat_result) -> None:
    """The new file is created by us; give it the original's owner and group where we may
    (root fixing a user's file must not leave it owned by root)."""
    created = os.stat(temporary)
    if (created.st_uid, created.st_gid) == (info.st_uid, info.st_gid):
        return
    for uid in (info.st_uid, -1):
        try:
            os.chown(temporary, uid, info.st_gid)
            return
        except OSError:
            continue


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

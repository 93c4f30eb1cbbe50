"""Which files to lint (`*.py`, `*.pyi`, `*.ipynb`): explicit files always; directories recursively, skipping
default excludes, configured excludes and what .gitignore files ignore (as ruff does)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Union, cast

from elbolint import gitignore
from elbolint.config import Config

#: Python sources and Jupyter notebooks (see notebook.py).
PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")
DEFAULT_EXCLUDES = (
    ".bzr", ".direnv", ".eggs", ".git", ".hg", ".ipynb_checkpoints", ".mypy_cache", ".nox",
    ".pants.d", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox", ".venv", "__pycache__",
    "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules", "site-packages",
    "venv", "*.egg-info",
)


class Missing:
    """A path argument that does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path


def discover(paths: list[Path], config: Config) -> Iterator[Union[Path, Missing]]:
    excludes = list(config.exclude) if config.exclude else list(DEFAULT_EXCLUDES)
    excludes += config.extend_exclude
    exclude_patterns = _Excludes(gitignore.parse_patterns(excludes, config.root))
    seen: set[tuple[int, int]] = set()  # (device, inode): a file reached twice is linted once
    walked: set[tuple[int, int]] = set()  # (device, inode) of every directory entered
    for path in paths:
        if path.is_dir() and config.force_exclude and _force_excluded(path, exclude_patterns, config.root, True):
            continue  # `elbolint --force-exclude legacy/` with legacy/ excluded: nothing to lint
        if path.is_dir():
            inherited = _parent_gitignores(path) if config.respect_gitignore else []
            for found, key in _walk(path, exclude_patterns, inherited, config.respect_gitignore, walked):
                if key not in seen:
                    seen.add(key)
                    yield found
        elif config.force_exclude and _force_excluded(path, exclude_patterns, config.root):
            continue  # pre-commit names files one by one: the excludes must still hold
        elif path.exists() or path.is_symlink():
            try:
                status = path.stat()
                key = (status.st_dev, status.st_ino)
            except OSError:  # a dangling symlink: linted (and reported) once
                key = (-1, hash(os.path.abspath(path)))
            if key not in seen:
                seen.add(key)
                yield path
        else:
            yield Missing(path)


def _walk(directory: Path, excludes, patterns, respect_gitignore: bool, walked) -> Iterator[tuple[Path, tuple]]:
    """The files under `directory`, depth first in name order. Why `walked`: a symlink to a parent
    directory would otherwise make the walk endless (each loop multiplies the paths); every real
    directory is entered once, whatever leads to it. One explicit stack, and plain strings for
    the names and absolute paths that the excludes test: a Path is made only for what is yielded
    (pathlib's constructor and abspath per entry were most of a 10,000-file discovery, profiled)."""
    stack = [_entries(directory, patterns, respect_gitignore, walked)]
    while stack:
        frame = stack[-1]
        entry = next(frame.entries, None)
        if entry is None:
            stack.pop()
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        name = entry.name
        absolute = frame.prefix + name
        if _excluded_absolute(absolute, name, is_dir, excludes) or (
                frame.patterns and gitignore.is_ignored(cast(Path, absolute), is_dir, frame.patterns)):  # (a str
            continue  # is as good: is_ignored reads only its abspath)
        if is_dir:
            stack.append(_entries(frame.directory / name, frame.patterns, respect_gitignore, walked))
        elif _suffix(name) in PYTHON_SUFFIXES:
            path = frame.directory / name  # (a child of a Path: cheaper than parsing entry.path anew)
            try:  # scandir knows a plain file's inode; a symlink is followed
                key = (frame.device, entry.inode()) if not entry.is_symlink() else _identity(path)
            except OSError:
                key = (-1, hash(entry.path))
            yield path, key


class _Frame:
    """One directory being walked: its path, its sorted entries, the absolute prefix of their paths,
    its device, and the gitignore patterns that apply inside it."""

    __slots__ = ("directory", "entries", "prefix", "device", "patterns")

    def __init__(self, directory: Path, entries: Iterator[os.DirEntry], prefix: str, device: int,
                 patterns: list) -> None:
        self.directory, self.entries, self.prefix, self.device = directory, entries, prefix, device
        self.patterns = patterns


def _entries(directory: Path, patterns: list, respect_gitignore: bool, walked) -> _Frame:
    """A directory's frame (no entries when it cannot be read or was entered before)."""
    nothing = _Frame(directory, iter(()), "", -1, patterns)
    try:
        status = directory.stat()
    except OSError:
        return nothing
    identity = (status.st_dev, status.st_ino)
    if identity in walked:
        return nothing
    walked.add(identity)
    if respect_gitignore:
        patterns = patterns + gitignore.load(directory / ".gitignore")
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return nothing
    prefix = os.path.abspath(directory)
    if not prefix.endswith(os.sep):
        prefix += os.sep
    return _Frame(directory, iter(entries), prefix, status.st_dev, patterns)


def _suffix(name: str) -> str:
    """Path(name).suffix, without making a Path."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


class _Excludes:
    """The exclude patterns as one regular expression per (base, files and directories / directories
    only): a negated exclude pattern excludes nothing, and any other match excludes, so the patterns'
    alternation is the same test. Why: matched one by one, the ~25 default patterns were most of a
    10,000-file discovery (profiled)."""

    def __init__(self, patterns: list[gitignore.Pattern]) -> None:
        grouped: dict[tuple[int, bool], tuple[Path, list[str]]] = {}
        for pattern in patterns:
            if not pattern.negated:
                key = (id(pattern.base), pattern.directory_only)
                grouped.setdefault(key, (pattern.base, []))[1].append(pattern.regex.pattern)
        self.groups = [(base, directory_only, re.compile("|".join(f"(?:{p})" for p in sources), re.S))
                       for (_, directory_only), (base, sources) in grouped.items()]


def _excluded(path: Path, is_dir: bool, excludes: Union[_Excludes, list[gitignore.Pattern]]) -> bool:
    """Exclude patterns are relative to the config root; outside it only the name is matched."""
    if not isinstance(excludes, _Excludes):  # a list of patterns (the language server's)
        excludes = _Excludes(excludes)
    return _excluded_absolute(os.path.abspath(path), path.name, is_dir, excludes)


def _excluded_absolute(absolute: str, name: str, is_dir: bool, excludes: _Excludes) -> bool:
    """_excluded, given the normalised absolute path and the name."""
    for base, directory_only, regex in excludes.groups:
        if directory_only and not is_dir:
            continue
        relative = gitignore.relative_to(absolute, base) or name
        if regex.match(relative):
            return True
    return False


def _force_excluded(path: Path, excludes: Union[_Excludes, list[gitignore.Pattern]], root: Path,
                    is_dir: bool = False) -> bool:
    """Whether an explicitly named file or directory, or a directory above it inside the project, is
    excluded (`excludes`: an _Excludes, or the patterns, as the language server passes them)."""
    if not isinstance(excludes, _Excludes):
        excludes = _Excludes(excludes)
    absolute, root = Path(os.path.abspath(path)), root.absolute()
    if absolute != root and _excluded(absolute, is_dir, excludes):
        return True
    return any(_excluded(parent, True, excludes) for parent in absolute.parents
               if parent != root and root in parent.parents)


def _parent_gitignores(directory: Path) -> list[gitignore.Pattern]:
    """The .gitignore files of the repository above `directory` (outermost first)."""
    directory = directory.absolute()
    chain = []
    for parent in directory.parents:
        chain.append(parent)
        if (parent / ".git").exists():
            break
    else:
        return []
    patterns: list[gitignore.Pattern] = []
    for parent in reversed(chain):
        patterns += gitignore.load(parent / ".gitignore")
    return patterns

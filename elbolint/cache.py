"""A content cache, as ruff has: a second run over an unchanged tree parses nothing.

Why a cache: a pre-commit hook or a CI step lints the same files thousands of times a day; LibCST
costs ~20 ms a file, reading and hashing it ~0.05 ms.

What a result is keyed by (`Cache.key`): the SHA-256 of the file's bytes, the file kind (suffix), the
codes enabled for that file (so `per-file-ignores` count), and a run fingerprint of everything else
that can change a result: elbolint's version and the hash of its own code and rules (a development
checkout changes without a new version), LibCST's and Python's versions, rule options and limits.

Where: `.elbolint_cache/` at the project root (beside the pyproject.toml that configures elbolint, or
the current directory), or `--cache-dir` / `cache-dir`; it holds its own `.gitignore` so git never
sees it. Storage is one SQLite database: each write is a transaction, so two runs at once (two
pre-commit hooks) are safe, and a crash mid-write leaves the previous state. A database that is
corrupt or not ours is moved aside and started anew; any other cache failure turns the cache off for
the run (one line on stderr) and never fails the lint.

A stat fast path avoids even reading unchanged files: (path, size, mtime_ns, inode) -> content hash.
Bounded: entries unused for 30 days are dropped, and past 200,000 entries the least recently used go.
Not cached: stdin, dynamic runs, and results that say a file was skipped or unreadable (ELB900/901:
they depend on the machine, not the content).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional

from elbolint import __version__
from elbolint.diagnostics import Diagnostic, Edit, Fix, Position, Severity

DEFAULT_DIRECTORY = ".elbolint_cache"
SCHEMA = 1
MAX_ENTRIES = 200_000
MAX_AGE_SECONDS = 30 * 24 * 3600
UNCACHEABLE = {"ELB900", "ELB901"}


def content_hash(data: bytes) -> str:
    """SHA-256 of a file's bytes, by hashlib (OpenSSL: 1.7 GB/s here, against 0.3 GB/s for Python's own),
    imported when a file is first hashed: a run without the cache never is."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _sha256() -> Any:
    """A SHA-256 object for the short texts of every run (fingerprints, keys): Python's own
    implementation, the same digests without importing hashlib, which loads OpenSSL first (~3 ms of
    every run, measured with `python -X importtime`)."""
    return _sha256_constructor()()


@lru_cache(maxsize=1)
def _sha256_constructor() -> Any:
    for name in ("_sha256", "_sha2"):  # (`_sha2` from Python 3.12)
        try:
            return getattr(__import__(name), "sha256")
        except (ImportError, AttributeError):
            continue
    import hashlib  # pragma: no cover (an interpreter without them)

    return hashlib.sha256


def code_fingerprint() -> str:
    """elbolint's version plus a hash of its own sources and of every rule package's files (plugins
    included). Found by their files, not imported: a run the cache answers need not import LibCST
    and the rules; and every file of a rule package counts, its shared helpers too (`rules/_tfp.py`).
    The files are read once per process (the rule index, rule_index.py, is named by this too)."""
    digest = _sha256()
    digest.update(f"{__version__}|{sys.version}|{_libcst_version()}|{SCHEMA}".encode())
    digest.update(_sources_digest().encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _sources_digest() -> str:
    """The hash of elbolint's and the rule packages' files, remembered under their stat signature.

    Reading and hashing ~140 files cost ~16 ms of every run, a sixth of a run the cache answers. So
    the digest is kept in the user's cache directory (user_cache.py) in a file named by a hash of each
    file's path, size, inode and modification and change times (nanoseconds), the signature a `.pyc`
    relies on, made stricter: an edit changes the change time even when the size and the modification
    time are put back. Any changed, added or removed file is a new signature, so the files are read
    and hashed again."""
    files = _code_files()
    memo = _memo_path(files)
    if memo is not None:
        try:
            remembered = memo.read_text("ascii")
        except (OSError, ValueError):
            remembered = ""
        if len(remembered) == 64:
            return remembered
    digest = _sha256()
    for path in files:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(str(path).encode())
    found = digest.hexdigest()
    if memo is not None:
        from elbolint.user_cache import save

        save(memo, found.encode("ascii"), "sources-*")
    return found


def _code_files() -> list[Path]:
    package = Path(__file__).resolve().parent
    files = sorted(package.rglob("*.py"))
    seen = set(files)
    for path in _rule_files():
        if path not in seen:
            seen.add(path)
            files.append(path)
    return files


def _memo_path(files: list[Path]) -> Optional[Path]:
    from elbolint.user_cache import directory

    folder = directory()
    if folder is None:
        return None
    signature = _sha256()
    for path in files:
        try:
            stat = path.stat()
            signature.update(f"{path}|{stat.st_size}|{stat.st_ino}|{stat.st_mtime_ns}|{stat.st_ctime_ns}\n".encode())
        except OSError:
            signature.update(f"{path}|missing\n".encode())
    return folder / f"sources-{signature.hexdigest()[:40]}"


def _rule_files() -> list[Path]:
    """The .py files of `elbolint.rules` (wherever an editable install maps it) and of the modules
    registered under the `elbolint.rules` entry points (their whole package folder when a package)."""
    import importlib.util

    from elbolint.registry import rule_entry_points

    names = ["elbolint.rules"] + [entry.module for entry in rule_entry_points()]
    files: list[Path] = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            files.append(Path(f"<missing {name}>"))  # hashed by name: still a different fingerprint
            continue
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                files += sorted(Path(location).resolve().rglob("*.py"))
        elif spec.origin:
            files.append(Path(spec.origin).resolve())
    return files


@lru_cache(maxsize=1)
def _libcst_version() -> str:
    """LibCST's version: from the name of its `libcst-X.dist-info` folder beside it when there is
    exactly one (no importlib.metadata to import, see registry.rule_entry_points), else asked."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("libcst")  # found, not imported
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        site = Path(spec.origin).parent.parent
        try:
            found = [name for name in os.listdir(site) if name.startswith("libcst-") and name.endswith(".dist-info")]
        except OSError:
            found = []
        if len(found) == 1:
            return found[0][len("libcst-"):-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("libcst")
    except PackageNotFoundError:
        return "?"


class Cache:
    """Results by key. Every method is safe to call after a failure: it then does nothing."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.connection: Optional[sqlite3.Connection] = None
        self.warning: Optional[str] = None
        try:
            self._open()
        except (sqlite3.Error, OSError) as error:
            self._disable(error)

    # ------------------------------------------------------------ keys
    def key(self, digest: str, suffix: str, enabled: Iterable[str]) -> str:
        text = f"{self.fingerprint}|{digest}|{suffix}|{','.join(sorted(enabled))}"
        hashed = _sha256()
        hashed.update(text.encode())
        return hashed.hexdigest()

    # ------------------------------------------------------------ stat fast path
    def known_hash(self, path: Path, stat: os.stat_result) -> Optional[str]:
        row = self._query("SELECT digest FROM stats WHERE path = ? AND size = ? AND mtime = ? AND inode = ?",
                          (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return row[0] if row else None

    # ------------------------------------------------------------ results
    def get(self, key: str) -> Optional[tuple[bool, list[dict]]]:
        row = self._query("SELECT parsed, diagnostics FROM results WHERE key = ?", (key,))
        if row is None:
            return None
        try:
            return bool(row[0]), json.loads(row[1])
        except (TypeError, ValueError):  # a damaged entry: a miss, rewritten by this run
            return None

    def put(self, entries: list[tuple[str, bool, list[dict]]], stats: list[tuple[Path, os.stat_result, str]]):
        self.update(entries, stats, [], prune=False)

    def touch(self, keys: list[str]) -> None:
        """Mark hits as used today (at most once a day per entry: a warm run writes little)."""
        self.update([], [], keys, prune=False)

    def prune(self) -> None:
        self.update([], [], [], prune=True)

    def update(self, entries: list[tuple[str, bool, list[dict]]], stats: list[tuple[Path, os.stat_result, str]],
               used: list[str], prune: bool = True) -> None:
        """A run's writes in one transaction: its new results and stat entries, its hits marked as used
        today, then the bound on the entries (`prune`). One explicit transaction: the connection is in
        autocommit mode, where each row written would be a transaction of its own (10,000 files' results
        took 5x the time, measured)."""
        if self.connection is None or not (entries or stats or used or prune):
            return
        now = int(time.time())
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            with self.connection:  # commits, or rolls back on an error
                self._write(self.connection, entries, stats, now)
                if used:
                    self.connection.executemany("UPDATE results SET used = ? WHERE key = ? AND used < ?",
                                                [(now, key, now - 86400) for key in used])
                if prune:
                    self._prune(self.connection, now)
        except (sqlite3.Error, OSError) as error:
            self._disable(error)

    @staticmethod
    def _write(connection: sqlite3.Connection, entries, stats, now: int) -> None:
        if entries:
            connection.executemany(
                "INSERT OR REPLACE INTO results (key, parsed, diagnostics, used) VALUES (?, ?, ?, ?)",
                [(key, int(parsed), json.dumps(items), now) for key, parsed, items in entries])
        if stats:
            connection.executemany(
                "INSERT OR REPLACE INTO stats (path, size, mtime, inode, digest) VALUES (?, ?, ?, ?, ?)",
                [(os.path.abspath(path), s.st_size, s.st_mtime_ns, s.st_ino, digest) for path, s, digest in stats])

    @staticmethod
    def _prune(connection: sqlite3.Connection, now: int) -> None:
        connection.execute("DELETE FROM results WHERE used < ?", (now - MAX_AGE_SECONDS,))
        (count,) = connection.execute("SELECT COUNT(*) FROM results").fetchone()
        if count > MAX_ENTRIES:
            connection.execute("DELETE FROM results WHERE key IN (SELECT key FROM results ORDER BY used LIMIT ?)",
                               (count - MAX_ENTRIES,))
        (count,) = connection.execute("SELECT COUNT(*) FROM stats").fetchone()
        if count > MAX_ENTRIES:
            connection.execute("DELETE FROM stats")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    # ------------------------------------------------------------ internals
    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Created by elbolint.\n*\n", encoding="utf-8")
        database = self.directory / f"results-v{SCHEMA}.sqlite"
        try:
            self.connection = self._connect(database)
        except sqlite3.DatabaseError:  # corrupt, or not a database at all: move it aside, start anew
            self.close()
            os.replace(database, database.with_suffix(f".corrupt-{os.getpid()}"))
            self.connection = self._connect(database)

    @staticmethod
    def _connect(database: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            with connection:
                connection.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, parsed INTEGER, "
                                   "diagnostics TEXT, used INTEGER)")
                connection.execute("CREATE TABLE IF NOT EXISTS stats (path TEXT PRIMARY KEY, size INTEGER, "
                                   "mtime INTEGER, inode INTEGER, digest TEXT)")
            connection.execute("SELECT key, parsed, diagnostics, used FROM results LIMIT 1").fetchall()
            connection.execute("SELECT path, size, mtime, inode, digest FROM stats LIMIT 1").fetchall()
        except sqlite3.Error:
            connection.close()
            raise sqlite3.DatabaseError("not an elbolint cache")
        return connection

    def _query(self, sql: str, parameters: tuple):
        if self.connection is None:
            return None
        try:
            return self.connection.execute(sql, parameters).fetchone()
        except (sqlite3.Error, OSError) as error:
            self._disable(error)
            return None

    def _disable(self, error: Exception) -> None:
        self.close()
        if self.warning is None:
            self.warning = f"elbolint: cache in {self.directory} not used this run: {error}"


# ------------------------------------------------------------ diagnostics as JSON-able values

def encode(diagnostics: list[Diagnostic]) -> list[dict]:
    return [{
        "start": [d.start.line, d.start.column], "end": [d.end.line, d.end.column], "code": d.code,
        "name": d.name, "message": d.message, "severity": d.severity.value, "cell": d.cell,
        "fix": None if d.fix is None else {
            "message": d.fix.message, "unsafe": d.fix.unsafe,
            "edits": [[e.start.line, e.start.column, e.end.line, e.end.column, e.content] for e in d.fix.edits],
        },
    } for d in diagnostics]


def decode(path: Path, items: list[dict]) -> list[Diagnostic]:
    diagnostics = []
    for item in items:
        fix = None
        if item["fix"] is not None:
            edits = tuple(Edit(Position(a, b), Position(c, d), content) for a, b, c, d, content in item["fix"]["edits"])
            fix = Fix(item["fix"]["message"], edits, unsafe=bool(item["fix"].get("unsafe")))
        diagnostics.append(Diagnostic(
            path, Position(*item["start"]), Position(*item["end"]), item["code"], item["name"],
            item["message"], Severity(item["severity"]), fix, cell=item["cell"]))
    return diagnostics

"""The user's cache directory, for what elbolint derives from its own installed code, as a `.pyc` is.

Three small stores live there, each named by what it was derived from, so a changed installation
simply finds no file and derives it again: the rule index (rule_index.py), the compiled code of
`@dataclass` methods (dataclass_code.py) and the digest of elbolint's sources (cache.py). None holds
anything from a linted project, so `--no-cache` does not turn them off. Where the directory cannot be
written or read, each run derives them, as before they existed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: Files of one kind kept side by side (one per installation: checkouts, versions); older ones are removed.
KEEP = 8

#: A temporary file older than this is a killed run's (a live writer renames its own within milliseconds).
STALE_SECONDS = 600


def directory() -> Optional[Path]:
    """`$XDG_CACHE_HOME/elbolint`, else `~/.cache/elbolint` (None without a home directory)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG specification: a relative path is invalid, ignored
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no home directory to be found
            return None
    return Path(base) / "elbolint"


def save(path: Path, data: bytes, kind: str, keep: int = KEEP) -> None:
    """Write `data` to `path` through a temporary file renamed over it, so a reader sees the whole file
    or none; then remove the files matching the glob `kind` beyond the `keep` newest. Any failure is
    silent: only the saving is lost."""
    import tempfile  # (only when something is written: not on a run's path)
    import time

    try:
        path.parent.parent.mkdir(exist_ok=True)  # `~/.cache` or $XDG_CACHE_HOME, never the home itself
        path.parent.mkdir(exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        others = sorted(path.parent.glob(kind), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[keep:]:
            old.unlink()
        for stale in path.parent.glob(f".{kind}-*"):  # the temporary file of a run killed before its rename
            if stale.stat().st_mtime < time.time() - STALE_SECONDS:
                stale.unlink()
    except (OSError, ValueError):
        pass

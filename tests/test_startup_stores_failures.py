"""How the start-up stores in the user's cache directory fail: a store damaged after it was written
(a flipped bit in kept bytecode) is recompiled, never executed; a relative XDG_CACHE_HOME is ignored
(the XDG specification) instead of making a cache folder inside the linted project; a missing home
directory is not created; the temporary file of a run killed before its rename is removed once stale;
importing the command line as a library leaves the host program's final collection alone."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

from elbolint import dataclass_code, user_cache

SOURCE = '''
import dataclasses

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
'''


def _build() -> dict:
    namespace: dict = {}
    exec(compile(SOURCE, "<classes>", "exec"), namespace)
    return namespace


def test_a_store_damaged_after_writing_is_recompiled_not_executed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with dataclass_code.generated_code("test"):
        _build()
    stored = dataclass_code.store_path("test")
    assert stored is not None
    assert dataclass_code._read(stored)  # whole: read back
    # Same texts, but one kept code object replaced by other code: as a bit flip in its bytecode would
    # (which can crash the interpreter), only the bytes differ from what was written.
    data = bytearray(stored.read_bytes())
    texts = marshal.loads(bytes(data))
    text = next(iter(texts))
    start = bytes(data).find(texts[text].co_code)
    assert start > 0
    data[start + 1] ^= 0x01
    stored.write_bytes(bytes(data))
    assert dataclass_code._read(stored) == {}  # the checksum does not match: nothing is taken from it
    with dataclass_code.generated_code("test"):
        built = _build()
    assert repr(built["Point"](1)) == "Point(x=1, y=0)"


def test_a_relative_xdg_cache_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert user_cache.directory() == tmp_path / "home" / ".cache" / "elbolint"


def test_a_missing_home_is_not_created(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "nonexistent"))
    folder = user_cache.directory()
    assert folder is not None
    user_cache.save(folder / "rules-x.json", b"{}", "rules-*.json")
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "nonexistent").mkdir()  # a home without ~/.cache: that one level is made
    user_cache.save(folder / "rules-x.json", b"{}", "rules-*.json")
    assert (folder / "rules-x.json").read_bytes() == b"{}"


def test_a_killed_runs_temporary_file_is_removed_once_stale(tmp_path):
    folder = tmp_path / "elbolint"
    folder.mkdir()
    stale = folder / ".rules-abc.json-k1ll3d"
    fresh = folder / ".rules-abc.json-wr1t1ng"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    old = time.time() - 2 * user_cache.STALE_SECONDS
    os.utime(stale, (old, old))
    user_cache.save(folder / "rules-abc.json", b"{}", "rules-*.json")
    assert not stale.exists()  # a killed run's
    assert fresh.exists()  # perhaps another run's, writing now
    assert (folder / "rules-abc.json").read_bytes() == b"{}"


def test_importing_the_command_line_keeps_the_hosts_final_collection(tmp_path):
    """A host program's object in a reference cycle is still finalised at exit."""
    probe = ("import os, elbolint.cli\nclass Node:\n    def __del__(self):\n        os.write(1, b'finalised')\n"
             "n = Node(); n.me = n; del n\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env, timeout=120)
    assert done.stdout == b"finalised", done.stderr


def test_the_command_still_runs_with_the_freeze(tmp_path):
    target = Path(__file__).resolve().parents[1] / "examples" / "bayesian_regression.py"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", str(target)], capture_output=True,
                          env=env, timeout=120)
    assert done.returncode in (0, 1) and b"Traceback" not in done.stderr

"""`--fix` loses nothing: whatever fails or races, the user's file keeps its bytes, mode and kind.

Each test breaks one thing a real run meets (a full disk, Ctrl-C mid-write, an editor saving the
file meanwhile, a read-only file, a symlink, unusual encodings and line endings, exec bits) and
checks the file byte for byte afterwards, plus that no temporary `.*.elbolint` file is left behind.
write_atomically is tested directly, and through the CLI as users run it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from elbolint import fixes
from elbolint.cli import main
from elbolint.fixes import FileChangedError, NotARegularFileError, ReadOnlyFileError, original_bytes, write_atomically
from elbolint.linter import lint_file
from elbolint.registry import all_rules
from elbolint.config import Config

SOURCE = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(0.5, name="s"))
optimizer = tf.optimizers.Adam(learning_rate=0.01)
losses = tfp.vi.fit_surrogate_posterior(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate, optimizer, num_steps=10)
"""
# Exactly what the two fixes (ELB001 and ELB003) change; every other byte must stay.
FIXED = SOURCE.replace(
    'scale=tf.Variable(0.5, name="s")', 'scale=tfp.util.TransformedVariable(0.5, tfb.Softplus(), name="s")'
).replace("Adam(learning_rate=0.01)", "Adam(learning_rate=0.01, clipnorm=1.0)")
OTHER_WRITER = b"# saved by the user's editor while elbolint was running\n"
NEW = FIXED.encode()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".elbolint"))


def invoke(args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def elbolint(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "elbolint", *args], capture_output=True, cwd=cwd, env=env, timeout=60)


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "model.py"
    path.write_bytes(SOURCE.encode())
    return path


# ------------------------------------------------------------------ failing writes
def test_a_failing_replace_leaves_the_original_and_no_temporary(model, monkeypatch):
    """ENOSPC and friends surface at os.replace at the latest: the original must not be touched."""
    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixes.os, "replace", refuse)
    with pytest.raises(OSError) as raised:
        write_atomically(model, NEW, original=SOURCE.encode())
    assert raised.value.strerror == "No space left on device"
    assert model.read_bytes() == SOURCE.encode()
    assert leftovers(model.parent) == []


def test_ctrl_c_during_fsync_leaves_the_original_and_no_temporary(model, monkeypatch):
    """KeyboardInterrupt is a BaseException: the clean-up must catch it too, then let it through."""
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fixes.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(model, NEW, original=SOURCE.encode())
    assert model.read_bytes() == SOURCE.encode()
    assert leftovers(model.parent) == []


def test_ctrl_c_halfway_through_the_write_leaves_the_original_and_no_temporary(model, monkeypatch):
    """A temporary holding half the fixed file exists at that moment; it must not survive or replace."""
    real_fdopen = os.fdopen
    seen = []

    class HalfWritten:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            seen.extend(leftovers(model.parent))
            raise KeyboardInterrupt

    monkeypatch.setattr(fixes.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        write_atomically(model, NEW, original=SOURCE.encode())
    assert len(seen) == 1 and seen[0].startswith(".model.py.")  # the half-written temporary did exist
    assert model.read_bytes() == SOURCE.encode()
    assert leftovers(model.parent) == []


# Runs elbolint's CLI with fsync made slow, so that Ctrl-C is sure to arrive mid-write. The worker
# that writes is forked from this process, so it inherits the patch.
_SLOW_FSYNC = """
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):
    open(os.environ["ELBOLINT_IN_WRITE"], "w").close()
    time.sleep(30)
    real_fsync(fd)
os.fsync = slow_fsync
from elbolint.cli import main
sys.argv = ["elbolint", "--fix", "model.py"]
main()
"""


def test_ctrl_c_during_a_real_fix_exits_130_and_leaves_the_file_whole(model, tmp_path):
    """The README's promise, end to end: SIGINT reaches the parent while a worker is between writing
    the temporary and os.replace; the parent stops the worker, the worker's clean-up removes the
    temporary, and the run exits 130 with the original untouched."""
    in_write = tmp_path / "in_write"
    env = {**os.environ, "ELBOLINT_IN_WRITE": str(in_write),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-c", _SLOW_FSYNC], cwd=model.parent, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not in_write.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the fix never reached fsync"
            time.sleep(0.02)
        assert len(leftovers(model.parent)) == 1  # the temporary exists right now
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr
    assert model.read_bytes() == SOURCE.encode()
    assert sorted(n for n in os.listdir(model.parent) if n != ".elbolint_cache") == ["in_write", "model.py"]


# ------------------------------------------------------------------ concurrent changes
def test_a_file_changed_after_reading_is_not_overwritten(model):
    """An editor saved the file after elbolint read it: the fix was computed from stale bytes."""
    model.write_bytes(OTHER_WRITER)
    with pytest.raises(FileChangedError) as raised:
        write_atomically(model, NEW, original=SOURCE.encode())
    assert isinstance(raised.value, OSError)
    assert raised.value.strerror == "the file changed on disk after it was read; fixes not written"
    assert model.read_bytes() == OTHER_WRITER
    assert leftovers(model.parent) == []


def test_a_change_while_the_temporary_is_written_is_caught_before_the_replace(model, monkeypatch):
    """The check is repeated just before os.replace, so a save during the write itself is kept too."""
    real_mkstemp = fixes.tempfile.mkstemp

    def save_meanwhile(*args, **kwargs):
        model.write_bytes(OTHER_WRITER)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(fixes.tempfile, "mkstemp", save_meanwhile)
    with pytest.raises(FileChangedError):
        write_atomically(model, NEW, original=SOURCE.encode())
    assert model.read_bytes() == OTHER_WRITER
    assert leftovers(model.parent) == []


def test_a_file_deleted_after_reading_is_not_recreated(model, monkeypatch):
    real_mkstemp = fixes.tempfile.mkstemp

    def delete_meanwhile(*args, **kwargs):
        model.unlink()
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(fixes.tempfile, "mkstemp", delete_meanwhile)
    with pytest.raises(FileChangedError):
        write_atomically(model, NEW, original=SOURCE.encode())
    assert [p for p in model.parent.iterdir() if p.name != ".elbolint_cache"] == []


def test_unchanged_original_and_no_original_both_write(model, tmp_path):
    """The check refuses only real changes; callers that pass no original keep the old behaviour."""
    write_atomically(model, NEW, original=SOURCE.encode())
    assert model.read_bytes() == NEW
    other = tmp_path / "other.py"
    other.write_bytes(b"old\n")
    write_atomically(other, b"new\n")
    assert other.read_bytes() == b"new\n"


def test_cli_reports_a_concurrent_change_as_elb900_and_keeps_it(model, monkeypatch):
    """NEEDS runner.apply_fixes to pass `original=`: the user's save survives and the reason is shown."""
    real_mkstemp = fixes.tempfile.mkstemp

    def save_meanwhile(*args, **kwargs):
        model.write_bytes(OTHER_WRITER)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(fixes.tempfile, "mkstemp", save_meanwhile)
    result = invoke(["--fix", "model.py"], model.parent)
    assert model.read_bytes() == OTHER_WRITER
    assert result.exit_code == 1
    assert ("model.py:1:1: ELB900 [io-error] cannot write fixes: "
            "the file changed on disk after it was read; fixes not written") in result.stdout
    assert sorted(p.name for p in model.parent.iterdir() if p.name != ".elbolint_cache") == ["model.py"]


def test_original_bytes_of_a_notebook_are_the_file_bytes(tmp_path):
    """For a notebook, result.source.data is the virtual module of its cells, not the file: passing
    it as `original` would refuse every notebook fix as 'changed'. original_bytes gets it right."""
    path = tmp_path / "model.ipynb"
    path.write_text(_notebook_json())
    result = lint_file(path, all_rules(), {}, Config().enabled_codes())
    assert result.source.data != path.read_bytes()
    assert original_bytes(result) == path.read_bytes()
    plain = lint_file(_write(tmp_path / "model.py", SOURCE.encode()), all_rules(), {}, Config().enabled_codes())
    assert original_bytes(plain) == SOURCE.encode()


def test_cli_fixes_a_notebook(tmp_path):
    """NEEDS runner.apply_fixes to pass `original=original_bytes(result)`, not `result.source.data`
    (see the test above): with the latter this fails with ELB900 'the file changed on disk'."""
    path = tmp_path / "model.ipynb"
    path.write_text(_notebook_json())
    result = invoke(["--fix", "model.ipynb"], tmp_path)
    assert result.exit_code == 0, result.output
    assert path.read_text() == _notebook_json(FIXED)


# ------------------------------------------------------------------ protected files and links
@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555])
def test_a_read_only_file_is_refused_even_as_root(model, mode):
    """Root passes os.access and os.replace ignores the target's mode: only the bits tell."""
    model.chmod(mode)
    with pytest.raises(ReadOnlyFileError) as raised:
        write_atomically(model, NEW, original=SOURCE.encode())
    assert isinstance(raised.value, PermissionError)
    assert raised.value.strerror == "file is read-only; fixes not written"
    assert model.read_bytes() == SOURCE.encode()
    assert stat.S_IMODE(model.stat().st_mode) == mode
    assert leftovers(model.parent) == []


def test_cli_reports_a_read_only_file_and_leaves_it(model):
    model.chmod(0o444)
    result = invoke(["--fix", "model.py"], model.parent)
    assert result.exit_code == 1
    assert "model.py:1:1: ELB900 [io-error] cannot write fixes: file is read-only; fixes not written" in result.stdout
    assert "ELB001" in result.stdout and "ELB003" in result.stdout  # the unapplied findings are still reported
    assert model.read_bytes() == SOURCE.encode()
    assert stat.S_IMODE(model.stat().st_mode) == 0o444


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """Comparing a FIFO's content would block (and consume it); replacing it would be wrong."""
    fifo = tmp_path / "model.py"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt():
        try:
            write_atomically(fifo, NEW, original=SOURCE.encode())
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():
        with open(fifo, "wb"):  # a writer releases the blocked read, so the test fails instead of hanging
            pass
        thread.join(5)
        pytest.fail("write_atomically blocked reading a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], NotARegularFileError), outcome
    assert outcome[0].strerror == "not a regular file; fixes not written"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [n for n in os.listdir(tmp_path) if n != ".elbolint_cache"] == ["model.py"]


@pytest.mark.parametrize("how", ["direct", "cli"])
def test_a_symlink_stays_a_link_and_its_target_is_fixed(tmp_path, how):
    """Replacing the link itself would turn it into a copy and detach it from the real file."""
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = _write(tmp_path / "real" / "model.py", SOURCE.encode())
    link = tmp_path / "links" / "model.py"
    link.symlink_to(Path("..") / "real" / "model.py")
    if how == "direct":
        write_atomically(link, NEW, original=SOURCE.encode())
    else:
        assert invoke(["--fix", "links/model.py"], tmp_path).exit_code == 0
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "real", "model.py")
    assert target.read_bytes() == NEW
    assert sorted(n for n in os.listdir(tmp_path / "real") if n != ".elbolint_cache") == ["model.py"]
    assert sorted(n for n in os.listdir(tmp_path / "links") if n != ".elbolint_cache") == ["model.py"]


# ------------------------------------------------------------------ bytes, mode and owner
def _encodings():
    latin_header = "# -*- coding: latin-1 -*-\n# modèle: café, crème\n"
    return {
        "crlf": (SOURCE.replace("\n", "\r\n").encode(), FIXED.replace("\n", "\r\n").encode()),
        "utf8-bom": (b"\xef\xbb\xbf" + SOURCE.encode(), b"\xef\xbb\xbf" + FIXED.encode()),
        "latin-1-cookie": ((latin_header + SOURCE).encode("latin-1"), (latin_header + FIXED).encode("latin-1")),
        "bom-crlf": (b"\xef\xbb\xbf" + SOURCE.replace("\n", "\r\n").encode(),
                     b"\xef\xbb\xbf" + FIXED.replace("\n", "\r\n").encode()),
    }


@pytest.mark.parametrize("name", list(_encodings()))
def test_encoding_and_line_endings_survive_the_real_cli(tmp_path, name):
    """Only the fixed expressions change; a second --fix is a no-op (the first one left nothing)."""
    before, after = _encodings()[name]
    path = _write(tmp_path / "model.py", before)
    first = elbolint(["--fix", "model.py"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert path.read_bytes() == after
    second = elbolint(["--fix", "model.py"], tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout == b""
    assert path.read_bytes() == after
    assert sorted(n for n in os.listdir(tmp_path) if n != ".elbolint_cache") == ["model.py"]


@pytest.mark.parametrize("mode", [0o750, 0o600, 0o2755])
def test_the_file_mode_is_kept(model, mode):
    """An executable script stays executable; a private file stays private (setgid included)."""
    model.chmod(mode)
    assert invoke(["--fix", "model.py"], model.parent).exit_code == 0
    assert model.read_bytes() == NEW
    assert stat.S_IMODE(model.stat().st_mode) == mode


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_root_fixing_a_users_file_keeps_its_owner(model):
    """The new file is created by the fixing process; without chown, root would take the file over."""
    os.chown(model, 4321, 4322)
    model.chmod(0o640)
    write_atomically(model, NEW, original=SOURCE.encode())
    info = model.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o640)
    assert model.read_bytes() == NEW


# ------------------------------------------------------------------ helpers
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _notebook_json(code: str = SOURCE) -> str:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# A model"]},
            {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
             "source": code.splitlines(keepends=True)},
        ],
        "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1) + "\n"

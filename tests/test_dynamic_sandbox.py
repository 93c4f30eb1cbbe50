"""The fork sandbox with plain Python functions (no TensorFlow): every way of dying has a reason."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, ROOT
from elbolint.sandbox import run_in_child


def run(function, timeout=5.0, memory_mib=512, output_limit=64 * 1024):
    return run_in_child(function, None, timeout=timeout, memory_mib=memory_mib, output_limit=output_limit)


def test_result_and_output_tail():
    def ok(_):
        print("hello from the child")
        return {"answer": 42}

    result = run(ok)
    assert result["answer"] == 42 and "hello from the child" in result["output_tail"]


def test_timeout():
    def hang(_):
        while True:
            time.sleep(0.01)

    started = time.monotonic()
    result = run(hang, timeout=1.0)
    assert result["failure"]["kind"] == "timeout" and "timeout after 1 s" in result["failure"]["message"]
    assert time.monotonic() - started < 4
    # the stacks were asked for before the kill: the hanging line of this file, innermost first
    frames = result["failure"]["frames"]
    lines = {at for name, at in frames if name == __file__}
    assert lines & {hang.__code__.co_firstlineno + 1, hang.__code__.co_firstlineno + 2}  # the loop or its sleep
    assert "most recent call first" not in result["failure"]["output_tail"]


def test_a_timed_out_run_is_placed_at_the_users_line():
    from elbolint.dynamic.process.worker import at_hanging_line

    frames = [("/lib/tf.py", 10), ("/u/model.py", 7), ("/u/model.py", 30)]
    message = "timeout after 9 s (the model did not finish; raise --dynamic-timeout if it is just slow)"
    placed = at_hanging_line({"failure": {"kind": "timeout", "message": message, "frames": frames}}, "/u/model.py")
    assert placed["failure"]["line"] == 7 and "frames" not in placed["failure"]
    assert placed["failure"]["message"].startswith("timeout after 9 s, running line 7 (the model did not finish")
    elsewhere = at_hanging_line({"failure": {"kind": "timeout", "message": "m", "frames": frames[:1]}}, "/u/model.py")
    assert elsewhere["failure"] == {"kind": "timeout", "message": "m"}


def test_os_exit_and_segfault_and_flood():
    assert "exited with code 3" in run(lambda _: os._exit(3))["failure"]["message"]
    assert run(lambda _: ctypes.string_at(0))["failure"]["message"].startswith("killed by signal SIGSEGV")

    def flood(_):
        while True:
            sys.stdout.write("x" * 10000 + "\n")

    result = run(flood)
    assert result["failure"]["kind"] == "output" and "output truncated" in result["failure"]["message"]


def test_memory_limit():
    def allocate(_):
        blocks = []
        while True:
            blocks.append(bytearray(32 * 1024 * 1024))

    result = run(allocate, memory_mib=256)
    assert result["failure"]["kind"] == "memory"
    assert "memory limit exceeded (256 MiB per file)" == result["failure"]["message"]


@pytest.mark.dynamic
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_workers_and_their_models(number, tmp_path):
    """SIGINT (Ctrl-C) or SIGTERM to `elbolint --dynamic` while a model hangs: exit 130 (143), one line,
    nothing left running, and no model working directory left behind."""
    pytest.importorskip("tensorflow_probability")
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find the worker's processes")
    from elbolint.dynamic.parent.harness import descendants

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "elbolint", "check", str(FIXTURES / "dynamic" / "sandbox_hang.py"),
         "--dynamic=all", "--dynamic-timeout", "120", "-j", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, TMPDIR=str(scratch)),
    )
    try:
        below: list[int] = []
        deadline = time.monotonic() + 90
        while len(below) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            below = descendants(process.pid)  # the worker, then the child it forked for the model
        assert len(below) >= 2, "the hanging model never started"
        deadline = time.monotonic() + 30
        while not any(p.name.startswith("elbolint-model-") for p in scratch.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(p.name.startswith("elbolint-model-") for p in scratch.iterdir()), "no working directory seen"
        process.send_signal(number)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + number
    if number == signal.SIGINT:
        assert stderr.strip() == "elbolint: interrupted; dynamic workers stopped"
    assert [pid for pid in below if _alive(pid)] == []
    assert sorted(p.name for p in scratch.iterdir() if p.name.startswith("elbolint-")) == []


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a (container) init to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")

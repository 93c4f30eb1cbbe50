"""The fork sandbox with plain Python functions (no TensorFlow): every way of dying has a reason."""

from __future__ import annotations

import ctypes
import os
import sys
import time

from elbolint.dynamic.sandbox import run_in_child


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

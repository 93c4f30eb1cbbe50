"""The shared deep-stack thread (elbolint/deepstack.py) behaves as a thread of its own per call.

Why: every file used to start three threads with a 512 MiB stack; one thread per process now serves
the calls. What must not change: CPython's verdict on deep nesting depends on the depth its parser
starts at (linter.py gives the verdict `python FILE` would give), so the function must run at the
same depth; results and exceptions come back to the caller; a call from the deep thread itself, or
while it is busy, still runs; a forked child gets a thread of its own.
"""

from __future__ import annotations

import os
import threading

import pytest

from elbolint import deepstack, linter
from elbolint.deepstack import call_deep


def _boundary(call, make) -> int:
    """The smallest nesting CPython's verdict refuses, found by bisection."""
    low, high = 10, 6000
    while low < high:
        middle = (low + high) // 2
        if call(linter._ast_verdict, make(middle))[0] is None:
            low = middle + 1
        else:
            high = middle
    return low


@pytest.mark.parametrize("make", [lambda n: "-" * n + "1", lambda n: "x" + ".a" * n, lambda n: "f" + "(1)" * n],
                         ids=["unary", "attributes", "calls"])
def test_cpython_verdict_starts_at_the_same_depth(make) -> None:
    shared = _boundary(lambda f, text: call_deep(f, text, recursion_limit=1000), make)
    own = _boundary(lambda f, text: deepstack._call_on_new_thread(f, (text,), 1000), make)
    assert shared == own


def test_results_exceptions_and_limits() -> None:
    import sys

    assert call_deep(lambda a, b: a + b, 1, 2) == 3
    assert call_deep(sys.getrecursionlimit) == deepstack.RECURSION_LIMIT
    assert call_deep(sys.getrecursionlimit, recursion_limit=1234) == 1234
    with pytest.raises(KeyError):
        call_deep({}.__getitem__, "missing")
    assert call_deep(lambda: threading.current_thread().name) == "elbolint-deep"


def test_nested_and_concurrent_calls_run() -> None:
    assert call_deep(lambda: call_deep(lambda: 7) + 1) == 8
    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(call_deep(lambda: i))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(8))


def test_a_forked_child_uses_a_thread_of_its_own() -> None:
    call_deep(int)  # the parent's thread exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its answer through the pipe, then leave without pytest's cleanup
        try:
            ok = call_deep(lambda: 41) + 1 == 42
        except BaseException:
            ok = False
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"

"""Run a function on a thread with a large stack and a high recursion limit.

Why: LibCST's parser (native) and its visitors (Python) recurse once per level of nesting. On the main
thread's 8 MiB stack and Python's default recursion limit of 1,000, a 500-term sum or a 500-way `elif`
chain, both valid Python, made every rule crash with RecursionError, and a 10,000-term `and` chain
overflowed the native stack (SIGSEGV). CPython's own parser refuses anything nested deeper than about
3,000 levels (see linter.py), and below that a 512 MiB stack with a 100,000-frame limit was measured to
analyse every shape we tried. The stack is only reserved address space: pages are touched as deep
code needs them.

One such thread per process serves every call, one at a time: a file makes three calls (CPython's
verdict, LibCST's parse, the rules), and starting a thread with a 512 MiB stack for each cost more
than a small file's rules (~0.75 ms a call, measured on a loaded 2-core machine). The function runs
at the same depth in that thread as it did in a thread of its own (Thread.run -> the thread's loop
-> function, as Thread.run -> target -> function), so CPython's depth-dependent limits (linter.py's
verdict) are unchanged. A call made while that thread is busy (from that thread itself or another
thread) gets a thread of its own, as before.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any, Callable, Optional

STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 100_000


class _DeepThread:
    """The process's deep-stack thread: runs the requests it is given, one at a time."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child has no such thread: it makes its own
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.replies: queue.SimpleQueue = queue.SimpleQueue()
        self.busy = threading.Lock()
        self.thread = threading.Thread(target=self._serve, name="elbolint-deep", daemon=True)

    def _serve(self) -> None:
        requests, replies = self.requests, self.replies
        while True:
            function, args, recursion_limit = requests.get()
            outcome: dict[str, Any] = {}
            previous = sys.getrecursionlimit()
            sys.setrecursionlimit(recursion_limit)
            try:
                outcome["value"] = function(*args)  # (the depth of target() -> function below)
            except BaseException as error:  # re-raised in the caller's thread
                outcome["error"] = error
            finally:
                sys.setrecursionlimit(previous)
            replies.put(outcome)
            del outcome, function, args


_shared: Optional[_DeepThread] = None
_shared_lock = threading.Lock()


def call_deep(function: Callable[..., Any], *args: Any, recursion_limit: int = RECURSION_LIMIT) -> Any:
    """`function(*args)` on a deep-stack thread (at the start of its stack) with the given recursion
    limit; its result, or its exception re-raised here. Where no such thread can be started (a tight
    address-space limit), it runs here instead."""
    deep = _shared_thread()
    if deep is None or not deep.busy.acquire(blocking=False):
        return _call_on_new_thread(function, args, recursion_limit)
    try:
        deep.requests.put((function, args, recursion_limit))
        outcome = deep.replies.get()
    except BaseException:  # interrupted while waiting (Ctrl-C): its late reply must reach no one
        _forget(deep)
        raise
    deep.busy.release()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _shared_thread() -> Optional[_DeepThread]:
    """This process's deep-stack thread, started on first use; None when it cannot be started."""
    global _shared
    deep = _shared
    if deep is not None and deep.pid == os.getpid():
        return deep
    with _shared_lock:
        if _shared is not None and _shared.pid == os.getpid():
            return _shared
        candidate = _DeepThread()
        if not _start(candidate.thread):
            return None
        _shared = candidate
        return candidate


def _forget(deep: _DeepThread) -> None:
    global _shared
    with _shared_lock:
        if _shared is deep:
            _shared = None


def _start(thread: threading.Thread) -> bool:
    """Start `thread` with a STACK_BYTES stack; False where the platform or the address-space limit
    does not allow it."""
    try:
        previous_size = threading.stack_size(STACK_BYTES)
    except (ValueError, RuntimeError):  # a platform that does not let us choose
        return False
    try:
        thread.start()
    except RuntimeError:  # cannot map the stack
        return False
    finally:
        threading.stack_size(previous_size)
    return True


def _call_on_new_thread(function: Callable[..., Any], args: tuple, recursion_limit: int) -> Any:
    """`function(*args)` on a deep-stack thread of its own (the shared one is busy or cannot start)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(recursion_limit)
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error
        finally:
            sys.setrecursionlimit(previous)

    thread = threading.Thread(target=target, name="elbolint-deep", daemon=True)
    if not _start(thread):  # run on this thread with the usual limits
        return function(*args)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

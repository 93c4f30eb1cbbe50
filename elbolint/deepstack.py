"""Run a function on a thread with a large stack and a high recursion limit.

Why: LibCST's parser (native) and its visitors (Python) recurse once per level of nesting. On the main
thread's 8 MiB stack and Python's default recursion limit of 1,000, a 500-term sum or a 500-way `elif`
chain, both valid Python, made every rule crash with RecursionError, and a 10,000-term `and` chain
overflowed the native stack (SIGSEGV). CPython's own parser refuses anything nested deeper than about
3,000 levels (see linter.py), and below that a 512 MiB stack with a 100,000-frame limit was measured to
analyse every shape we tried. The stack is only reserved address space: pages are touched as deep
code needs them.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 100_000


def call_deep(function: Callable[..., Any], *args: Any, recursion_limit: int = RECURSION_LIMIT) -> Any:
    """`function(*args)` on a fresh deep-stack thread (so it starts at depth 0) with the given
    recursion limit; its result, or its exception re-raised here. Where no such thread can be started
    (a tight address-space limit), it runs here instead."""
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

    try:
        previous_size = threading.stack_size(STACK_BYTES)
    except (ValueError, RuntimeError):  # a platform that does not let us choose
        return function(*args)
    try:
        thread = threading.Thread(target=target, name="elbolint-deep", daemon=True)
        thread.start()
    except RuntimeError:  # cannot map the stack: run on this thread with the usual limits
        return function(*args)
    finally:
        threading.stack_size(previous_size)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

"""Linux's prctl(2), for the two things elbolint's processes ask of it.

Why a module of its own: every static lint worker asks for `die_with_parent` as it starts, on the
critical path of a one-file run; importing it from sandbox.py (dynamic mode's model launcher) cost
that worker sandbox's own imports too, ~5 ms of a 0.2 s run.
"""

from __future__ import annotations

from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

try:  # loaded once, in the worker: dlopen in a child forked from a threaded process is best avoided
    import ctypes

    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
except (OSError, ImportError):  # pragma: no cover
    _LIBC = None


def prctl(option: int, value: int) -> bool:
    """Linux prctl(option, value); False where it is unavailable or refused."""
    try:
        return _LIBC.prctl(option, value, 0, 0, 0) == 0
    except AttributeError:
        return False


def die_with_parent(number: int) -> None:
    """Linux: deliver signal `number` to this process when its parent dies (no-op elsewhere)."""
    prctl(PR_SET_PDEATHSIG, number)

"""A BatchableCSTVisitor whose callback table is computed once per class, not once per file.

LibCST's `get_visitors` runs `inspect.getmembers` on every visitor instance; with one instance per
rule per file that was 30% of the lint time on TFP's sources.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping

import libcst as cst


def callback_names(cls: type) -> tuple[str, ...]:
    """The `visit_*`/`leave_*` callbacks `cls` really defines, in `dir` order. Only the names the
    class's own bases below LibCST define are looked at: LibCST's visitor classes declare one no-op
    per node type (about 3,400 names, whose `dir` and `getattr` cost 20 ms on a run's first file).
    Not cached: `walk.visit` asks it for visitor classes that rules define inside functions, a new
    class per call (a cache would keep each one, and the tree its closure holds, for good)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("libcst"):
            continue
        names.update(name for name in vars(klass) if name.startswith(("visit_", "leave_")))
    found = []
    for name in sorted(names):
        member = getattr(cls, name)
        if callable(member) and not getattr(member, "_is_no_op", False):
            found.append(name)
    return tuple(found)


#: Per rule class (module-level classes, a fixed set): computed once.
_visitor_names = lru_cache(maxsize=None)(callback_names)


class BatchableVisitor(cst.BatchableCSTVisitor):
    def get_visitors(self) -> Mapping[str, Callable[[cst.CSTNode], None]]:
        return {name: getattr(self, name) for name in _visitor_names(type(self))}

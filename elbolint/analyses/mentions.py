"""Where a name or `self.` attribute is bound and read, in source order: OptimizerRoles' record for
telling a leftover optimizer (bound, then never read while that binding holds) from a used one.

Why a module of its own: a notebook rebinds `optimizer` cell after cell, and an optimizer built in
one cell and replaced in the next before anything reads it drives nothing. Answering that needs the
order of every binding and read of a name (and of the calls of the defs that read it), per block
(an `if` branch is a block of its own): bookkeeping apart from what an optimizer is used for.
OptimizerRoles (optimizer_roles.py) feeds it from its callbacks and asks `read_after`.
"""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst


class Mentions:
    """Bindings and reads of names and `self.` attributes, numbered in source order."""

    def __init__(self) -> None:
        self.bound_to: dict[int, str] = {}  # id(optimizer call) -> the one name or attribute it is bound to
        # name or attribute -> its bindings and reads in source order, as (ordinal, kind, what, extra):
        # ("w", id of the value, (in a def, block)) or ("r", None, the outermost def it is read in, or None)
        self._mentions: dict[str, list[tuple[int, str, Optional[int], Any]]] = {}
        self._calls_by_name: dict[str, list[int]] = {}  # def name -> ordinals of the calls `name(...)`
        self.blocks: list[int] = []  # ids of the enclosing blocks (an `if` branch is a block of its own)
        self._ordinal = 0
        self._not_reads: set[int] = set()  # Name/Attribute nodes that bind or name a keyword

    # ------------------------------------------------------------------ feeding
    def assign(self, node: cst.Assign, in_function: bool) -> None:
        """`name = value`, `self.x = value`: a binding (not a read) of each target."""
        for target in node.targets:
            key = _binding_key(target.target)
            if key is not None:
                self._not_reads.add(id(target.target))
                where = (in_function, self.blocks[-1] if self.blocks else 0)
                self._mention(key, "w", id(node.value), where)
                if len(node.targets) == 1 and isinstance(node.value, cst.Call):
                    self.bound_to[id(node.value)] = key

    def name(self, node: cst.Name, function: Optional[str]) -> None:
        """A Name is visited: a read, unless it binds or names a keyword; `function`: the outermost def."""
        if id(node) not in self._not_reads:
            self._mention(node.value, "r", None, function)

    def attribute(self, node: cst.Attribute, function: Optional[str]) -> None:
        self._not_reads.add(id(node.attr))  # `x.opt` reads `.opt`, not a name `opt`
        if id(node) not in self._not_reads:
            self._mention("." + node.attr.value, "r", None, function)

    def arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:  # `optimizer=` names a parameter, not the variable
            self._not_reads.add(id(node.keyword))

    def call(self, node: cst.Call) -> None:
        """`name(...)`: a def called here reads, at this point, what its body reads."""
        if isinstance(node.func, cst.Name):
            self._ordinal += 1
            self._calls_by_name.setdefault(node.func.value, []).append(self._ordinal)

    def _mention(self, key: str, kind: str, what: Optional[int], extra: Any) -> None:
        self._ordinal += 1
        self._mentions.setdefault(key, []).append((self._ordinal, kind, what, extra))

    # ------------------------------------------------------------------- answers
    def read_after(self, key: str, value: int) -> bool:
        """Whether the binding of `key` to `value` is read while it holds: after it and before the
        next module-level binding of the same name in the same block (a notebook reuses
        `optimizer` cell after cell), or inside a def that is defined or called in that stretch."""
        mentions = self._mentions.get(key, [])
        binding = next(
            ((ordinal, where) for ordinal, kind, what, where in mentions if kind == "w" and what == value), None
        )
        if binding is None:
            return True
        start, (_, block) = binding
        # The next binding of the same name in the same block ends it (a binding in another
        # branch of an `if` does not: `if fast: opt = SGD(2.) else: opt = SGD(.01)`, then used).
        end = next((ordinal for ordinal, kind, _, where in mentions
                    if kind == "w" and ordinal > start and where == (False, block)), float("inf"))
        for ordinal, kind, _, function in mentions:
            if kind != "r":
                continue
            if start < ordinal < end:
                return True
            if function is not None and any(start < call < end for call in self._calls_by_name.get(function, ())):
                return True
        return False


def _binding_key(target: cst.BaseExpression) -> Optional[str]:
    """How `never_used` counts a target: a name by itself, an attribute by its last part (`.opt`)."""
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute):
        return "." + target.attr.value
    return None

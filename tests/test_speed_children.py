"""`walk.children` is `CSTNode.children`: the same nodes, in the same order, for every node.

Why: rules that search an expression (which densities a return value uses, which calls a body
makes) walk it with `children`, and the order matters to them (a search budget, the first match).
`walk.children` reads the child fields in the order LibCST visits them, learnt once per node class;
a class that visits a field only when it is set (an f-string expression's format spec) must still
give LibCST's answer, whichever instance the order was learnt from.
"""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from elbolint import walk

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

ODD = [
    "x = f'{a}' + f'{b:>{width}.{p}}' + f'{c!r:10}' + f'{d=}'\n",
    "from . import (a, b as c)\nfrom .. m import *\nimport x.y as z\n",
    "async def f(*, a: int = 1, **k) -> None:\n    async with a as b, c:\n        await d\n"
    "    return [x async for x in y if x]\n",
    "match p:\n    case [1, *rest] | {'k': v, **kw} if v:\n        pass\n    case Point(x=0) as q:\n        pass\n",
    "try:\n    pass\nexcept* (A, B) as e:\n    raise\nelse:\n    pass\nfinally:\n    del x[1:2, ::3]\n",
    "@d\nclass C[T](B, metaclass=M):\n    x: int = 1\n    type A = list[T]\n"
    "    def g[U](self, /, a, *b): yield from b\n",
    "global a; nonlocal_ = lambda x=1, *y, z, **w: (x, y)\nwhile (n := 1) > 0 < 2: break\n",
]


def _walk(module: cst.Module):
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _modules() -> list[tuple[str, cst.Module]]:
    found = []
    texts = [(str(p.relative_to(FIXTURES)), p.read_text(encoding="utf-8", errors="replace"))
             for p in sorted(FIXTURES.rglob("*.py"))]
    texts += [(f"odd_{i}", text) for i, text in enumerate(ODD)]
    for name, text in texts:
        try:
            found.append((name, cst.parse_module(text)))
        except cst.ParserSyntaxError:
            continue
    return found


def _same(node: cst.CSTNode) -> bool:
    fast, slow = walk.children(node), node.children
    return len(fast) == len(slow) and all(a is b for a, b in zip(fast, slow))


def test_children_of_every_node_of_every_fixture() -> None:
    different = [(name, type(node).__name__) for name, module in _modules() for node in _walk(module)
                 if not _same(node)]
    assert different == []


@pytest.mark.parametrize("first", ["f'{a}'", "f'{a:>{w}}'"], ids=["plain-first", "format-spec-first"])
def test_a_field_visited_only_when_set(first: str, monkeypatch) -> None:
    """Whichever f-string expression teaches the field order, the other kind is answered right."""
    monkeypatch.setattr(walk, "_CHILD_FIELDS", {})
    monkeypatch.setattr(walk, "_UNLEARNT", {})
    for text in (first, "f'{a:>{w}}'", "f'{a}'", "f'{a!r:{w}.{p}}'"):
        module = cst.parse_module(f"x = {text}\n")
        assert all(_same(node) for node in _walk(module)), text


def test_walk_visits_a_format_spec_whichever_f_string_the_order_was_learnt_from():
    """The order of an f-string expression's fields learnt from one without a format spec must not hide
    the format spec of a later one: the walk then visits what LibCST visits (here `width(3)`), in a
    fresh process state too (the learnt orders are per process)."""
    class Calls(cst.BatchableCSTVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def visit_Call(self, node: cst.Call) -> None:
            self.calls.append(cst.Module([]).code_for_node(node))

    saved = dict(walk._CHILD_FIELDS), set(walk._INCOMPLETE), dict(walk._UNLEARNT)
    walk._CHILD_FIELDS.pop(cst.FormattedStringExpression, None)
    walk._INCOMPLETE.discard(cst.FormattedStringExpression)
    walk._UNLEARNT.pop(cst.FormattedStringExpression, None)
    try:
        visitor = Calls()
        walk.walk(cst.parse_module('a = f"{x}"\nb = f"{x:{width(3)}}"\n'), [visitor])
        assert visitor.calls == ["width(3)"]
    finally:
        walk._CHILD_FIELDS.clear(), walk._CHILD_FIELDS.update(saved[0])
        walk._INCOMPLETE.clear(), walk._INCOMPLETE.update(saved[1])
        walk._UNLEARNT.clear(), walk._UNLEARNT.update(saved[2])


class _Recorder(cst.CSTVisitor):
    """Records every callback LibCST would make (trivia included when `trivia`); prunes calls if told."""

    def __init__(self, trivia: bool, prune_calls: bool) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.trivia, self.prune_calls = trivia, prune_calls

    def visit_Call(self, node: cst.Call) -> bool:
        self.calls.append(("visit_Call", id(node)))
        return not self.prune_calls

    def leave_Call(self, node: cst.Call) -> None:
        self.calls.append(("leave_Call", id(node)))

    def visit_Name(self, node: cst.Name) -> None:
        self.calls.append(("visit_Name", id(node)))

    def leave_Attribute(self, node: cst.Attribute) -> None:
        self.calls.append(("leave_Attribute", id(node)))

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        self.calls.append(("visit_Lambda", id(node)))
        return False


class _TriviaRecorder(_Recorder):
    def visit_Comma(self, node: cst.Comma) -> None:
        self.calls.append(("visit_Comma", id(node)))


def _same_visits(root: cst.CSTNode) -> bool:
    for kind in (_Recorder, _TriviaRecorder):
        for prune in (False, True):
            fast, slow = kind(kind is _TriviaRecorder, prune), kind(kind is _TriviaRecorder, prune)
            walk.visit(root, fast)
            root.visit(slow)
            if fast.calls != slow.calls:
                return False
    return True


def test_visit_makes_libcst_s_callbacks_on_odd_code_and_sub_expressions() -> None:
    """The same callbacks, on the same node objects, in the same order, pruned where a callback
    returns False, from a module and from every expression statement inside it."""
    for text in ODD + ["y = f(a, g(b), lambda c: h(c), x.y.z(w=1), *args, **kw)\n"]:
        module = cst.parse_module(text)
        assert _same_visits(module), text
        for node in _walk(module):
            if isinstance(node, cst.BaseExpression):
                assert _same_visits(node), (text, type(node).__name__)


def test_visit_of_every_fixture() -> None:
    different = [name for name, module in _modules() if not _same_visits(module)]
    assert different == []


def test_visit_leaves_special_visitors_to_libcst() -> None:
    """A visitor overriding on_visit, or with an attribute callback, is walked by LibCST itself."""
    seen: list[str] = []

    class Attribute(cst.CSTVisitor):
        def visit_Call_func(self, node: cst.Call) -> None:
            seen.append("func")

    class OnVisit(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            seen.append(type(node).__name__)
            return True

    module = cst.parse_module("f(x)\n")
    walk.visit(module, Attribute())
    walk.visit(module, OnVisit())
    assert seen[0] == "func" and "Module" in seen and "Comma" not in seen and "Name" in seen


def test_node_kind_is_issubclass_for_every_libcst_node_class() -> None:
    classes, stack = set(), [cst.CSTNode]
    while stack:
        cls = stack.pop()
        if cls not in classes:
            classes.add(cls)
            stack.extend(cls.__subclasses__())
    assert len(classes) > 200
    for cls in classes:
        expected = walk.TRIVIA if issubclass(cls, walk._TRIVIA) else walk.NODE
        assert walk.node_kind(cls) == expected, cls
    for other in (str, type(None), type(cst.MaybeSentinel.DEFAULT), tuple, int):
        assert walk.node_kind(other) == walk.OTHER


def test_visit_keeps_no_visitor_class_alive() -> None:
    """Rules define their search visitors inside functions: a new class per call. `walk.visit` must not
    keep them (a per-class cache did: each class held the tree through its closure, 1.5 MB a file)."""
    import gc
    import weakref

    def search() -> weakref.ref:
        found: list[str] = []

        class Local(cst.CSTVisitor):
            def visit_Name(self, node: cst.Name) -> None:
                found.append(node.value)

        walk.visit(cst.parse_module("x = y\n"), Local())
        assert found == ["x", "y"]
        return weakref.ref(Local)

    references = [search() for _ in range(3)]
    gc.collect()
    assert [reference() for reference in references] == [None, None, None]

"""A read-only batched traversal of a LibCST tree: the rules' `visit_X`/`leave_X` callbacks, in the
order LibCST itself visits, without rebuilding a single node.

Why: `CSTNode.visit` rebuilds every node it passes (`_visit_and_replace_children` constructs a new
dataclass and runs its validation), because the same machinery serves transformers. Linting never
changes the tree, and that rebuilding was most of elbolint's time per file after the parse (profiled
on TFP's sources). Whitespace, comments and punctuation are not walked unless a visitor asks for
them: they are most of the nodes and no rule looks at them.

The order of a node's children is learnt once per node class from LibCST itself: a recording visitor
takes LibCST's own `on_visit_attribute` calls on one instance, which come in source order. Visitors
with attribute callbacks (`visit_Call_func`) or metadata dependencies are not supported here; the
engine then uses LibCST's own traversal (`supports`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import libcst as cst

#: Node classes whose subtrees hold only whitespace, comments and punctuation.
_TRIVIA = (
    cst.BaseParenthesizableWhitespace, cst.TrailingWhitespace, cst.EmptyLine, cst.Newline,
    cst.Comment, cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.LeftParen,
    cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace,
    cst.RightCurlyBrace, cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp,
    cst.BaseAugOp, cst.ImportStar,
)

_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}

#: What `node_kind` answers: not a LibCST node, a node, a whitespace/punctuation node.
OTHER, NODE, TRIVIA = 0, 1, 2
_KINDS: dict[type, int] = {}


def node_kind(cls: type) -> int:
    """OTHER, NODE or TRIVIA for a class, read from its MRO. Why not `issubclass`: LibCST's abstract
    node classes are ABCs, and a negative `issubclass` against an ABC walks all its subclasses once
    per class (3 ms of a one-file run's first walk). LibCST's node classes subclass nominally, so
    the MRO gives the same answer (tests/test_speed_children.py checks every node class)."""
    kind = _KINDS.get(cls)
    if kind is None:
        mro = cls.__mro__
        kind = _KINDS[cls] = OTHER if cst.CSTNode not in mro else TRIVIA if any(b in mro for b in _TRIVIA) else NODE
    return kind


class _FieldRecorder(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False  # one level only

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if attribute not in self.fields:
            self.fields.append(attribute)


#: Classes whose order was learnt from an instance that left a field unset which LibCST visits only when
#: it is set (an f-string expression's `format_spec`): an instance that sets it teaches the order again.
_INCOMPLETE: set[type] = set()


def _child_fields(node: cst.CSTNode) -> tuple[str, ...]:
    cls = type(node)
    fields = _CHILD_FIELDS.get(cls)
    if fields is None or cls in _INCOMPLETE and _sets_unlearnt(node, fields):
        recorder = _FieldRecorder()
        node._visit_and_replace_children(recorder)  # LibCST's own order, learnt once per class
        fields = _CHILD_FIELDS[cls] = tuple(recorder.fields)
        _UNLEARNT.pop(cls, None)
        if any(getattr(node, f.name, None) is None for f in dataclasses.fields(cls) if f.name not in fields):
            _INCOMPLETE.add(cls)
        else:
            _INCOMPLETE.discard(cls)
    return fields


def _sets_unlearnt(node: cst.CSTNode, fields: tuple[str, ...]) -> bool:
    """`node` sets a child field the order learnt for its class lacks."""
    for field in dataclasses.fields(type(node)):
        if field.name not in fields:
            value = getattr(node, field.name, None)
            if isinstance(value, cst.CSTNode) or isinstance(value, (tuple, list)) and value:
                return True
    return False


def supports(visitors: Iterable[cst.BatchableCSTVisitor]) -> bool:
    """Whether `walk` can run these visitors exactly as LibCST's batched traversal would.

    Only callbacks count: LibCST calls `visit_<Node>` / `leave_<Node>` (and `visit_<Node>_<field>`) for
    its node classes, which are capitalised; a helper method named `visit_function_def` is never called
    by either traversal, so it must not send the file to LibCST's much slower one (measured: an
    analysis with such helpers doubled the time per file)."""
    for visitor in visitors:
        if getattr(visitor, "METADATA_DEPENDENCIES", ()):
            return False
        if any(_is_attribute_callback(name) for name in visitor.get_visitors()):
            return False
    return True


def walk(module: cst.Module, visitors: Iterable[cst.BatchableCSTVisitor]) -> None:
    """Call every visitor's `visit_X` before and `leave_X` after each node's children, in source order."""
    by_name: dict[str, list[Callable]] = {}
    for visitor in visitors:
        for name, function in visitor.get_visitors().items():
            by_name.setdefault(name, []).append(function)
    walk_trivia = any(name.split("_", 1)[1] in _TRIVIA_NAMES for name in by_name)
    # Per class: walk it or not. (isinstance against LibCST's abstract classes is slow.)
    walked: dict[type, bool] = {}
    # Per class walked: (its visit_X callbacks, its child fields, its leave_X callbacks), made once.
    plans: dict[type, tuple[list[Callable], tuple[str, ...], list[Callable]]] = {}

    def wanted(cls: type) -> bool:
        kind = node_kind(cls)
        answer = walked[cls] = kind == NODE or kind == TRIVIA and walk_trivia
        return answer

    def go(node: cst.CSTNode) -> None:
        cls = type(node)
        plan = plans.get(cls)
        if plan is None:
            name = cls.__name__
            plan = plans[cls] = (by_name.get("visit_" + name, []), _child_fields(node),
                                 by_name.get("leave_" + name, []))
        visits, fields, leaves = plan
        if cls in _INCOMPLETE:  # the order may be learnt again from this node (`_child_fields`)
            fields = _child_fields(node)
        for function in visits:
            function(node)
        for field in fields:
            value = getattr(node, field)
            kind = type(value)
            if kind is tuple or kind is list:
                for item in value:
                    item_kind = type(item)
                    answer = walked.get(item_kind)
                    if answer or answer is None and wanted(item_kind):
                        go(item)
            else:
                answer = walked.get(kind)
                if answer or answer is None and wanted(kind):
                    go(value)
        for function in leaves:
            function(node)

    go(module)


def visit(node: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    """`node.visit(visitor)` for a visitor that only reads: the same `visit_X` and `leave_X` calls in
    the same order (a `visit_X` returning False skips the node's children, as in LibCST), on the same
    node objects, without rebuilding the tree as `CSTNode.visit` does. Rules search expressions with
    small visitors (`any_call`, finders of names or losses); LibCST's rebuilding made those searches
    cost more than the walk of the whole file. Whitespace and punctuation are walked only for a
    visitor with a callback for them. A visitor that overrides `on_visit`/`on_leave`, has attribute
    callbacks (`visit_Call_func`) or metadata gets LibCST's own traversal."""
    from elbolint.visitor import callback_names

    cls = type(visitor)
    names = callback_names(cls)
    if cls.on_visit is not cst.CSTVisitor.on_visit or cls.on_leave is not cst.CSTVisitor.on_leave \
            or getattr(visitor, "METADATA_DEPENDENCIES", None) \
            or any(_is_attribute_callback(name) for name in names):
        node.visit(visitor)
        return
    callbacks = {name: getattr(visitor, name) for name in names}
    trivia = any(name.split("_", 1)[1] in _TRIVIA_NAMES for name in names)
    walked: dict[type, bool] = {}

    def go(node: cst.CSTNode) -> None:
        name = type(node).__name__
        function = callbacks.get("visit_" + name)
        if function is None or function(node) is not False:
            for child in children(node):
                kind = type(child)
                answer = walked.get(kind)
                if answer is None:
                    answer = walked[kind] = trivia or node_kind(kind) != TRIVIA
                if answer:
                    go(child)
        leave = callbacks.get("leave_" + name)
        if leave is not None:
            leave(node)

    go(node)


def _is_attribute_callback(name: str) -> bool:
    """`visit_Call_func`, `leave_Call_args`: LibCST's callbacks around one field of a node."""
    _, _, rest = name.partition("_")
    return rest[:1].isupper() and "_" in rest


def _trivia_names() -> frozenset[str]:
    names = set()
    for base in _TRIVIA:
        stack = [base]
        while stack:
            cls = stack.pop()
            names.add(cls.__name__)
            stack.extend(cls.__subclasses__())
    return frozenset(names)


_TRIVIA_NAMES = _trivia_names()


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """`node.children`: the same nodes in the same order, whitespace and punctuation included, without
    LibCST's cost. Why: `CSTNode.children` runs a visitor over a rebuilt copy of the node (the same
    `_visit_and_replace_children` as a transformer), and rules that search an expression with it
    spent more there than in their own logic (profiled on a monorepo; tests/test_speed_children.py
    checks this against `CSTNode.children` on every node of the fixtures and of odd code).

    A node class visits some fields only when they are set (an f-string expression's format spec):
    when the order learnt from another instance does not name a field this node sets, LibCST's own
    `children` answers."""
    found: list[cst.CSTNode] = []
    for field in _child_fields(node):
        value = getattr(node, field)
        kind = type(value)
        if kind is tuple or kind is list:
            found.extend(value)
        elif value is not None and kind is not cst.MaybeSentinel:
            found.append(value)
    for field in _unlearnt_fields(type(node)):
        value = getattr(node, field, None)
        if value is None or type(value) is str:
            continue
        if isinstance(value, (tuple, list)) and value or isinstance(value, cst.CSTNode):
            return list(node.children)
    return found


_UNLEARNT: dict[type, tuple[str, ...]] = {}


def _unlearnt_fields(cls: type) -> tuple[str, ...]:
    """The dataclass fields of `cls` not in the child order learnt for it (strings, flags, and any
    field the instance it was learnt from did not set)."""
    unlearnt = _UNLEARNT.get(cls)
    if unlearnt is None:
        learnt = set(_CHILD_FIELDS.get(cls, ()))
        unlearnt = _UNLEARNT[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name not in learnt)
    return unlearnt

"""The line:column ranges of the nodes a file's findings are on: LibCST's PositionProvider, made lean.

Why: positions come from regenerating the module's code while counting lines and columns (LibCST's
PositionProvider). Resolved through `MetadataWrapper.resolve`, that also ran a full, node-rebuilding
visit of the tree for no provider at all, and recorded a CodeRange for every node of the module when
only the few nodes carrying a finding are ever asked (profiled on a monorepo: ~18 ms per file with a
finding, more than the rules' own traversal). Here the same code generation runs with a lighter
state: plain tuples instead of CodeRange objects, no regular expression for a token without a line
break, and it stops as soon as the last node asked has been generated (positions depend only on the
code before and inside a node, so stopping early cannot change them).

The ranges are the ones PositionProvider gives, the same rules in the same order: a node's range is
recorded when its code is generated unless the node recorded its syntactic range itself
(`record_syntactic_position`, which may take its start or end from a child's range).
tests/test_speed_positions.py compares both on every node of every fixture.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Literal, Mapping, Optional

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange

_NEWLINE = re.compile(r"\r\n?|\n")

#: (start line, start column, end line, end column), as PositionProvider counts them (column from 0).
_Range = tuple[int, int, int, int]


class _Done(Exception):
    """Every node asked has its range: the rest of the module's code is not generated."""


class _Syntactic:
    """`record_syntactic_position`'s context, without contextlib's generator machinery."""

    __slots__ = ("state", "node", "start_node", "end_node", "line", "column")

    def __init__(self, state: "_PositionState", node: cst.CSTNode, start_node: Optional[cst.CSTNode],
                 end_node: Optional[cst.CSTNode]) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node
        self.line, self.column = state.line, state.column

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> Literal[False]:
        if kind is not None:  # stopping (_Done): the range of a node not finished is never asked
            return False
        state = self.state
        computed = state.computed
        if self.start_node is not None:
            start = computed[self.start_node]
            start_line, start_column = start[0], start[1]
        else:
            start_line, start_column = self.line, self.column
        if self.end_node is not None:
            end = computed[self.end_node]
            end_line, end_column = end[2], end[3]
        else:
            end_line, end_column = state.line, state.column
        computed[self.node] = (start_line, start_column, end_line, end_column)
        return False


class _PositionState(CodegenState):
    """LibCST's PositionProvidingCodegenState, recording tuples and stopping after the last node asked."""

    __slots__ = ("line", "column", "computed", "stack", "wanted")

    def __init__(self, module: cst.Module, wanted: set[int]) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1
        self.column = 0
        self.computed: dict[cst.CSTNode, _Range] = {}
        self.stack: list[tuple[int, int]] = []
        self.wanted = wanted  # ids of the nodes still without a range

    def _advance(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            segments = _NEWLINE.split(value)
            if len(segments) > 1:
                self.line += len(segments) - 1
                self.column = len(segments[-1])
                return
        self.column += len(value)

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self._advance(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.stack.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start_line, start_column = self.stack.pop()
        if node not in self.computed:
            self.computed[node] = (start_line, start_column, self.line, self.column)
        wanted = self.wanted
        if id(node) in wanted:
            wanted.discard(id(node))
            if not wanted:
                raise _Done

    def record_syntactic_position(  # type: ignore[override]
        self, node: cst.CSTNode, *, start_node: Optional[cst.CSTNode] = None,
        end_node: Optional[cst.CSTNode] = None,
    ) -> _Syntactic:
        return _Syntactic(self, node, start_node, end_node)


class Positions(Mapping[cst.CSTNode, CodeRange]):
    """The ranges of the nodes asked, as PositionProvider's CodeRange values."""

    def __init__(self, computed: Mapping[cst.CSTNode, _Range]) -> None:
        self._computed = computed

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        start_line, start_column, end_line, end_column = self._computed[node]
        return CodeRange(CodePosition(start_line, start_column), CodePosition(end_line, end_column))

    def __iter__(self) -> Iterator[cst.CSTNode]:
        return iter(self._computed)

    def __len__(self) -> int:
        return len(self._computed)


def positions(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> Positions:
    """The ranges PositionProvider would give `nodes` (nodes of `module`), computed only as far
    into the module as the last of them."""
    wanted = {id(node) for node in nodes}
    state = _PositionState(module, wanted)
    if wanted:
        try:
            module._codegen(state)
        except _Done:
            pass
    return Positions(state.computed)

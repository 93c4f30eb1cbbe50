"""The base class of every rule: declared data plus the helpers rules share.

A rule is one class in one module of `elbolint.rules` (the top-level `rules/` folder). It declares
`code`, `name`, `severity`, `options` (configurable thresholds with their defaults) and the dynamic
codes that confirm it, and documents itself in its docstring with ruff's sections
(What it does / Why is this bad? / Example / Use instead / Options). It visits the tree with LibCST
callbacks and calls `self.report(node, message)`; it never prints.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Optional, Sequence

import libcst as cst

from elbolint.analysis import FileAnalysis
from elbolint.diagnostics import Diagnostic, Edit, Fix, Position, Severity
from elbolint.resolver import Resolver
from elbolint.visitor import BatchableVisitor

DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead")


@dataclass
class Finding:
    node: cst.CSTNode
    message: str
    fix: Optional[tuple[str, cst.CSTNode]] = None


class RuleContext:
    """What a rule instance may know about the file it is linting."""

    def __init__(self, path, module: cst.Module, resolver: Resolver, options: Mapping[str, Any],
                 analyses: Optional[Mapping[type[FileAnalysis], FileAnalysis]] = None):
        self.path = path
        self.module = module
        self.resolver = resolver
        self.options = options
        self.analyses = analyses if analyses is not None else {}


class Rule(BatchableVisitor):
    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.ERROR
    #: Rules off by default are opt-in through `select` / `extend-select`.
    default_enabled: ClassVar[bool] = True
    #: Configurable thresholds: option name -> default value (type is checked against the default).
    options: ClassVar[Mapping[str, Any]] = {}
    #: Dynamic-mode codes whose observation confirms this rule's findings.
    confirmed_by: ClassVar[tuple[str, ...]] = ()
    #: True when the rule attaches fixes to (some of) its findings, applied by `--fix`.
    fixable: ClassVar[bool] = False
    #: True when the rule's fix changes what the program computes (applied only with --unsafe-fixes).
    fix_is_unsafe: ClassVar[bool] = False
    #: The file analyses this rule asks (`self.analysis(kind)`); the engine runs them (elbolint/analysis.py).
    analyses: ClassVar[tuple[type[FileAnalysis], ...]] = ()
    #: What the rule starts from, for the triage before LibCST's parse (elbolint/triage.py): groups of
    #: words; the rule can fire only in a file whose text has, for every group, one of its words as a
    #: whole word. None (the default): no declaration, the rule always runs.
    starts_from: ClassVar[Optional[tuple[tuple[str, ...], ...]]] = None

    def __init__(self, context: RuleContext) -> None:
        super().__init__()
        self.context = context
        self._reported_nodes: set[int] = set()
        self.resolver = context.resolver
        self.findings: list[Finding] = []

    def analysis(self, kind: type[FileAnalysis]) -> Any:
        """This file's instance of an analysis the rule declared in `analyses`."""
        try:
            return self.context.analyses[kind]
        except KeyError:
            raise LookupError(
                f"{type(self).__name__} asks {kind.__name__} without declaring it in `analyses`"
            ) from None

    def finalize(self) -> None:
        """Called once after the whole traversal (every `leave_Module` included): the place to drop
        or complete findings with whole-file answers. Default: nothing."""

    # ------------------------------------------------------------ reporting
    def option(self, key: str) -> Any:
        return self.context.options.get(key, type(self).options[key])

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        fix: Optional[tuple[str, cst.CSTNode]] = None,
    ) -> None:
        """Report `node`. `fix` is (description, replacement node for `node`).

        Positions are computed after the traversal, only for files with findings and only for the
        nodes found on (elbolint/positions.py): most files have nothing to report.
        """
        self.findings.append(Finding(node, message, fix))

    def report_once(self, node: cst.CSTNode, message: str, *, fix: Optional[tuple[str, cst.CSTNode]] = None) -> None:
        """`report`, unless this rule already reported `node`: a value that reaches a parameter by
        two paths (directly and through the resolver's value flow) is one finding."""
        if id(node) not in self._reported_nodes:
            self._reported_nodes.add(id(node))
            self.report(node, message, fix=fix)

    def diagnostics(self, positions: Mapping[cst.CSTNode, Any]) -> list[Diagnostic]:
        """Turn this rule's findings into Diagnostics, given their nodes' ranges (PositionProvider's)."""
        result = []
        for finding in self.findings:
            code_range = positions[finding.node]
            start = Position(code_range.start.line, code_range.start.column + 1)
            end = Position(code_range.end.line, code_range.end.column + 1)
            fix_value = None
            if finding.fix is not None:
                description, replacement = finding.fix
                content = self.context.module.code_for_node(replacement)
                fix_value = Fix(description, (Edit(start, end, content),), node=finding.node,
                                replacement=replacement, unsafe=self.fix_is_unsafe)
            result.append(
                Diagnostic(self.context.path, start, end, self.code, self.name, finding.message,
                           self.severity, fix_value)
            )
        return result

    # ------------------------------------------------------------- helpers
    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        return self.resolver.qualified_names(node)

    def call_names(self, node: cst.CSTNode) -> frozenset[str]:
        return self.resolver.call_names(node)

    def is_call_to(self, node: cst.CSTNode, names: Iterable[str]) -> bool:
        return isinstance(node, cst.Call) and not self.call_names(node).isdisjoint(names)

    def value_of(self, node: cst.BaseExpression) -> cst.BaseExpression:
        return self.resolver.value_of(node)

    def source(self, node: cst.CSTNode) -> str:
        """The node's code as written (for messages such as "`scale` of tfd.Normal")."""
        return self.context.module.code_for_node(node)

    @staticmethod
    def get_arg(call: cst.Call, keyword: str, position: Optional[int] = None) -> Optional[cst.Arg]:
        """The argument passed as `keyword=` or, when `position` is given, positionally there."""
        positional: Optional[int] = 0  # None once `*args` makes later positions unknowable
        for arg in call.args:
            if arg.keyword is not None:
                if arg.keyword.value == keyword:
                    return arg
            elif arg.star:
                positional = None
            elif positional is not None:
                if position is not None and positional == position:
                    return arg
                positional += 1
        return None

    @staticmethod
    def has_keyword(call: cst.Call, keywords: Sequence[str]) -> bool:
        """True if any of `keywords` is passed, or `**kwargs` could pass it."""
        for arg in call.args:
            if arg.star == "**":
                return True
            if arg.keyword is not None and arg.keyword.value in keywords:
                return True
        return False

    # ---------------------------------------------------------- documentation
    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first sentence of "What it does", for tables."""
        doc = cls.documentation()
        match = re.search(r"## What it does\s*\n(.+?)(?:\n\n|$)", doc, re.S)
        text = " ".join((match.group(1) if match else doc.split("\n\n")[0]).split())
        return text

"""File analyses: facts about one whole file, computed once and shared by every rule that asks.

Why: several rules ask the same whole-file questions — which optimizers drive variational
inference, which training sites exist and what they train, whether a distribution's parameters can
ever reach an optimizer. Answered inside each rule, the answers drifted apart (one rule called a
file "training" because it had `.compile(`, another because it had a loop); answered by the first
rule to be created and stored on the resolver, the answer depended on which rules were selected.
An analysis is the engine's version of Fixit's metadata providers or ruff's semantic model:

- a `FileAnalysis` subclass is a read-only visitor of the same single traversal as the rules; the
  engine creates one instance per file for every analysis that a selected rule declares (and the
  analyses those declare, `requires`), and visits it after the resolver and before the rules, so
  during a visit an analysis has already seen the node a rule is looking at;
- a rule declares what it needs in its `analyses` class attribute and asks
  `self.analysis(SomeAnalysis)`; whole-file answers (that need the nodes after the current one)
  are asked from `leave_Module` or `finalize`, when every node has been visited.

The analyses themselves live in `elbolint.analyses` (one module each, documented there). They hold
TFP knowledge, never a rule's decision: what a finding means is the rule's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Optional, Sequence, TypeVar, cast

from elbolint.resolver import Resolver
from elbolint.visitor import BatchableVisitor


_Analysis = TypeVar("_Analysis", bound="FileAnalysis")


class FileAnalysis(BatchableVisitor):
    """Base class of the file analyses (see the module docstring)."""

    #: Analyses this one asks (created before it and visited before it).
    requires: ClassVar[tuple[type["FileAnalysis"], ...]] = ()

    def __init__(self, resolver: Resolver, analyses: Mapping[type["FileAnalysis"], "FileAnalysis"],
                 path: Optional[Path] = None) -> None:
        super().__init__()
        self.resolver = resolver
        self._analyses = analyses
        self.path = path  # None for code with no file (a test's snippet)

    def analysis(self, kind: type[_Analysis]) -> _Analysis:
        """Another analysis of this file; it must be listed in `requires`."""
        if kind not in type(self).requires:
            raise LookupError(f"{type(self).__name__} asks {kind.__name__} without requiring it")
        # the engine stores each analysis under its own class: the value is a `kind`
        return cast(_Analysis, self._analyses[kind])


def needed_analyses(declared: Iterable[Sequence[type[FileAnalysis]]]) -> list[type[FileAnalysis]]:
    """Every analysis the declarations need, each once, each after the analyses it requires."""
    ordered: list[type[FileAnalysis]] = []
    visiting: set[type[FileAnalysis]] = set()

    def add(kind: type[FileAnalysis]) -> None:
        if kind in ordered:
            return
        if kind in visiting:
            raise RuntimeError(f"file analyses require each other in a cycle: {kind.__name__}")
        visiting.add(kind)
        for required in kind.requires:
            add(required)
        visiting.discard(kind)
        ordered.append(kind)

    for kinds in declared:
        for kind in kinds:
            add(kind)
    return ordered


def create_analyses(resolver: Resolver, kinds: Sequence[type[FileAnalysis]],
                    path: Optional[Path] = None) -> dict[type[FileAnalysis], FileAnalysis]:
    """One instance of each analysis for one file, in order (a dict keeps it)."""
    instances: dict[type[FileAnalysis], FileAnalysis] = {}
    for kind in kinds:
        instances[kind] = kind(resolver, instances, path)
    return instances

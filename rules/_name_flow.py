"""ELB004's name-flow graph and its records: which names training code reaches, and where a transform runs.

Why this module exists: ELB004 (eager_parameter_transform.py) reports a transform computed once
(`tf.nn.softplus(v)` at module level, in `__init__` / `build`, in a factory def) only when the
distribution holding it is trained. "Trained" is a question about names, answered here:

- `NameFlow` is a graph of the file's names. A module-level `name = value` links `name` to the
  names its value mentions; a def links its name to the names its body mentions; a module-level
  `for q in (q1, q2)` links `q` to what it iterates. Names mentioned by training code (a
  `tf.GradientTape` block, the arguments of `fit_surrogate_posterior` / `minimize` /
  `apply_gradients`) are the roots; `trained()` is everything the roots reach.
- The records (`Method`, `Candidate`, `Origin`, `Captured`, `Factory`) are what the rule notes
  during the traversal and decides on at the end of the file, against that graph.
- `method_trains`, `holding_names`, `subtree` and `within` are the small structural questions the
  decisions ask of a def or an expression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

import libcst as cst

#: Methods built once per object.
BUILDERS = ("__init__", "build")
#: Methods whose use of an attribute means it takes part in training.
_TRAINING_WORDS = ("loss", "elbo", "log_prob", "train", "step", "fit", "kl", "divergence")


class NameFlow:
    """The graph: name -> the names its value or body uses; the names used by training code."""

    def __init__(self) -> None:
        self._edges: dict[str, set[str]] = {}
        self._roots: set[str] = set()
        #: Open collectors, innermost last: (the node that opened it, the names read under it).
        self._collectors: list[tuple[cst.CSTNode, set[str]]] = []

    def open_def(self, node: cst.FunctionDef) -> None:
        """A def: the names its body reads flow into its name."""
        self._edges.setdefault(node.name.value, set())
        self._collectors.append((node, set()))

    def close_def(self, node: cst.FunctionDef) -> None:
        _, body = self._collectors.pop()
        self._edges[node.name.value] |= body

    def open_training(self, node: cst.CSTNode) -> None:
        """A tape block or a training call: the names read under it are roots."""
        self._collectors.append((node, self._roots))

    def open_binding(self, node: cst.CSTNode) -> None:
        """A module-level assignment: the names its value reads flow into its targets (`close`)."""
        self._collectors.append((node, set()))

    def close(self, node: cst.CSTNode) -> Optional[set[str]]:
        """Close the collector `node` opened, if it is the innermost one: the names read under it."""
        if self._collectors and self._collectors[-1][0] is node:
            return self._collectors.pop()[1]
        return None

    def link(self, name: str, names: Iterable[str]) -> None:
        """`name` holds a value that uses `names`."""
        self._edges.setdefault(name, set()).update(names)

    def read(self, name: str) -> None:
        """A name is read: every open collector sees it."""
        for _, collected in self._collectors:
            collected.add(name)

    def in_training_code(self) -> bool:
        """Inside a GradientTape block or the arguments of a training call."""
        return any(collected is self._roots for _, collected in self._collectors)

    def trained(self) -> set[str]:
        """Every name the training code's names reach."""
        trained: set[str] = set()
        pending = list(self._roots)
        while pending:
            name = pending.pop()
            if name in trained:
                continue
            trained.add(name)
            pending.extend(self._edges.get(name, ()))
        return trained


# ------------------------------------------------------------------------------- records
@dataclass
class Candidate:
    node: cst.CSTNode
    message: str
    targets: frozenset[str] = frozenset()  # module-level names bound to the distribution
    cls: Optional[cst.ClassDef] = None
    method: Optional[str] = None
    attributes: frozenset[str] = frozenset()  # `self.<attr>` bound to the distribution in __init__/build


@dataclass
class Method:
    name: str
    self_name: Optional[str]
    cls: Optional[cst.ClassDef]
    attributes: set[str] = field(default_factory=set)
    trains: bool = False
    node: Optional[cst.FunctionDef] = None


@dataclass
class Origin:
    """Where a transform call (`tf.nn.softplus(v)`) runs: once at module level, once in a builder
    method (`__init__`/`build`), once per call of a def, or every step (in a loop, a tape, a lambda)."""
    kind: str  # "module" | "builder" | "function" | "step"
    scope: Optional[cst.CSTNode]  # the resolver's innermost scope node where it runs
    method: Optional[Method] = None  # "builder" / "function": the def it runs in
    names: frozenset[str] = frozenset()  # names it is bound to
    attributes: frozenset[str] = frozenset()  # `self.<attr>` it is bound to


@dataclass
class Captured:
    """A distribution built in a def, lambda or coroutine that reads a transform computed once
    outside it (`self.scale` from `__init__`, a module-level `softplus(v)`): decided at the end."""
    node: cst.CSTNode  # the parameter, reported
    message: str
    distribution: cst.Call
    origin: Origin
    direct: bool  # built inside training code (a tape, a training call's arguments)
    holders: frozenset[str] = frozenset()  # names whose use by training code trains the distribution
    method: Optional[Method] = None  # the outermost def (method) the distribution is built in


@dataclass
class Factory:
    """An eager transform inside a function whose result may be built once and trained."""
    node: cst.CSTNode  # the parameter, reported
    message: str
    function: cst.FunctionDef
    distribution: cst.CSTNode
    targets: frozenset[str]  # local names the distribution is bound to
    parameter: Optional[object] = None  # Flow: the variable is this parameter of the function


# ------------------------------------------------------------------------- structural questions
def method_trains(method: Method) -> bool:
    """A def that trains, a Keras/tf.Module `call`, or one named for training (`loss`, `elbo`, ...)."""
    lowered = method.name.lower()
    return method.trains or method.name in ("call", "__call__") or any(w in lowered for w in _TRAINING_WORDS)


def holding_names(function: cst.FunctionDef, names: frozenset[str]) -> frozenset[str]:
    """`names` and the local names of `function` bound to a value that mentions one of them
    (`q = tfd.JointDistributionCoroutine(model)`), a few rounds deep."""
    held = set(names)
    assigns = [n for n in subtree(function.body) if isinstance(n, (cst.Assign, cst.AnnAssign))]
    for _ in range(4):
        before = len(held)
        for assign in assigns:
            if assign.value is None:
                continue
            if not any(isinstance(n, cst.Name) and n.value in held for n in subtree(assign.value)):
                continue
            targets = [t.target for t in assign.targets] if isinstance(assign, cst.Assign) else [assign.target]
            for target in targets:
                held.update(n.value for n in subtree(target) if isinstance(n, cst.Name))
        if len(held) == before:
            break
    return frozenset(held)


def subtree(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """`node` and every node below it (returned expressions are small)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def within(node: cst.CSTNode, container: cst.CSTNode) -> bool:
    return any(inner is node for inner in subtree(container))

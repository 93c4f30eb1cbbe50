"""Training: where one file trains, and whether a distribution's raw parameter can reach training.

Why: a raw `tf.Variable` scale is a risk because an optimizer moves it past zero. Where nothing
ever moves it — TFP's own tests build `tfd.Gamma(tf.Variable(-3.), 1.)` to check that
`validate_args` raises, gradient checks take `tape.gradient` through a parameter, shape tests build
and discard — the same code risks nothing, and over a whole repository those were most of the
findings (190 of 263 on the TFP repository). The rules about a trained parameter (ELB001, ELB002,
ELB007, ELB008, ELB013) ask this analysis before they speak.

**Training sites** (`sites`): an optimizer constructed (Keras 2/3, TF1) or applied
(`.minimize(...)`, `.apply_gradients(...)`); a `tfp.vi` fit or loss, `tfp.math.minimize`; a Keras
`.fit(...)`, `.fit_generator(...)`, `.train_on_batch(...)` or `.compile(...)` (compiling is set-up
for a fit that may live in another module); a manual update `v.assign_sub(...)` or
`v.assign(v - ...)`. Each site knows the defs and classes it is in.

**At risk** (`at_risk(anchor, argument)`): `anchor` is the call that holds the raw parameter (the
distribution, or the `DistributionLambda` layer), `argument` the expression passed as the
parameter. It is at risk when

- it is built at module level (or in a class body) of a file that trains, or does VI by
  VIContext's signs (a snippet with a module-level surrogate next to an optimizer and its training
  loop left out, as tutorials and answers show one), or that others may import (any `.py` that
  is not a test file: a notebook or a test module cannot be imported);
- it is built in a def (or a class's method) whose outermost def — or, for a method, whose class —
  contains a training site;
- outside test code, its value leaves its def: the statement building it is a `return`/`yield`,
  stores it on an attribute or in a subscript (`self.q = ...`, a layer's weight), or binds a name
  that (through later assignments, containers and nested defs of the same def) is returned,
  yielded, stored, declared `global`, or passed to a function that is not TF/TFP/NumPy/a builtin
  (a training helper of another module may train it); or the parameter is an attribute
  (`self.scale`: stored on an object whose training may live elsewhere).

In TF1 graph-mode code (a `Session`, `placeholder`, `disable_eager_execution`) that trains
anywhere, every raw variable is at risk: `optimizer.minimize(loss)` trains every trainable variable
of the graph, wherever it was created.

Test code (elbolint/analyses/test_code.py: a test module, a test class or a `test*` def): what it
builds is trained only where its own def (or class) trains. Anything this analysis did not see (an
anchor it has no record of) is at risk: the benefit of the doubt goes to the finding.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Optional

import libcst as cst

from elbolint.analyses.optimizer_roles import OptimizerRoles
from elbolint.analyses.test_code import in_test_code, is_test_path
from elbolint.analysis import FileAnalysis
from elbolint.resolver import dotted_name
from elbolint.rules._tfp import ANY_OPTIMIZER, GRAPH_MODE, VI_FUNCTIONS

_MINIMIZERS = frozenset({"tensorflow_probability.math.minimize", "tensorflow_probability.math.minimize_stateless"})
#: Methods that train whatever they are called on (Keras, TF1 and TF2 optimizers, manual updates).
_TRAINING_METHODS = frozenset({
    "minimize", "apply_gradients", "fit", "fit_generator", "train_on_batch", "compile", "assign_sub",
})
#: Libraries whose functions do not keep or train what they are given.
_LIBRARIES = ("tensorflow", "tensorflow_probability", "numpy", "scipy", "keras", "matplotlib", "seaborn",
              "pandas", "math", "functools", "itertools", "absl", "collections")
_BUILTINS = frozenset(dir(builtins))
#: Methods of a GradientTape (and of containers) that read their arguments and keep none.
_READING_METHODS = frozenset({"gradient", "watch", "jacobian", "batch_jacobian", "numpy", "format", "join"})
#: Methods that put their argument into the object they are called on (`params.append(q)`).
_CONTAINER_METHODS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "appendleft"})
_OWNERS = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


class Training(FileAnalysis):
    """Where this file trains, and which raw parameters can reach training (module docstring)."""

    requires = (OptimizerRoles,)

    def __init__(self, resolver, analyses, path: Optional[Path] = None) -> None:
        super().__init__(resolver, analyses, path)
        self._owners: list[cst.CSTNode] = []  # enclosing defs, classes and lambdas
        self._statements: list[cst.CSTNode] = []  # enclosing small statements
        self._where: dict[int, tuple[tuple, Optional[cst.CSTNode]]] = {}  # id(call) -> (owners, statement)
        self._known_callee: dict[int, bool] = {}  # id(call) -> keeps nothing it is given
        self.sites: list[tuple[str, cst.Call, tuple]] = []  # (kind, call, owners)
        self._test_file = is_test_path(path)
        self.graph_mode = False  # TF1 graph-mode code (see GRAPH_MODE in rules/_tfp.py)
        self._notebook = path is not None and path.suffix == ".ipynb"

    # ------------------------------------------------------------ traversal
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._owners.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._owners.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._owners.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._owners.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._owners.append(node)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._owners.pop()

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self._statements.append(node)

    def leave_SimpleStatementLine(self, original_node: cst.SimpleStatementLine) -> None:
        self._statements.pop()

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        self._statements.append(node)

    def leave_SimpleStatementSuite(self, original_node: cst.SimpleStatementSuite) -> None:
        self._statements.pop()

    def visit_Arg(self, node: cst.Arg) -> None:
        """An argument is an anchor too: a raw variable handed to a builder of the file is reported there."""
        self._where[id(node.value)] = (tuple(self._owners), self._statements[-1] if self._statements else None)

    def visit_Call(self, node: cst.Call) -> None:
        owners = tuple(self._owners)
        self._where[id(node)] = (owners, self._statements[-1] if self._statements else None)
        names = self.resolver.call_names(node)
        if not names.isdisjoint(GRAPH_MODE):
            self.graph_mode = True
        kind = self._training_kind(node, names)
        if kind is not None:
            self.sites.append((kind, node, owners))
        self._known_callee[id(node)] = self._keeps_nothing(node, names)

    def _training_kind(self, node: cst.Call, names: frozenset[str]) -> Optional[str]:
        if not names.isdisjoint(ANY_OPTIMIZER):
            return "optimizer"
        if not names.isdisjoint(VI_FUNCTIONS):
            return "vi-fit"
        if not names.isdisjoint(_MINIMIZERS):
            return "minimize"
        if isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if method in _TRAINING_METHODS:
                return method
            if method == "assign" and node.args and isinstance(node.args[0].value, cst.BinaryOperation) \
                    and isinstance(node.args[0].value.operator, cst.Subtract):
                return "assign_sub"
        return None

    def _keeps_nothing(self, node: cst.Call, names: frozenset[str]) -> bool:
        if names:
            return all(name.split(".")[0] in _LIBRARIES for name in names)
        func = node.func
        if isinstance(func, cst.Name):
            return func.value in _BUILTINS and self.resolver.value_of(func) is func
        if isinstance(func, cst.Attribute):
            return func.attr.value in _READING_METHODS
        return False

    # ------------------------------------------------------------ questions
    @property
    def trains(self) -> bool:
        """Whether anything in the file trains."""
        return bool(self.sites)

    def trains_where(self, anchor: cst.CSTNode) -> bool:
        """Whether a training site is in the def (or class) that builds `anchor`."""
        record = self._where.get(id(anchor))
        if record is None or not _defs(record[0]):
            return False
        scope = _training_scope(record[0])
        return any(scope in site_owners for _, _, site_owners in self.sites)

    def at_risk(self, anchor: cst.CSTNode, argument: Optional[cst.CSTNode] = None,
                variable: Optional[cst.CSTNode] = None) -> bool:
        """Whether the raw parameter held by `anchor` can reach training (module docstring).
        `variable`: the raw variable's own construction, when known: a module-level variable read
        by a def is as trainable as the module's own values."""
        record = self._where.get(id(anchor))
        if record is None:
            return True
        owners, statement = record
        if variable is not None and id(variable) in self._where:
            variable_owners = self._where[id(variable)][0]
            if not _defs(variable_owners):
                owners = variable_owners  # a module-level variable: judged where it lives
        if self.graph_mode and self.trains:
            return True  # TF1: `minimize(loss)` trains every trainable variable of the graph
        defs = _defs(owners)
        if not defs:
            if any(isinstance(o, cst.ClassDef) for o in owners):
                return True  # a class attribute: the class's users may train it
            return self.trains or self.analysis(OptimizerRoles).vi.does_vi or not (self._test_file or self._notebook)
        scope = _training_scope(owners)
        if any(scope in site_owners for _, _, site_owners in self.sites):
            return True
        if self._test_file or in_test_code(owners):
            return False
        if isinstance(argument, cst.Attribute):
            return True  # `self.scale`: stored on an object
        return self._escapes(defs[-1], statement, anchor)

    def _escapes(self, function: cst.FunctionDef, statement: Optional[cst.CSTNode], anchor: cst.CSTNode) -> bool:
        """Whether the value built at `anchor` (in `statement`) leaves `function` (module docstring)."""
        if statement is None:
            return True  # built in a header (`for`, `with`, a decorator): not followed
        tainted: set[str] = set()
        carries = _Carrier(anchor, tainted)
        if self._statement_escapes(statement, carries):
            return True
        if not tainted:
            return False
        statements = list(_statements_in(function.body))
        for _ in range(4):  # a few rounds: `q = ...; qs = [q]; return qs`
            before = len(tainted)
            for other in statements:
                if other is statement or not _mentions(other, tainted):
                    continue
                if self._statement_escapes(other, carries):
                    return True
            if len(tainted) == before:
                return False
        return True

    def _statement_escapes(self, statement: cst.CSTNode, carries: "_Carrier") -> bool:
        """Whether this statement sends the value out of its def; names it binds to the value join
        the carrier's names. A value read (`q.sample()`, `q.batch_shape`) is not the value."""
        if isinstance(statement, cst.FunctionDef):  # a nested def reading the value: its name carries it
            carries.names.add(statement.name.value)
            return False
        for small in getattr(statement, "body", ()):
            if isinstance(small, cst.Return):
                if small.value is not None and carries(small.value):
                    return True
                continue
            if any(y.value is not None and carries(y.value) for y in _yields(small)):
                return True
            if isinstance(small, (cst.Global, cst.Nonlocal)):
                if any(n.name.value in carries.names for n in small.names):
                    return True
                continue
            value = getattr(small, "value", None)
            if isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)) and value is not None and carries(value):
                for target in _targets(small):
                    if isinstance(target, (cst.Attribute, cst.Subscript)):
                        return True  # stored on an object or in a container
                    carries.names.update(_names_bound(target))
            if self._passes_on(small, carries):
                return True
        return False

    def _passes_on(self, node: cst.CSTNode, carries: "_Carrier") -> bool:
        """A call in `node` that hands the value to a function that may keep it; a container
        method given the value taints its container (`params.append(q)`)."""
        for call in _calls_in(node):
            if not any(carries(arg.value) for arg in call.args):
                continue
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in _CONTAINER_METHODS:
                owner = dotted_name(call.func.value)
                if owner is None or "." in owner:
                    return True  # `self.params.append(q)`: stored on an object
                carries.names.add(owner)
                continue
            if not self._known_callee.get(id(call), False):
                return True
        return False


class _Carrier:
    """Whether an expression is (or holds) the value: the anchor itself or a name bound to it, a
    display (list, tuple, dict) or a call holding one (`tfd.Independent(q)`, a joint distribution's
    component list), a conditional choosing one, or a lambda reading one (a closure). Reading the
    value (`q.sample()`, `q.log_prob(x)`, `q.batch_shape`) gives something else."""

    def __init__(self, anchor: cst.CSTNode, names: set[str]) -> None:
        self.anchor, self.names = anchor, names

    def __call__(self, node: cst.CSTNode, depth: int = 0) -> bool:
        if node is self.anchor:
            return True
        if depth > 30:
            return False
        if isinstance(node, cst.Name):
            return node.value in self.names
        if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
            return any(self(e.value, depth + 1) for e in node.elements)
        if isinstance(node, cst.Dict):
            return any(isinstance(e, cst.DictElement) and self(e.value, depth + 1) for e in node.elements)
        if isinstance(node, cst.Call):
            return any(self(a.value, depth + 1) for a in node.args)
        if isinstance(node, cst.IfExp):
            return self(node.body, depth + 1) or self(node.orelse, depth + 1)
        if isinstance(node, cst.Lambda):
            return _within(self.anchor, [node.body]) or _mentions(node.body, self.names)
        if isinstance(node, (cst.NamedExpr, cst.Await)):
            return self(node.value if isinstance(node, cst.NamedExpr) else node.expression, depth + 1)
        return False


def _within(node: cst.CSTNode, roots) -> bool:
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current is node:
            return True
        stack.extend(current.children)
    return False


def _defs(owners: tuple) -> list[cst.FunctionDef]:
    return [o for o in owners if isinstance(o, cst.FunctionDef)]


def _training_scope(owners: tuple) -> cst.CSTNode:
    """The outermost def holding the value, or the class when that def is a method."""
    for index, owner in enumerate(owners):
        if isinstance(owner, cst.FunctionDef):
            if index > 0 and isinstance(owners[index - 1], cst.ClassDef):
                return owners[index - 1]
            return owner
    return owners[0]


def _statements_in(node: cst.CSTNode):
    """Every simple statement line and nested def of a def's body (not into nested classes)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            yield current
            continue
        if isinstance(current, cst.FunctionDef):
            yield current
            continue
        if isinstance(current, (cst.ClassDef, cst.BaseExpression)):
            continue
        stack.extend(reversed(current.children))


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    if not names:
        return False
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Name) and current.value in names:
            return True
        if isinstance(current, cst.Attribute):
            stack.append(current.value)  # `q.sample` mentions q; `.q` of something else does not
            continue
        stack.extend(current.children)
    return False


def _targets(small: cst.CSTNode) -> list[cst.BaseExpression]:
    if isinstance(small, cst.Assign):
        return [t.target for t in small.targets]
    if isinstance(small, (cst.AnnAssign, cst.AugAssign)):
        return [small.target]
    return []


def _names_bound(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        names: set[str] = set()
        for element in target.elements:
            inner = element.value.value if isinstance(element.value, cst.StarredElement) else element.value
            names |= _names_bound(inner)
        return names
    return set()


def _yields(node: cst.CSTNode):
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Yield):
            yield current
        if isinstance(current, _OWNERS):
            continue
        stack.extend(current.children)


def _calls_in(node: cst.CSTNode):
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            yield current
        stack.extend(current.children)

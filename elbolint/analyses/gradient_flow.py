"""Gradient flow: whether a value is computed from gradients, from clipped gradients, or from a
parameter that may hold either (OptimizerRoles' "clipped by hand" question).

Why a module of its own: clipping counts only when it is applied to gradients on their way to
`apply_gradients` (a `tf.clip_by_value` on a loss or on a prior's scale clips no gradient), so the
analysis follows, per name and per `if` branch, which values carry gradients: through operators,
lists, comprehensions, lambdas (`tf.nest.map_structure(lambda g: tf.clip_by_norm(g, 1.), grads)`)
and the functions of the file (what each returns, summarised as it is visited). OptimizerRoles
(optimizer_roles.py) feeds the bindings and asks `GradientFlow.of` for `apply_gradients`' argument.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.cst_helpers import positional_names, target_names
from elbolint.names import TF
from elbolint.resolver import Resolver
from elbolint.rules._tfp import BranchScopes

#: Manual clipping: counts only when applied to gradients (see OptimizerRoles).
GRADIENT_CLIPPING = frozenset({
    f"{TF}.{prefix}{name}"
    for prefix in ("", "math.", "compat.v1.", "compat.v1.math.", "compat.v1.compat.v1.")
    for name in ("clip_by_global_norm", "clip_by_norm", "clip_by_value", "clip_by_average_norm")
})
#: Functions that return gradients (besides the methods `tape.gradient` / `opt.compute_gradients`).
_GRADIENT_FUNCTIONS = frozenset({
    f"{TF}.gradients", f"{TF}.compat.v1.gradients", f"{TF}.compat.v1.compat.v1.gradients",
    "tensorflow_probability.math.value_and_gradient",
})
_GRADIENT_METHODS = frozenset({"gradient", "compute_gradients"})
_CLIPPING_OR_GRADIENT_NAMES = frozenset(
    {name.rsplit(".", 1)[-1] for name in GRADIENT_CLIPPING | _GRADIENT_FUNCTIONS} | _GRADIENT_METHODS
)

#: Gradient flow, as bits: a value computed from gradients (`tape.gradient`, `compute_gradients`,
#: `tf.gradients`), from clipped gradients, or from a parameter of the enclosing function or lambda
#: (which may be gradients: `def clip(grads): return [tf.clip_by_norm(g, 1.) for g in grads]`).
GRADIENTS, CLIPPED, PARAMETER = 1, 2, 4


#: How deep `GradientFlow.of` reads one expression before answering "no gradients".
_DEPTH = 40


class GradientFlow:
    """Gradient-flow bits of names (per function scope and `if` branch) and of the values the
    file's functions return; `of(expression)` combines them (see the module docstring)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.scopes = BranchScopes(int.__or__, 0)  # name -> gradient-flow bits
        self.returns: dict[str, int] = {}  # def -> gradient-flow bits of what it returns

    def of(self, node: Optional[cst.CSTNode], local: Optional[dict[str, int]] = None, depth: int = 0) -> int:
        """Gradient-flow bits of an expression (GRADIENTS, CLIPPED, PARAMETER); `local`: names bound
        by an enclosing lambda or comprehension."""
        if depth > _DEPTH or node is None:
            return 0
        if isinstance(node, cst.Name):
            if local and node.value in local:
                return local[node.value]
            return self.scopes.lookup(node.value)
        if isinstance(node, cst.Call):
            return self._call(node, local, depth)
        if isinstance(node, (cst.Attribute, cst.Subscript, cst.StarredElement)):
            return self.of(node.value, local, depth + 1)  # `self.grads`, `gvs[0]`, `*grads`
        if isinstance(node, cst.Await):  # `await compute()`: an Await holds an `expression`, not a `value`
            return self.of(node.expression, local, depth + 1)
        if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            bits = 0
            for element in node.elements:
                bits |= self.of(element.value, local, depth + 1)
            return bits
        if isinstance(node, cst.BinaryOperation):
            return self.of(node.left, local, depth + 1) | self.of(node.right, local, depth + 1)
        if isinstance(node, cst.BooleanOperation):
            return self.of(node.left, local, depth + 1) | self.of(node.right, local, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self.of(node.expression, local, depth + 1)
        if isinstance(node, cst.IfExp):
            return self.of(node.body, local, depth + 1) | self.of(node.orelse, local, depth + 1)
        if isinstance(node, cst.Lambda):
            params = {name: PARAMETER for name in positional_names(node.params)}
            return self.of(node.body, {**(local or {}), **params}, depth + 1)
        if isinstance(node, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            scope = dict(local or {})
            clause: Optional[cst.CompFor] = node.for_in
            while clause is not None:
                bits = self.of(clause.iter, scope, depth + 1)
                for name in target_names(clause.target):
                    scope[name] = bits
                clause = clause.inner_for_in
            if isinstance(node, cst.DictComp):
                return self.of(node.key, scope, depth + 1) | self.of(node.value, scope, depth + 1)
            return self.of(node.elt, scope, depth + 1)
        return 0  # literals, comparisons, f-strings, ...

    def _call(self, node: cst.Call, local: Optional[dict[str, int]], depth: int) -> int:
        arguments = 0
        for arg in node.args:
            arguments |= self.of(arg.value, local, depth + 1)
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last in _CLIPPING_OR_GRADIENT_NAMES:  # resolve only calls that may matter (cheap pre-check)
            names = self.resolver.call_names(node)
            if not names.isdisjoint(GRADIENT_CLIPPING):
                return CLIPPED if arguments & (GRADIENTS | CLIPPED | PARAMETER) else 0
            if not names.isdisjoint(_GRADIENT_FUNCTIONS):
                return GRADIENTS
            if isinstance(func, cst.Attribute) and last in _GRADIENT_METHODS and not names:
                return GRADIENTS  # `tape.gradient(...)`, `optimizer.compute_gradients(...)`
        if isinstance(func, cst.Name) and last in self.returns and not self.resolver.call_names(node):
            summary = self.returns[last]  # a function of the file
            bits = summary & (GRADIENTS | CLIPPED)
            if summary & PARAMETER:
                bits |= arguments & (GRADIENTS | CLIPPED)
            if summary & CLIPPED and arguments & GRADIENTS:
                bits |= CLIPPED
            return bits
        if arguments & PARAMETER and arguments & (GRADIENTS | CLIPPED) and self._clips_a_parameter(node):
            return CLIPPED  # `tf.nest.map_structure(lambda g: tf.clip_by_norm(g, 1.), grads)`
        return arguments  # zip(...), list(...), and calls we cannot read pass their arguments through

    def _clips_a_parameter(self, node: cst.Call) -> bool:
        for arg in node.args:
            if isinstance(arg.value, cst.Lambda) and self.of(arg.value) & CLIPPED:
                return True
        return False

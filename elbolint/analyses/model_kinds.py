"""Which Keras models of a file are visibly plain, variational or unknown (VIContext's `models`).

Why a module of its own: whether an optimizer compiled into a model drives VI depends on what that
model is, and one notebook often trains a Bayesian network next to its plain baseline. ModelKinds
classifies each name bound to a Keras model, layer or functional-API tensor as it is bound (per
function scope and per `if` branch); vi_context.py feeds it and asks it, optimizer_roles.py reads
the kinds of the models optimizers are compiled into. Variational: built from `tfp.layers` (or
`tfp.experimental.nn`) variational or KL layers, from a class of the file that does VI, by a call
that passes a variational layer's knobs (`kl_weight=`, `posterior=` with `prior=`, ...) to a helper
this file cannot read, or by a builder whose name or project module says so.
"""

from __future__ import annotations

import re

import libcst as cst

from elbolint.analyses.vi_signs import (
    KL_LAYERS, TFN_SEQUENTIAL, VI_MODEL_LAYERS, mentions, tfn_variational, vi_keywords,
)
from elbolint.cst_helpers import callee_name
from elbolint.names import TFP, TFPL, member_of
from elbolint.resolver import Resolver
from elbolint.rules._tfp import BranchScopes, first_argument

#: What a Keras model visibly is, for deciding whether its optimizer drives VI.
PLAIN, VARIATIONAL, UNKNOWN = "plain", "variational", "unknown"

_SEQUENTIAL = frozenset({"keras.Sequential", "keras.models.Sequential"})
_FUNCTIONAL = frozenset({"keras.Model", "keras.models.Model"})
#: A model builder whose name says what it builds (`bayesian_resnet`, `build_bnn`, `make_vae`), read
#: when its body is not in the file (an import): those names mean a variational model.
_BAYESIAN_BUILDER = re.compile(r"bayes|(^|_)bnn($|_)|variational|(^|_)vae($|_)|flipout", re.IGNORECASE)
#: How deep `ModelKinds.kind` reads nested calls, lists and conditionals before saying "unknown".
_KIND_DEPTH = 50


def combine_kinds(kinds) -> str:
    """What a value that may be any of these model kinds is: variational wins, then unknown."""
    kinds = set(kinds)
    if VARIATIONAL in kinds:
        return VARIATIONAL
    return UNKNOWN if UNKNOWN in kinds else PLAIN


class ModelKinds:
    """Which names hold a visibly plain Keras model (or layer, or tensor of the functional API),
    which a variational one, and which something unknown. Each binding is classified when it is
    made (`hidden = Dense(8)(hidden)` reads the previous `hidden`), per function scope and per
    `if` branch (BranchScopes); a call to a function of the file is what its `return`s were."""

    def __init__(self, resolver: Resolver, return_kinds: dict[str, str], is_vi_class, project_vi) -> None:
        self.resolver = resolver
        self.scopes = BranchScopes(lambda a, b: combine_kinds([a, b]), UNKNOWN)
        self._return_kinds = return_kinds
        self._is_vi_class = is_vi_class
        self._project_vi = project_vi  # qualified name -> whether its module of the project shows VI

    def bind(self, name: str, value: cst.BaseExpression) -> None:
        self.scopes.bind(name, self.kind(value))

    def unbind(self, name: str) -> None:
        self.scopes.bind(name, UNKNOWN)

    def extend(self, name: str, layer: cst.BaseExpression) -> None:
        """`model.add(layer)`."""
        if self.scopes.knows(name):
            self.scopes.update(name, self.kind(layer))

    def kind(self, node: cst.BaseExpression, depth: int = 0) -> str:
        if depth > _KIND_DEPTH:
            return UNKNOWN
        if isinstance(node, cst.Name):
            return self.scopes.lookup(node.value)
        if isinstance(node, cst.IfExp):
            return combine_kinds([self.kind(node.body, depth + 1), self.kind(node.orelse, depth + 1)])
        if isinstance(node, (cst.List, cst.Tuple)):
            return combine_kinds(self.kind(e.value, depth + 1) for e in node.elements) if node.elements else PLAIN
        if not isinstance(node, cst.Call):
            return UNKNOWN
        names = self.resolver.call_names(node)
        if isinstance(node.func, cst.Name) and not names and node.func.value not in self._return_kinds \
                and self._is_vi_class(node.func.value):
            return VARIATIONAL  # `BayesByBackpropDense(8, **prior_params)`, or a Keras Model class built from it
        if any(arg.star for arg in node.args):
            return UNKNOWN
        positional = [arg.value for arg in node.args if arg.keyword is None]
        if isinstance(node.func, cst.Name) and not names and node.func.value in self._return_kinds:
            return self._return_kinds[node.func.value]  # `model = build_baseline()`
        if isinstance(node.func, (cst.Call, cst.Name)) and not names:
            # `Dense(8)(inputs)` or `layer(inputs)`: the layer and what flows into it.
            return combine_kinds([self.kind(node.func, depth + 1)] + [self.kind(v, depth + 1) for v in positional])
        if not names.isdisjoint(VI_MODEL_LAYERS) or tfn_variational(names):
            return VARIATIONAL
        if not names.isdisjoint(_SEQUENTIAL) or not names.isdisjoint(TFN_SEQUENTIAL):
            layers = first_argument(node, "layers")
            return PLAIN if layers is None else self.kind(layers, depth + 1)
        if not names.isdisjoint(_FUNCTIONAL):
            parts = [
                arg.value for arg in node.args if arg.keyword is None or arg.keyword.value in ("inputs", "outputs")
            ]
            return combine_kinds(self.kind(v, depth + 1) for v in parts) if parts else UNKNOWN
        if any(n.startswith("keras.layers.") or n == "keras.Input" for n in names):
            return PLAIN
        if not names.isdisjoint(KL_LAYERS):
            return VARIATIONAL  # a VAE's KL term
        if any(member_of(n, TFPL) for n in names):
            return VARIATIONAL if mentions(self.resolver, node, KL_LAYERS) else PLAIN
        if vi_keywords(node):
            return VARIATIONAL  # `init_model(..., posterior=..., prior=..., kl_weight=1/N)` of another module
        callees = [callee_name(node) or "", *(n.rsplit(".", 1)[-1] for n in names)]
        if (any(_BAYESIAN_BUILDER.search(c) for c in callees) and callee_name(node) not in self._return_kinds
                and self.resolver.imports(TFP)):
            # `bayesian_resnet(...)`, `BayesianNetwork(...)` from another module of a TFP project (a
            # Keras-only "Bayesian" model is usually MC dropout or a variance head, not VI)
            return VARIATIONAL
        if names and not _asks_for_plain(node) and self._project_vi(next(iter(names))):
            return VARIATIONAL  # `get_model()` from the project's `model.py`, which builds Flipout layers
        return UNKNOWN


#: Keywords of a builder that makes either kind: `res_net(..., variational=False)` is the baseline.
_VARIATIONAL_SWITCHES = ("variational", "bayesian", "stochastic", "probabilistic")


def _asks_for_plain(call: cst.Call) -> bool:
    """A builder asked for its deterministic model (`variational=False`, `deterministic=True`)."""
    for arg in call.args:
        if arg.keyword is None or not isinstance(arg.value, cst.Name):
            continue
        word, value = arg.keyword.value.lower(), arg.value.value
        if value == "False" and any(switch in word for switch in _VARIATIONAL_SWITCHES):
            return True
        if value == "True" and "deterministic" in word:
            return True
    return False

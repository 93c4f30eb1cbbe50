"""TFP and Keras knowledge shared by several rules: which parameters must stay positive, the
positional signatures of common distributions, optimizer classes (Keras, TF1, Keras strings), VI
entry points, folding of literal initial values, and the `if`-branch-aware bindings (BranchScopes)
that VIContext (`elbolint/analyses/vi_context.py`) and OptimizerRoles
(`elbolint/analyses/optimizer_roles.py`) follow values through.
Not a rule module (it defines no Rule subclass with a code), so the registry skips it."""

from __future__ import annotations

from functools import partial

from typing import Optional

import libcst as cst

from elbolint.names import (
    KERAS_OPTIMIZERS, TF, TFB, TFD, TFP_EXPERIMENTAL_VI, TFP_UTIL, TFP_VI, TFPL, member_of, names_in,
)
from elbolint.cst_helpers import argument as argument_at
from elbolint.resolver import Resolver
from elbolint.triage import last_parts

#: Parameters that must stay strictly positive for the distribution to be valid.
POSITIVE_PARAMETERS = frozenset({
    "scale", "scale_diag", "scale_identity_multiplier", "concentration", "concentration0",
    "concentration1", "rate", "df", "temperature", "variance", "tailweight",
})

#: Positional parameter order of common distributions (so `tfd.Normal(0., v)` is read as scale=v).
POSITIONAL = {
    "Normal": ("loc", "scale"), "LogNormal": ("loc", "scale"), "Laplace": ("loc", "scale"),
    "Cauchy": ("loc", "scale"), "Gumbel": ("loc", "scale"), "Logistic": ("loc", "scale"),
    "HalfNormal": ("scale",), "HalfCauchy": ("loc", "scale"), "Moyal": ("loc", "scale"),
    "TruncatedNormal": ("loc", "scale", "low", "high"), "StudentT": ("df", "loc", "scale"),
    "HalfStudentT": ("df", "loc", "scale"), "Gamma": ("concentration", "rate"),
    "InverseGamma": ("concentration", "scale"), "Exponential": ("rate",), "Poisson": ("rate",),
    "Beta": ("concentration1", "concentration0"), "Kumaraswamy": ("concentration1", "concentration0"),
    "Dirichlet": ("concentration",), "Chi2": ("df",), "Chi": ("df",),
    "Weibull": ("concentration", "scale"), "Pareto": ("concentration", "scale"),
    "VonMises": ("loc", "concentration"), "Horseshoe": ("scale",), "LogLogistic": ("loc", "scale"),
    "MultivariateNormalDiag": ("loc", "scale_diag"), "MultivariateNormalTriL": ("loc", "scale_tril"),
    "JohnsonSU": ("skewness", "tailweight", "loc", "scale"),
    "SinhArcsinh": ("loc", "scale", "skewness", "tailweight"),
    "GeneralizedNormal": ("loc", "scale", "power"),
    "Bernoulli": ("logits", "probs"), "Categorical": ("logits", "probs"),
    "OneHotCategorical": ("logits", "probs"), "Geometric": ("logits", "probs"),
    "Binomial": ("total_count", "logits", "probs"), "NegativeBinomial": ("total_count", "logits", "probs"),
    "Multinomial": ("total_count", "logits", "probs"),
    "RelaxedBernoulli": ("temperature", "logits", "probs"),
    "RelaxedOneHotCategorical": ("temperature", "logits", "probs"),
}

VARIABLE = frozenset({f"{TF}.Variable", f"{TF}.compat.v1.Variable"})
TRANSFORMED_VARIABLE = frozenset({f"{TFP_UTIL}.TransformedVariable"})
DEFERRED_TENSOR = frozenset({f"{TFP_UTIL}.DeferredTensor"})

OPTIMIZERS = names_in(
    KERAS_OPTIMIZERS, "Adam", "AdamW", "Adamax", "Nadam", "SGD", "RMSprop", "Adagrad", "Adadelta",
    "Ftrl", "Lion", "Adafactor", "Lamb",
)
CLIPPING_KEYWORDS = ("clipnorm", "clipvalue", "global_clipnorm")

#: Calls whose presence means the file does variational inference.
VI_FUNCTIONS = names_in(
    TFP_VI, "fit_surrogate_posterior", "fit_surrogate_posterior_stateless",
    "monte_carlo_variational_loss", "kl_reverse", "kl_forward",
) | names_in(
    TFP_EXPERIMENTAL_VI, "build_factored_surrogate_posterior", "build_affine_surrogate_posterior",
    "build_asvi_surrogate_posterior", "build_trainable_location_scale_distribution",
    "build_split_flow_surrogate_posterior", "build_factored_surrogate_posterior_stateless",
    "build_affine_surrogate_posterior_stateless",
)
#: Other calls that only exist for variational inference (Csiszar divergences, structural time series
#: surrogates, variational Gaussian processes): they mark the file as doing VI, but take no optimizer
#: argument, so no optimizer is taken from them.
VI_MARKERS = names_in(
    TFP_VI, "monte_carlo_csiszar_f_divergence", "csiszar_vimco",
) | names_in(
    f"{TFP_VI.rsplit('.', 1)[0]}.sts", "build_factored_surrogate_posterior", "build_factored_variational_loss",
) | names_in(TFD, "VariationalGaussianProcess") | names_in(TFPL, "VariationalGaussianProcess")
VARIATIONAL_LAYERS = names_in(
    TFPL, "DenseVariational", "DenseFlipout", "DenseReparameterization", "DenseLocalReparameterization",
    "Convolution1DFlipout", "Convolution2DFlipout", "Convolution3DFlipout",
    "Convolution1DReparameterization", "Convolution2DReparameterization",
    "Convolution3DReparameterization",
)
BIJECTOR_SOFTPLUS = f"{TFB}.Softplus"
BIJECTOR_EXP = f"{TFB}.Exp"

#: The words of a raw trainable variable (`tf.Variable` in any spelling, a Keras `self.add_weight`):
#: the triage words (`starts_from`, elbolint/triage.py) of the rules that start from one.
RAW_VARIABLE_WORDS = (*last_parts(VARIABLE), "add_weight", "add_variable")


def distribution_name(resolver: Resolver, call: cst.Call) -> Optional[str]:
    """"Normal" for a call to any spelling of tfd.Normal; None if not a TFP distribution."""
    for qualified in resolver.call_names(call):
        member = member_of(qualified, TFD)
        if member is not None and member[:1].isupper():
            return member
    return None


def distribution_arguments(call: cst.Call, distribution: str) -> list[tuple[str, cst.Arg]]:
    """(parameter name, argument) for each keyword or known positional argument."""
    positional_names = POSITIONAL.get(distribution, ())
    found, position = [], 0
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is not None:
            found.append((arg.keyword.value, arg))
        else:
            if position < len(positional_names):
                found.append((positional_names[position], arg))
            position += 1
    return found


def literal_values(node: cst.BaseExpression, resolver: Resolver, depth: int = 0) -> Optional[list[float]]:
    """The numbers a constant initial value is made of, or None if it is not a visible constant.

    Understands numbers, lists/tuples of them, `tf.constant(x)`, `tf.fill(dims, x)`,
    `np.full(shape, x)`, `tf.ones/zeros(...)`, `np.ones/zeros(...)`, `tf.ones(...) * x` and
    `np.array(x)` / `tf.convert_to_tensor(x)`.
    """
    if depth > 6:
        return None
    if isinstance(node, (cst.Integer, cst.Float)):
        return [float(node.evaluated_value)]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        inner = literal_values(node.expression, resolver, depth + 1)
        if inner is None:
            return None
        return [-v for v in inner] if isinstance(node.operator, cst.Minus) else inner
    if isinstance(node, (cst.List, cst.Tuple)):
        values: list[float] = []
        for element in node.elements:
            inner = literal_values(element.value, resolver, depth + 1)
            if inner is None:
                return None
            values += inner
        return values or None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        left = literal_values(node.left, resolver, depth + 1)
        right = literal_values(node.right, resolver, depth + 1)
        if left is None or right is None:
            return None
        return [a * b for a in left for b in right]
    if isinstance(node, cst.Call):
        names = resolver.call_names(node)
        short = {n.rsplit(".", 1)[-1] for n in names if n.startswith((f"{TF}.", "numpy."))}
        if not short:
            return None
        first = node.args[0].value if node.args and not node.args[0].keyword else None
        if short & {"constant", "array", "asarray", "convert_to_tensor"} and first is not None:
            return literal_values(first, resolver, depth + 1)
        if short & {"ones", "ones_like"}:
            return [1.0]
        if short & {"zeros", "zeros_like"}:
            return [0.0]
        if short & {"fill", "full"} and len(node.args) >= 2:
            return literal_values(node.args[1].value, resolver, depth + 1)
    return None


def is_call(resolver: Resolver, node: cst.CSTNode, names: frozenset[str]) -> bool:
    return isinstance(node, cst.Call) and not resolver.call_names(node).isdisjoint(names)


def first_argument(call: cst.Call, keyword: str) -> Optional[cst.BaseExpression]:
    """The one passed as `keyword=`, or the first positional argument (cst_helpers.argument)."""
    return argument_at(call, keyword, 0)


def raw_trainable_variable(resolver: Resolver, node: cst.BaseExpression) -> Optional[cst.Call]:
    """The `tf.Variable(...)` (or `self.add_weight(...)`) call that `node` is or names, when the optimizer
    moves it freely: trainable and without a `constraint=` projection. None for anything else."""
    value = resolver.value_of(node)
    if not isinstance(value, cst.Call):
        return None
    if not (is_call(resolver, value, VARIABLE) or is_keras_weight(value)) or is_non_trainable(value):
        return None
    if any(arg.keyword is not None and arg.keyword.value == "constraint" for arg in value.args):
        return None
    return value


def is_keras_weight(node: cst.CSTNode) -> bool:
    """`self.add_weight(...)` (or TF1-era `add_variable`): a Keras layer's trainable weight, as raw as a
    `tf.Variable` (a Bayes-by-backprop layer's `sigma` or a hand-made Cholesky factor)."""
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("add_weight", "add_variable")
            and isinstance(node.func.value, cst.Name) and node.func.value.value == "self")


def variable_words(node: cst.CSTNode) -> str:
    """How a message names the raw variable: `tf.Variable` or a Keras weight."""
    return "Keras weight (`self.add_weight`)" if is_keras_weight(node) else "tf.Variable"


def is_non_trainable(call: cst.Call) -> bool:
    """`tf.Variable(..., trainable=False)`: the optimizer never moves it."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "trainable":
            return isinstance(arg.value, cst.Name) and arg.value.value == "False"
    return False


#: TF1 optimizers (`tf.compat.v1.train.AdamOptimizer`, `tf.train.*Optimizer` in graph-mode code).
#: They take no `clipnorm`: their gradients are clipped between `compute_gradients` and
#: `apply_gradients`, or not at all.
TF1_OPTIMIZERS = frozenset(
    f"{prefix}.{name}"
    # `import tensorflow.compat.v1 as tf` then `tf.compat.v1.train.AdamOptimizer` (TFP's own examples)
    for prefix in (f"{TF}.train", f"{TF}.compat.v1.train", f"{TF}.compat.v1.compat.v1.train")
    for name in (
        "AdamOptimizer", "GradientDescentOptimizer", "MomentumOptimizer", "RMSPropOptimizer",
        "AdagradOptimizer", "AdadeltaOptimizer", "AdagradDAOptimizer", "FtrlOptimizer",
        "ProximalAdagradOptimizer", "ProximalGradientDescentOptimizer",
    )
) | names_in(f"{TF}.contrib.opt", "AdamWOptimizer", "NadamOptimizer", "LazyAdamOptimizer")

#: TF1 graph-mode code: a Session, a placeholder, eager execution switched off. There an optimizer's
#: `minimize(loss)` trains every trainable variable of the graph, wherever it was created.
GRAPH_MODE = frozenset(
    f"{prefix}.{name}" for prefix in (TF, f"{TF}.compat.v1", f"{TF}.compat.v1.compat.v1")
    for name in ("Session", "InteractiveSession", "placeholder", "disable_eager_execution", "disable_v2_behavior")
)


#: Every optimizer construction OptimizerRoles follows (Keras 2/3 and TF1).
ANY_OPTIMIZER = OPTIMIZERS | TF1_OPTIMIZERS

#: `model.compile(optimizer="adam")`: Keras builds this class with its defaults (default learning
#: rate, no clipping), and a string leaves no place to ask for clipping.
STRING_OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "Nadam", "sgd": "SGD",
    "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta", "ftrl": "Ftrl",
    "lion": "Lion", "adafactor": "Adafactor",
}

#: Triage words (elbolint/triage.py) of the rules that start from an optimizer: every optimizer
#: class, and the Keras strings in any case (`compile(optimizer="Adam")`).
OPTIMIZER_WORDS = (*last_parts(ANY_OPTIMIZER), "(?i:" + "|".join(STRING_OPTIMIZERS) + ")")


class BranchScopes:
    """name -> value per function scope, aware of `if` / `elif` / `else`.

    Each branch starts from the bindings made before the `if`; when the statement ends, a name
    holds the `merge` of what the branches bound (and of its value before the `if` when there is
    no `else`), so the last branch's binding does not win: a model bound to a Bayesian network
    in one branch and to a plain one in another may be either afterwards. Loops, `try` and
    `match` are read in order (the last binding wins). Fed by OptimizerRoles.
    """

    def __init__(self, merge, default) -> None:
        self._merge = merge
        self._default = default
        self._scopes: list[dict] = [{}]
        self._frames: list[list] = []  # [if node, scope index, bindings before, [bindings after each branch]]

    def push(self) -> None:
        self._scopes.append({})

    def pop(self) -> None:
        if len(self._scopes) > 1:
            self._scopes.pop()

    def bind(self, name: str, value) -> None:
        self._scopes[-1][name] = value

    def update(self, name: str, value) -> None:
        """Merge `value` into the innermost binding of `name` (`model.add(layer)`, `x.append(g)`)."""
        for scope in reversed(self._scopes):
            if name in scope:
                scope[name] = self._merge(scope[name], value)
                return
        self._scopes[-1][name] = value

    def lookup(self, name: str):
        for scope in reversed(self._scopes):
            if name in scope:
                return scope[name]
        return self._default

    def knows(self, name: str) -> bool:
        return any(name in scope for scope in self._scopes)

    def enter_if(self, node: cst.If) -> None:
        index = len(self._scopes) - 1
        self._frames.append([node, index, dict(self._scopes[index]), []])

    def enter_child(self, node: cst.CSTNode) -> None:
        """Call on entering an IndentedBlock / SimpleStatementSuite / Else / If: when it is a branch
        (the body or the `else`/`elif`) of the innermost `if`, the branch starts from the bindings
        made before that `if`."""
        if self._frames and node in (self._frames[-1][0].body, self._frames[-1][0].orelse):
            frame = self._frames[-1]
            self._scopes[frame[1]] = dict(frame[2])

    def leave_child(self, node: cst.CSTNode) -> None:
        if self._frames and node in (self._frames[-1][0].body, self._frames[-1][0].orelse):
            frame = self._frames[-1]
            frame[3].append(self._scopes[frame[1]])

    def leave_if(self, node: cst.If) -> None:
        if not self._frames or self._frames[-1][0] is not node:
            return
        _, index, before, outcomes = self._frames.pop()
        if node.orelse is None:
            outcomes = [*outcomes, before]
        merged: dict = {}
        for outcome in outcomes:
            for name, value in outcome.items():
                merged[name] = self._merge(merged[name], value) if name in merged else value
        self._scopes[index] = merged


def raw_variable_at(resolver: Resolver, flow):
    """The raw trainable `tf.Variable(...)` call a value flow ends at (read in the flow's own scope), or None."""
    return resolver.read(flow, partial(raw_trainable_variable, resolver))


def raw_variables_passed(resolver: Resolver, flow):
    """The call-site arguments that bind a raw trainable `tf.Variable` to the parameter a value
    flow stopped at (`def make_q(s): return tfd.Normal(0., s)`; `make_q(tf.Variable(1.))`): shared by
    the rules about positive / bounded / triangular parameters."""
    for inner, argument in resolver.argument_flows(flow):
        if raw_variable_at(resolver, inner) is not None:
            yield argument

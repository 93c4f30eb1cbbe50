"""TFP and Keras knowledge shared by several rules: which parameters must stay positive, the
positional signatures of common distributions, optimizer classes, VI entry points, and folding of
literal initial values. Not a rule module (it defines no Rule), so the registry skips it."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.names import KERAS_OPTIMIZERS, TF, TFB, TFD, TFP_EXPERIMENTAL_VI, TFP_UTIL, TFP_VI, TFPL, member_of, names_in
from elbolint.resolver import Resolver

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
VARIATIONAL_LAYERS = names_in(
    TFPL, "DenseVariational", "DenseFlipout", "DenseReparameterization", "DenseLocalReparameterization",
    "Convolution1DFlipout", "Convolution2DFlipout", "Convolution3DFlipout",
    "Convolution1DReparameterization", "Convolution2DReparameterization",
    "Convolution3DReparameterization",
)
BIJECTOR_SOFTPLUS = f"{TFB}.Softplus"
BIJECTOR_EXP = f"{TFB}.Exp"


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
    """The first positional argument, or the one passed as `keyword=`."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if call.args and call.args[0].keyword is None and not call.args[0].star:
        return call.args[0].value
    return None


def raw_trainable_variable(resolver: Resolver, node: cst.BaseExpression) -> Optional[cst.Call]:
    """The `tf.Variable(...)` call that `node` is or names, when the optimizer moves it freely:
    trainable and without a `constraint=` projection. None for anything else."""
    value = resolver.value_of(node)
    if not is_call(resolver, value, VARIABLE) or is_non_trainable(value):
        return None
    if any(arg.keyword is not None and arg.keyword.value == "constraint" for arg in value.args):
        return None
    return value


def is_non_trainable(call: cst.Call) -> bool:
    """`tf.Variable(..., trainable=False)`: the optimizer never moves it."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "trainable":
            return isinstance(arg.value, cst.Name) and arg.value.value == "False"
    return False


class OptimizerRoles:
    """Which optimizers of one file drive variational inference (shared by ELB003 and ELB009).

    An optimizer drives VI when it is passed to a `tfp.vi` fit, or compiled into a Keras model in a
    file that uses `tfp.layers` variational layers. An optimizer compiled into a model in a file
    without variational layers is a plain Keras optimizer, even if the file fits a surrogate
    elsewhere (a `DistributionLambda` regression next to a VI example). Any other optimizer counts
    when the file does VI at all. Feed it every call (`visit_call`), ask at `leave_Module`.
    """

    _FIT_OPTIMIZER_POSITION = 2  # fit_surrogate_posterior(target, surrogate, optimizer, num_steps)

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.does_vi = False
        self.variational_layers = False
        self._fitted: set[int] = set()
        self._compiled: set[int] = set()

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        if not names.isdisjoint(VI_FUNCTIONS):
            self.does_vi = True
            self._remember(node, "optimizer", self._FIT_OPTIMIZER_POSITION, self._fitted)
        if not names.isdisjoint(VARIATIONAL_LAYERS):
            self.does_vi = self.variational_layers = True
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            self._remember(node, "optimizer", 0, self._compiled)

    def _remember(self, call: cst.Call, keyword: str, position: int, into: set[int]) -> None:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                into.add(id(self.resolver.value_of(arg.value)))
                return
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > position and not any(a.star for a in positional[: position + 1]):
            into.add(id(self.resolver.value_of(positional[position].value)))

    def drives_vi(self, optimizer_call: cst.Call) -> bool:
        if id(optimizer_call) in self._fitted:
            return True
        if id(optimizer_call) in self._compiled:
            return self.variational_layers
        return self.does_vi

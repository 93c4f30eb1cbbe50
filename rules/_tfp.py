"""TFP and Keras knowledge shared by several rules: which parameters must stay positive, the
positional signatures of common distributions, optimizer classes, VI entry points, and folding of
literal initial values. Not a rule module (it defines no Rule), so the registry skips it."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.names import KERAS_OPTIMIZERS, TF, TFB, TFD, TFP_EXPERIMENTAL_VI, TFP_UTIL, TFP_VI, TFPL, member_of, names_in
from elbolint.resolver import Resolver
from elbolint.rule import Rule

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


#: What a Keras model visibly is, for deciding whether its optimizer drives VI.
PLAIN, VARIATIONAL, UNKNOWN = "plain", "variational", "unknown"

_SEQUENTIAL = frozenset({"keras.Sequential", "keras.models.Sequential"})
_FUNCTIONAL = frozenset({"keras.Model", "keras.models.Model"})
_KL_LAYERS = names_in(TFPL, "KLDivergenceAddLoss", "KLDivergenceRegularizer")


def _combine(kinds) -> str:
    kinds = set(kinds)
    if VARIATIONAL in kinds:
        return VARIATIONAL
    return UNKNOWN if UNKNOWN in kinds else PLAIN


class _ModelKinds:
    """Which names hold a visibly plain Keras model (or layer, or tensor of the functional API),
    which a variational one, and which something unknown. Each binding is classified when it is
    made (`hidden = Dense(8)(hidden)` reads the previous `hidden`), per function scope."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._scopes: list[dict[str, str]] = [{}]

    def push(self) -> None:
        self._scopes.append({})

    def pop(self) -> None:
        if len(self._scopes) > 1:
            self._scopes.pop()

    def bind(self, name: str, value: cst.BaseExpression) -> None:
        self._scopes[-1][name] = self.kind(value)

    def unbind(self, name: str) -> None:
        self._scopes[-1][name] = UNKNOWN

    def extend(self, name: str, layer: cst.BaseExpression) -> None:
        """`model.add(layer)`."""
        for scope in reversed(self._scopes):
            if name in scope:
                scope[name] = _combine([scope[name], self.kind(layer)])
                return

    def lookup(self, name: str) -> str:
        for scope in reversed(self._scopes):
            if name in scope:
                return scope[name]
        return UNKNOWN

    def kind(self, node: cst.BaseExpression, depth: int = 0) -> str:
        if depth > 50:
            return UNKNOWN
        if isinstance(node, cst.Name):
            return self.lookup(node.value)
        if isinstance(node, (cst.List, cst.Tuple)):
            return _combine(self.kind(e.value, depth + 1) for e in node.elements) if node.elements else PLAIN
        if not isinstance(node, cst.Call) or any(arg.star for arg in node.args):
            return UNKNOWN
        positional = [arg.value for arg in node.args if arg.keyword is None]
        if isinstance(node.func, (cst.Call, cst.Name)) and not self.resolver.call_names(node):
            # `Dense(8)(inputs)` or `layer(inputs)`: the layer and what flows into it.
            return _combine([self.kind(node.func, depth + 1)] + [self.kind(v, depth + 1) for v in positional])
        names = self.resolver.call_names(node)
        if not names.isdisjoint(VARIATIONAL_LAYERS):
            return VARIATIONAL
        if not names.isdisjoint(_SEQUENTIAL):
            layers = first_argument(node, "layers")
            return PLAIN if layers is None else self.kind(layers, depth + 1)
        if not names.isdisjoint(_FUNCTIONAL):
            parts = [arg.value for arg in node.args if arg.keyword is None or arg.keyword.value in ("inputs", "outputs")]
            return _combine(self.kind(v, depth + 1) for v in parts) if parts else UNKNOWN
        if any(n.startswith("keras.layers.") or n == "keras.Input" for n in names):
            return PLAIN
        if any(member_of(n, TFPL) for n in names):
            return UNKNOWN if _mentions(self.resolver, node, _KL_LAYERS) else PLAIN
        return UNKNOWN


def _mentions(resolver: Resolver, node: cst.CSTNode, names: frozenset[str]) -> bool:
    found = []

    class _Finder(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if not resolver.call_names(call).isdisjoint(names):
                found.append(call)

    node.visit(_Finder())
    return bool(found)


class OptimizerRoles:
    """Which optimizers of one file drive variational inference (shared by ELB003 and ELB009).

    An optimizer drives VI when it is passed to a `tfp.vi` fit, or compiled into a Keras model
    that is built from `tfp.layers` variational layers. An optimizer compiled into a visibly plain
    model (every layer a Keras or non-variational `tfp.layers` layer: a baseline network, a
    `DistributionLambda` regression, MC dropout) is a plain Keras optimizer, even if the file does
    VI elsewhere; this is followed through a function of the file that compiles its `optimizer`
    parameter (`get_model(optimizer=RMSprop())`). An optimizer compiled into a model that cannot be
    read counts when the file uses variational layers. Any other optimizer counts when the file
    does VI at all. Feed it every call (`visit_call`), assignment (`visit_assign`) and function
    definition (`visit_function_def` / `leave_function_def`), ask at `leave_Module`.
    """

    _FIT_OPTIMIZER_POSITION = 2  # fit_surrogate_posterior(target, surrogate, optimizer, num_steps)

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.does_vi = False
        self.variational_layers = False
        self._fitted: set[int] = set()
        self._compiled: dict[int, str] = {}  # optimizer -> kind of the model it is compiled into
        self._models = _ModelKinds(resolver)
        self._functions: list[tuple[str, list[str]]] = []  # enclosing defs: (name, parameters)
        self._compiled_parameters: dict[tuple[str, str], str] = {}  # (def, parameter) -> model kind
        self._parameter_positions: dict[str, list[str]] = {}
        self._call_sites: list[tuple[str, list[tuple[object, int]]]] = []  # (def, [(keyword or index, value)])
        self._resolved = False

    def visit_function_def(self, node: cst.FunctionDef) -> None:
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        self._parameter_positions.setdefault(node.name.value, params)
        self._functions.append((node.name.value, params + [p.name.value for p in node.params.kwonly_params]))
        self._models.push()

    def leave_function_def(self, node: cst.FunctionDef) -> None:
        self._functions.pop()
        self._models.pop()

    def visit_assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._models.bind(target.target.value, node.value)
            elif isinstance(target.target, (cst.Tuple, cst.List)):
                for element in target.target.elements:
                    if isinstance(element.value, cst.Name):
                        self._models.unbind(element.value.value)

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        if not names.isdisjoint(VI_FUNCTIONS):
            self.does_vi = True
            self._remember(node, "optimizer", self._FIT_OPTIMIZER_POSITION, self._fitted)
        if not names.isdisjoint(VARIATIONAL_LAYERS):
            self.does_vi = self.variational_layers = True
        if isinstance(node.func, cst.Name):
            self._remember_call_site(node)
        if not isinstance(node.func, cst.Attribute):
            return
        method, receiver = node.func.attr.value, node.func.value
        if method == "add" and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._models.extend(receiver.value, node.args[0].value)
        if method == "compile":
            kind = self._models.kind(receiver)
            optimizer = self._argument(node, "optimizer", 0)
            if optimizer is None:
                return
            if isinstance(optimizer, cst.Name) and self._functions and optimizer.value in self._functions[-1][1]:
                key = (self._functions[-1][0], optimizer.value)
                self._compiled_parameters[key] = _combine([kind, self._compiled_parameters.get(key, kind)])
            target = id(self.resolver.value_of(optimizer))
            self._compiled[target] = _combine([kind, self._compiled.get(target, kind)])

    @staticmethod
    def _argument(call: cst.Call, keyword: str, position: int) -> Optional[cst.BaseExpression]:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                return arg.value
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > position and not any(a.star for a in positional[: position + 1]):
            return positional[position].value
        return None

    def _remember(self, call: cst.Call, keyword: str, position: int, into: set[int]) -> None:
        value = self._argument(call, keyword, position)
        if value is not None:
            into.add(id(self.resolver.value_of(value)))

    def _remember_call_site(self, call: cst.Call) -> None:
        arguments: list[tuple[object, int]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            key = arg.keyword.value if arg.keyword is not None else index
            arguments.append((key, id(self.resolver.value_of(arg.value))))
        self._call_sites.append((call.func.value, arguments))

    def _resolve_call_sites(self) -> None:
        """`get_model(optimizer=RMSprop())` where `get_model` compiles its `optimizer` parameter."""
        self._resolved = True
        for function, arguments in self._call_sites:
            positions = self._parameter_positions.get(function, [])
            for key, target in arguments:
                parameter = positions[key] if isinstance(key, int) and key < len(positions) else key
                kind = self._compiled_parameters.get((function, parameter))
                if kind is not None:
                    self._compiled[target] = _combine([kind, self._compiled.get(target, kind)])

    def drives_vi(self, optimizer_call: cst.Call) -> bool:
        if not self._resolved:
            self._resolve_call_sites()
        if id(optimizer_call) in self._fitted:
            return True
        kind = self._compiled.get(id(optimizer_call))
        if kind == PLAIN:
            return False
        if kind == VARIATIONAL:
            return True
        if kind == UNKNOWN:
            return self.variational_layers
        return self.does_vi


class VIOptimizerRule(Rule):
    """Base of the rules about optimizers that drive VI (ELB003, ELB009): feeds `self.roles` during
    the traversal; subclasses extend `visit_Call` (calling super) and decide in `leave_Module`."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.roles = OptimizerRoles(self.resolver)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.roles.visit_function_def(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.roles.leave_function_def(original_node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self.roles.visit_assign(node)

    def visit_Call(self, node: cst.Call) -> None:
        self.roles.visit_call(node)

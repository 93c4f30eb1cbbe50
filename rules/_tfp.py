"""TFP and Keras knowledge shared by several rules: which parameters must stay positive, the
positional signatures of common distributions, optimizer classes (Keras, TF1, Keras strings), VI
entry points, folding of literal initial values, and OptimizerRoles: which optimizers of a file
drive VI and which apply gradients clipped by hand (ELB003, ELB009), with the `if`-branch-aware
bindings (BranchScopes) it follows them through. Not a rule module (it defines no Rule subclass
with a code), so the registry skips it."""

from __future__ import annotations

from functools import partial

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
#: Other calls that only exist for variational inference (issue 9, point 1): they mark the file as
#: doing VI, but take no optimizer argument, so no optimizer is taken from them.
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

#: Every optimizer construction OptimizerRoles follows (Keras 2/3 and TF1).
ANY_OPTIMIZER = OPTIMIZERS | TF1_OPTIMIZERS

#: `model.compile(optimizer="adam")`: Keras builds this class with its defaults (default learning
#: rate, no clipping), and a string leaves no place to ask for clipping.
STRING_OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "Nadam", "sgd": "SGD",
    "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta", "ftrl": "Ftrl",
    "lion": "Lion", "adafactor": "Adafactor",
}

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
#: Fits that run an optimizer without letting the caller touch the gradients.
_MINIMIZERS = frozenset({"tensorflow_probability.math.minimize", "tensorflow_probability.math.minimize_stateless"})

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


class _ModelKinds:
    """Which names hold a visibly plain Keras model (or layer, or tensor of the functional API),
    which a variational one, and which something unknown. Each binding is classified when it is
    made (`hidden = Dense(8)(hidden)` reads the previous `hidden`), per function scope and per
    `if` branch (BranchScopes); a call to a function of the file is what its `return`s were."""

    def __init__(self, resolver: Resolver, return_kinds: dict[str, str]) -> None:
        self.resolver = resolver
        self.scopes = BranchScopes(lambda a, b: _combine([a, b]), UNKNOWN)
        self._return_kinds = return_kinds

    def bind(self, name: str, value: cst.BaseExpression) -> None:
        self.scopes.bind(name, self.kind(value))

    def unbind(self, name: str) -> None:
        self.scopes.bind(name, UNKNOWN)

    def extend(self, name: str, layer: cst.BaseExpression) -> None:
        """`model.add(layer)`."""
        if self.scopes.knows(name):
            self.scopes.update(name, self.kind(layer))

    def kind(self, node: cst.BaseExpression, depth: int = 0) -> str:
        if depth > 50:
            return UNKNOWN
        if isinstance(node, cst.Name):
            return self.scopes.lookup(node.value)
        if isinstance(node, cst.IfExp):
            return _combine([self.kind(node.body, depth + 1), self.kind(node.orelse, depth + 1)])
        if isinstance(node, (cst.List, cst.Tuple)):
            return _combine(self.kind(e.value, depth + 1) for e in node.elements) if node.elements else PLAIN
        if not isinstance(node, cst.Call) or any(arg.star for arg in node.args):
            return UNKNOWN
        positional = [arg.value for arg in node.args if arg.keyword is None]
        names = self.resolver.call_names(node)
        if isinstance(node.func, cst.Name) and not names and node.func.value in self._return_kinds:
            return self._return_kinds[node.func.value]  # `model = build_baseline()`
        if isinstance(node.func, (cst.Call, cst.Name)) and not names:
            # `Dense(8)(inputs)` or `layer(inputs)`: the layer and what flows into it.
            return _combine([self.kind(node.func, depth + 1)] + [self.kind(v, depth + 1) for v in positional])
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


#: Gradient flow, as bits: a value computed from gradients (`tape.gradient`, `compute_gradients`,
#: `tf.gradients`), from clipped gradients, or from a parameter of the enclosing function or lambda
#: (which may be gradients: `def clip(grads): return [tf.clip_by_norm(g, 1.) for g in grads]`).
GRADIENTS, CLIPPED, PARAMETER = 1, 2, 4

#: How an optimizer is used. FITTED: passed to a `tfp.vi` fit. MINIMIZED: `.minimize(...)` or
#: `tfp.math.minimize` (no room for clipping). APPLIED / APPLIED_CLIPPED: `apply_gradients` of
#: gradients that were / were not clipped on the way.
FITTED, MINIMIZED, APPLIED, APPLIED_CLIPPED = "fitted", "minimized", "applied", "applied-clipped"
_UNCLIPPED_USES = frozenset({FITTED, MINIMIZED, APPLIED})


class OptimizerRoles:
    """Which optimizers of one file drive variational inference, and which are clipped by hand
    (shared by ELB003 and ELB009).

    **Which optimizer.** An optimizer is where it is constructed: a Keras 2/3 optimizer, a TF1
    `tf.compat.v1.train.*Optimizer`, or a Keras string (`compile(optimizer="adam")`). Uses are
    traced back to constructions through names (per `if` branch: a name bound to `Adam()` in one
    branch and to `SGD()` in the other is both), `self.` attributes, functions of the file that
    return an optimizer (`def make_opt(): return tf.optimizers.Adam(0.01)`; `opt = make_opt()`),
    and functions that take one as a parameter (`train(model, optimizer=Adam())`).

    **Drives VI.** An optimizer drives VI when it is passed to a `tfp.vi` fit, or compiled into a
    Keras model built from `tfp.layers` variational layers. An optimizer compiled into a visibly
    plain model (every layer a Keras or non-variational `tfp.layers` layer: a baseline network, a
    `DistributionLambda` regression, MC dropout) is a plain Keras optimizer, even if the file does
    VI elsewhere; models are followed through `if` branches (Bayesian in one branch is Bayesian)
    and through functions of the file that build and return them. An optimizer compiled into a
    model that cannot be read counts when the file uses variational layers. Any other optimizer
    counts when the file does VI at all.

    **Clipped by hand.** Clipping counts only on gradients: `tf.clip_by_global_norm` /
    `clip_by_norm` / `clip_by_value` applied to what `tape.gradient`, `compute_gradients` or
    `tf.gradients` returned (directly, in a comprehension, through names, or in a function of the
    file that clips its argument), which then reaches `apply_gradients`; and it counts only for
    the optimizer whose `apply_gradients` receives them. A `tf.clip_by_value` on a loss or on a
    prior's scale clips no gradient. When the optimizer applying clipped gradients cannot be
    traced (`self.optimizer` in a Keras `train_step`, an imported helper's parameter), every
    optimizer of the file that is not visibly used unclipped (fitted, minimized, or applying
    unclipped gradients) counts as clipped.

    Feed it every call, assignment, `for`, `return`, `if` and function definition (VIOptimizerRule
    does); ask at `leave_Module`.
    """

    _FIT_OPTIMIZER_POSITION = 2  # fit_surrogate_posterior(target, surrogate, optimizer, num_steps)

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.does_vi = False
        self.variational_layers = False
        self._return_kinds: dict[str, str] = {}
        self._models = _ModelKinds(resolver, self._return_kinds)
        self._optimizers = BranchScopes(frozenset.union, frozenset())  # name -> optimizer references
        self._gradients = BranchScopes(int.__or__, 0)  # name -> gradient-flow bits
        self._functions: list[tuple[str, list[str]]] = []  # enclosing defs: (name, parameters)
        self._parameter_positions: dict[str, list[str]] = {}
        self._returns: dict[str, frozenset] = {}  # def -> optimizer references it returns
        self._return_gradients: dict[str, int] = {}  # def -> gradient-flow bits of what it returns
        self._strings: dict[int, tuple[cst.BaseExpression, str]] = {}  # id -> (string node, Keras class)
        self._uses: dict[object, set[str]] = {}  # optimizer reference -> uses
        self._compiled: dict[object, str] = {}  # optimizer reference -> kind of the model it is compiled into
        self._parameter_uses: dict[tuple[str, str], set[str]] = {}  # (def, parameter) -> uses
        self._compiled_parameters: dict[tuple[str, str], str] = {}  # (def, parameter) -> model kind
        self._call_sites: list[tuple[str, list[tuple[object, frozenset]]]] = []  # (def, [(keyword or index, refs)])
        self._clipped_untraced = False
        self._resolved: Optional[tuple[dict[int, set[str]], dict[int, str]]] = None

    # ------------------------------------------------------------------ feeding
    def visit_function_def(self, node: cst.FunctionDef) -> None:
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        self._parameter_positions.setdefault(node.name.value, params)
        every = params + [p.name.value for p in node.params.kwonly_params]
        self._functions.append((node.name.value, every))
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.push()
        for name in every:
            self._models.unbind(name)
            self._optimizers.bind(name, frozenset())
            self._gradients.bind(name, PARAMETER)

    def leave_function_def(self, node: cst.FunctionDef) -> None:
        self._functions.pop()
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.pop()
        self._models.unbind(node.name.value)  # the name now holds a function
        self._optimizers.bind(node.name.value, frozenset())
        self._gradients.bind(node.name.value, 0)

    def visit_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.enter_child(node)  # an `elif` is a branch of the enclosing `if`
            scopes.enter_if(node)

    def leave_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.leave_if(node)
            scopes.leave_child(node)

    def visit_block(self, node: cst.CSTNode) -> None:
        """An IndentedBlock, SimpleStatementSuite or Else: maybe a branch of the innermost `if`."""
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.enter_child(node)

    def leave_block(self, node: cst.CSTNode) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.leave_child(node)

    def visit_assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_ann_assign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_aug_assign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self._gradients.update(node.target.value, self._flow(node.value))

    def visit_for(self, node: cst.For) -> None:
        """`for model in (bnn, baseline)`, `for g, v in grads_and_vars`: targets take the iterable's."""
        self._bind(node.target, node.iter)

    def visit_return(self, node: cst.Return) -> None:
        if not self._functions or node.value is None:
            return
        function = self._functions[-1][0]
        kind = self._models.kind(node.value)
        self._return_kinds[function] = _combine([kind, self._return_kinds.get(function, kind)])
        self._returns[function] = self._returns.get(function, frozenset()) | self._references(node.value)
        self._return_gradients[function] = self._return_gradients.get(function, 0) | self._flow(node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        flow = self._flow(value)
        if isinstance(target, cst.Name):
            self._models.bind(target.value, value)
            self._optimizers.bind(target.value, self._references(value))
            self._gradients.bind(target.value, flow)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                inner = element.value.value if isinstance(element.value, cst.StarredElement) else element.value
                if isinstance(inner, cst.Name):
                    self._models.unbind(inner.value)
                    self._optimizers.bind(inner.value, frozenset())
                    self._gradients.bind(inner.value, flow)  # `grads, norm = tf.clip_by_global_norm(...)`
                else:
                    self._bind(inner, value)
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            self._gradients.update(target.value.value, flow)  # `grads[i] = tf.clip_by_norm(g, 1.)`

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        if not names.isdisjoint(VI_FUNCTIONS):
            self.does_vi = True
            self._use(self._argument(node, "optimizer", self._FIT_OPTIMIZER_POSITION), FITTED)
        if not names.isdisjoint(_MINIMIZERS):
            self._use(self._argument(node, "optimizer", 2), MINIMIZED)
        if not names.isdisjoint(VI_MARKERS):
            self.does_vi = True
        if not names.isdisjoint(VARIATIONAL_LAYERS):
            self.does_vi = self.variational_layers = True
        if isinstance(node.func, cst.Name):
            self._remember_call_site(node)
        if not isinstance(node.func, cst.Attribute):
            return
        method, receiver = node.func.attr.value, node.func.value
        if method == "add" and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._models.extend(receiver.value, node.args[0].value)
        elif method in ("append", "extend") and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._gradients.update(receiver.value, self._flow(node.args[0].value))
        elif method == "minimize" and not names:
            self._use(receiver, MINIMIZED)
        elif method == "apply_gradients":
            gradients = self._argument(node, "grads_and_vars", 0)
            clipped = gradients is not None and bool(self._flow(gradients) & CLIPPED)
            self._use(receiver, APPLIED_CLIPPED if clipped else APPLIED)
        elif method == "compile":
            self._compile(node, receiver)

    def _compile(self, node: cst.Call, receiver: cst.BaseExpression) -> None:
        kind = self._models.kind(receiver)
        optimizer = self._argument(node, "optimizer", 0)
        if optimizer is None:
            return
        parameter = self._parameter(optimizer)
        if parameter is not None:
            self._compiled_parameters[parameter] = _combine([kind, self._compiled_parameters.get(parameter, kind)])
        for reference in self._references(optimizer):
            self._compiled[reference] = _combine([kind, self._compiled.get(reference, kind)])

    # ------------------------------------------------------------- following values
    def _references(self, node: cst.BaseExpression, depth: int = 0) -> frozenset:
        """The optimizer constructions `node` may be: ids of optimizer calls and string literals,
        and ("returned by", def) for calls to a function of the file (expanded at the end)."""
        if depth > 8:
            return frozenset()
        if isinstance(node, cst.Name):
            if self._optimizers.knows(node.value):
                return self._optimizers.lookup(node.value)
            value = self.resolver.value_of(node)
            return frozenset() if value is node else self._references(value, depth + 1)
        if isinstance(node, cst.Attribute):
            value = self.resolver.value_of(node)  # `self.optimizer`
            return frozenset() if value is node else self._references(value, depth + 1)
        if isinstance(node, cst.IfExp):
            return self._references(node.body, depth + 1) | self._references(node.orelse, depth + 1)
        if isinstance(node, cst.BooleanOperation):  # `optimizer or tf.optimizers.Adam(0.01)`
            return self._references(node.left, depth + 1) | self._references(node.right, depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            found = frozenset()
            for element in node.elements:
                found |= self._references(element.value, depth + 1)
            return found
        if isinstance(node, cst.SimpleString):
            name = _string_optimizer(node)
            if name is None:
                return frozenset()
            self._strings[id(node)] = (node, name)
            return frozenset({id(node)})
        if isinstance(node, cst.Call):
            names = self.resolver.call_names(node)
            if not names.isdisjoint(ANY_OPTIMIZER):
                return frozenset({id(node)})
            if not names and isinstance(node.func, cst.Name):
                return frozenset({("returned by", node.func.value)})
            if not names and isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name) \
                    and node.func.value.value == "self":
                return frozenset({("returned by", node.func.attr.value)})  # `self._make_optimizer()`
        return frozenset()

    def _flow(self, node: Optional[cst.CSTNode], local: Optional[dict[str, int]] = None, depth: int = 0) -> int:
        """Gradient-flow bits of an expression (GRADIENTS, CLIPPED, PARAMETER)."""
        if depth > 40 or node is None:
            return 0
        if isinstance(node, cst.Name):
            if local and node.value in local:
                return local[node.value]
            return self._gradients.lookup(node.value)
        if isinstance(node, cst.Call):
            return self._call_flow(node, local, depth)
        if isinstance(node, (cst.Attribute, cst.Subscript, cst.StarredElement)):
            return self._flow(node.value, local, depth + 1)  # `self.grads`, `gvs[0]`, `*grads`
        if isinstance(node, cst.Await):  # `await compute()`: an Await holds an `expression`, not a `value`
            return self._flow(node.expression, local, depth + 1)
        if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            bits = 0
            for element in node.elements:
                bits |= self._flow(element.value, local, depth + 1)
            return bits
        if isinstance(node, cst.BinaryOperation):
            return self._flow(node.left, local, depth + 1) | self._flow(node.right, local, depth + 1)
        if isinstance(node, cst.BooleanOperation):
            return self._flow(node.left, local, depth + 1) | self._flow(node.right, local, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self._flow(node.expression, local, depth + 1)
        if isinstance(node, cst.IfExp):
            return self._flow(node.body, local, depth + 1) | self._flow(node.orelse, local, depth + 1)
        if isinstance(node, cst.Lambda):
            params = {p.name.value: PARAMETER for p in (*node.params.posonly_params, *node.params.params)}
            return self._flow(node.body, {**(local or {}), **params}, depth + 1)
        if isinstance(node, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            scope = dict(local or {})
            clause = node.for_in
            while clause is not None:
                bits = self._flow(clause.iter, scope, depth + 1)
                for name in _target_names(clause.target):
                    scope[name] = bits
                clause = clause.inner_for_in
            if isinstance(node, cst.DictComp):
                return self._flow(node.key, scope, depth + 1) | self._flow(node.value, scope, depth + 1)
            return self._flow(node.elt, scope, depth + 1)
        return 0  # literals, comparisons, f-strings, ...

    def _call_flow(self, node: cst.Call, local: Optional[dict[str, int]], depth: int) -> int:
        arguments = 0
        for arg in node.args:
            arguments |= self._flow(arg.value, local, depth + 1)
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
        if isinstance(func, cst.Name) and last in self._return_gradients and not self.resolver.call_names(node):
            summary = self._return_gradients[last]  # a function of the file
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
            if isinstance(arg.value, cst.Lambda) and self._flow(arg.value) & CLIPPED:
                return True
        return False

    # ----------------------------------------------------------------- recording
    def _use(self, node: Optional[cst.BaseExpression], use: str) -> None:
        if node is None:
            return
        references = self._references(node)
        for reference in references:
            self._uses.setdefault(reference, set()).add(use)
        parameter = self._parameter(node)
        if parameter is not None:
            self._parameter_uses.setdefault(parameter, set()).add(use)
        elif not references and use == APPLIED_CLIPPED:
            self._clipped_untraced = True

    def _parameter(self, node: cst.BaseExpression) -> Optional[tuple[str, str]]:
        """(def, parameter) when `node` names a parameter of the innermost function."""
        if isinstance(node, cst.Name) and self._functions and node.value in self._functions[-1][1]:
            if self._optimizers.lookup(node.value) == frozenset():
                return self._functions[-1][0], node.value
        return None

    @staticmethod
    def _argument(call: cst.Call, keyword: str, position: int) -> Optional[cst.BaseExpression]:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                return arg.value
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > position and not any(a.star for a in positional[: position + 1]):
            return positional[position].value
        return None

    def _remember_call_site(self, call: cst.Call) -> None:
        arguments: list[tuple[object, frozenset]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            key = arg.keyword.value if arg.keyword is not None else index
            arguments.append((key, self._references(arg.value)))
        self._call_sites.append((call.func.value, arguments))

    # ------------------------------------------------------------------- answers
    def _expand(self, reference, seen: Optional[set] = None) -> set[int]:
        if isinstance(reference, int):
            return {reference}
        seen = set() if seen is None else seen
        if reference in seen:
            return set()
        seen.add(reference)
        found: set[int] = set()
        for inner in self._returns.get(reference[1], ()):
            found |= self._expand(inner, seen)
        return found

    def _resolve(self) -> tuple[dict[int, set[str]], dict[int, str]]:
        if self._resolved is not None:
            return self._resolved
        uses: dict[int, set[str]] = {}
        compiled: dict[int, str] = {}

        def add(reference, use_set=(), kind=None):
            for target in self._expand(reference):
                uses.setdefault(target, set()).update(use_set)
                if kind is not None:
                    compiled[target] = _combine([kind, compiled.get(target, kind)])

        for reference, use_set in self._uses.items():
            add(reference, use_set)
        for reference, kind in self._compiled.items():
            add(reference, kind=kind)
        traced_parameters = set()
        for function, arguments in self._call_sites:
            positions = self._parameter_positions.get(function, [])
            for key, references in arguments:
                parameter = (function, positions[key] if isinstance(key, int) and key < len(positions) else key)
                use_set = self._parameter_uses.get(parameter, ())
                kind = self._compiled_parameters.get(parameter)
                for reference in references:
                    add(reference, use_set, kind)
                    traced_parameters.add(parameter)
        if any(APPLIED_CLIPPED in use_set and parameter not in traced_parameters
               for parameter, use_set in self._parameter_uses.items()):
            self._clipped_untraced = True
        self._resolved = (uses, compiled)
        return self._resolved

    def drives_vi(self, optimizer: cst.CSTNode) -> bool:
        uses, compiled = self._resolve()
        if FITTED in uses.get(id(optimizer), ()):
            return True
        kind = compiled.get(id(optimizer))
        if kind == PLAIN:
            return False
        if kind == VARIATIONAL:
            return True
        if kind == UNKNOWN:
            return self.variational_layers
        return self.does_vi

    def clipped_by_hand(self, optimizer: cst.CSTNode) -> bool:
        """True when this optimizer applies gradients that were clipped on the way (or, when the
        optimizer applying clipped gradients cannot be traced, this one is never visibly used
        unclipped)."""
        uses, _ = self._resolve()
        mine = uses.get(id(optimizer), set())
        if APPLIED_CLIPPED in mine:
            return True
        return self._clipped_untraced and mine.isdisjoint(_UNCLIPPED_USES)

    def string_optimizers(self) -> list[tuple[cst.BaseExpression, str]]:
        """(string node, Keras class name) of every optimizer given as a string to `compile`
        (directly, through a name, or through a function of the file that compiles its parameter)."""
        _, compiled = self._resolve()
        return [value for key, value in self._strings.items() if key in compiled]


def _string_optimizer(node: cst.SimpleString) -> Optional[str]:
    try:
        value = node.evaluated_value
    except Exception:  # pragma: no cover - malformed literal
        return None
    return STRING_OPTIMIZERS.get(value.lower()) if isinstance(value, str) else None


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        names: list[str] = []
        for element in target.elements:
            names += _target_names(element.value)
        return names
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []


#: One OptimizerRoles per linted file, shared by the VI optimizer rules. It is kept on the file's
#: Resolver, so it lives exactly as long as that file's analysis. (A WeakKeyDictionary keyed by the
#: resolver leaked every file's tree: the value refers to its own key, so the key never dies —
#: 0.4 MB per file, 600 MB over TFP's sources.)
_ROLES_ATTRIBUTE = "_elbolint_vi_optimizer_roles"


class VIOptimizerRule(Rule):
    """Base of the rules about optimizers that drive VI (ELB003, ELB009): `self.roles` is one
    OptimizerRoles per file, fed during the traversal by the first of these rules to be created
    (the others only read it, in `leave_Module`, when every visit is done); subclasses extend
    `visit_Call` (calling super) and decide in `leave_Module`."""

    def __init__(self, context) -> None:
        super().__init__(context)
        roles = getattr(self.resolver, _ROLES_ATTRIBUTE, None)
        self._feeds = roles is None
        if roles is None:
            roles = OptimizerRoles(self.resolver)
            setattr(self.resolver, _ROLES_ATTRIBUTE, roles)
        self.roles = roles

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._feeds:
            self.roles.visit_function_def(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        if self._feeds:
            self.roles.leave_function_def(original_node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if self._feeds:
            self.roles.visit_assign(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self._feeds:
            self.roles.visit_ann_assign(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._feeds:
            self.roles.visit_aug_assign(node)

    def visit_For(self, node: cst.For) -> None:
        if self._feeds:
            self.roles.visit_for(node)

    def visit_Return(self, node: cst.Return) -> None:
        if self._feeds:
            self.roles.visit_return(node)

    def visit_If(self, node: cst.If) -> None:
        if self._feeds:
            self.roles.visit_if(node)

    def leave_If(self, original_node: cst.If) -> None:
        if self._feeds:
            self.roles.leave_if(original_node)

    # Branches are found from the blocks themselves, not with attribute callbacks (`visit_If_body`),
    # which would keep the engine off its fast read-only walk (elbolint/walk.py).
    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if self._feeds:
            self.roles.visit_block(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        if self._feeds:
            self.roles.leave_block(original_node)

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        if self._feeds:
            self.roles.visit_block(node)

    def leave_SimpleStatementSuite(self, original_node: cst.SimpleStatementSuite) -> None:
        if self._feeds:
            self.roles.leave_block(original_node)

    def visit_Else(self, node: cst.Else) -> None:
        if self._feeds:
            self.roles.visit_block(node)

    def leave_Else(self, original_node: cst.Else) -> None:
        if self._feeds:
            self.roles.leave_block(original_node)

    def visit_Call(self, node: cst.Call) -> None:
        if self._feeds:
            self.roles.visit_call(node)


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

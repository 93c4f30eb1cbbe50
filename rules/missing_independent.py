"""ELB006 missing-independent."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFD, names_in
from elbolint.rule import Rule
from elbolint.rules._tfp import distribution_arguments, distribution_name, first_argument

#: Joint distributions that sum component log-probs without reducing their batch dimensions.
_JOINTS = names_in(TFD, "JointDistributionSequential", "JointDistributionNamed")

#: Distributions with a scalar event: a vector parameter makes a batch, not an event.
_SCALAR_EVENT = frozenset({
    "Normal", "LogNormal", "Laplace", "Cauchy", "Gumbel", "Logistic", "HalfNormal", "HalfCauchy",
    "Moyal", "TruncatedNormal", "StudentT", "HalfStudentT", "Gamma", "InverseGamma", "Exponential",
    "Poisson", "Beta", "Kumaraswamy", "Chi2", "Chi", "Weibull", "Pareto", "VonMises", "Horseshoe",
    "LogLogistic", "JohnsonSU", "SinhArcsinh", "GeneralizedNormal", "Bernoulli", "Geometric",
    "Binomial", "NegativeBinomial", "Uniform", "LogitNormal", "SkewNormal", "ExpGamma", "Gompertz",
})

_ARRAY_WRAPPERS = frozenset({"constant", "array", "asarray", "convert_to_tensor", "float32", "float64"})
_FILLED = frozenset({"zeros", "ones", "fill", "full", "empty"})
#: Element-wise functions: the result has the shape of the argument.
_ELEMENTWISE = frozenset({"exp", "log", "softplus", "sigmoid", "tanh", "square", "sqrt", "abs", "cast"})


class MissingIndependent(Rule):
    """
    ## What it does
    Flags a component of a `tfd.JointDistributionSequential` or `tfd.JointDistributionNamed`
    (not the AutoBatched variants) that is a scalar-event distribution (`Normal`, `Gamma`,
    `Bernoulli`, ...) with visibly vector-valued parameters (a data array with several elements
    such as `np.linspace(-1, 1, 50)`, `tf.zeros([3])`, `[0.0, 1.0]`, or `w * x + b` with `x` such
    an array) and no `tfd.Independent` / `tfd.Sample` around it.

    ## Why is this bad?
    A `Normal` with 50 locations is a batch of 50 distributions, not one distribution over 50
    values: its `log_prob` returns 50 numbers. The joint distribution adds the components'
    log-probs with broadcasting, so `model.log_prob(sample)` is a vector instead of a scalar.
    `fit_surrogate_posterior` then averages a wrongly broadcast ELBO (the prior terms are counted
    once per data point, the surrogate terms are mixed across the batch) and the loss is
    mis-scaled or fits the wrong posterior.

    ## Example
    ```python
    x = np.linspace(-1.0, 1.0, 50).astype(np.float32)
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        lambda weight: tfd.Normal(loc=weight * x, scale=1.0),
    ])
    ```

    ## Use instead
    ```python
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        lambda weight: tfd.Independent(
            tfd.Normal(loc=weight * x, scale=1.0), reinterpreted_batch_ndims=1),
    ])
    ```
    or `tfd.JointDistributionSequentialAutoBatched`, which reduces batch dimensions for you.
    Parameters of shape `[1]` and shapes elbolint cannot see (lambda parameters, function
    arguments) are not flagged. A size that is a name or a size read from data
    (`tf.zeros(feature_dim)`, `tf.ones([n])`, `tf.zeros(x.shape[1])`, `len(x)`) counts as
    several elements unless it is visibly 1; a name spelled like a shape (`tf.zeros(event_shape)`)
    may be `[]` and does not count. Components are followed through names, tuple elements,
    literal lists and the functions of the file that return them (with the call's arguments), and
    a vector-valued component inside such a function is reported where it is written.
    """

    code = "ELB006"
    name = "missing-independent"
    severity = Severity.WARNING
    confirmed_by = ("ELB106",)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._reported: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        if self.call_names(node).isdisjoint(_JOINTS):
            return
        model = first_argument(node, "model")
        if model is None:
            return
        flow = self.resolver.follow(model)
        if flow.subscripts:
            return
        with self.resolver.within(flow) as model:
            components: list[cst.BaseExpression] = []
            if isinstance(model, (cst.List, cst.Tuple)):
                components = [e.value for e in model.elements if not isinstance(e, cst.StarredElement)]
            elif isinstance(model, cst.Dict):
                components = [e.value for e in model.elements if isinstance(e, cst.DictElement)]
            elif isinstance(model, cst.Call) and isinstance(model.func, cst.Name) and model.func.value == "dict" \
                    and self.value_of(model.func) is model.func and not self.qualified_names(model.func):
                components = [a.value for a in model.args if a.keyword is not None]
            for component in components:
                self._check(component, node)

    def _check(self, component: cst.BaseExpression, joint: cst.Call) -> None:
        if isinstance(component, cst.Lambda):
            self._check_body(component.body, frozenset(_parameter_names(component.params)), joint)
            return
        flow = self.resolver.follow(component)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return
        with self.resolver.within(flow) as body:
            self._check_body(body, frozenset(), joint)

    def _check_body(self, body: cst.BaseExpression, hidden: frozenset[str], joint: cst.Call) -> None:
        if not isinstance(body, cst.Call):
            return
        distribution = distribution_name(self.resolver, body)
        if distribution not in _SCALAR_EVENT:
            return
        for parameter, arg in distribution_arguments(body, distribution):
            if parameter in ("name", "validate_args", "allow_nan_stats", "dtype"):
                continue
            if self._is_vector(arg.value, hidden):
                if id(body) in self._reported:
                    return
                self._reported.add(id(body))
                self.report(
                    body,
                    f"`{parameter}` of {self.source(body.func)} is vector-valued, so this component of "
                    f"{self.source(joint.func)} is a batch and its log_prob a vector: the joint log_prob "
                    "is not a scalar and the ELBO is broadcast wrongly. Wrap it in "
                    "tfd.Independent(..., reinterpreted_batch_ndims=1) or use the AutoBatched variant",
                )
                return

    # ------------------------------------------------------------- shapes
    def _is_vector(self, node: cst.BaseExpression, hidden: frozenset[str], depth: int = 0) -> bool:
        """True when `node` visibly has more than one element (a batch); False when unsure."""
        if depth > 8:
            return False
        if isinstance(node, cst.Name):
            if node.value in hidden:
                return False
            flow = self.resolver.follow(node)
            if flow.node is node or flow.subscripts:
                return False
            with self.resolver.within(flow) as resolved:
                return self._is_vector(resolved, frozenset(), depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            return _literal_length(node) > 1
        if isinstance(node, cst.UnaryOperation):
            return self._is_vector(node.expression, hidden, depth + 1)
        if isinstance(node, cst.BinaryOperation):
            return self._is_vector(node.left, hidden, depth + 1) or self._is_vector(node.right, hidden, depth + 1)
        if isinstance(node, cst.Call):
            # `np.linspace(...).astype(np.float32)`
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "astype" \
                    and not self.qualified_names(node.func):
                return self._is_vector(node.func.value, hidden, depth + 1)
            member = self._array_function(node)
            if member is None:
                return False
            first = node.args[0].value if node.args and node.args[0].keyword is None and not node.args[0].star else None
            if member in _ARRAY_WRAPPERS or member in _ELEMENTWISE:
                return first is not None and self._is_vector(first, hidden, depth + 1)
            if member in _FILLED:
                shape = first_argument(node, "shape")
                return shape is not None and self._shape_has_several(shape, hidden)
            if member == "linspace":
                count = self.get_arg(node, "num", 2)
                if count is None:
                    return True  # numpy's default is 50 points
                return self._shape_has_several(count.value, hidden)
            if member in ("randn", "rand"):
                return first is not None and self._shape_has_several(first, hidden)
            if member in ("normal", "uniform", "standard_normal"):
                size = self.get_arg(node, "size", 2 if member != "standard_normal" else 0)
                return size is not None and self._shape_has_several(size.value, hidden)
            if member == "arange":
                values = [_number(a.value) for a in node.args if a.keyword is None]
                if len(values) == 1 and values[0] is not None:
                    return values[0] > 1
                if len(values) >= 2 and None not in values:
                    step = values[2] if len(values) > 2 else 1.0
                    return step != 0 and (values[1] - values[0]) / step > 1
        return False

    def _shape_has_several(self, node: cst.BaseExpression, hidden: frozenset[str]) -> bool:
        """A shape (or count) that describes more than one element."""
        if isinstance(node, (cst.List, cst.Tuple)):
            sizes = [self._size(e.value, hidden) for e in node.elements]
            if any(s is None for s in sizes):
                return False
            return any(s > 1 for s in sizes)  # type: ignore[operator]
        if isinstance(node, cst.Name) and node.value not in hidden:
            flow = self.resolver.follow(node)
            if isinstance(flow.node, (cst.List, cst.Tuple)) and not flow.subscripts:
                with self.resolver.within(flow) as shape:
                    return self._shape_has_several(shape, frozenset())
        size = self._size(node, hidden)
        return size is not None and size > 1

    def _size(self, node: cst.BaseExpression, hidden: frozenset[str]) -> Optional[float]:
        """The number of elements a size stands for; _SEVERAL for a size that is a name or is read
        from data (`n`, `feature_dim`, `x.shape[1]`, `len(x)`) and not visibly 1; None if unknown."""
        if isinstance(node, cst.Name) and node.value in hidden:
            return None
        flow = self.resolver.follow(node)
        number = None if flow.subscripts else _number(flow.node)
        if number is not None:
            return number
        end = flow.node
        if isinstance(end, cst.Name) and not flow.subscripts:  # a name nothing visible binds, or a parameter
            if flow.parameter is None and end is not node and not isinstance(node, (cst.Name, cst.Attribute)):
                return None
            if "shape" in end.value.lower() or end.value in ("None", "True", "False"):
                return None
            with self.resolver.within(flow):
                if self.qualified_names(end):
                    return None
            return _SEVERAL  # `tf.zeros(num_features)`, `tf.ones([n])`
        with self.resolver.within(flow) as value:
            if _is_data_size(value, flow, self):
                return _SEVERAL
        return None

    def _array_function(self, call: cst.Call) -> Optional[str]:
        """"zeros" for tf.zeros / np.zeros / tf.math.exp... ; None for anything else."""
        for qualified in self.call_names(call):
            for package in (f"{TF}.", f"{TF}.math.", f"{TF}.nn.", "numpy.", "numpy.random."):
                if qualified.startswith(package) and "." not in qualified[len(package):]:
                    return qualified[len(package):]
        return None


#: A count elbolint cannot read but that is a name or a size read from data (see `_size`).
_SEVERAL = 2.0


def _is_data_size(node: cst.BaseExpression, flow, rule: "MissingIndependent") -> bool:
    """`x.shape[1]`, `tf.shape(x)[0]`, `len(x)`, `self.n_features`: a size taken from data or a
    configuration attribute."""
    if flow.subscripts:
        # `x.shape[1]` / `tf.shape(x)[1]`: one dimension of an array's shape
        last = flow.subscripts[0]
        base = last.value
        return len(flow.subscripts) == 1 and (
            (isinstance(base, cst.Attribute) and base.attr.value == "shape")
            or (isinstance(base, cst.Call) and any(n.endswith(".shape") for n in rule.call_names(base)))
        )
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len" \
            and not rule.qualified_names(node.func):
        return True
    if isinstance(node, cst.Attribute) and not rule.qualified_names(node):
        attr = node.attr.value.lower()
        return "shape" not in attr and attr not in ("size", "ndim", "dtype")
    return False


def _literal_length(node: cst.BaseExpression) -> int:
    if isinstance(node, (cst.List, cst.Tuple)):
        if any(isinstance(e, cst.StarredElement) for e in node.elements):
            return 0
        if len(node.elements) == 1:
            return _literal_length(node.elements[0].value)
        return len(node.elements)
    return 1


def _number(node: cst.BaseExpression) -> Optional[float]:
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _number(node.expression)
        return -inner if inner is not None else None
    return None


def _parameter_names(params: cst.Parameters) -> list[str]:
    names = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
    if isinstance(params.star_arg, cst.Param):
        names.append(params.star_arg.name.value)
    if params.star_kwarg is not None:
        names.append(params.star_kwarg.name.value)
    return names

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
    arguments) are not flagged.
    """

    code = "ELB006"
    name = "missing-independent"
    severity = Severity.WARNING
    confirmed_by = ("ELB106",)

    def visit_Call(self, node: cst.Call) -> None:
        if self.call_names(node).isdisjoint(_JOINTS):
            return
        model = first_argument(node, "model")
        if model is None:
            return
        model = self.value_of(model)
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
        hidden: frozenset[str] = frozenset()
        if isinstance(component, cst.Lambda):
            hidden = frozenset(_parameter_names(component.params))
            body = component.body
        else:
            body = component
            if isinstance(body, cst.Name):
                resolved = self.value_of(body)
                if not isinstance(resolved, cst.Call):
                    return
                body = resolved
        if not isinstance(body, cst.Call):
            return
        distribution = distribution_name(self.resolver, body)
        if distribution not in _SCALAR_EVENT:
            return
        for parameter, arg in distribution_arguments(body, distribution):
            if parameter in ("name", "validate_args", "allow_nan_stats", "dtype"):
                continue
            if self._is_vector(arg.value, hidden):
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
            resolved = self.value_of(node)
            return resolved is not node and self._is_vector(resolved, frozenset(), depth + 1)
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
        if isinstance(node, cst.Name):
            if node.value in hidden:
                return False
            resolved = self.value_of(node)
            if resolved is node:
                return False
            node = resolved
        if isinstance(node, (cst.List, cst.Tuple)):
            sizes = [self._size(e.value) for e in node.elements]
            if any(s is None for s in sizes):
                return False
            return any(s > 1 for s in sizes)  # type: ignore[operator]
        size = self._size(node)
        return size is not None and size > 1

    def _size(self, node: cst.BaseExpression) -> Optional[float]:
        node = self.value_of(node) if isinstance(node, cst.Name) else node
        return _number(node)

    def _array_function(self, call: cst.Call) -> Optional[str]:
        """"zeros" for tf.zeros / np.zeros / tf.math.exp... ; None for anything else."""
        for qualified in self.call_names(call):
            for package in (f"{TF}.", f"{TF}.math.", f"{TF}.nn.", "numpy.", "numpy.random."):
                if qualified.startswith(package) and "." not in qualified[len(package):]:
                    return qualified[len(package):]
        return None


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

"""Whether a value written in the file visibly has several elements, for ELB006 (missing-independent).

A scalar-event distribution (`Normal`, `Gamma`, ...) given such a parameter is a batch, not one
distribution over a vector. This module reads parameters as the file writes them: literal lists,
array constructors (`np.linspace(-1, 1, 50)`, `tf.zeros([3])`, `np.random.randn(n)`), element-wise
functions and arithmetic of such arrays, names bound to them, and sizes that are names or are read
from data (`tf.ones([n])`, `x.shape[1]`, `len(x)`). It answers "several" only when it can see it:
unknown shapes and shapes of 1 are not vectors. The rule (rules/missing_independent.py) decides where
a joint log-density must be a scalar. Not a rule module (it defines no Rule subclass with a code), so
the registry skips it.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.names import TF
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.rules._tfp import first_argument

#: Distributions with a scalar event: a vector parameter makes a batch, not an event.
SCALAR_EVENT = frozenset({
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


class ShapeReader:
    """Reads the shapes of values for a rule, with the rule's resolver and LibCST helpers."""

    get_arg = staticmethod(Rule.get_arg)

    def __init__(self, rule: Rule) -> None:
        self.resolver = rule.resolver
        self.call_names = rule.call_names
        self.qualified_names = rule.qualified_names

    def is_vector(self, node: cst.BaseExpression, hidden: frozenset[str], depth: int = 0) -> bool:
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
                return self.is_vector(resolved, frozenset(), depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            return _literal_length(node) > 1
        if isinstance(node, cst.UnaryOperation):
            return self.is_vector(node.expression, hidden, depth + 1)
        if isinstance(node, cst.BinaryOperation):
            return self.is_vector(node.left, hidden, depth + 1) or self.is_vector(node.right, hidden, depth + 1)
        if isinstance(node, cst.Call):
            # `np.linspace(...).astype(np.float32)`
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "astype" \
                    and not self.qualified_names(node.func):
                return self.is_vector(node.func.value, hidden, depth + 1)
            member = self._array_function(node)
            if member is None:
                return False
            first = node.args[0].value if node.args and node.args[0].keyword is None and not node.args[0].star else None
            if member in _ARRAY_WRAPPERS or member in _ELEMENTWISE:
                return first is not None and self.is_vector(first, hidden, depth + 1)
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
                    numbers = [v for v in values if v is not None]  # all of them
                    step = numbers[2] if len(numbers) > 2 else 1.0
                    return step != 0 and (numbers[1] - numbers[0]) / step > 1
        return False

    def _shape_has_several(self, node: cst.BaseExpression, hidden: frozenset[str]) -> bool:
        """A shape (or count) that describes more than one element."""
        if isinstance(node, (cst.List, cst.Tuple)):
            sizes = [self._size(e.value, hidden) for e in node.elements]
            if any(s is None for s in sizes):
                return False
            return any(s > 1 for s in sizes if s is not None)
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


def _is_data_size(node: cst.BaseExpression, flow: Flow, rule: ShapeReader) -> bool:
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


"""ELB002 extreme-initializer: a variational parameter or an initial state that starts far from
any sensible region, or a positive parameter that starts at 0 or below. The rule's documentation is
its class docstring."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.rules._trained_parameter import TrainedParameterRule
from elbolint.triage import last_parts
from elbolint.rules._tfp import (
    POSITIVE_PARAMETERS, TRANSFORMED_VARIABLE, VARIABLE, distribution_arguments, distribution_name,
    first_argument, is_call, is_non_trainable, literal_values,
)

#: Keywords of a distribution that are not numeric parameters of its density.
_NOT_PARAMETERS = frozenset({
    "name", "validate_args", "allow_nan_stats", "dtype", "reinterpreted_batch_ndims", "sample_shape",
    "event_ndims", "force_probs_to_zero_outside_support", "num_steps", "seed",
})

#: Names and keywords that hold the starting point of an optimisation or a chain.
_INITIAL_STATE = re.compile(r"^(initial|init)_(state|states|position|positions|value|values|loc|locs)$")
_INITIAL_KEYWORDS = frozenset({"initial_state", "init_state", "current_state", "initial_position"})

#: What a far start is reported with: (anchor, variable) of TrainedParameterRule.report_trained.
_Gate = tuple[Optional[cst.CSTNode], Optional[cst.CSTNode]]


class ExtremeInitializer(TrainedParameterRule):
    """
    ## What it does
    Flags a constant initial value that starts a variational parameter far from any sensible
    region: a `tf.Variable` / `tfp.util.TransformedVariable` used as a distribution parameter, or an
    initial state (`initial_state = [...]`, `current_state=`), whose literal magnitude is at or
    above `threshold` (default 100), unless the model itself works on that scale (the value is at
    most twice the largest constant parameter of a distribution in the file, such as a prior
    `Normal(35000., 7500.)` or `Uniform(0., 4200.)`); and a positive-only parameter (`scale`,
    `rate`, ...) whose variable starts at 0 or below.

    Values are followed with the resolver's value flow: an element or slice of a variable is
    judged by the literal it selects (`v = tf.Variable([263., 34.])`; `tfd.Normal(v[0], ...)`
    starts `loc` at 263), and a variable passed to a function of the file that uses its
    parameter as a distribution parameter is reported at the argument.

    ## Why is this bad?
    The ELBO's expected log-likelihood grows with the square of the distance between the surrogate
    and the posterior: a `loc` starting at 100 when the data say 1 gives an initial loss in the
    tens of thousands, huge gradients, and Adam steps that take hundreds of iterations to recover.
    A positive parameter starting at 0 is worse: `TransformedVariable(0.0, tfb.Softplus())` stores
    softplus⁻¹(0) = -inf and the loss is NaN from the first step; a raw scale of 0 makes
    `log_prob` -inf.

    ## Example
    ```python
    initial_state = [tf.constant([100.0]), tf.constant([100.0])]
    scale = tfp.util.TransformedVariable(0.0, tfb.Softplus())
    ```

    ## Use instead
    Start near the prior (zeros for locations, small positive scales such as 1e-2 or 1.0):
    ```python
    initial_state = [tf.constant([0.1]), tf.constant([0.1])]
    scale = tfp.util.TransformedVariable(1.0, tfb.Softplus())
    ```
    Small positive scale initialisations (1e-2, 1e-4) are good practice and are not flagged, nor
    is a large start on the model's own scale (prices with a prior `Normal(35000., 7500.)` may start
    at 20000).
    """

    code = "ELB002"
    name = "extreme-initializer"
    severity = Severity.WARNING
    options = {"threshold": 100.0}
    confirmed_by = ("ELB102", "ELB107", "ELB101")
    #: Triage: a trainable variable's initial value, or an initial state (a call's keyword, an assigned name).
    starts_from = ((*last_parts(VARIABLE | TRANSFORMED_VARIABLE), *(f"keyword:{k}" for k in sorted(_INITIAL_KEYWORDS)),
                    "target:" + _INITIAL_STATE.pattern.strip("^$")),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._parameters: list[tuple[object, str]] = []  # (flow to a def's parameter, parameter)
        #: (node, largest |value|, message, (anchor, variable) for the training gate)
        self._far: list[tuple[cst.CSTNode, float, str, _Gate]] = []
        self._model_scale = 0.0  # the largest |constant| a distribution of the file is given

    # A variable used as a distribution parameter.
    def visit_Call(self, node: cst.Call) -> None:
        distribution = distribution_name(self.resolver, node)
        if distribution is not None:
            for parameter, arg in distribution_arguments(node, distribution):
                flow = self.resolver.follow(arg.value)
                with self.resolver.within(flow) as value:
                    self._check_parameter(parameter, value, flow, anchor=node)
                if flow.parameter is not None:
                    self._parameters.append((flow, parameter))
            self._note_model_constants(node)
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value in _INITIAL_KEYWORDS:
                self._check_initial_state(self.value_of(arg.value))

    # `initial_state = [...]`
    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name) and _INITIAL_STATE.match(target.target.value):
                self._check_initial_state(node.value)

    def _check_parameter(self, parameter: str, value: cst.BaseExpression, flow=None, anchor=None) -> None:
        """`anchor`: the distribution (or the argument of a builder's call) holding the parameter,
        for the training gate (TrainedParameterRule)."""
        if not is_call(self.resolver, value, VARIABLE | TRANSFORMED_VARIABLE) or is_non_trainable(value):
            return
        init = first_argument(value, "initial_value")
        values = literal_values(init, self.resolver) if init is not None else None
        if values and flow is not None and flow.subscripts:
            values = self._selected(init, flow)
        if not values:
            return
        threshold = self.option("threshold")
        if parameter in POSITIVE_PARAMETERS and min(values) <= 0:
            self.report_trained(
                value,
                f"`{parameter}` starts at {_show(min(values))}: a positive parameter must start above 0 "
                "(softplus⁻¹(0) = -inf, log_prob(scale=0) = -inf); the loss is NaN or infinite from step 0",
                anchor=anchor, variable=value,
            )
        elif max(abs(v) for v in values) >= threshold:
            self._report_far(
                value,
                max(abs(v) for v in values),
                f"`{parameter}` starts at {_show(_largest(values))} (|value| >= {_show(threshold)}): "
                "far from any sensible region, the initial loss is huge; start near the prior",
                (anchor, value),
            )

    def _check_initial_state(self, value: cst.BaseExpression) -> None:
        elements = [e.value for e in value.elements] if isinstance(value, (cst.List, cst.Tuple)) else [value]
        threshold = self.option("threshold")
        for element in elements:
            element = self.value_of(element)
            inner = first_argument(element, "value") if isinstance(element, cst.Call) else element
            values = literal_values(element, self.resolver)
            if (values is None and inner is not None
                    and is_call(self.resolver, element, VARIABLE | TRANSFORMED_VARIABLE)):
                values = literal_values(inner, self.resolver)
            if values and max(abs(v) for v in values) >= threshold:
                self._report_far(
                    element,
                    max(abs(v) for v in values),
                    f"initial state starts at {_show(_largest(values))} (|value| >= {_show(threshold)}): "
                    "far from the posterior, the initial loss (or an MCMC chain's first log-densities) is huge; "
                    "start near the prior",
                    (None, None),
                )
                return  # one finding per initial state

    def _note_model_constants(self, call: cst.Call) -> None:
        for arg in call.args:
            if arg.star or (arg.keyword is not None and arg.keyword.value in _NOT_PARAMETERS):
                continue
            value = self.value_of(arg.value)
            if is_call(self.resolver, value, VARIABLE | TRANSFORMED_VARIABLE):
                continue
            values = literal_values(value, self.resolver)
            if values:
                self._model_scale = max(self._model_scale, max(abs(v) for v in values))

    def _report_far(self, node: cst.CSTNode, magnitude: float, message: str, gate: _Gate) -> None:
        """Decided at the end of the module: the model's constants may come after the start. `gate`:
        the (anchor, variable) the finding is reported with (TrainedParameterRule.report_trained)."""
        self._far.append((node, magnitude, message, gate))

    def _selected(self, init: cst.BaseExpression, flow) -> Optional[list[float]]:
        """The numbers an element or slice of a variable starts at: `v[0]` / `v[1:]` of a flat
        literal `[263., 34.]`; None when the selection cannot be read (then nothing is said)."""
        elements = _flat_elements(init, self.resolver)
        if elements is None or len(flow.subscripts) != 1:
            return None
        numbers = [literal_values(e, self.resolver) for e in elements]
        if any(n is None or len(n) != 1 for n in numbers):
            return None
        numbers = [n[0] for n in numbers]
        index = flow.indices()
        if index is not None:
            return [numbers[index[0]]] if -len(numbers) <= index[0] < len(numbers) else None
        subscript = flow.subscripts[0]
        if len(subscript.slice) != 1 or not isinstance(subscript.slice[0].slice, cst.Slice):
            return None
        part = subscript.slice[0].slice
        bounds: list[Optional[int]] = []
        for bound in (part.lower, part.upper, part.step):
            if bound is None:
                bounds.append(None)
                continue
            number = literal_values(bound, self.resolver)
            if not isinstance(bound, (cst.Integer, cst.UnaryOperation)) or number is None:
                return None
            bounds.append(int(number[0]))
        if bounds[2] == 0:
            return None
        return numbers[slice(*bounds)] or None

    def leave_Module(self, original_node: cst.Module) -> None:
        for flow, parameter in self._parameters:
            for inner, argument in self.resolver.argument_flows(flow):
                with self.resolver.within(inner) as value:
                    self._check_parameter(parameter, value, inner, anchor=argument)
        for node, magnitude, message, (anchor, variable) in self._far:
            if magnitude > 2 * self._model_scale:
                self.report_trained(node, message, anchor=anchor, variable=variable)



def _flat_elements(node: cst.BaseExpression, resolver, depth: int = 0) -> Optional[list[cst.BaseExpression]]:
    """The elements of a literal list or tuple, also inside `tf.constant([...])` / `np.array([...])`."""
    if isinstance(node, (cst.List, cst.Tuple)):
        if any(isinstance(e, cst.StarredElement) for e in node.elements):
            return None
        return [e.value for e in node.elements]
    if isinstance(node, cst.Call) and depth < 2 and node.args and node.args[0].keyword is None:
        short = {n.rsplit(".", 1)[-1] for n in resolver.call_names(node)}
        if short & {"constant", "array", "asarray", "convert_to_tensor"}:
            return _flat_elements(node.args[0].value, resolver, depth + 1)
    return None


def _largest(values: list[float]) -> float:
    return max(values, key=abs)


def _show(value: float) -> str:
    return f"{value:g}"

"""ELB012 exp-scale-transform: a positive parameter made positive with the exponential, which
overflows and multiplies the gradients for large inputs (softplus grows linearly). The rule's
documentation is its class docstring."""

from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._tfp import (
    BIJECTOR_EXP, DEFERRED_TENSOR, POSITIVE_PARAMETERS, TRANSFORMED_VARIABLE, VARIABLE,
    distribution_arguments, distribution_name, is_call, is_non_trainable, literal_values,
)

_EXP = frozenset({f"{TF}.exp", f"{TF}.math.exp"})
#: Where an inline `tf.exp(...)` is a scale transform. For `rate` / `concentration` an inline exp is
#: usually a model's log link (`tfd.Poisson(rate=tf.exp(x @ w))`), a modelling choice, not a bug.
_SCALES = frozenset({"scale", "scale_diag", "scale_identity_multiplier"})


class ExpScaleTransform(Rule):
    """
    ## What it does
    Flags a positive-only distribution parameter (`scale`, `scale_diag`, `concentration`, `rate`,
    ...) made positive with the exponential: `tfp.util.TransformedVariable(init, tfb.Exp())` or
    `tfp.util.DeferredTensor(v, tf.exp)`; and a scale (`scale`, `scale_diag`,
    `scale_identity_multiplier`) computed with `tf.exp(...)` / `tf.math.exp(...)` of a
    non-constant value (`scale=tf.exp(log_scale)`, `scale=1e-3 + tf.exp(t[..., 1:])`). An inline
    exp in a `rate` (a GLM's log link, `tfd.Poisson(rate=tf.exp(x @ w))`) is not flagged, nor is
    the exp of an upstream latent inside a joint model (`lambda log_tau: tfd.Normal(0., tf.exp(log_tau))`
    in a `JointDistribution*`, `log_tau = yield ...` in a coroutine, a parameter of a
    `target_log_prob_fn`): that is the model's prior.
    Opt-in: enable it with `extend-select = ["ELB012"]`.

    ## Why is this bad?
    `exp` grows exponentially with its input: a pre-activation of 89 already overflows float32 to
    inf, and a step that makes the log-scale large multiplies the scale, and the gradients that
    flow through it, by the same factor. The ELBO then jumps to huge values or NaN. `softplus`
    is the identity for large inputs (grows linearly) and still maps to (0, inf).

    ## Example
    ```python
    scale = tfp.util.TransformedVariable(1.0, tfb.Exp())
    head = tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=tf.exp(t[..., 1:])))
    ```

    ## Use instead
    ```python
    scale = tfp.util.TransformedVariable(1.0, tfb.Softplus())
    head = tfpl.DistributionLambda(
        lambda t: tfd.Normal(loc=t[..., :1], scale=1e-3 + tf.math.softplus(t[..., 1:]))
    )
    ```
    """

    code = "ELB012"
    name = "exp-scale-transform"
    severity = Severity.WARNING
    default_enabled = False
    confirmed_by = ("ELB101",)
    #: Triage: exp (`tf.exp`, `tfb.Exp`, in a transform or a deferred tensor).
    starts_from = ((*last_parts(_EXP), *last_parts({BIJECTOR_EXP})),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._joint_models: list[cst.Call] = []  # enclosing JointDistribution* calls
        self._latents: list[set[str]] = []  # parameters of enclosing `*log_prob*` functions

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        names: set[str] = set()
        if "log_prob" in node.name.value:
            params = node.params
            names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
            if isinstance(params.star_arg, cst.Param):
                names.add(params.star_arg.name.value)
        self._latents.append(names)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._latents.pop()

    def leave_Call(self, original_node: cst.Call) -> None:
        if self._joint_models and self._joint_models[-1] is original_node:
            self._joint_models.pop()

    def visit_Call(self, node: cst.Call) -> None:
        distribution = distribution_name(self.resolver, node)
        if distribution is None:
            return
        if distribution.startswith("JointDistribution"):
            self._joint_models.append(node)
            return
        for parameter, arg in distribution_arguments(node, distribution):
            if parameter not in POSITIVE_PARAMETERS:
                continue
            # Inside a joint model, `scale=tf.exp(log_scale)` of an upstream latent is the model's
            # prior (the funnel, eight schools), not a transform of a trainable parameter.
            inline = parameter in _SCALES and not self._joint_models
            culprit = self._exp_in(arg.value, inline)
            if culprit is None:
                bound = self.value_of(arg.value)
                if bound is not arg.value and self._exp_in(bound, inline) is not None:
                    culprit = arg.value
            if culprit is not None:
                self.report(
                    culprit,
                    f"`{parameter}` of {self.source(node.func)} is made positive with exp, which overflows "
                    "for large pre-activations (huge or NaN ELBO); use tfb.Softplus() / tf.nn.softplus",
                )

    def _exp_in(self, expression: cst.BaseExpression, inline: bool) -> Optional[cst.CSTNode]:
        """The node that applies exp to a varying value inside `expression`, if any."""
        for call in _calls(expression):
            if is_call(self.resolver, call, _EXP):
                if not inline or not call.args:
                    continue
                argument = call.args[0].value
                if literal_values(argument, self.resolver) is None and not self._is_latent(argument):
                    return call
            elif is_call(self.resolver, call, TRANSFORMED_VARIABLE):
                bijector = self.get_arg(call, "bijector", 1)
                if bijector is not None and self._is_exp_bijector(bijector.value):
                    return call
            elif is_call(self.resolver, call, DEFERRED_TENSOR):
                transform = self.get_arg(call, "transform_fn", 1)
                if transform is not None and (
                    self._is_exp_bijector(transform.value)
                    or not self.qualified_names(self.value_of(transform.value)).isdisjoint(_EXP)
                ):
                    return call
        return None

    def _is_latent(self, node: cst.BaseExpression) -> bool:
        """A model's latent or a constant: `log_scale = yield tfd.Normal(...)` in a coroutine, a
        parameter of a `target_log_prob_fn(..., log_scale)`, or a non-trainable variable."""
        while isinstance(node, (cst.Subscript, cst.Attribute)):
            node = node.value
        if not isinstance(node, cst.Name):
            return False
        if any(node.value in names for names in self._latents):
            return True
        bound = self.value_of(node)
        return isinstance(bound, cst.Yield) or (is_call(self.resolver, bound, VARIABLE) and is_non_trainable(bound))

    def _is_exp_bijector(self, node: cst.BaseExpression) -> bool:
        return any(is_call(self.resolver, call, frozenset({BIJECTOR_EXP})) for call in _calls(self.value_of(node)))


def _calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Calls in `node`, outermost first, not descending into lambdas (their bodies run elsewhere)."""
    if isinstance(node, cst.Lambda):
        return
    if isinstance(node, cst.Call):
        yield node
    for child in node.children:
        yield from _calls(child)

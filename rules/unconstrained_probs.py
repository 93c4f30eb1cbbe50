"""ELB007 unconstrained-probs."""

from __future__ import annotations


import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.rule import Rule
from elbolint.rules._tfp import (
    DiscardedDistributions,
    distribution_arguments, distribution_name, raw_variable_at, raw_variables_passed, variable_words,
)

#: Distributions whose `probs` is a vector on the simplex (the rest take per-event probabilities).
_SIMPLEX = frozenset({
    "Categorical", "OneHotCategorical", "Multinomial", "RelaxedOneHotCategorical",
    "ExpRelaxedOneHotCategorical", "FiniteDiscrete",
})


class UnconstrainedProbs(DiscardedDistributions, Rule):
    """
    ## What it does
    Flags a raw `tf.Variable` (or a Keras layer's `self.add_weight(...)`) passed as `probs` of a TFP distribution (`Bernoulli`, `Categorical`,
    `Binomial`, `Multinomial`, `OneHotCategorical`, `Geometric`, `NegativeBinomial`,
    `RelaxedBernoulli`, `RelaxedOneHotCategorical`, ...), directly, positionally, or through a
    name or `self.` attribute bound to one. Non-trainable variables and variables with a
    `constraint=` are not flagged.

    Values are followed as ELB001 follows them: elements of a raw variable (`p[0]`), tuple
    elements, variables returned by a function of the file, and variables passed to a function of
    the file that uses its parameter as `probs` (reported at the argument).

    ## Why is this bad?
    `probs` must stay in [0, 1] (and sum to 1 for categorical families), but the optimizer moves a
    `tf.Variable` freely. The first step that pushes a probability below 0 or above 1 makes
    `log_prob` return NaN (the log of a negative number), and the ELBO loss is NaN from then on;
    a probability that reaches exactly 0 or 1 gives -inf.

    ## Example
    ```python
    p = tf.Variable(0.5)
    surrogate = tfd.Bernoulli(probs=p)
    ```

    ## Use instead
    Parameterise by `logits`, which are unconstrained:
    ```python
    surrogate = tfd.Bernoulli(logits=tf.Variable(0.0))
    ```
    or map an unconstrained variable into the valid range:
    ```python
    surrogate = tfd.Bernoulli(probs=tfp.util.TransformedVariable(0.5, tfb.Sigmoid()))
    weights = tfd.Categorical(probs=tfp.util.TransformedVariable([0.2, 0.3, 0.5], tfb.SoftmaxCentered()))
    ```
    """

    code = "ELB007"
    name = "unconstrained-probs"
    severity = Severity.ERROR
    confirmed_by = ("ELB101",)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._parameters: list[tuple[object, str, str]] = []  # (flow to a def's parameter, advice, callee)

    def visit_Call(self, node: cst.Call) -> None:
        if self.discarded:
            return
        distribution = distribution_name(self.resolver, node)
        if distribution is None:
            return
        for parameter, arg in distribution_arguments(node, distribution):
            if parameter != "probs":
                continue
            bijector = "tfb.SoftmaxCentered()" if distribution in _SIMPLEX else "tfb.Sigmoid()"
            flow = self.resolver.follow(arg.value)
            variable = raw_variable_at(self.resolver, flow)
            if variable is None:
                if flow.parameter is not None:
                    self._parameters.append((flow, bijector, self.source(node.func)))
                continue
            self.report_once(
                arg.value,
                f"`probs` of {self.source(node.func)} is a raw {variable_words(variable)}; one optimizer step can push it "
                f"outside [0, 1] and log_prob is NaN. Parameterise by `logits=` or use "
                f"tfp.util.TransformedVariable(init, {bijector})",
            )

    def leave_Module(self, original_node: cst.Module) -> None:
        for flow, bijector, spelled in self._parameters:
            function, name = flow.parameter
            for argument in raw_variables_passed(self.resolver, flow):
                self.report_once(
                    argument,
                    f"this raw tf.Variable becomes `probs` of {spelled} in `{function.name.value}` (parameter "
                    f"`{name}`); one optimizer step can push it outside [0, 1] and log_prob is NaN. "
                    f"Parameterise by `logits=` or use tfp.util.TransformedVariable(init, {bijector})",
                )


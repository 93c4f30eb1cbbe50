"""ELB007 unconstrained-probs: a raw trainable variable passed as `probs`, which the optimizer can
move outside [0, 1]. The rule's documentation is its class docstring."""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.rules._trained_parameter import RawParameterRule
from elbolint.rules._tfp import distribution_arguments

#: Distributions whose `probs` is a vector on the simplex (the rest take per-event probabilities).
_SIMPLEX = frozenset({
    "Categorical", "OneHotCategorical", "Multinomial", "RelaxedOneHotCategorical",
    "ExpRelaxedOneHotCategorical", "FiniteDiscrete",
})



class UnconstrainedProbs(RawParameterRule):
    """
    ## What it does
    Flags a raw `tf.Variable` (or a Keras layer's `self.add_weight(...)`) passed as `probs` of a TFP
    distribution (`Bernoulli`, `Categorical`, `Binomial`, `Multinomial`, `OneHotCategorical`, `Geometric`,
    `NegativeBinomial`, `RelaxedBernoulli`, `RelaxedOneHotCategorical`, ...), directly, positionally, or through a
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

    def checked_arguments(self, node: cst.Call, distribution: str):
        return [(p, arg) for p, arg in distribution_arguments(node, distribution) if p == "probs"]

    def consequence(self, parameter: str, distribution: str, variable) -> str:
        bijector = self.tfp_name("bijectors.SoftmaxCentered" if distribution in _SIMPLEX else "bijectors.Sigmoid")
        return ("one optimizer step can push it outside [0, 1] and log_prob is NaN. Parameterise by `logits=` "
                f"or use {self.tfp_name('util.TransformedVariable')}(init, {bijector}())")

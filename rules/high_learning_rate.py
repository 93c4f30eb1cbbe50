"""ELB009 high-learning-rate: an optimizer driving variational inference with a constant learning
rate too high for noisy Monte Carlo gradients. The rule's documentation is its class docstring."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.analyses.optimizer_roles import VIOptimizerRule
from elbolint.rules._tfp import ANY_OPTIMIZER, is_call, literal_values


class HighLearningRate(VIOptimizerRule):
    """
    ## What it does
    Flags an optimizer (`Adam`, `SGD`, `RMSprop`, ... from `tf.optimizers`, `tf.keras.optimizers`,
    `tf_keras.optimizers` or `keras.optimizers`, or a TF1 `tf.compat.v1.train.*Optimizer`) whose
    constant learning rate (`learning_rate=`, the first positional argument, or the legacy `lr=`)
    is at or above `threshold` (default 0.5), when the optimizer drives variational inference as
    ELB003 decides it (a `tfp.vi` fit or loss, surrogate builders, variational or KL layers, or VI
    written by hand: a KL in a training loss, Bayes by backprop). Optimizers are followed as ELB003
    follows them (through names per `if` branch and functions of the file that return them).
    Learning-rate schedules and rates that are not visible constants are not flagged, nor are
    optimizers in files without VI or compiled into a visibly plain Keras model next to the VI (a
    MAP or plain Keras fit may use 1.0), nor string optimizers (`compile(optimizer="sgd")` uses
    Keras' default rate, 0.01 at most).

    ## Why is this bad?
    The ELBO gradient is a Monte Carlo estimate: with a step this large one noisy sample moves the
    variational parameters far from where the estimate was made. The loss oscillates or diverges,
    scales jump to extreme values, and the run ends with a huge or NaN loss. TFP's VI examples
    use learning rates between 1e-3 and 0.1.

    ## Example
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=1.0)
    losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, num_steps=200)
    ```

    ## Use instead
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)
    ```
    or start high and decay with `tf.keras.optimizers.schedules.ExponentialDecay`.

    ## Options
    - `threshold` (default 0.5): the smallest constant learning rate reported.
    """

    code = "ELB009"
    name = "high-learning-rate"
    severity = Severity.WARNING
    options = {"threshold": 0.5}
    confirmed_by = ("ELB112", "ELB101", "ELB103", "ELB107")

    def __init__(self, context) -> None:
        super().__init__(context)
        self._high: list[tuple[cst.Call, cst.Arg, str, float]] = []

    def visit_Call(self, node: cst.Call) -> None:
        super().visit_Call(node)
        if not is_call(self.resolver, node, ANY_OPTIMIZER):
            return
        arg = self.get_arg(node, "learning_rate", 0) or self.get_arg(node, "lr")
        if arg is None:
            return
        rate = self._constant(arg.value)
        if rate is not None and rate >= self.option("threshold"):
            self._high.append((node, arg, self.source(node.func), rate))

    def _constant(self, node: cst.BaseExpression) -> Optional[float]:
        values = literal_values(self.value_of(node), self.resolver)
        return values[0] if values is not None and len(values) == 1 else None

    def leave_Module(self, original_node: cst.Module) -> None:
        threshold = self.option("threshold")
        for call, arg, spelled, rate in self._high:
            if not self.roles.drives_vi(call):
                continue
            self.report(
                arg.value,
                f"{spelled} drives variational inference with learning rate {rate:g} (>= {threshold:g}); "
                "noisy ELBO gradients make such steps diverge or reach NaN. Use a rate of 1e-3..0.1 or a "
                "decaying schedule (clipping bounds the gradient, not the step: it does not replace this)",
            )

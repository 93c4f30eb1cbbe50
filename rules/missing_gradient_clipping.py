"""ELB003 missing-gradient-clipping."""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF
from elbolint.rules._tfp import CLIPPING_KEYWORDS, OPTIMIZERS, VIOptimizerRule, is_call

_MANUAL_CLIPPING = frozenset({
    f"{TF}.clip_by_global_norm", f"{TF}.clip_by_norm", f"{TF}.clip_by_value",
    f"{TF}.math.clip_by_global_norm", f"{TF}.math.clip_by_norm", f"{TF}.math.clip_by_value",
})


class MissingGradientClipping(VIOptimizerRule):
    """
    ## What it does
    Flags an optimizer (`Adam`, `SGD`, `RMSprop`, ... from `tf.optimizers`, `tf.keras.optimizers`,
    `tf_keras.optimizers` or `keras.optimizers`) constructed without `clipnorm`, `clipvalue` or
    `global_clipnorm` in a file that does variational inference: it calls
    `tfp.vi.fit_surrogate_posterior` / `monte_carlo_variational_loss`, a
    `tfp.experimental.vi.build_*` surrogate builder, or uses `tfp.layers` variational layers.
    Optimizers in files with no TFP VI, optimizers compiled into a visibly plain Keras model (a
    deterministic or MC-dropout baseline next to a Bayesian network, also through a helper that
    compiles its `optimizer` parameter), and files that clip gradients by hand
    (`tf.clip_by_global_norm`) are not flagged.

    ## Why is this bad?
    The ELBO is estimated from Monte Carlo samples: an unlucky sample, an extreme initial value or
    a near-zero scale gives a gradient thousands of times larger than usual, and a single
    unclipped step can throw the variational parameters into a region where the loss is NaN. The
    seed article's fix for numerical instability is exactly `Adam(clipnorm=1.0)`.

    ## Example
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=0.01)
    losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, num_steps=200)
    ```

    ## Use instead
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)
    ```
    `elbolint --fix` adds `clipnorm=1.0`.
    """

    code = "ELB003"
    name = "missing-gradient-clipping"
    severity = Severity.WARNING
    confirmed_by = ("ELB107", "ELB101")
    fixable = True

    def __init__(self, context) -> None:
        super().__init__(context)
        self._unclipped: list[tuple[cst.Call, str]] = []
        self._clips_by_hand = False

    def visit_Call(self, node: cst.Call) -> None:
        super().visit_Call(node)
        if not self.call_names(node).isdisjoint(_MANUAL_CLIPPING):
            self._clips_by_hand = True
        if is_call(self.resolver, node, OPTIMIZERS) and not self.has_keyword(node, CLIPPING_KEYWORDS):
            self._unclipped.append((node, self.source(node.func)))

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._clips_by_hand:
            return
        for call, spelled in self._unclipped:
            if not self.roles.drives_vi(call):
                continue
            self.report(
                call,
                f"{spelled} drives variational inference without gradient clipping; one noisy ELBO "
                "gradient can send the parameters to NaN. Pass clipnorm=1.0 (or global_clipnorm)",
                fix=("Add clipnorm=1.0", _with_clipnorm(call)),
            )


def _with_clipnorm(call: cst.Call) -> cst.Call:
    args = list(call.args)
    clip = cst.Arg(
        keyword=cst.Name("clipnorm"),
        value=cst.Float("1.0"),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    if args:
        last = args[-1]
        trailing = last.comma if isinstance(last.comma, cst.Comma) else None
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        if trailing is not None:
            clip = clip.with_changes(comma=trailing)
    return call.with_changes(args=[*args, clip])

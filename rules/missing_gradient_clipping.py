"""ELB003 missing-gradient-clipping: an optimizer that drives variational inference without
gradient clipping, where one unlucky Monte Carlo sample can make the loss NaN. The rule's
documentation is its class docstring."""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.analyses.optimizer_roles import VIOptimizerRule
from elbolint.rules._tfp import ANY_OPTIMIZER, CLIPPING_KEYWORDS, TF1_OPTIMIZERS, is_call


class MissingGradientClipping(VIOptimizerRule):
    """
    ## What it does
    Flags an optimizer that drives variational inference without gradient clipping: a Keras
    optimizer (`Adam`, `SGD`, `RMSprop`, ... from `tf.optimizers`, `tf.keras.optimizers`,
    `tf_keras.optimizers` or `keras.optimizers`) constructed without `clipnorm`, `clipvalue` or
    `global_clipnorm`, a TF1 optimizer (`tf.compat.v1.train.AdamOptimizer`, `tf.train.*Optimizer`)
    whose gradients are not clipped, or a Keras string optimizer (`compile(optimizer="adam")`),
    that drives variational inference. What counts as VI is shared with ELB009: a `tfp.vi` fit or
    loss, a `tfp.experimental.vi` / `tfp.sts` surrogate builder, `VariationalGaussianProcess`,
    `tfp.layers` variational layers, a VAE's `KLDivergenceRegularizer` / `KLDivergenceAddLoss`, and
    VI written by hand: a KL divergence in a training loss (`tfd.kl_divergence(q, p)` in a
    `GradientTape`, an `add_loss`, a loss function), a distribution of trainable variables sampled
    and scored in the same layer or function (Bayes by backprop), or one named as a surrogate or
    posterior. Hand-written VI is judged per training loop: the maximum-likelihood fit in the
    next cell of the same notebook is not VI. Optimizers are followed through names (per `if` branch),
    `self.` attributes and functions of the file that return them. Not flagged: optimizers in
    files with no TFP VI; optimizers compiled into a visibly plain Keras model (a deterministic or
    MC-dropout baseline next to a Bayesian network, also through a helper that compiles its
    `optimizer` parameter or builds the model); optimizers given clipping after construction
    (`opt.clipnorm = 1.0`); and optimizers whose `apply_gradients` receives
    gradients clipped by hand (`tf.clip_by_global_norm` / `clip_by_norm` / `clip_by_value` on what
    `tape.gradient` or `compute_gradients` returned). Clipping anything else (a loss, a scale)
    exempts nothing.

    Also not flagged (shared with ELB009, elbolint/analyses/optimizer_roles.py): a leftover
    optimizer, bound to a name that is never read while it holds, in a file whose training uses
    another optimizer (a notebook's earlier attempt; the only optimizer of a sketch whose loop is
    left out stays flagged); and an optimizer whose only use is being handed to a function of
    another package (`other_lib.fit(..., optimizer=opt)`: whether that clips cannot be seen here).
    An optimizer handed to a function or class of a module of the same project whose source shows
    VI (read as text, never imported: the VAE whose KL lives in `models.py`) drives VI, and so does
    one compiled into a model that such a module builds (`model = get_model()` from `model.py`
    with Flipout layers), unless the builder is asked for its plain model (`variational=False`).

    ## Why is this bad?
    The ELBO is estimated from Monte Carlo samples: an unlucky sample, an extreme initial value or
    a near-zero scale gives a gradient thousands of times larger than usual, and a single
    unclipped step can throw the variational parameters into a region where the loss is NaN.
    Clipping the gradient norm (`Adam(clipnorm=1.0)`) is the usual fix for this instability: every
    step is taken with the gradient rescaled to a norm of at most 1, so one unlucky sample cannot
    throw the parameters far.

    ## Example
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=0.01)
    losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, num_steps=200)
    ```

    ## Use instead
    ```python
    optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)
    ```
    `elbolint --fix` adds `clipnorm=1.0`. A string optimizer cannot clip: pass an object,
    `model.compile(optimizer=tf_keras.optimizers.Adam(clipnorm=1.0), ...)`. A TF1 optimizer has no
    `clipnorm`: clip the gradients between `compute_gradients` and `apply_gradients`:
    ```python
    grads, variables = zip(*optimizer.compute_gradients(loss))
    grads, _ = tf.clip_by_global_norm(grads, 1.0)
    train_op = optimizer.apply_gradients(zip(grads, variables))
    ```
    """

    code = "ELB003"
    name = "missing-gradient-clipping"
    severity = Severity.WARNING
    confirmed_by = ("ELB110", "ELB107", "ELB101")
    fixable = True

    def __init__(self, context) -> None:
        super().__init__(context)
        self._unclipped: list[tuple[cst.Call, str]] = []

    def visit_Call(self, node: cst.Call) -> None:
        super().visit_Call(node)
        if is_call(self.resolver, node, ANY_OPTIMIZER) and not _clips(node):
            self._unclipped.append((node, self.source(node.func)))

    def leave_Module(self, original_node: cst.Module) -> None:
        for call, spelled in self._unclipped:
            if not self.roles.drives_vi(call) or self.roles.clipped_by_hand(call):
                continue
            if is_call(self.resolver, call, TF1_OPTIMIZERS):
                self.report(
                    call,
                    f"{spelled} drives variational inference without gradient clipping, and TF1 "
                    "optimizers take no clipnorm: clip the gradients between compute_gradients and "
                    "apply_gradients with tf.clip_by_global_norm(grads, 1.0)",
                )
                continue
            self.report(
                call,
                f"{spelled} drives variational inference without gradient clipping; one noisy ELBO "
                "gradient can send the parameters to NaN. Pass clipnorm=1.0 (or global_clipnorm)",
                fix=None if _clipping_none(call) else ("Add clipnorm=1.0", _with_clipnorm(call)),
            )
        for string, keras_class in self.roles.string_optimizers():
            if not self.roles.drives_vi(string) or self.roles.clipped_by_hand(string):
                continue
            self.report(
                string,
                f"optimizer {self.source(string)} compiles a variational model with Keras' default "
                f"{keras_class}, and no clipping is possible without an optimizer object; pass "
                f"{self._keras_optimizers()}.{keras_class}(clipnorm=1.0)",
            )

    def _keras_optimizers(self) -> str:
        """The Keras this file uses, as it spells it: `tf_keras`, `keras` or `tf.keras` (a
        `tf_keras` optimizer in a Keras 3 model, or the reverse, is refused by `compile`)."""
        for package, spelled in (("tf_keras", None), ("keras", None), ("tensorflow", "keras")):
            local = self.resolver.local_name_for(package)
            if local is not None and self.resolver.imports(package):
                return f"{local}.{spelled}.optimizers" if spelled else f"{local}.optimizers"
        return "tf.keras.optimizers"


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
        between: cst.BaseParenthesizableWhitespace = cst.SimpleWhitespace(" ")
        if trailing is not None and isinstance(trailing.whitespace_after, cst.ParenthesizedWhitespace):
            # one argument per line: the new one goes on a line of its own, indented as the others
            before_last = args[-2].comma.whitespace_after if len(args) > 1 and isinstance(args[-2].comma, cst.Comma) \
                else call.whitespace_before_args
            if isinstance(before_last, cst.ParenthesizedWhitespace):
                after = trailing.whitespace_after  # the last argument's own line: its comment stays there
                between = cst.ParenthesizedWhitespace(first_line=after.first_line, indent=before_last.indent,
                                                      last_line=before_last.last_line)
                trailing = trailing.with_changes(whitespace_after=cst.ParenthesizedWhitespace(
                    indent=after.indent, last_line=after.last_line))
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_before=trailing.whitespace_before
                                                     if trailing is not None else cst.SimpleWhitespace(""),
                                                     whitespace_after=between))
        if trailing is not None:
            clip = clip.with_changes(comma=trailing.with_changes(whitespace_before=cst.SimpleWhitespace("")))
    return call.with_changes(args=[*args, clip])


def _clipping_none(call: cst.Call) -> bool:
    """`clipnorm=None` (Keras' default spelled out): no clipping."""
    return any(arg.keyword is not None and arg.keyword.value in CLIPPING_KEYWORDS
               and isinstance(arg.value, cst.Name) and arg.value.value == "None" for arg in call.args)


def _clips(call: cst.Call) -> bool:
    """A clipping keyword with a value (or `**kwargs` that may carry one); `clipnorm=None` clips nothing."""
    if any(arg.star == "**" for arg in call.args):
        return True
    return any(arg.keyword is not None and arg.keyword.value in CLIPPING_KEYWORDS
               and not (isinstance(arg.value, cst.Name) and arg.value.value == "None") for arg in call.args)

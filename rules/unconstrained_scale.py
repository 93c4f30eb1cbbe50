"""ELB001 unconstrained-scale: a raw trainable variable passed as a positive-only parameter
(`scale`, `rate`, ...), which the optimizer can move to 0 or below. The rule's documentation is its
class docstring."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TFB, TFP_UTIL
from elbolint.rules._trained_parameter import RawParameterRule
from elbolint.rules._tfp import (
    POSITIVE_PARAMETERS, distribution_arguments, first_argument, is_keras_weight, literal_values,
)


class UnconstrainedScale(RawParameterRule):
    """
    ## What it does
    Flags a raw `tf.Variable` (or a Keras layer's `self.add_weight(...)`) passed as a positive-only
    parameter of a TFP distribution (`scale`, `scale_diag`, `concentration`, `rate`, `df`, `temperature`,
    ...), directly or through a name or `self.` attribute bound to one.

    The value is followed one step further within the file: an element or slice of a raw variable
    (`v[1]`, `v[1:]`), a tuple element (`loc, scale = make_params()`), the variable a function of
    the file returns (`scale = make_scale()`), and a variable passed to a function (or class) of
    the file that uses its parameter as the scale (`def make_q(s): return tfd.Normal(0., s)`;
    `make_q(tf.Variable(1.))` is reported at the argument). A distribution built in a bare
    expression statement (a notebook cell that only displays it) is discarded, never trained, and
    not flagged.

    ## Why is this bad?
    The optimizer updates a `tf.Variable` without any constraint. One large gradient step (early
    in training, or with a high learning rate) pushes the scale to zero or below; `log_prob` then
    returns NaN or -inf and the ELBO loss is NaN from that step on. Gradient clipping only makes
    this rarer.

    ## Example
    ```python
    surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))
    ```

    ## Use instead
    Optimise an unconstrained value mapped through a positive bijector:
    ```python
    surrogate = tfd.Normal(
        loc=tf.Variable(0.0),
        scale=tfp.util.TransformedVariable(1.0, tfb.Softplus()),
    )
    ```
    `tfp.util.DeferredTensor(v, tf.nn.softplus)`, or `tf.nn.softplus(v)` computed inside the
    lambda or function that builds the distribution every step, are fine too.
    `elbolint --fix` rewrites an inline `tf.Variable(<positive literal>)` this way.
    """

    code = "ELB001"
    name = "unconstrained-scale"
    severity = Severity.ERROR
    confirmed_by = ("ELB104", "ELB101")
    fixable = True

    def checked_arguments(self, node: cst.Call, distribution: str):
        return [(p, arg) for p, arg in distribution_arguments(node, distribution) if p in POSITIVE_PARAMETERS]

    def consequence(self, parameter: str, distribution: str, variable: Optional[cst.Call]) -> str:
        if variable is not None and is_keras_weight(variable):
            advice = ("Keep the weight unconstrained and build the distribution from 1e-3 + tf.nn.softplus(weight) "
                      "each call")
        else:
            advice = f"Use {self._transformed_spelling()}"
        return f"optimisation can push it to <= 0 ({self.loss_words()}). {advice}"

    def _transformed_spelling(self) -> str:
        """The advice in the names this file has (`tfp.util.TransformedVariable(init, tfb.Softplus())`),
        or with the import it needs when it has none for TFP's util or bijectors (no fix then)."""
        transformed = self.resolver.local_name_for(f"{TFP_UTIL}.TransformedVariable")
        softplus = self.resolver.local_name_for(f"{TFB}.Softplus")
        if transformed is not None and softplus is not None:
            return f"{transformed}(init, {softplus}())"
        return (f"{self.tfp_name('util.TransformedVariable')}(init, {self.tfp_name('bijectors.Softplus')}()) "
                "after `import tensorflow_probability as tfp` (no automatic fix: this file has no name for them yet)")

    def fix_for(self, variable: cst.Call, arg: cst.Arg):
        return None if is_keras_weight(variable) else self._fix(variable)

    def _fix(self, variable: cst.Call) -> Optional[tuple[str, cst.CSTNode]]:
        """`tf.Variable(1.0)` -> `tfp.util.TransformedVariable(1.0, tfb.Softplus())` when the
        initial value is a visible positive constant and the file already imports TFP."""
        init = first_argument(variable, "initial_value")
        values = literal_values(init, self.resolver) if init is not None else None
        if not values or min(values) <= 0:
            return None
        if _has_integer(self.value_of(init)) and not any(
                a.keyword is not None and a.keyword.value == "dtype" for a in variable.args):
            return None  # TransformedVariable(1, Softplus()) is int32 and rejected: no fix that cannot work
        positional = [a for a in variable.args if a.keyword is None]
        if len(positional) != 1 or any(a.star for a in variable.args):
            return None
        transformed = self.resolver.local_name_for(f"{TFP_UTIL}.TransformedVariable")
        softplus = self.resolver.local_name_for(f"{TFB}.Softplus")
        if transformed is None or softplus is None:
            return None
        keywords = [a for a in variable.args if a.keyword is not None and a.keyword.value != "initial_value"]
        new_args = [
            cst.Arg(init, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            cst.Arg(cst.parse_expression(f"{softplus}()")),
        ]
        if keywords:
            new_args[-1] = new_args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            new_args += [k.with_changes(comma=cst.MaybeSentinel.DEFAULT) for k in keywords]
        replacement = cst.Call(func=cst.parse_expression(transformed), args=new_args)
        return (f"Use {transformed}(init, {softplus}())", replacement)


def _has_integer(node: cst.CSTNode) -> bool:
    """Whether an integer literal appears in the initial value (`1`, `[1, 2]`): its variable is int32."""
    if isinstance(node, cst.Integer):
        return True
    return any(_has_integer(child) for child in node.children)

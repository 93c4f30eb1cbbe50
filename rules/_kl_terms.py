"""What a KL divergence term is, for ELB010's checks, and how their messages quote code.

Why this module exists: two of ELB010's checks (unscaled_kl_divergence.py) ask the same question of
an expression: is this a KL divergence, and whose? The weight check (_kl_weight.py) needs it to read
`kl * batch_size / N`; the hand-written loss check (_kl_batch_loss.py) needs it to tell a whole KL
of the global weights' posterior (`tfd.kl_divergence(q, p)` of a distribution built from
`tf.Variable`s, a `tfp.experimental.vi` surrogate, a layer's `kernel_posterior`) from a VAE's
per-example KL of an encoder's output. `KlTerms` answers it once, through names and casts. The
layers' own KL terms, read by hand (`sum(model.losses)`, `tf.add_n(model.losses)`), count as a KL
too.

The text helpers at the end shorten quoted code the same way in every ELB010 message.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.names import TFD
from elbolint.rule import Rule
from elbolint.rules._batch_scaling import ADD_N_CALLS, SUM_CALLS, BatchScaling, axis, strip_sign
from elbolint.rules._tfp import DEFERRED_TENSOR, TRANSFORMED_VARIABLE, VARIABLE, VI_FUNCTIONS, distribution_name

KL_FUNCTIONS = frozenset({f"{TFD}.kl_divergence"})
#: Weight posteriors of the tfp.layers layers.
_POSTERIOR_ATTRIBUTES = frozenset({"kernel_posterior", "bias_posterior"})


class KlTerms:
    """Reads whether an expression is a KL divergence (and of which posteriors)."""

    def __init__(self, rule: Rule, scaling: BatchScaling) -> None:
        self.rule = rule
        self.scaling = scaling

    def kl_factor(self, node: cst.BaseExpression, depth: int = 0) -> Optional[cst.CSTNode]:
        """The KL a factor is: a kl_divergence call (or sum of them), or the layers' losses."""
        if depth > 4:
            return None
        node = self.scaling.uncast(strip_sign(node))
        if is_losses(node) or self.layer_losses(node):
            return node
        whole = self.whole_kl(node)
        if whole is not None:
            return whole[0][0]
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.rule.value_of(node)
            if value is not node:
                return self.kl_factor(value, depth + 1)
        return None

    def whole_kl(self, node: cst.BaseExpression,
                 depth: int = 0) -> Optional[tuple[list[cst.Call], list[cst.BaseExpression]]]:
        """(kl_divergence calls, their posteriors) when `node` is a whole KL: `tfd.kl_divergence(q,
        p)`, `q.kl_divergence(p)`, their `tf.reduce_sum`, `tf.add_n` / `sum` / `+` of several."""
        if depth > 5:
            return None
        node = strip_sign(node)
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.rule.value_of(node)
            return None if value is node else self.whole_kl(value, depth + 1)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            left, right = self.whole_kl(node.left, depth + 1), self.whole_kl(node.right, depth + 1)
            if left is None or right is None:
                return None
            return left[0] + right[0], left[1] + right[1]
        if isinstance(node, (cst.List, cst.Tuple)) and node.elements:
            calls: list[cst.Call] = []
            posteriors: list[cst.BaseExpression] = []
            for element in node.elements:
                inner = self.whole_kl(element.value, depth + 1)
                if inner is None:
                    return None
                calls += inner[0]
                posteriors += inner[1]
            return calls, posteriors
        if not isinstance(node, cst.Call) or not node.args or any(a.star for a in node.args):
            return None
        names = self.rule.call_names(node)
        if names & KL_FUNCTIONS:
            first = self.rule.get_arg(node, "distribution_a", 0)
            return ([node], [first.value]) if first is not None else None
        if not names and isinstance(node.func, cst.Attribute) and node.func.attr.value == "kl_divergence":
            return [node], [node.func.value]
        builtin_sum = isinstance(node.func, cst.Name) and node.func.value == "sum" and not names
        if (names & (SUM_CALLS | ADD_N_CALLS) or builtin_sum) and axis(node) is None:
            return self.whole_kl(node.args[0].value, depth + 1)
        return None

    def layer_losses(self, node: cst.BaseExpression) -> bool:
        """`sum(model.losses)`, `tf.add_n(model.losses)`, `tf.reduce_sum(model.losses)`."""
        if not isinstance(node, cst.Call) or not node.args:
            return False
        names = self.rule.call_names(node)
        builtin_sum = isinstance(node.func, cst.Name) and node.func.value == "sum" and not names
        if not (builtin_sum or names & (SUM_CALLS | ADD_N_CALLS)):
            return False
        inner = node.args[0].value
        return losses_expression(inner) or losses_expression(self.rule.value_of(inner))

    def global_posterior(self, node: cst.BaseExpression) -> bool:
        """A posterior over global parameters (weights): a distribution built from trainable
        variables, a `tfp.experimental.vi` surrogate, a layer's `kernel_posterior`. An encoder's
        output (a VAE's per-example latent) or anything unreadable is not."""
        value = self.rule.value_of(node)
        if isinstance(value, cst.Attribute) and value.attr.value in _POSTERIOR_ATTRIBUTES:
            return True
        if not isinstance(value, cst.Call):
            return False
        if not self.rule.call_names(value).isdisjoint(VI_FUNCTIONS):
            return True
        return distribution_name(self.rule.resolver, value) is not None and self._has_variable(value)

    def _has_variable(self, node: cst.CSTNode, depth: int = 0) -> bool:
        if depth > 3:
            return False
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, cst.Call):
                names = self.rule.call_names(current)
                if names & (VARIABLE | TRANSFORMED_VARIABLE | DEFERRED_TENSOR):
                    return True
                if (isinstance(current.func, cst.Attribute)
                        and current.func.attr.value in ("add_weight", "add_variable")):
                    return True
            if isinstance(current, (cst.Name, cst.Attribute)):
                value = self.rule.value_of(current)
                if value is not current and self._has_variable(value, depth + 1):
                    return True
                if isinstance(current, cst.Name):
                    continue
            if isinstance(current, cst.Lambda):
                continue
            stack.extend(current.children)
        return False


def is_losses(node: cst.BaseExpression) -> bool:
    """`model.losses`, `self.losses`, `layer.losses`."""
    return isinstance(node, cst.Attribute) and node.attr.value == "losses"


def losses_expression(node: cst.BaseExpression) -> bool:
    """`model.losses`, or a concatenation `hidden.losses + output.losses`."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        return losses_expression(node.left) and losses_expression(node.right)
    return is_losses(node)


# --------------------------------------------------------------------------- message text
def kl_name(rule: Rule) -> str:
    """`tfd.kl_divergence` as this file spells it (`tfp.distributions.kl_divergence` without `tfd`)."""
    return rule.resolver.local_name_for(f"{TFD}.kl_divergence") or "tfp.distributions.kl_divergence"


def short(rule: Rule, node: cst.CSTNode, limit: int = 60) -> str:
    """The code of `node` on one line, cut to `limit` characters."""
    return short_text(rule.source(node), limit)


def short_text(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."

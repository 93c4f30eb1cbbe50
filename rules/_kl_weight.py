"""ELB010's check of a KL weight's value: batch_size / N where Keras averages the loss and 1 / N is meant.

Why this module exists: it is one of ELB010's three checks (unscaled_kl_divergence.py holds the rule,
its documentation and the dispatch). A `DenseVariational(kl_weight=batch_size / num_train)`, or a
`kernel_divergence_fn` / `bias_divergence_fn` that multiplies the KL by batch_size / N, is right only
next to a loss that sums over the batch; next to Keras' averaged losses (string losses,
`tf.keras.losses` objects, per-example functions) the KL weighs batch_size times too much. The
fraction is read by the shared helper (_batch_scaling.py: a literal `128 / 60000` counts only when
128 is one of the file's batch sizes; full-batch training is never flagged); the layer is reported
only when its KL reaches a loss (the layer check's `fate`, _kl_layers.py).

The same message serves the hand-written loss check (_kl_batch_loss.py) for a weighted KL added to a
batch-mean likelihood (`report_fraction(..., in_loss=True)`).
"""

from __future__ import annotations

from typing import Callable, Union

import libcst as cst

from elbolint.rule import Rule
from elbolint.rules._batch_scaling import MEAN, BatchScaling, Fraction, is_none
from elbolint.rules._kl_layers import KERNEL_DIVERGENCE_POSITION, KL_WEIGHT_POSITION
from elbolint.rules._kl_terms import KlTerms, kl_name

#: What scales a layer's KL: the fraction of its `kl_weight`, or its divergence function (a lambda,
#: or the name of a def of the file), whose fraction is known once the file has been read.
Weighted = Union[Fraction, cst.Lambda, cst.Name]


class KlWeightCheck:
    """Collects the layers' weights and the divergence functions' factors; reports at the end."""

    def __init__(self, rule: Rule, scaling: BatchScaling, terms: KlTerms,
                 functions: dict[str, cst.FunctionDef]) -> None:
        self.rule = rule
        self.scaling = scaling
        self.terms = terms
        self.functions = functions
        # layer call -> (what, the function or weight that scales its KL): decided in `finish`
        self._weighted: list[tuple[cst.Call, str, Weighted]] = []
        self._batch_weights: dict[int, Fraction] = {}  # def / lambda node -> fraction found in it

    def visit_layer(self, node: cst.Call, layer: str) -> None:
        """A variational layer's `kl_weight`, or its divergence functions."""
        if layer == "DenseVariational":
            weight = self.rule.get_arg(node, "kl_weight", KL_WEIGHT_POSITION)
            if weight is not None and not is_none(weight.value):
                fraction = self.scaling.batch_fraction(weight.value)
                if fraction is not None:
                    self._weighted.append((node, f"kl_weight={self.rule.source(weight.value)}", fraction))
            return
        position = KERNEL_DIVERGENCE_POSITION[layer]
        positional = sum(1 for arg in node.args if arg.keyword is None)
        if positional > position:
            return  # passed positionally; too unusual to read reliably
        for keyword in ("kernel_divergence_fn", "bias_divergence_fn"):
            divergence = self.rule.get_arg(node, keyword)
            if divergence is not None and not is_none(divergence.value):
                function = self.rule.value_of(divergence.value)
                if isinstance(function, (cst.Lambda, cst.Name)):
                    self._weighted.append((node, f"{keyword}={self.rule.source(divergence.value)}", function))

    def visit_scaling(self, node: cst.BinaryOperation) -> None:
        """A product or quotient in a def or lambda: the first batch_size / N weight of a KL in it."""
        scope = self.rule.resolver.scope_node
        if isinstance(scope, (cst.Lambda, cst.FunctionDef)) and id(scope) not in self._batch_weights:
            fraction = self.scaling.batch_fraction(node, self.terms.kl_factor)
            if fraction is not None:
                self._batch_weights[id(scope)] = fraction

    def finish(self, fate: Callable[[cst.Call], tuple[str, dict]]) -> None:
        """Report the weights of the layers whose KL reaches a loss (`fate`), when every loss of the
        file averages over the batch."""
        kinds = self.scaling.resolved_loss_kinds()
        if kinds == {MEAN}:
            for call, what, weighted in self._weighted:
                fraction = self._fraction_for(weighted)
                if fraction is not None and self.scaling.literal_is_batch(fraction) and fate(call)[0] != "quiet":
                    self.report_fraction(call, what, fraction, in_loss=False)

    def _fraction_for(self, weighted: Weighted) -> Union[Fraction, None]:
        if isinstance(weighted, tuple):
            return weighted
        if isinstance(weighted, cst.Lambda):
            return self._batch_weights.get(id(weighted))
        if isinstance(weighted, cst.Name):
            definition = self.functions.get(weighted.value)
            return self._batch_weights.get(id(definition)) if definition is not None else None
        return None

    def report_fraction(self, node: cst.CSTNode, what: str, fraction: Fraction, in_loss: bool) -> None:
        kind, batch, denominator = fraction
        batch_text = self.rule.source(batch) if kind == "name" else f"{batch:g}"
        n_text = " * ".join(self.rule.source(d) for d in denominator)
        if len(denominator) > 1:
            n_text = f"({n_text})"
        if in_loss:
            right = f"the KL / {n_text}"
            where = "the likelihood is averaged over the batch"
        else:
            right = (f"kl_weight=1 / {n_text}" if what.startswith("kl_weight") else
                     f"lambda q, p, _: {kl_name(self.rule)}(q, p) / {n_text}")
            where = "Keras averages the loss over the batch"
        self.rule.report(
            node,
            f"{what} weighs the KL by batch_size / N ({batch_text} / {n_text}), but {where}: the KL is "
            f"{batch_text} times too heavy (per example it needs 1 / N); use {right}",
        )

"""ELB010's check of the variational layers: a `tfp.layers` layer whose KL reaches a batch loss unscaled.

Why this module exists: it is one of ELB010's three checks (unscaled_kl_divergence.py holds the rule,
its documentation and the dispatch). A `DenseFlipout` (and the other `tfp.layers` layers with a
`kernel_divergence_fn`) keeping the default divergence, or one with a divergence function that
neither divides nor multiplies, and a `DenseVariational` without `kl_weight`, add the whole KL to
the loss. Whether that is wrong depends on where the KL goes (`LayerCheck.fate`): the model the
layer was put in is followed (_kl_model_flow.py) to a Keras `compile` / `fit` (always wrong), to a
hand-written loss that adds its `model.losses` whole to a batch-mean or (in a file that batches a
data set) batch-summed likelihood (wrong), or to a loss that scales them (right: the KL is then per
example already). A model that cannot be followed is judged by the file as a whole
(`_file_fate`). The message names the layer and its model, says what the KL is added to, and gives
the fix that is right there: 1 / N next to an average, batch_size / N next to a batch sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import libcst as cst

from elbolint.names import TFPL, member_of
from elbolint.rule import Rule
from elbolint.rules._batch_scaling import MEAN, SCALING_CALLS, SUM, BatchScaling, is_none
from elbolint.rules._kl_model_flow import ModelFlow, Owner
from elbolint.rules._kl_terms import kl_name, short, short_text
from elbolint.walk import visit

if TYPE_CHECKING:
    from elbolint.rules._kl_batch_loss import BatchLossCheck, LossesRead

#: Layer -> position of `kernel_divergence_fn` (None: the layer takes `kl_weight` instead).
KERNEL_DIVERGENCE_POSITION = {
    "DenseFlipout": 7, "DenseReparameterization": 7, "DenseLocalReparameterization": 7,
    **{f"Convolution{d}D{kind}": 11 for d in (1, 2, 3) for kind in ("Flipout", "Reparameterization")},
}
KL_WEIGHT_POSITION = 3  # DenseVariational(units, make_posterior_fn, make_prior_fn, kl_weight)

#: (verdict, detail): see `LayerCheck.fate`.
Fate = tuple[str, dict[str, Any]]


class LayerCheck:
    """Collects the layers that leave their KL whole; reports those whose KL reaches a batch loss."""

    def __init__(self, rule: Rule, flow: ModelFlow, scaling: BatchScaling, loss: BatchLossCheck,
                 functions: dict[str, cst.FunctionDef]) -> None:
        self.rule = rule
        self.flow = flow
        self.scaling = scaling
        self.loss = loss
        self.functions = functions
        # unscaled layers: (layer call, layer name, how its KL is left whole, divergence fn source)
        self._unscaled: list[tuple[cst.Call, str, str, str]] = []
        self._pending: list[tuple[cst.Call, str, str]] = []  # divergence fn referred to by def name

    def layer(self, node: cst.Call) -> Optional[str]:
        """The `tfp.layers` variational layer `node` builds, if it builds one."""
        for qualified in self.rule.call_names(node):
            member = member_of(qualified, TFPL)
            if member == "DenseVariational" or member in KERNEL_DIVERGENCE_POSITION:
                return member
        return None

    def visit_layer(self, node: cst.Call, layer: str) -> None:
        """A layer without `kl_weight`, with the default divergence or one that does not scale."""
        if layer == "DenseVariational":
            weight = self.rule.get_arg(node, "kl_weight", KL_WEIGHT_POSITION)
            if weight is None or is_none(weight.value):
                self._unscaled.append((node, layer, "no-weight", ""))
            return
        position = KERNEL_DIVERGENCE_POSITION[layer]
        positional = sum(1 for arg in node.args if arg.keyword is None)
        if positional > position:
            return  # passed positionally; too unusual to read reliably
        divergence = self.rule.get_arg(node, "kernel_divergence_fn")
        if divergence is None:
            self._unscaled.append((node, layer, "default", ""))
            return
        if is_none(divergence.value):
            return  # no KL term at all
        function = self.rule.value_of(divergence.value)
        if isinstance(function, cst.Lambda):
            if not self._scales(function.body):
                self._unscaled.append((node, layer, "lambda", self.rule.source(divergence.value)))
        elif isinstance(function, cst.Name):
            self._pending.append((node, layer, function.value))

    def finish(self) -> None:
        """Read the divergence functions defined by name, then report the layers whose KL reaches a loss."""
        for call, layer, name in self._pending:
            definition = self.functions.get(name)
            if definition is not None and not self._scales(definition.body):
                self._unscaled.append((call, layer, "def", name))
        for call, layer, how, function in self._unscaled:
            verdict, detail = self.fate(call)
            if verdict != "quiet":
                self.rule.report(call, self._message(call, layer, how, function, verdict, detail))

    def _scales(self, body: cst.CSTNode) -> bool:
        """True if `body` divides or multiplies anything (we do not try to prove it is the KL)."""
        finder = _ScalingFinder(self.rule)
        visit(body, finder)
        return finder.found

    # ------------------------------------------------------------ where a layer's KL goes
    def fate(self, layer: cst.Call) -> Fate:
        """Where this layer's KL ends up: "keras" (a Keras compile / fit of its model), "mean" /
        "sum" (a hand-written loss adds its model's losses whole to a batch-mean / batch-summed
        likelihood), "keras-file" / "mean-file" / "batch-file" (its model cannot be followed, or
        goes where we cannot see; the file trains with Keras / adds layer losses whole to a
        batch-mean likelihood / batches a data set), or "quiet" (its model's losses are scaled
        where the loss is assembled, the model is never trained, or nothing batches)."""
        owner = self.flow.owner_of.get(id(layer))
        if owner is None:
            return self._file_fate(None, [])
        uses = self.flow.reach(owner)
        model = next((name for kind, _, name in reversed(uses) if kind in ("train", "losses")), owner[0])
        trains = [info for kind, info, _ in uses if kind == "train"]
        reads = [self.loss.reads[info] for kind, info, _ in uses if kind == "losses" and info in self.loss.reads]
        scaled = next((r.scaled for r in reads if r.scaled is not None), None)
        fits = [c for c in trains if not (isinstance(c.func, cst.Attribute) and c.func.attr.value == "compile")]
        if trains and (fits or scaled is None):
            # compiled only, next to a hand-written loss that scales the KL: the loop trains it
            call = next((c for c in trains if c not in fits), trains[0])
            return "keras", {"model": model, "call": call, "fit": fits[0] if fits else call, "scaled": scaled}
        for wanted in (MEAN, SUM):
            for read in reads:
                for likelihood, term, likelihood_term in read.unscaled:
                    if likelihood == wanted and (wanted == MEAN or self.scaling.minibatches):
                        return wanted, {"model": model, "term": term, "likelihood": likelihood_term}
        unread = any(r.scaled is None and all(u[0] is None for u in r.unscaled) for r in reads)
        if unread or any(kind == "escape" for kind, _, _ in uses):
            return self._file_fate(owner, reads)
        return "quiet", {}

    def _file_fate(self, owner: Optional[Owner], reads: list[LossesRead]) -> Fate:
        attributed = self.flow.attributed_reads()
        own = {id(r) for r in reads}
        relevant = reads + [r for key, r in self.loss.reads.items() if key not in attributed and id(r) not in own]
        if relevant and all(r.scaled is not None for r in relevant):
            return "quiet", {}
        detail = {"model": owner[0] if owner is not None else None}
        if self.scaling.keras_training is not None:
            return "keras-file", {**detail, "call": self.scaling.keras_training}
        for read in relevant:
            for likelihood, term, likelihood_term in read.unscaled:
                if likelihood == MEAN:
                    return "mean-file", {**detail, "term": term, "likelihood": likelihood_term}
        if self.scaling.batches and self.scaling.batch_call is not None:
            return "batch-file", {**detail, "call": self.scaling.batch_call}
        return "quiet", {}

    # ----------------------------------------------------------------------- messages
    def _describe(self, call: cst.Call, layer: str) -> str:
        """`DenseFlipout(256, ...)`: the layer as a reader finds it."""
        positional = [a for a in call.args if a.keyword is None]
        first = short(self.rule, positional[0].value, 24) if positional else ""
        more = ", ..." if len(call.args) > len(positional[:1]) else ""
        return f"`{layer}({first}{more})`" if first else f"`{layer}({'...' if call.args else ''})`"

    def _message(self, call: cst.Call, layer: str, how: str, function: str, verdict: str,
                 detail: dict[str, Any]) -> str:
        """Name the layer, say what its whole KL is added to, and give the fix that is right there
        (1 / N next to an averaged likelihood, batch_size / N next to a batch sum)."""
        model = detail.get("model")
        what = {
            "default": "keeps the default kernel_divergence_fn (the whole KL divergence)",
            "lambda": "has a kernel_divergence_fn that returns the whole KL divergence "
                      f"(`{short_text(function)}`)",
            "def": f"has kernel_divergence_fn={function}, which returns the whole KL divergence",
            "no-weight": "has no kl_weight (the whole KL divergence)",
        }[how]
        head = f"{self._describe(call, layer)}{f' in `{model}`' if model else ''} {what}"
        summed = verdict == "sum" or (verdict in ("keras", "keras-file")
                                      and self.scaling.keras_kind(detail.get("call")) == SUM)
        factor = "* batch_size / num_examples" if summed else "/ num_examples"
        if how == "no-weight":
            fix = f"pass kl_weight={'batch_size' if summed else '1'} / num_examples"
        elif how == "def":
            fix = f"make `{function}` return {kl_name(self.rule)}(q, p) {factor}"
        else:
            fix = f"pass kernel_divergence_fn=lambda q, p, _: {kl_name(self.rule)}(q, p) {factor}"
        if verdict in ("keras", "keras-file"):
            return self._keras_message(head, fix, model, verdict, detail)
        per_example = "per example the KL weighs N (the number of training examples) times too much"
        per_batch = "the KL weighs num_examples / batch_size times too much"
        if verdict in ("mean", "mean-file", "sum"):
            term = short(self.rule, detail["term"], 40)
            likelihood = short(self.rule, detail["likelihood"], 50) if detail.get("likelihood") is not None else "?"
            if verdict == "mean-file":
                return (f"{head}, in a file that adds layer losses unscaled (`{term}`) to `{likelihood}`, a likelihood "
                        f"averaged over the batch: {per_example}; divide them once: where the loss is assembled "
                        f"(`{term} / num_examples`) or in the layer ({fix})")
            if verdict == "sum":
                return (f"{head}, and `{term}` adds that KL unscaled to `{likelihood}`, a likelihood summed over one "
                        f"batch of a `.batch(...)` data set: {per_batch}; scale it once: where the loss is assembled "
                        f"(`{term} * batch_size / num_examples`) or in the layer ({fix})")
            return (f"{head}, and `{term}` adds that KL unscaled to `{likelihood}`, a likelihood averaged over the "
                    f"batch: {per_example}; divide it once: where the loss is assembled (`{term} / num_examples`) "
                    f"or in the layer ({fix})")
        batch = detail["call"]
        batch_text = f".batch({short_text(', '.join(self.rule.source(a) for a in batch.args), 30)})"
        return (f"{head}, in a file that trains on mini-batches (`{batch_text}`) with no scaling "
                f"of this KL in sight: every batch's loss carries the whole KL, so next to a batch-averaged likelihood "
                f"{per_example} (num_examples / batch_size times next to a batch sum); {fix}, or scale the "
                "layers' losses once where the loss is assembled")

    def _keras_message(self, head: str, fix: str, model: Optional[str], verdict: str,
                       detail: dict[str, Any]) -> str:
        """The message of a layer whose KL Keras adds to every batch's loss."""
        per_example = "per example the KL weighs N (the number of training examples) times too much"
        per_batch = "the KL weighs num_examples / batch_size times too much"
        trainer = f"`{short(self.rule, detail.get('fit', detail['call']).func)}(...)`"
        call = detail["call"]
        compiles = isinstance(call.func, cst.Attribute) and call.func.attr.value == "compile"
        loss = self.rule.get_arg(call, "loss", 1) if compiles else None
        loss_text = f"`loss={short(self.rule, loss.value, 40)}`" if loss is not None else "the compiled loss"
        kind = self.scaling.keras_kind(detail.get("call"))
        if kind == SUM:
            against = f"{loss_text} summed over the batch: {per_batch}"
        elif kind == MEAN:
            against = f"{loss_text} averaged over the batch's examples: {per_example}"
        else:
            against = (f"{loss_text}; next to a per-example loss, which Keras averages over the batch, "
                       f"{per_example}")
        trained = f"and `{model}` is trained with Keras ({trainer})" if verdict == "keras" else \
            f"in a file that trains with Keras ({trainer})"
        message = f"{head}, {trained}, which adds that KL unscaled to every batch's loss, {against}; {fix}"
        if detail.get("scaled") is not None:
            message += (f"; the scaling in `{short(self.rule, detail['scaled'])}` reaches only the hand-written loss, "
                        "not what Keras minimises: once the layer divides, drop it there, or that loss divides "
                        "the KL twice")
        return message


class _ScalingFinder(cst.CSTVisitor):
    """Whether a divergence function divides or multiplies anything."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.found = False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Divide, cst.Multiply, cst.FloorDivide)):
            self.found = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, (cst.DivideAssign, cst.MultiplyAssign)):
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("divide", "truediv", "multiply"):
            self.found = True
        elif not self.rule.call_names(node).isdisjoint(SCALING_CALLS):
            self.found = True

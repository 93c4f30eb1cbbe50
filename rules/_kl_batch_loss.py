"""ELB010's check of hand-written losses: a whole KL added to a likelihood of one batch.

Why this module exists: it is one of ELB010's three checks (unscaled_kl_divergence.py holds the rule,
its documentation and the dispatch). A loss written by hand, `likelihood +/- KL`, is read term by
term (`BatchLossCheck.read_loss`):

- a whole KL of a posterior over global weights (_kl_terms.py) next to a likelihood averaged over
  the batch (`tf.reduce_mean(...)` with no sum inside, a `tf.keras.losses` object) is reported at
  once; next to a likelihood summed over the batch it is reported at the end of the file, and only
  when the file batches a data set with `.batch(n)` (`finish`);
- a KL weighted batch_size / N next to a batch-mean likelihood is reported with the weight check's
  message (_kl_weight.py);
- the layers' own KL terms read by hand (`sum(model.losses)`) are recorded per `.losses` read, as
  scaled (`sum(model.losses) / N`, `kl /= N`, through names) or added whole to a MEAN / SUM
  likelihood: the layer check (_kl_layers.py) reads `reads` to decide where a layer's KL goes.

A mean over draws of q is not a likelihood of a batch: `tf.reduce_mean(target.log_prob(z))` with
`z = q.sample(256)` (ADVI against a known target) needs the whole KL and is never read as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Optional

import libcst as cst

from elbolint.rule import Rule
from elbolint.rules._batch_scaling import (
    DIVIDE_CALLS, MEAN, MEAN_CALLS, MULTIPLY_CALLS, SUM, SUM_CALLS, SUMMING_NAMES, BatchScaling, axis,
    keras_reduction, strip_sign,
)
from elbolint.rules._kl_model_flow import ModelFlow
from elbolint.rules._kl_terms import KlTerms, is_losses, short
from elbolint.rules._kl_weight import KlWeightCheck
from elbolint.walk import visit

#: Densities: `target.log_prob(z)`, `target_log_prob_fn(z)`, `log_joint(z)`.
_DENSITY_METHODS = frozenset({"log_prob", "unnormalized_log_prob", "log_prob_parts"})
_DENSITY_NAME = re.compile(r"log_?prob|log_?joint|log_?density|log_?posterior|log_?target|^logp$", re.I)
#: Draws from a distribution (`q.sample(64)`, `q.experimental_sample_and_log_prob(64)`).
_SAMPLE_METHODS = frozenset({"sample", "experimental_sample_and_log_prob"})


@dataclass(eq=False)
class LossesRead:
    """What happens to one `.losses` read: scaled where the loss is assembled (the scaling node), or
    added whole to likelihoods: [(MEAN / SUM / None, the loss term, the likelihood term)]."""

    scaled: Optional[cst.CSTNode] = None
    unscaled: list[tuple[Optional[str], cst.BaseExpression, Optional[cst.CSTNode]]] = field(default_factory=list)


class BatchLossCheck:
    """Reads hand-written losses; reports whole or batch-weighted KLs, records the layers' losses."""

    def __init__(self, rule: Rule, flow: ModelFlow, scaling: BatchScaling, terms: KlTerms,
                 weights: KlWeightCheck) -> None:
        self.rule = rule
        self.flow = flow
        self.scaling = scaling
        self.terms = terms
        self.weights = weights
        # the layers' losses read by hand: `.losses` attribute -> what happens to it
        self.reads: dict[int, LossesRead] = {}
        self._draws: dict[tuple, bool] = {}  # (scopes, name) -> its last value is a draw of a distribution
        self._chains: set[int] = set()  # inner nodes of `+` / `-` chains already read
        self._reported_kl: set[int] = set()
        self._sum_candidates: list[tuple[cst.CSTNode, str, str]] = []  # whole KL + summed batch likelihood

    # ------------------------------------------------------------------ what the traversal meets
    def note_draws(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """Which names hold draws of a distribution: `z = q.sample(64)`, `z, log_q =
        q.experimental_sample_and_log_prob(64)` (the first element)."""
        scopes = self.flow.scope_tuple
        draw = isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
            value.func.attr.value in _SAMPLE_METHODS
        if isinstance(target, cst.Name):
            self._draws[(scopes, target.value)] = draw and isinstance(value, cst.Call) and \
                isinstance(value.func, cst.Attribute) and value.func.attr.value == "sample"
        elif isinstance(target, (cst.Tuple, cst.List)):
            for index, element in enumerate(target.elements):
                if isinstance(element.value, cst.Name):
                    self._draws[(scopes, element.value.value)] = draw and index == 0

    def note_losses_attribute(self, node: cst.Attribute) -> None:
        """`model.losses` is a read of the layers' KL terms; `tf.keras.losses` is a module."""
        if node.attr.value == "losses":
            if self.rule.qualified_names(node):
                self.reads.pop(id(node), None)  # `tf.keras.losses`: a module, not a model's losses
            else:
                self.reads.setdefault(id(node), LossesRead())

    def in_chain(self, node: cst.BinaryOperation) -> bool:
        """An inner `+` / `-` of a loss already read as a whole."""
        return id(node) in self._chains

    def mark_scaled(self, node: cst.BaseExpression, scaling: cst.CSTNode) -> None:
        """`sum(model.losses) / n`, `kl_weight * tf.reduce_sum(model.losses)`, `kl /= n` (through
        names): those layers' KL is scaled where the loss is assembled."""
        factors = [node] if isinstance(scaling, cst.AugAssign) else self.scaling.factors(node)[0]
        for factor in factors:
            kl = self.terms.kl_factor(factor)
            if kl is None:
                continue
            for read in _losses_in(kl):
                entry = self.reads.setdefault(read, LossesRead())
                if entry.scaled is None:
                    entry.scaled = scaling

    def scaling_call(self, node: cst.Call) -> bool:
        """`tf.math.divide(...)` / `tf.multiply(...)`: scales like `/` and `*`."""
        return bool(self.rule.call_names(node) & (DIVIDE_CALLS | MULTIPLY_CALLS))

    def _mark_unscaled(self, losses: cst.CSTNode, term: cst.BaseExpression, likelihood: Optional[str],
                       likelihood_term: Optional[cst.CSTNode]) -> None:
        """The loss term `term` adds these layer losses (`losses`, its value) whole to a likelihood
        (MEAN, SUM, or None when it cannot be read)."""
        for read in _losses_in(losses):
            entry = self.reads.setdefault(read, LossesRead())
            entry.unscaled.append((likelihood, term, likelihood_term))

    # ------------------------------------------------------------------ one hand-written loss
    def read_loss(self, node: cst.BinaryOperation) -> None:
        """A hand-written loss `likelihood +/- KL`: how the likelihood reduces the batch, and
        whether the KL next to it is whole, weighted batch_size / N, or the layers' losses."""
        terms: list[cst.BaseExpression] = []
        self._flatten_chain(node, terms)
        kinds = [(term, self._term(term)) for term in terms]
        likelihood_terms = [(term, kind) for term, (kind, _) in kinds if kind in (MEAN, SUM)]
        likelihoods = {kind for _, kind in likelihood_terms}
        likelihood = likelihoods.pop() if len(likelihoods) == 1 else None
        likelihood_term = likelihood_terms[0][0] if likelihood is not None else None
        for term, (kind, info) in kinds:
            if kind == "losses":
                self._mark_unscaled(info, term, likelihood, likelihood_term)
                if likelihood is not None:
                    self.scaling.loss_kinds.append(likelihood)
        if likelihood is None or likelihood_term is None:
            return
        for term, (kind, info) in kinds:
            if kind == "scaled":
                self.scaling.loss_kinds.append(likelihood)
                fraction, kl = info
                if likelihood == MEAN and fraction is not None and self.scaling.literal_is_batch(fraction) \
                        and id(kl) not in self._reported_kl:
                    self._reported_kl.add(id(kl))
                    self.weights.report_fraction(term, f"`{self.rule.source(term)}`", fraction, in_loss=True)
            elif kind == "kl":
                if id(info) in self._reported_kl:
                    continue
                if likelihood == MEAN:
                    self._reported_kl.add(id(info))
                    source = self.kl_source(term)
                    self.rule.report(
                        term,
                        f"the whole KL (`{source}`) is added to `{short(self.rule, likelihood_term, 50)}`, a "
                        "likelihood averaged over the batch: per example the KL weighs N (the number of training "
                        f"examples) times too much and drowns the data; divide it by the number of training "
                        f"examples (`{source} / num_examples`)",
                    )
                elif self.rule.resolver.in_function or self.flow.loops:
                    self._reported_kl.add(id(info))
                    self._sum_candidates.append((term, self.kl_source(term), short(self.rule, likelihood_term, 50)))

    def finish(self) -> None:
        """A whole KL next to a likelihood summed over one batch: reported when the file batches a data set."""
        if self.scaling.minibatches:
            for term, source, likelihood in self._sum_candidates:
                self.rule.report(
                    term,
                    f"the whole KL (`{source}`) is added to `{likelihood}`, a likelihood summed over one batch of a "
                    f"`.batch(...)` data set: it weighs num_examples / batch_size times too much; scale it by "
                    "batch_size / num_examples (or average the likelihood and divide the KL by num_examples)",
                )

    def kl_source(self, term: cst.BaseExpression) -> str:
        """`kl` -> "kl` (`tf.reduce_sum(tfd.kl_divergence(q, prior))`": a name with what it holds."""
        value = self.rule.value_of(strip_sign(term))
        if value is term or not isinstance(strip_sign(term), cst.Name):
            return short(self.rule, term)
        return f"{short(self.rule, term)}` = `{short(self.rule, value)}"

    def _flatten_chain(self, node: cst.BaseExpression, terms: list[cst.BaseExpression]) -> None:
        """The terms of `a + b - (c + d)` (signs do not matter here)."""
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
            self._chains.add(id(node))
            self._flatten_chain(node.left, terms)
            self._flatten_chain(node.right, terms)
        else:
            terms.append(node)

    def _term(self, node: cst.BaseExpression, depth: int = 0) -> tuple[str, Any]:
        """(kind, info) of one term of a loss: MEAN / SUM (a batch likelihood), "kl" (a whole
        KL of a global posterior; info: its kl_divergence call), "losses" (`sum(model.losses)`),
        "scaled" (a KL times a weight; info: (batch fraction or None, kl node)), or ("", None)."""
        if depth > 4:
            return "", None
        node = strip_sign(node)
        if isinstance(node, (cst.Name, cst.Attribute)) and not is_losses(node):
            value = self.rule.value_of(node)
            if value is not node:
                return self._term(value, depth + 1)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide)):
            numerator, denominator = self.scaling.factors(node)
            kl = [f for f in numerator if self.terms.kl_factor(f) is not None]
            if len(kl) == 1 and not any(self.terms.kl_factor(f) is not None for f in denominator):
                return "scaled", (self.scaling.batch_fraction(node, self.terms.kl_factor),
                                  self.terms.kl_factor(kl[0]))
            return "", None
        if is_losses(node) or self.terms.layer_losses(node):
            return "losses", node
        whole = self.terms.whole_kl(node)
        if whole is not None:
            calls, posteriors = whole
            if posteriors and all(self.terms.global_posterior(q) for q in posteriors):
                return "kl", calls[0]
            return "", None
        if isinstance(node, cst.Call):
            return self._likelihood(node), node
        return "", None

    def _likelihood(self, call: cst.Call) -> str:
        names = self.rule.call_names(call)
        if names & (MEAN_CALLS | SUM_CALLS):
            if axis(call) is not None or not call.args:
                return ""
            inner = call.args[0].value
            if self._density_at_samples(inner):
                return ""  # a Monte Carlo average over draws of q (ADVI against a known target), not data
            if not names.isdisjoint(MEAN_CALLS):
                return "" if self._mentions(inner, SUMMING_NAMES | {"kl_divergence", "losses"}) else MEAN
            return SUM if self._mentions(inner, {"log_prob", "log_likelihood"}) and \
                not self._mentions(inner, {"kl_divergence", "losses"}) else ""
        # `loss_fn(y, logits)` with `loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()`
        made = self.rule.value_of(call.func)
        if isinstance(made, cst.Call) and any(n.startswith("keras.losses.") for n in self.rule.call_names(made)):
            return keras_reduction(made)
        return ""

    def _density_at_samples(self, node: cst.BaseExpression) -> bool:
        """True if every density `node` evaluates (`target.log_prob(z)`, `log_joint(z)`, through
        names) is evaluated at draws of a distribution (`z = q.sample(64)`): an average over the
        samples of q, with no data term (a likelihood of data is `dist.log_prob(y)`)."""
        calls: list[cst.Call] = []
        stack: list[cst.BaseExpression] = [node]
        seen: set[int] = set()
        while stack and len(seen) < 24:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            finder = _DensityFinder()
            visit(current, finder)
            calls += finder.found
            stack += [v for v in (self.rule.value_of(n) for n in finder.names) if not isinstance(v, cst.Name)]
        return bool(calls) and all(
            c.args and c.args[0].keyword is None and self._is_sample(c.args[0].value) for c in calls)

    def _is_sample(self, node: cst.BaseExpression) -> bool:
        for _ in range(3):
            while isinstance(node, cst.Subscript):
                node = node.value
            if isinstance(node, cst.Name):
                scopes = self.flow.scope_tuple
                for depth in range(len(scopes), -1, -1):
                    if (scopes[:depth], node.value) in self._draws:
                        if self._draws[(scopes[:depth], node.value)]:
                            return True
                        break
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value in _SAMPLE_METHODS:
                return True
            flow = self.rule.resolver.follow(node)
            if flow.node is node:
                return False
            node = flow.node
        return False

    def _mentions(self, node: cst.BaseExpression, words: AbstractSet[str]) -> bool:
        """True if `node` (or the value of the name it is) calls or reads any of `words`."""
        node = self.rule.value_of(node)
        finder = _WordFinder(words)
        visit(node, finder)
        return finder.found


def _losses_in(node: cst.CSTNode) -> list[int]:
    """The `.losses` attributes in `node` (`sum(model.losses)`, `hidden.losses + out.losses`)."""
    finder = _LossesFinder()
    visit(node, finder)
    return finder.found


class _LossesFinder(cst.CSTVisitor):
    """The `.losses` attributes in a subtree (not inside lambdas)."""

    def __init__(self) -> None:
        self.found: list[int] = []

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "losses":
            self.found.append(id(node))

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


class _WordFinder(cst.CSTVisitor):
    """Finds a call or attribute named one of `words` (`tf.reduce_sum(...)`, `x.sum()`, `.log_prob`)."""

    def __init__(self, words: AbstractSet[str]) -> None:
        self.words = words
        self.found = False

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in self.words:
            self.found = True

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in self.words:
            self.found = True


class _DensityFinder(cst.CSTVisitor):
    """Calls of densities in an expression: `.log_prob(...)`, `target_log_prob_fn(...)`."""

    def __init__(self) -> None:
        self.found: list[cst.Call] = []
        self.names: list[cst.Name] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.names.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last in _DENSITY_METHODS or (last and _DENSITY_NAME.search(last)):
            self.found.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


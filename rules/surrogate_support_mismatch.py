"""ELB014 surrogate-support-mismatch: a surrogate component that puts mass where its prior has none.

This module is the rule itself: what it starts from (the fits), its traversal (fits read in place, or at
each call of the function that receives the model and the surrogate), and the message and advice of a
finding. What the rule knows lives in private modules, each answering one question:
rules/_support_table.py (where each TFP distribution has density, checked against TFP by
tests/test_support_table.py), rules/_support_reading.py (what support a distribution written in the
file has, through wrappers and bijectors), rules/_support_models.py (the components of a model or a
surrogate) and rules/_support_matching.py (which surrogate component the target hands to which model
component).
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TFB, TFD, TFP_EXPERIMENTAL_VI, TFP_VI, names_in
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._support_matching import Match, TargetMatcher
from elbolint.rules._support_models import COROUTINE, ModelReader, Part
from elbolint.rules._support_reading import SupportReader
from elbolint.rules._support_table import INF, Support, describe, describe_bound, wider
# The support table, where tests/test_support_table.py reads it (as the rule's own facts).
from elbolint.rules._support_table import (  # noqa: F401
    BOUND_PARAMETERS, EXCLUDED, REAL_LINE_IMAGES, SUPPORTS, SupportSpec,
)

_FIT = names_in(TFP_VI, "fit_surrogate_posterior", "monte_carlo_variational_loss")


class SurrogateSupportMismatch(Rule):
    """
    ## What it does
    Flags a surrogate posterior component whose support is wider than the support of the prior it
    stands for: a `tfd.Normal` (or any real-valued family) for a positive latent (`HalfNormal`,
    `Gamma`, `LogNormal`, `Exponential`, `InverseGamma`, ...), a positive family (`LogNormal`,
    `Gamma`) for a latent in the unit interval (`Beta`) or in `[low, high]` (`Uniform`,
    `TruncatedNormal`), a real-valued vector for a `Dirichlet` (simplex) or matrices for `LKJ` /
    `Wishart`.

    The surrogate is the one passed to `tfp.vi.fit_surrogate_posterior` or
    `tfp.vi.monte_carlo_variational_loss` (positionally or as `surrogate_posterior=`); its
    components are matched with the model's the way TFP passes a sample to the target: by position
    (`JointDistributionSequential`, `JointDistributionCoroutine`), by name
    (`JointDistributionNamed` keys, `name=` of the components, the argument names of the model's
    lambdas) or by keyword, through `model.log_prob`, `model.experimental_pin(y=...).unnormalized_log_prob`,
    `functools.partial(model.log_prob, y=y)`, a lambda or function that adds the observed values
    (`lambda *z: model.log_prob(z + (y,))`, `lambda w, b: model.log_prob([w, b, y])`,
    `def target(*args): return model.log_prob(*args, y=y)`, `def target(**z): return model.log_prob(**z, y=y)`),
    or a hand-written target that scores
    the sample with a prior (`tfd.HalfNormal(1.).log_prob(sigma)`). Models, surrogates and targets
    built by functions of the file are followed, and a fit inside a function of the file that
    receives them as arguments (`def fit(model, surrogate): ...`) is read at each of its calls. A surrogate built by
    `tfp.experimental.vi.build_factored_surrogate_posterior` or `build_affine_surrogate_posterior`
    is Gaussian on the real line unless its `bijector=` maps a component elsewhere; its components
    are those of its `event_shape` (`[[], []]`, a dict, `pinned.event_shape`,
    `model.event_shape_tensor()[:-1]`).

    The supports come from a table checked against TFP's own
    `experimental_default_event_space_bijector()` of every distribution in it (Softplus for Gamma,
    HalfNormal, Exponential; Exp for LogNormal; Sigmoid for Beta and, shifted and scaled, for
    Uniform; SoftmaxCentered for Dirichlet) and against what TFP's `log_prob` returns outside the
    support (tests/test_support_table.py).

    ## Why is this bad?
    The ELBO evaluates the model's log-density at the surrogate's samples. Nothing stops a
    `tfd.Normal` from drawing a negative `sigma`, and the prior has no density there:
    `HalfNormal`'s `log_prob` is `-inf`, `Gamma`'s and `LogNormal`'s are NaN (TFP does not check
    their support), and a likelihood that uses `sigma` as a scale is NaN too. The loss is
    non-finite from the first unlucky sample (a `HalfNormal(1.)` noise scale with a
    `Normal(0.5, 0.5)` surrogate: 5 runs of 5) and the fit does not recover. A narrow surrogate far
    from the boundary only postpones it; where TFP's formula happens to be finite outside the
    support (`Exponential`, a `Gamma` with concentration 1), the fit optimises a density that does
    not exist.

    ## Example
    ```python
    model = tfd.JointDistributionSequential([
        tfd.HalfNormal(1.0, name="sigma"),
        tfd.Normal(0.0, 1.0, name="mu"),
        lambda mu, sigma: tfd.Sample(tfd.Normal(mu, sigma), sample_shape=len(y)),
    ])
    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus())),  # sigma
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(0.5, tfb.Softplus())),  # mu
    ])
    tfp.vi.fit_surrogate_posterior(
        lambda sigma, mu: model.log_prob([sigma, mu, y]), surrogate, optimizer, num_steps=500)
    ```

    ## Use instead
    A family on the prior's support, or an unconstrained one mapped there:
    ```python
    surrogate = tfd.JointDistributionSequential([
        tfd.LogNormal(tf.Variable(-0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus())),
        # or: tfd.TransformedDistribution(tfd.Normal(...), tfb.Softplus())
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(0.5, tfb.Softplus())),
    ])
    ```
    or let TFP build it on the model's support:
    `tfp.experimental.vi.build_factored_surrogate_posterior(event_shape=pinned.event_shape,
    bijector=pinned.experimental_default_event_space_bijector())`.

    Not flagged: surrogates mapped into the support (`TransformedDistribution` or a bijector
    called on a distribution, with `Softplus`, `Exp`, `Sigmoid`, ..., a builder given the
    model's event-space bijector), `LogNormal` / `Gamma` for positive latents, priors that are
    themselves `TransformedDistribution`s, targets that transform the sample before the model sees
    it (`model.log_prob([tf.exp(z), ...])`, `sigma = tf.exp(sigma)`: a target written in
    unconstrained space), a flat prior written as a very wide interval (`Uniform(-1e5, 1e5)`: an
    unbounded surrogate's draws never reach a bound 1e3 or more from 0; of `Uniform(0, 1e5)` only the
    bound at 0 counts), and whatever elbolint cannot match or read (a target from another
    module, components yielded in a loop, bounds read from data). There is no automatic fix:
    which family to use, and what the existing variables then mean (`loc` of a LogNormal is on
    the log scale), is the author's choice. Dynamic mode confirms it by the component's own draws:
    ELB113 when some of 1,000 surrogate draws of that component fall outside the prior's support at
    the start or the end of the fit (elbolint/dynamic/verdicts/support.py); a surrogate that stays far from
    the boundary is `not-reproduced`, with the measured shares.
    """

    code = "ELB014"
    name = "surrogate-support-mismatch"
    severity = Severity.ERROR
    confirmed_by = ("ELB113",)
    #: Triage: the surrogate of a fit or a VI loss.
    starts_from = (last_parts(_FIT),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._supports = SupportReader(self)
        self._models = ModelReader(self, self._supports)
        self._targets = TargetMatcher(self, self._models)
        self._deferred: list[tuple[cst.Call, cst.FunctionDef]] = []  # fits whose inputs are parameters

    # ------------------------------------------------------------------------ traversal
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        for decorator in node.decorators:
            if not self.qualified_names(decorator.decorator).isdisjoint(COROUTINE):
                self._models.coroutines[node.name.value] = node

    def visit_Call(self, node: cst.Call) -> None:
        if self.call_names(node).isdisjoint(_FIT) or any(a.star for a in node.args):
            return
        if not self._analyse(node):
            function = self.resolver.scope_node
            if isinstance(function, cst.FunctionDef):
                # `def fit(model, surrogate): tfp.vi.fit_surrogate_posterior(...)`: read again at each call
                self._deferred.append((node, function))

    def leave_Module(self, original_node: cst.Module) -> None:
        for fit, function in self._deferred:
            for site in self.resolver.call_sites(function)[:8]:
                flow = self.resolver.follow(site.call, site.scopes)  # into `function`, its arguments bound
                scopes = ()
                for index, scope in enumerate(flow.scopes):
                    if getattr(scope, "node", None) is function:
                        scopes = flow.scopes[: index + 1]
                if scopes:
                    with self.resolver.within(Flow(fit, (), scopes)):
                        self._analyse(fit)

    def _analyse(self, fit: cst.Call) -> bool:
        """Report the mismatches of one fit (read in the current scopes); False when its surrogate or
        target could not be read at all."""
        target = self.get_arg(fit, "target_log_prob_fn", 0)
        surrogate = self.get_arg(fit, "surrogate_posterior", 1)
        if target is None or surrogate is None:
            return True
        joint = self._models.surrogate(surrogate.value, None)
        if joint is None or not joint.parts:
            return False
        matches = self._targets.matches(target.value, joint)
        built: dict[int, list] = {}  # a builder's components are reported together, on the builder call
        for match in matches:
            found = self._check(match)
            if found is None:
                continue
            node, sentence, advice, clause, checked = found
            if match.surrogate.built is None:
                self.report_once(node, f"{sentence}. {advice}")
            else:
                entry = built.setdefault(id(node), [node, [], advice, True])
                entry[1].append(clause)
                entry[3] = entry[3] and checked
        for node, clauses, advice, checked in built.values():
            priors = "the priors'" if len(set(clauses)) > 1 else "the prior's"
            consequence = (f"{priors} log_prob is -inf at the surrogate's samples outside, "
                           "so the loss is infinite or NaN"
                           if checked else
                           f"{priors} log_prob at the surrogate's samples outside is -inf or NaN (TFP does not check "
                           "every support), so the loss is non-finite or wrong")
            self.report_once(node, f"surrogate built by {self.source(node.func)}: {'; '.join(dict.fromkeys(clauses))}: "
                                   f"{consequence}. {advice}")
        return bool(matches)

    # ------------------------------------------------------------------------ findings
    def _check(self, match: Match):
        """(node to report, what is wrong, what to write instead, the same as a builder's clause,
        whether the prior checks its support) when the match is a mismatch; None otherwise."""
        prior = self._supports.prior_support(match.prior.value, match.prior.scopes)
        if prior is None:
            return None
        prior_support, prior_label, prior_call, outside, low_text, high_text = prior
        part = match.surrogate
        if part.built is not None:
            (support, label), node = part.built, part.report_node
            if support is None:
                return None
        else:
            found = self._supports.surrogate_support(part.value, part.scopes)
            if found is None:
                return None
            support, label, node = found
        side = wider(support, prior_support)
        if side is None or node is None:
            return None
        who = self._who(match)
        where = describe(prior_support, low_text, high_text)
        if side == "below":
            beyond = "below " + describe_bound(prior_support.low, low_text)
        elif side == "above":
            beyond = "above " + describe_bound(prior_support.high, high_text)
        else:
            beyond = "outside " + describe(prior_support)
        if outside == "-inf":
            consequence = (f"the prior's log_prob is -inf at the surrogate's samples {beyond}, "
                           "so the loss is infinite or NaN")
        else:
            consequence = (f"TFP does not check the support: the prior's log_prob at the surrogate's samples {beyond} "
                           "is NaN (or a meaningless finite number), so the loss is NaN or wrong")
        sentence = (f"{who} is {label}, supported on {describe(support)}, but its prior "
                    f"{prior_label} has density only on {where}: {consequence}")
        short = who.replace('surrogate component at position ', 'component ').replace('surrogate ', '')
        clause = (f"{short} is {label} on {describe(support)} but its prior "
                  f"{prior_label} has density only on {where}")
        return (node, sentence, self._advice(prior_support, support, part, match, low_text, high_text), clause,
                outside == "-inf")

    def _who(self, match: Match) -> str:
        name = match.prior.name or match.surrogate.name
        position = match.prior.position if match.prior.position is not None else match.surrogate.position
        if name:
            return f"surrogate component '{name}'"
        if match.surrogate.whole:
            return "the surrogate"
        if position is not None:
            return f"surrogate component at position {position}"
        return "the surrogate component"

    def _advice(self, prior: Support, surrogate: Support, part: Part, match: Match,
                low_text: str, high_text: str) -> str:
        tfd = self._spell(TFD, "tfp.distributions")
        tfb = self._spell(TFB, "tfp.bijectors")
        builder = self._spell(f"{TFP_EXPERIMENTAL_VI}.build_factored_surrogate_posterior",
                              "tfp.experimental.vi.build_factored_surrogate_posterior")
        if match.joint is not None:
            model = match.joint.spelled
        else:  # a prior of a hand-written target: its own event-space bijector
            model = self.source(match.prior.value) if match.prior.value is not None else "prior"
            if len(model) > 40:
                model = "prior"
        event_space = f"{model}.experimental_default_event_space_bijector()"
        if part.built is not None:
            return f"Pass bijector={event_space} (or a bijector per component)"
        base = f"{tfd}.Normal(...)"
        if part.value is not None and surrogate.real:
            call = self.resolver.read(Flow(part.value, (), part.scopes), self._unwrapped_call)
            if call is not None:
                base = f"{self.source(call.func)}(...)"
        if prior.kind == "interval":
            if prior.low == 0.0 and prior.high == INF:
                bijector = f"{tfb}.Softplus()"
                family = f"{tfd}.LogNormal(...) or "
            elif prior.low == 0.0 and prior.high == 1.0:
                bijector = f"{tfb}.Sigmoid()"
                family = f"{tfd}.Beta(...) or "
            elif prior.high == INF:
                bijector = f"{tfb}.Softplus(low={describe_bound(prior.low, low_text)})"
                family = ""
            else:
                bijector = (f"{tfb}.Sigmoid(low={describe_bound(prior.low, low_text)}, "
                            f"high={describe_bound(prior.high, high_text)})")
                family = ""
            return (f"Use {family}{tfd}.TransformedDistribution({base}, {bijector}), or build the surrogate with "
                    f"{builder}(..., bijector={event_space})")
        if prior.kind == "simplex":
            return (f"Use {tfd}.Dirichlet(...) with positive concentrations, or {tfd}.TransformedDistribution(<a "
                    f"Gaussian one dimension shorter>, {tfb}.SoftmaxCentered()), or {builder}(..., "
                    f"bijector={event_space})")
        return f"Map it with {event_space} (e.g. {builder}(..., bijector={event_space}))"

    def _spell(self, qualified: str, fallback: str) -> str:
        return self.resolver.local_name_for(qualified) or fallback

    def _unwrapped_call(self, node: cst.BaseExpression) -> Optional[cst.Call]:
        flow = self.resolver.follow(node)
        return flow.node if isinstance(flow.node, cst.Call) and not flow.subscripts else None

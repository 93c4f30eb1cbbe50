"""ELB014 surrogate-support-mismatch.

The support table (`SUPPORTS`) says, for each TFP distribution elbolint knows, where it has density,
which bijector TFP itself uses to reach that support (`experimental_default_event_space_bijector()`)
and what TFP's `log_prob` returns outside it. tests/test_support_table.py checks every entry against
TFP (the bijector's class, its image, the log-density outside), so the table cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TFB, TFD, TFP_EXPERIMENTAL_VI, TFP_VI, member_of, names_in
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._tfp import distribution_name, literal_values

INF = math.inf


class _Finite:
    """A bound that is a parameter of the distribution: finite, value not visible."""

    def __repr__(self) -> str:
        return "FINITE"


#: A finite bound whose value elbolint cannot read (`Uniform(low=a, ...)`).
FINITE = _Finite()
#: A bound that may be anything, infinite included (`TruncatedNormal(..., low=lows)`): unknown.
Bound = Union[float, _Finite, None]


@dataclass(frozen=True)
class SupportSpec:
    """One row of the support table.

    `kind` is "interval" (then `low`/`high` are numbers, possibly infinite, or the name of the
    parameter that is the bound), "simplex", "correlation", "cholesky-correlation" or
    "positive-definite". `bijector` is TFP's `experimental_default_event_space_bijector()` as the
    test describes it (`Chain(Shift,Exp)`). `outside` is what TFP's `log_prob` returns outside the
    support: "-inf" (it checks) or "unchecked" (its formula is used as is: NaN, or for some
    parameters a finite value of a density that does not exist there).
    """

    kind: str
    low: Union[float, str] = -INF
    high: Union[float, str] = INF
    bijector: str = "Identity"
    outside: str = "unchecked"
    #: bound parameters that may legitimately be infinite (`TruncatedNormal(low=-np.inf)`)
    may_be_infinite: tuple = ()


def _real(bijector: str = "Identity") -> SupportSpec:
    return SupportSpec("interval", -INF, INF, bijector, "none")


def _positive(bijector: str, outside: str = "unchecked") -> SupportSpec:
    return SupportSpec("interval", 0.0, INF, bijector, outside)


def _unit(outside: str = "unchecked") -> SupportSpec:
    return SupportSpec("interval", 0.0, 1.0, "Sigmoid", outside)


def _between(outside: str, infinite: tuple = ()) -> SupportSpec:
    return SupportSpec("interval", "low", "high", "Sigmoid", outside, infinite)


#: Where each distribution has density (see SupportSpec). Checked against TFP by tests/test_support_table.py.
SUPPORTS: dict[str, SupportSpec] = {
    # the real line (Identity bijector): never narrower than a surrogate's support
    **{name: _real() for name in (
        "Normal", "StudentT", "Laplace", "Cauchy", "Logistic", "Gumbel", "Moyal", "SinhArcsinh",
        "GeneralizedNormal", "TwoPieceNormal", "TwoPieceStudentT", "ExpGamma", "ExpInverseGamma", "Horseshoe",
        "ExponentiallyModifiedGaussian", "LambertWNormal", "NormalInverseGaussian", "DoublesidedMaxwell",
        "SigmoidBeta", "MultivariateNormalDiag", "MultivariateNormalTriL", "MultivariateNormalFullCovariance",
        "MultivariateNormalDiagPlusLowRank", "MultivariateNormalDiagPlusLowRankCovariance",
        "MultivariateNormalLinearOperator", "MultivariateStudentTLinearOperator",
    )},
    # positive values
    "Gamma": _positive("Softplus"),
    "HalfNormal": _positive("Softplus", "-inf"),
    "HalfCauchy": SupportSpec("interval", "loc", INF, "Chain(Shift,Exp)", "-inf"),
    "HalfStudentT": SupportSpec("interval", "loc", INF, "Chain(Shift,Exp)", "-inf"),
    "LogNormal": _positive("Exp"),
    "Exponential": _positive("Softplus"),
    "InverseGamma": _positive("Chain(Reciprocal,Softplus)"),
    "Chi2": _positive("Softplus"),
    "Chi": _positive("Softplus"),
    "Weibull": _positive("Softplus"),
    "Pareto": SupportSpec("interval", "scale", INF, "Chain(Shift,Softplus)", "-inf"),
    "LogLogistic": _positive("Exp"),
    "InverseGaussian": _positive("Chain(Softplus,Scale,Invert(Exp),Softplus)"),
    "GammaGamma": _positive("Exp"),
    "NoncentralChi2": _positive("Softplus"),
    "BetaQuotient": _positive("Exp"),
    # the unit interval
    "Beta": _unit(),
    "Kumaraswamy": _unit(),
    "LogitNormal": _unit(),
    "RelaxedBernoulli": _unit(),
    # intervals set by parameters
    "Uniform": _between("-inf"),
    "TruncatedNormal": _between("-inf", ("low", "high")),
    "TruncatedCauchy": _between("-inf", ("low", "high")),
    "Triangular": _between("-inf"),
    "PERT": _between("unchecked"),
    "Bates": _between("-inf"),
    # sets of vectors and matrices
    "Dirichlet": SupportSpec("simplex", bijector="SoftmaxCentered"),
    "RelaxedOneHotCategorical": SupportSpec("simplex", bijector="SoftmaxCentered"),
    "LKJ": SupportSpec("correlation", bijector="Chain(_ClipByValue,CholeskyOuterProduct,CorrelationCholesky)"),
    "CholeskyLKJ": SupportSpec("cholesky-correlation", bijector="CorrelationCholesky"),
    "WishartTriL": SupportSpec(
        "positive-definite",
        bijector="Chain(CholeskyOuterProduct,Chain(TransformDiagonal,Chain(TransformDiagonal,FillTriangular)))"),
}

#: Left out on purpose (the test checks the reasons): VonMises lives on a circle and its log_prob is
#: finite (periodic) everywhere; the support of GeneralizedPareto and GeneralizedExtremeValue
#: depends on the sign of their `concentration`.
EXCLUDED = ("VonMises", "GeneralizedPareto", "GeneralizedExtremeValue")

#: The image of the real line under the bijectors elbolint follows into a surrogate's support
#: (their default parameters; `Softplus(low=...)` and `Sigmoid(low=..., high=...)` move the bounds).
REAL_LINE_IMAGES: dict[str, tuple[float, float]] = {
    "Identity": (-INF, INF), "Shift": (-INF, INF), "Scale": (-INF, INF),
    "Exp": (0.0, INF), "Softplus": (0.0, INF), "Square": (0.0, INF), "AbsoluteValue": (0.0, INF),
    "Sigmoid": (0.0, 1.0), "NormalCDF": (0.0, 1.0), "Tanh": (-1.0, 1.0),
}

#: Positional order and defaults of the parameters that bound a support (None: required).
BOUND_PARAMETERS: dict[str, tuple[tuple[str, Optional[float]], ...]] = {
    "HalfCauchy": (("loc", None), ("scale", None)),
    "HalfStudentT": (("df", None), ("loc", None), ("scale", None)),
    "Pareto": (("concentration", None), ("scale", 1.0)),
    "Uniform": (("low", 0.0), ("high", 1.0)),
    "TruncatedNormal": (("loc", None), ("scale", None), ("low", None), ("high", None)),
    "TruncatedCauchy": (("loc", None), ("scale", None), ("low", None), ("high", None)),
    "Triangular": (("low", 0.0), ("high", 1.0), ("peak", 0.5)),
    "PERT": (("low", None), ("peak", None), ("high", None)),
    "Bates": (("total_count", None), ("low", 0.0), ("high", 1.0)),
}

_FIT = names_in(TFP_VI, "fit_surrogate_posterior", "monte_carlo_variational_loss")
_BUILDERS = names_in(TFP_EXPERIMENTAL_VI, "build_factored_surrogate_posterior", "build_affine_surrogate_posterior")
_SEQUENTIAL = names_in(TFD, "JointDistributionSequential", "JointDistributionSequentialAutoBatched")
_NAMED = names_in(TFD, "JointDistributionNamed", "JointDistributionNamedAutoBatched")
_COROUTINE = names_in(TFD, "JointDistributionCoroutine", "JointDistributionCoroutineAutoBatched")
_WRAPPERS = frozenset({"Independent", "Sample", "BatchReshape", "BatchBroadcast"})
_TRANSFORMED = "TransformedDistribution"
_DENSITY_METHODS = frozenset({"log_prob", "unnormalized_log_prob"})
_PARTIAL = frozenset({"functools.partial"})
_BUILTIN_SEQUENCES = ("list", "tuple")
_NONE = object()


# ------------------------------------------------------------------------------ supports
@dataclass(frozen=True)
class Support:
    kind: str
    low: Bound = -INF
    high: Bound = INF

    @property
    def real(self) -> bool:
        return self.kind == "interval" and self.low == -INF and self.high == INF


def _describe_bound(bound: Bound, text: str) -> str:
    if isinstance(bound, float):
        if bound in (INF, -INF):
            return "inf" if bound > 0 else "-inf"
        return f"{bound:g}"
    return text


def describe(support: Support, low_text: str = "low", high_text: str = "high") -> str:
    if support.kind == "simplex":
        return "the probability simplex"
    if support.kind == "correlation":
        return "correlation matrices"
    if support.kind == "cholesky-correlation":
        return "Cholesky factors of correlation matrices"
    if support.kind == "positive-definite":
        return "positive-definite matrices"
    if support.real:
        return "the whole real line"
    low, high = _describe_bound(support.low, low_text), _describe_bound(support.high, high_text)
    if support.low == 0.0 and support.high == INF:
        return "positive values (0, inf)"
    if support.low == 0.0 and support.high == 1.0:
        return "the unit interval (0, 1)"
    return f"({low}, {high})"


def _below(surrogate: Bound, prior: Bound) -> bool:
    """Whether the surrogate's lower bound is certainly below the prior's."""
    if surrogate is None or prior is None:
        return False
    if surrogate == -INF:
        return prior != -INF
    if isinstance(surrogate, _Finite) or isinstance(prior, _Finite):
        return False
    return surrogate < prior


def _above(surrogate: Bound, prior: Bound) -> bool:
    if surrogate is None or prior is None:
        return False
    if surrogate == INF:
        return prior != INF
    if isinstance(surrogate, _Finite) or isinstance(prior, _Finite):
        return False
    return surrogate > prior


#: A prior's bound this far from 0 (on an interval reaching back to within it of 0) is beyond what an
#: unbounded surrogate draws from ordinary initial values: `Uniform(-1e5, 1e5)` is a flat prior written
#: as an interval, and a Normal surrogate started at loc 100, scale 10 reaches 1e3 at 90 standard
#: deviations. Measured on real code (a radon model's `tfd.Uniform(-INF, INF)` with INF = 100000): the
#: "-inf below -100000" finding was true on paper only.
UNREACHABLE = 1e3


def _near(bound: Bound) -> bool:
    return isinstance(bound, float) and -UNREACHABLE < bound < UNREACHABLE


def _reach(prior: Support) -> Support:
    """The prior's interval as an unbounded surrogate's draws can meet it: a bound UNREACHABLE or more
    from 0, whose other bound is near 0 or as far on the other side, counts as infinite."""
    low, high = prior.low, prior.high
    far_low = isinstance(low, float) and low <= -UNREACHABLE
    far_high = isinstance(high, float) and high >= UNREACHABLE
    if far_low and (far_high or high == INF or _near(high)):
        low = -INF
    if far_high and (far_low or prior.low == -INF or _near(prior.low)):
        high = INF
    return Support(prior.kind, low, high)


def wider(surrogate: Support, prior: Support) -> Optional[str]:
    """"below" / "above" / "outside" when the surrogate certainly puts mass where the prior has none."""
    if prior.kind == "interval":
        if surrogate.kind != "interval":
            return None
        reach = _reach(prior)
        if _below(surrogate.low, reach.low if surrogate.low == -INF else prior.low):
            return "below"
        if _above(surrogate.high, reach.high if surrogate.high == INF else prior.high):
            return "above"
        return None
    if surrogate.real:
        return "outside"
    return None


# ------------------------------------------------------------------------------ structures
@dataclass
class Part:
    """One component of a joint distribution (model or surrogate)."""

    position: Optional[int]
    name: Optional[str]
    value: Optional[cst.BaseExpression]  # the distribution as written (a call, a name, a lambda's body)
    scopes: tuple
    #: a surrogate built by a tfp.experimental.vi builder: its support (None: unknown) and the call
    built: object = _NONE
    report_node: Optional[cst.CSTNode] = None
    whole: bool = False  # the surrogate is this one distribution


@dataclass
class Joint:
    #: how the sample reaches the target: "args" fn(*s), "kwargs" fn(**s), "one" fn(s)
    convention: str
    parts: list
    spelled: str = "model"  # the model's name in the file, for advice

    def by_position(self, position: int) -> Optional[Part]:
        for part in self.parts:
            if part.position == position:
                return part
        return None

    def by_name(self, name: str) -> Optional[Part]:
        found = [p for p in self.parts if p.name == name]
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Ref:
    """A value of the target that is one component of the surrogate's sample."""

    position: Optional[int] = None
    name: Optional[str] = None
    spelled: Optional[str] = None  # the target's own name for it (`sigma` in `lambda sigma, mu: ...`)


@dataclass(frozen=True)
class Whole:
    """The surrogate's sample, or the tail of it from `offset` (`*z`), or all of it by name (`**kw`)."""

    offset: int = 0
    named: bool = False


@dataclass
class _Match:
    surrogate: Part
    prior: Part
    joint: Optional[Joint]


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
        self._coroutines: dict[str, cst.FunctionDef] = {}  # `@tfd.JointDistributionCoroutine def model(): ...`
        self._deferred: list[tuple[cst.Call, cst.FunctionDef]] = []  # fits whose inputs are parameters

    # ------------------------------------------------------------------------ traversal
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        for decorator in node.decorators:
            if not self.qualified_names(decorator.decorator).isdisjoint(_COROUTINE):
                self._coroutines[node.name.value] = node

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
        joint = self._surrogate(surrogate.value, None)
        if joint is None or not joint.parts:
            return False
        matches = self._matches(target.value, joint)
        built: dict[int, list] = {}  # a builder's components are reported together, on the builder call
        for match in matches:
            found = self._check(match)
            if found is None:
                continue
            node, sentence, advice, clause, checked = found
            if match.surrogate.built is _NONE:
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

    # ------------------------------------------------------------------------ surrogates
    def _surrogate(self, node: cst.BaseExpression, scopes: Optional[tuple]) -> Optional[Joint]:
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        with self.resolver.within(flow) as call:
            names = self.call_names(call)
            if names & _BUILDERS:
                return self._built(call, flow.scopes)
            joint = self._joint(call, flow.scopes, spelled=None)
            if joint is not None:
                return joint
            if distribution_name(self.resolver, call) is not None:
                return Joint("one", [Part(0, None, call, flow.scopes, whole=True)])
        return None

    def _built(self, call: cst.Call, scopes: tuple) -> Optional[Joint]:
        """`build_factored_surrogate_posterior(event_shape=..., bijector=...)` (or the affine one):
        one part per event shape, Gaussian on the real line unless a bijector maps it."""
        if any(a.star for a in call.args):
            return None
        affine = any(n.endswith("build_affine_surrogate_posterior") for n in self.call_names(call))
        shape = self.get_arg(call, "event_shape", 0)
        if shape is None:
            return None
        bijector = self.get_arg(call, "bijector", 2 if affine else 1) or self.get_arg(call, "constraining_bijectors")
        base = self.get_arg(call, "base_distribution" if affine else "base_distribution_cls", 3)
        if base is not None and not any(
                SUPPORTS.get(member_of(n, TFD) or "", SupportSpec("?")).kind == "interval"
                and SUPPORTS[member_of(n, TFD)].low == -INF and SUPPORTS[member_of(n, TFD)].high == INF
                for n in self.qualified_names(base.value)):
            return None  # a base family elbolint does not know to be real-valued
        structure = self._shape_structure(shape.value, scopes)
        if structure is None:
            return None
        convention, slots = structure  # slots: [(position, name)]
        supports = self._builder_supports(bijector.value if bijector is not None else None, slots, scopes)
        if supports is None:
            return None
        parts = []
        for (position, name), (support, mapped) in zip(slots, supports):
            words = f"mapped by {mapped}" if mapped else "Gaussian (no bijector=)"
            parts.append(Part(position, name, None, scopes, built=(support, words), report_node=call))
        return Joint(convention, parts)

    def _shape_structure(self, node: cst.BaseExpression, scopes: tuple):
        """("args" | "kwargs" | "one", [(position, name)]) of an `event_shape`, or None."""
        flow = self.resolver.follow(node, scopes)
        window = slice(None)
        if flow.subscripts:  # `model.event_shape_tensor()[:-1]`: the model's components but the last
            window = _literal_slice(flow.subscripts)
            if window is None:
                return None
        value = flow.node
        if isinstance(value, (cst.List, cst.Tuple)) and not flow.subscripts:
            elements = value.elements
            if any(isinstance(e, cst.StarredElement) for e in elements):
                return None
            if all(isinstance(e.value, (cst.Integer,)) for e in elements):
                return "one", [(0, None)]  # one component with a vector shape
            if all(isinstance(e.value, (cst.List, cst.Tuple)) for e in elements):
                return "args", [(i, None) for i in range(len(elements))]
            return None
        if isinstance(value, cst.Dict) and not flow.subscripts:
            keys = [_string(e.key) if isinstance(e, cst.DictElement) else None for e in value.elements]
            if None in keys:
                return None
            return "kwargs", [(None, k) for k in keys]
        model_node = None
        if isinstance(value, cst.Attribute) and value.attr.value == "event_shape":
            model_node = value.value
        elif (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
              and value.func.attr.value == "event_shape_tensor" and not value.args):
            model_node = value.func.value
        if model_node is None:
            return None
        with self.resolver.within(flow):
            model = self._model(model_node, None)
        if model is None:
            return None
        parts = model.parts
        if flow.subscripts:
            if model.convention != "args" or any(p.position is None for p in parts):
                return None
            parts = parts[window]
            return model.convention, [(i, p.name) for i, p in enumerate(parts)]
        return model.convention, [(p.position, p.name) for p in parts]

    def _builder_supports(self, bijector: Optional[cst.BaseExpression], slots, scopes) -> Optional[list]:
        """[(support or None, how the bijector is spelled or "")] per slot; None when the bijector
        cannot be read per component (the model's event-space bijector, a JointMap, ...)."""
        if bijector is None or (isinstance(bijector, cst.Name) and bijector.value == "None"):
            return [(Support("interval"), "")] * len(slots)
        flow = self.resolver.follow(bijector, scopes)
        if flow.subscripts:
            return None
        value = flow.node
        if isinstance(value, (cst.List, cst.Tuple)) and len(value.elements) == len(slots):
            found = []
            with self.resolver.within(flow):
                for element in value.elements:
                    if isinstance(element, cst.StarredElement):
                        return None
                    inner = element.value
                    if isinstance(inner, cst.Name) and inner.value == "None":
                        found.append((Support("interval"), ""))
                        continue
                    found.append((self._image(inner, None, Support("interval")), self.source(inner)))
            return found
        entries = self._dict_entries(value)
        if entries is not None and all(name is not None for _, name in slots):
            by_key = dict(entries)
            if set(by_key) != {name for _, name in slots}:
                return None
            with self.resolver.within(flow):
                return [(Support("interval"), "") if isinstance(by_key[name], cst.Name) and by_key[name].value == "None"
                        else (self._image(by_key[name], None, Support("interval")), self.source(by_key[name]))
                        for _, name in slots]
        return None

    def _check(self, match: _Match):
        """(node to report, what is wrong, what to write instead, the same as a builder's clause,
        whether the prior checks its support) when the match is a mismatch; None otherwise."""
        prior = self._prior_support(match.prior)
        if prior is None:
            return None
        prior_support, prior_label, prior_call, outside, low_text, high_text = prior
        part = match.surrogate
        if part.built is not _NONE:
            (support, label), node = part.built, part.report_node
            if support is None:
                return None
        else:
            found = self._surrogate_support(part)
            if found is None:
                return None
            support, label, node = found
        side = wider(support, prior_support)
        if side is None or node is None:
            return None
        who = self._who(match)
        where = describe(prior_support, low_text, high_text)
        if side == "below":
            beyond = "below " + _describe_bound(prior_support.low, low_text)
        elif side == "above":
            beyond = "above " + _describe_bound(prior_support.high, high_text)
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

    def _who(self, match: _Match) -> str:
        name = match.prior.name or match.surrogate.name
        position = match.prior.position if match.prior.position is not None else match.surrogate.position
        if name:
            return f"surrogate component '{name}'"
        if match.surrogate.whole:
            return "the surrogate"
        if position is not None:
            return f"surrogate component at position {position}"
        return "the surrogate component"

    def _advice(self, prior: Support, surrogate: Support, part: Part, match: _Match,
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
        if part.built is not _NONE:
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
                bijector = f"{tfb}.Softplus(low={_describe_bound(prior.low, low_text)})"
                family = ""
            else:
                bijector = (f"{tfb}.Sigmoid(low={_describe_bound(prior.low, low_text)}, "
                            f"high={_describe_bound(prior.high, high_text)})")
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

    # ------------------------------------------------------------------------ supports of parts
    def _prior_support(self, part: Part):
        """(support, label, call, outside, low text, high text) of a model component, or None."""
        if part.value is None:
            return None
        with self.resolver.within(Flow(part.value, (), part.scopes)):
            return self._distribution_support(part.value, prior=True)

    def _surrogate_support(self, part: Part):
        """(support, label, node to report) of a surrogate component, or None."""
        if part.value is None:
            return None
        with self.resolver.within(Flow(part.value, (), part.scopes)):
            found = self._distribution_support(part.value, prior=False)
        if found is None:
            return None
        support, label, call, _, _, _ = found
        return support, label, call

    def _distribution_support(self, node: cst.BaseExpression, prior: bool, depth: int = 0):
        if depth > 6:
            return None
        flow = self.resolver.follow(node)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        with self.resolver.within(flow) as call:
            if any(a.star for a in call.args):
                return None
            if isinstance(call.func, cst.Call) and self._is_bijector(call.func):
                if prior or len(call.args) != 1:  # `tfb.Softplus()(tfd.Normal(...))`
                    return None
                inner = self._distribution_support(call.args[0].value, prior, depth + 1)
                if inner is None:
                    return None
                image = self._image(call.func, None, inner[0])
                if image is None:
                    return None
                return image, f"{inner[1]} mapped by {self.source(call.func.func)}", call, "", "", ""
            name = distribution_name(self.resolver, call)
            if name is None:
                return None
            label = self.source(call.func)
            if name in _WRAPPERS:
                inner_arg = self.get_arg(call, "distribution", 0)
                if inner_arg is None:
                    return None
                inner = self._distribution_support(inner_arg.value, prior, depth + 1)
                if inner is None:
                    return None
                return (inner[0], inner[1], call, *inner[3:])
            if name == _TRANSFORMED:
                if prior:
                    return None  # a prior in another space: the target may be written there
                base = self.get_arg(call, "distribution", 0)
                bijector = self.get_arg(call, "bijector", 1)
                if base is None or bijector is None:
                    return None
                inner = self._distribution_support(base.value, prior, depth + 1)
                if inner is None:
                    return None
                image = self._image(bijector.value, None, inner[0])
                if image is None:
                    return None
                return image, f"{label} of {inner[1]}", call, "", "", ""
            spec = SUPPORTS.get(name)
            if spec is None:
                return None
            if spec.kind != "interval":
                return Support(spec.kind), label, call, spec.outside, "", ""
            low, low_text = self._bound(call, name, spec.low, spec)
            high, high_text = self._bound(call, name, spec.high, spec)
            outside = spec.outside
            forced = self.get_arg(call, "force_probs_to_zero_outside_support", None)
            if forced is not None and isinstance(forced.value, cst.Name) and forced.value.value == "True":
                outside = "-inf"
            return Support("interval", low, high), label, call, outside, low_text, high_text

    def _bound(self, call: cst.Call, name: str, spec_bound, spec: SupportSpec) -> tuple[Bound, str]:
        if not isinstance(spec_bound, str):
            return float(spec_bound), ""
        signature = BOUND_PARAMETERS[name]
        position = [p for p, _ in signature].index(spec_bound)
        arg = self.get_arg(call, spec_bound, position)
        if arg is None:
            default = signature[position][1]
            return (float(default), "") if default is not None else (None, spec_bound)
        text = self.source(arg.value)
        value = self._number(arg.value)
        if value is not None:
            return value, text
        return (None if spec_bound in spec.may_be_infinite else FINITE), text

    def _number(self, node: cst.BaseExpression) -> Optional[float]:
        """A literal bound, infinities included (`np.inf`, `-math.inf`, `float("inf")`)."""
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = self._number(node.expression)
            return -inner if inner is not None else None
        value = self.resolver.value_of(node)
        qualified = self.qualified_names(value) if isinstance(value, (cst.Name, cst.Attribute)) else frozenset()
        if any(q.rsplit(".", 1)[-1] in ("inf", "Inf", "infty", "Infinity") for q in qualified):
            return INF
        if (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "float"
                and len(value.args) == 1 and _string(value.args[0].value) in ("inf", "+inf", "-inf", "infinity")):
            return -INF if _string(value.args[0].value) == "-inf" else INF
        values = literal_values(value, self.resolver)
        if values and len(values) == 1:
            return values[0]
        if values and len(set(values)) == 1:
            return values[0]
        return None

    # ------------------------------------------------------------------------ bijector images
    def _is_bijector(self, call: cst.Call) -> bool:
        return any(member_of(n, TFB) is not None for n in self.call_names(call))

    def _image(self, node: cst.BaseExpression, scopes: Optional[tuple], base: Support,
               depth: int = 0) -> Optional[Support]:
        """The support a bijector maps `base` onto, or None when it cannot be told."""
        if depth > 8 or base.kind != "interval":
            return None
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        with self.resolver.within(flow) as call:
            names = self.call_names(call)
            members = {member_of(n, TFB) for n in names} - {None}
            if not members or any(a.star for a in call.args):
                return None
            member = members.pop()
            if member == "Chain":
                bijectors = self.get_arg(call, "bijectors", 0)
                if bijectors is None:
                    return base
                inner = self.resolver.follow(bijectors.value)
                if inner.subscripts or not isinstance(inner.node, (cst.List, cst.Tuple)):
                    return None
                support: Optional[Support] = base
                with self.resolver.within(inner) as sequence:
                    for element in reversed(sequence.elements):
                        if isinstance(element, cst.StarredElement) or support is None:
                            return None
                        support = self._image(element.value, None, support, depth + 1)
                return support
            return self._simple_image(member, call, base)

    def _simple_image(self, member: str, call: cst.Call, base: Support) -> Optional[Support]:
        low, high = base.low, base.high
        if member == "Identity":
            return base
        if member == "Exp":
            return Support("interval", _monotone(low, math.exp), _monotone(high, math.exp))
        if member == "Softplus":
            shift = 0.0
            low_arg = self.get_arg(call, "low", 1)
            if low_arg is not None:
                value = self._number(low_arg.value)
                if value is None:
                    return Support("interval", FINITE, INF) if base.low == -INF else None
                shift = value
            if self.get_arg(call, "hinge_softness", 0) is not None:
                return Support("interval", shift, INF) if base.low == -INF else None
            return Support("interval", _monotone(low, lambda v: _softplus(v) + shift),
                           _monotone(high, lambda v: _softplus(v) + shift))
        if member in ("Sigmoid", "NormalCDF", "Tanh"):
            lo, hi = REAL_LINE_IMAGES[member]
            if member == "Sigmoid":
                bounds = []
                for keyword, position, default in (("low", 0, 0.0), ("high", 1, 1.0)):
                    arg = self.get_arg(call, keyword, position)
                    value = self._number(arg.value) if arg is not None else default
                    bounds.append(FINITE if value is None else value)
                lo, hi = bounds
            if base.real:
                return Support("interval", lo, hi)
            return Support("interval", lo if low == -INF else FINITE, hi if high == INF else FINITE)
        if member in ("Square", "AbsoluteValue"):
            return Support("interval", *REAL_LINE_IMAGES[member]) if base.real else None
        if member == "Shift":
            arg = self.get_arg(call, "shift", 0)
            value = self._number(arg.value) if arg is not None else None
            if value is None:
                return Support("interval", low if low == -INF else FINITE, high if high == INF else FINITE)
            return Support("interval", _monotone(low, lambda v: v + value), _monotone(high, lambda v: v + value))
        if member == "Scale":
            arg = self.get_arg(call, "scale", 0)
            value = self._number(arg.value) if arg is not None else None
            if base.real:
                return base
            if value is None or value == 0:
                return None
            if value > 0:
                return Support("interval", _monotone(low, lambda v: v * value), _monotone(high, lambda v: v * value))
            return Support("interval", _monotone(high, lambda v: v * value), _monotone(low, lambda v: v * value))
        if member == "SoftmaxCentered":
            return Support("simplex") if base.real else None
        if member == "CorrelationCholesky":
            return Support("cholesky-correlation") if base.real else None
        return None

    # ------------------------------------------------------------------------ models
    def _joint(self, call: cst.Call, scopes: tuple, spelled: Optional[str]) -> Optional[Joint]:
        """The components of a JointDistribution{Sequential,Named,Coroutine}(...) call, read in its scopes."""
        names = self.call_names(call)
        spelled = spelled or "model"
        if names & _SEQUENTIAL:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            flow = self.resolver.follow(argument.value)
            if flow.subscripts or not isinstance(flow.node, (cst.List, cst.Tuple)):
                return None
            elements = flow.node.elements
            if any(isinstance(e, cst.StarredElement) for e in elements):
                return None
            parts: list[Part] = []
            lambda_names: dict[int, str] = {}
            for index, element in enumerate(elements):
                value = element.value
                if isinstance(value, cst.Lambda):
                    params = [p.name.value for p in value.params.params]
                    for offset, param in enumerate(params):
                        lambda_names.setdefault(index - 1 - offset, param)
                    value = value.body
                parts.append(Part(index, None, value, flow.scopes))
            for part in parts:
                part.name = self._explicit_name(part.value, part.scopes) or lambda_names.get(part.position)
            return Joint("args", parts, spelled)
        if names & _NAMED:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            flow = self.resolver.follow(argument.value)
            if flow.subscripts:
                return None
            entries = self._dict_entries(flow.node)
            if entries is None:
                return None
            parts = []
            for key, value in entries:
                if isinstance(value, cst.Lambda):
                    value = value.body
                parts.append(Part(None, key, value, flow.scopes))
            return Joint("kwargs", parts, spelled)
        if names & _COROUTINE:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            function = self._coroutine_function(argument.value)
            if function is None:
                return None
            return self._coroutine(function, spelled)
        return None

    def _coroutine_function(self, node: cst.BaseExpression) -> Optional[cst.FunctionDef]:
        flow = self.resolver.follow(node)
        value = flow.node
        if isinstance(value, cst.Call) and not self.call_names(value).isdisjoint(_PARTIAL) and value.args:
            with self.resolver.within(flow):
                return self._coroutine_function(value.args[0].value)
        if isinstance(value, cst.Name):
            with self.resolver.within(flow):
                return self.resolver.function_of(cst.Call(func=value))
        return None

    def _coroutine(self, function: cst.FunctionDef, spelled: str) -> Joint:
        """Components of a JointDistributionCoroutine's model: its `yield`s in order (positions are
        unknown from the first yield in a loop or a branch on)."""
        parts: list[Part] = []
        certain = [True]

        def walk(node: cst.CSTNode, nested: bool) -> None:
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and node is not function:
                return
            if isinstance(node, cst.Yield):
                if nested:
                    certain[0] = False
                value = node.value
                if isinstance(value, cst.From) or value is None:
                    certain[0] = False
                    return
                value = _unroot(value)
                position = len(parts) if certain[0] else None
                parts.append(Part(position, None, value, ()))
                return
            branching = isinstance(node, (cst.For, cst.While, cst.If, cst.Try, cst.Match, cst.IfExp,
                                          cst.ListComp, cst.GeneratorExp))
            for child in node.children:
                walk(child, nested or branching)

        walk(function.body, False)
        scopes = self._function_scopes(function) or self._current_scopes()
        for part in parts:
            part.scopes = scopes
            part.name = self._explicit_name(part.value, scopes)
        return Joint("args", parts, spelled)

    def _function_scopes(self, function: cst.FunctionDef) -> tuple:
        """The scopes the body of `function` is read in (through the resolver's call-following), or
        () when the resolver does not enter it (several different returned values, no return)."""
        flow = self.resolver.follow(cst.Call(func=function.name))
        for index, scope in enumerate(flow.scopes):
            if getattr(scope, "node", None) is function:
                return flow.scopes[: index + 1]
        return ()

    def _explicit_name(self, value: Optional[cst.BaseExpression], scopes: tuple) -> Optional[str]:
        if value is None:
            return None
        flow = self.resolver.follow(value, scopes or None)
        call = flow.node
        if not isinstance(call, cst.Call):
            return None
        arg = self.get_arg(call, "name", None)
        return _string(arg.value) if arg is not None else None

    def _dict_entries(self, node: cst.CSTNode) -> Optional[list[tuple[str, cst.BaseExpression]]]:
        if isinstance(node, cst.Dict):
            entries = []
            for element in node.elements:
                if not isinstance(element, cst.DictElement) or _string(element.key) is None:
                    return None
                entries.append((_string(element.key), element.value))
            return entries
        if (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "dict"
                and all(a.keyword is not None and not a.star for a in node.args)):
            return [(a.keyword.value, a.value) for a in node.args]
        return None

    def _model(self, node: cst.BaseExpression, scopes: Optional[tuple], depth: int = 0) -> Optional[Joint]:
        """The model a `.log_prob` belongs to: a JointDistribution*, maybe pinned."""
        if depth > 4:
            return None
        spelled = self.source(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts:
            return None
        value = flow.node
        if isinstance(value, cst.Name) and flow.parameter is None and value.value in self._coroutines:
            return self._coroutine(self._coroutines[value.value], spelled or value.value)
        if not isinstance(value, cst.Call):
            return None
        with self.resolver.within(flow):
            if isinstance(value.func, cst.Attribute) and value.func.attr.value == "experimental_pin":
                base = self._model(value.func.value, None, depth + 1)
                pins = self._pins(value)
                if base is None or pins is None:
                    return None
                if spelled is None:
                    spelled = self.source(value.func.value) if isinstance(value.func.value, cst.Name) else base.spelled
                return _pinned(base, pins, spelled)
            return self._joint(value, flow.scopes, spelled)

    def _pins(self, call: cst.Call) -> Optional[set[str]]:
        pins: set[str] = set()
        for arg in call.args:
            if arg.star:
                return None
            if arg.keyword is not None:
                pins.add(arg.keyword.value)
            else:
                entries = self._dict_entries(self.resolver.value_of(arg.value))
                if entries is None:
                    return None
                pins |= {k for k, _ in entries}
        return pins

    # ------------------------------------------------------------------------ targets
    def _matches(self, target: cst.BaseExpression, surrogate: Joint) -> list[_Match]:
        flow = self.resolver.follow(target)
        if flow.subscripts:
            return []
        with self.resolver.within(flow) as value:
            return self._target_matches(value, flow, surrogate, (), {})

    def _target_matches(self, value: cst.BaseExpression, flow: Flow, surrogate: Joint,
                        bound_positional: tuple, bound_keywords: dict) -> list[_Match]:
        if isinstance(value, cst.Attribute) and value.attr.value in _DENSITY_METHODS:
            model = self._model(value.value, None)
            if model is None:
                # one distribution as the target (`tfd.Gamma(2., 1.).log_prob`): the only component
                if bound_positional or bound_keywords or len(surrogate.parts) != 1:
                    return []
                prior = Part(None, None, value.value, self._current_scopes())
                return [_Match(surrogate.parts[0], prior, None)]
            model = _pinned(model, set(bound_keywords), model.spelled) if bound_keywords else model
            if model is None:
                return []
            positional, keywords = self._sample_as_arguments(surrogate)
            return self._pair(model, surrogate, [None] * len(bound_positional) + positional, keywords, None)
        if isinstance(value, cst.Call) and not self.call_names(value).isdisjoint(_PARTIAL):
            if not value.args or any(a.star for a in value.args):
                return []
            inner = self.resolver.follow(value.args[0].value)
            if inner.subscripts:
                return []
            positional = tuple(a.value for a in value.args[1:] if a.keyword is None)
            keywords = {a.keyword.value: a.value for a in value.args[1:] if a.keyword is not None}
            with self.resolver.within(inner) as function:
                return self._target_matches(function, inner, surrogate, bound_positional + positional,
                                            {**bound_keywords, **keywords})
        if isinstance(value, cst.Lambda):
            return self._function_matches(value.params, [value.body], None, surrogate,
                                          bound_positional, bound_keywords)
        if isinstance(value, cst.Name) and flow.parameter is None:
            function = self.resolver.function_of(cst.Call(func=value))
            if function is None:
                return []
            scopes = self._function_scopes(function)
            if not scopes:
                return []
            with self.resolver.within(Flow(value, (), scopes)):
                return self._function_matches(function.params, [function.body], function, surrogate,
                                              bound_positional, bound_keywords)
        return []

    def _sample_as_arguments(self, surrogate: Joint):
        """How TFP passes the surrogate's sample to the target: positional and keyword values."""
        if surrogate.convention == "args":
            return [Ref(position=p.position, name=p.name) for p in surrogate.parts], {}
        if surrogate.convention == "kwargs":
            return [], {p.name: Ref(name=p.name) for p in surrogate.parts if p.name}
        return [Ref(position=0)], {}

    def _function_matches(self, params: cst.Parameters, bodies: list, function: Optional[cst.FunctionDef],
                          surrogate: Joint, bound_positional: tuple, bound_keywords: dict) -> list[_Match]:
        env = self._environment(params, surrogate, len(bound_positional), bound_keywords)
        if env is None:
            return []
        if function is not None:
            for name in _assigned_names(function.body):
                env.pop(name, None)  # `sigma = tf.exp(sigma)`: no longer the sample
        matches: list[_Match] = []
        for call in _calls_in(bodies):
            func = call.func
            if not isinstance(func, cst.Attribute) or func.attr.value not in _DENSITY_METHODS:
                continue
            if isinstance(func.value, cst.Name) and func.value.value in env:
                continue
            spread = self._spread_keywords(call, env, surrogate)  # `model.log_prob(**sample, y=y)`
            if spread is None:
                continue
            positional = []
            for arg in call.args:
                if arg.keyword is not None or arg.star == "**":
                    continue
                if arg.star == "*":
                    source = env.get(arg.value.value) if isinstance(arg.value, cst.Name) else None
                    if not isinstance(source, Whole) or source.named:
                        positional = None
                        break
                    positional += self._tail(source, surrogate)
                else:
                    positional.append(self._source(arg.value, env, surrogate))
            if positional is None:
                continue
            keywords = {**spread, **{a.keyword.value: self._source(a.value, env, surrogate)
                                     for a in call.args if a.keyword is not None}}
            model = self._model(func.value, None)
            if model is not None:
                matches += self._pair(model, surrogate, positional, keywords, env)
                continue
            # a single prior scoring a sample: `tfd.HalfNormal(1.).log_prob(sigma)`
            if len(positional) + len(keywords) != 1:
                continue
            source = positional[0] if positional else keywords.get("value", _NONE)
            if isinstance(source, Ref):
                part = _lookup(surrogate, source)
                if part is not None:
                    prior = Part(None, source.spelled, func.value, self._current_scopes())
                    matches.append(_Match(part, prior, None))
        return matches

    def _spread_keywords(self, call: cst.Call, env: dict, surrogate: Joint) -> Optional[dict]:
        """The keywords a `**name` argument spreads: the surrogate's named parts when `name` is the
        target's own `**kwargs` (`def target(**sample): return model.log_prob(**sample, y=y)`); {}
        without one; None when something else is spread (what it holds cannot be read)."""
        spread = [a for a in call.args if a.star == "**"]
        if not spread:
            return {}
        source = env.get(spread[0].value.value) if isinstance(spread[0].value, cst.Name) else None
        if len(spread) != 1 or not isinstance(source, Whole) or not source.named:
            return None
        return {p.name: Ref(name=p.name) for p in surrogate.parts if p.name}

    def _current_scopes(self) -> tuple:
        """The scopes queries are answered in now (to read a value later in the same place)."""
        return self.resolver.follow(cst.Name("__elbolint_here__")).scopes

    def _environment(self, params: cst.Parameters, surrogate: Joint, skip: int, bound_keywords: dict):
        """Parameter name -> Ref / Whole for the parameters the surrogate's sample binds."""
        env: dict[str, object] = {}
        positional = [p.name.value for p in (*params.posonly_params, *params.params)][skip:]
        positional = [p for p in positional if p not in bound_keywords]
        star = params.star_arg.name.value if isinstance(params.star_arg, cst.Param) else None
        if surrogate.convention == "args":
            count = len(surrogate.parts)
            for index, name in enumerate(positional[:count]):
                part = surrogate.by_position(index)
                env[name] = Ref(position=index, name=part.name if part else None, spelled=name)
            if star is not None and len(positional) < count:
                env[star] = Whole(offset=len(positional))
        elif surrogate.convention == "kwargs":
            names = {p.name for p in surrogate.parts if p.name}
            for param in (*params.posonly_params, *params.params, *params.kwonly_params):
                if param.name.value in names:
                    env[param.name.value] = Ref(name=param.name.value, spelled=param.name.value)
            if params.star_kwarg is not None:
                env[params.star_kwarg.name.value] = Whole(named=True)
        else:
            if positional:
                env[positional[0]] = Ref(position=0, spelled=positional[0])
        return env

    def _tail(self, whole: Whole, surrogate: Joint) -> list:
        return [Ref(position=p.position, name=p.name) for p in surrogate.parts
                if p.position is not None and p.position >= whole.offset]

    def _source(self, node: cst.BaseExpression, env: dict, surrogate: Joint):
        """What a target's expression is in terms of the surrogate's sample: a Ref, a Whole, a
        structure (list of sources / dict of sources) or None (data, or a transformed sample)."""
        if isinstance(node, cst.Name):
            return env.get(node.value)
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name):
            whole = env.get(node.value.value)
            if not isinstance(whole, Whole) or len(node.slice) != 1:
                return None
            index = node.slice[0].slice
            if not isinstance(index, cst.Index):
                return None
            if whole.named:
                key = _string(index.value)
                return Ref(name=key) if key else None
            if isinstance(index.value, cst.Integer):
                return Ref(position=whole.offset + int(index.value.evaluated_value))
            return None
        if isinstance(node, (cst.List, cst.Tuple)):
            items: list = []
            for element in node.elements:
                if isinstance(element, cst.StarredElement):
                    inner = self._source(element.value, env, surrogate)
                    if isinstance(inner, Whole) and not inner.named:
                        items += self._tail(inner, surrogate)
                    elif isinstance(inner, list):
                        items += inner
                    else:
                        return None
                else:
                    items.append(self._source(element.value, env, surrogate))
            return items
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            left = self._sequence(self._source(node.left, env, surrogate), surrogate)
            right = self._sequence(self._source(node.right, env, surrogate), surrogate)
            if left is None or right is None:
                return None
            return left + right
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            if node.func.value in _BUILTIN_SEQUENCES and len(node.args) == 1 and not node.args[0].keyword:
                return self._sequence(self._source(node.args[0].value, env, surrogate), surrogate)
            if node.func.value == "dict":
                return self._dict_source(node, env, surrogate)
        if isinstance(node, cst.Dict):
            return self._dict_source(node, env, surrogate)
        return None

    def _sequence(self, source, surrogate: Joint) -> Optional[list]:
        if isinstance(source, Whole) and not source.named:
            return self._tail(source, surrogate)
        if isinstance(source, list):
            return source
        return None

    def _dict_source(self, node: Union[cst.Dict, cst.Call], env: dict, surrogate: Joint) -> Optional[dict]:
        found: dict = {}
        if isinstance(node, cst.Dict):
            for element in node.elements:
                if isinstance(element, cst.StarredDictElement):
                    inner = self._source(element.value, env, surrogate)
                    if not (isinstance(inner, Whole) and inner.named):
                        return None
                    found.update({p.name: Ref(name=p.name) for p in surrogate.parts if p.name})
                else:
                    key = _string(element.key)
                    if key is None:
                        return None
                    found[key] = self._source(element.value, env, surrogate)
            return found
        for arg in node.args:
            if arg.keyword is not None:
                found[arg.keyword.value] = self._source(arg.value, env, surrogate)
            elif not arg.star:
                inner = self._source(arg.value, env, surrogate)
                if not (isinstance(inner, Whole) and inner.named):
                    return None
                found.update({p.name: Ref(name=p.name) for p in surrogate.parts if p.name})
            else:
                return None
        return found

    def _pair(self, model: Joint, surrogate: Joint, positional: list, keywords: dict,
              env: Optional[dict]) -> list[_Match]:
        """Model component <-> surrogate component, following TFP's rule for `log_prob(*args, **kwargs)`:
        a keyword names a component; positional argument i is component i; a single positional
        argument of a model with several components is the whole value (a list or a dict)."""
        assigned: list[tuple[Part, object]] = []
        keywords = dict(keywords)
        value = keywords.pop("value", _NONE)
        if value is not _NONE:
            if positional:
                return []
            positional = [value]
        named = {k: v for k, v in keywords.items() if model.by_name(k) is not None}
        if len(positional) == 1 and not named and len(model.parts) > 1:
            structure = positional[0]
            if isinstance(structure, Whole):
                structure = self._tail(structure, surrogate) if not structure.named else {
                    p.name: Ref(name=p.name) for p in surrogate.parts if p.name}
            if isinstance(structure, list):
                positional = structure
            elif isinstance(structure, dict):
                positional, named = [], {k: v for k, v in structure.items() if model.by_name(k) is not None}
            else:
                return []
        for index, source in enumerate(positional):
            part = model.by_position(index)
            if part is not None and part.name not in named:
                assigned.append((part, source))
        for key, source in named.items():
            assigned.append((model.by_name(key), source))
        matches = []
        for prior, source in assigned:
            if isinstance(source, Ref):
                part = _lookup(surrogate, source)
                if part is not None:
                    matches.append(_Match(part, prior, model))
        return matches


# ------------------------------------------------------------------------------ helpers
def _pinned(model: Joint, pins: set, spelled: str) -> Optional[Joint]:
    """The model with the named components pinned (TFP renumbers the rest)."""
    if not pins:
        return Joint(model.convention, model.parts, spelled)
    names = {p.name for p in model.parts}
    if not pins <= names:
        return None
    kept = [p for p in model.parts if p.name not in pins]
    if model.convention == "args":
        certain = all(p.position is not None for p in model.parts)
        kept = [Part(i if certain else None, p.name, p.value, p.scopes) for i, p in enumerate(kept)]
    return Joint(model.convention, kept, spelled)


def _lookup(surrogate: Joint, ref: Ref) -> Optional[Part]:
    if ref.position is not None:
        part = surrogate.by_position(ref.position)
        if part is not None:
            return part
    if ref.name is not None:
        return surrogate.by_name(ref.name)
    return None


def _literal_slice(subscripts: tuple) -> Optional[slice]:
    """`[:-1]`, `[1:]`, `[0:2]` (one subscript, literal integers): the slice; None otherwise."""
    if len(subscripts) != 1 or len(subscripts[0].slice) != 1:
        return None
    inner = subscripts[0].slice[0].slice
    if not isinstance(inner, cst.Slice) or inner.step is not None:
        return None
    bounds = []
    for bound in (inner.lower, inner.upper):
        if bound is None:
            bounds.append(None)
            continue
        negative = isinstance(bound, cst.UnaryOperation) and isinstance(bound.operator, cst.Minus)
        number = bound.expression if negative else bound
        if not isinstance(number, cst.Integer):
            return None
        bounds.append(-int(number.evaluated_value) if negative else int(number.evaluated_value))
    return slice(*bounds)


def _unroot(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Root(tfd.Gamma(...))` -> `tfd.Gamma(...)`."""
    if isinstance(value, cst.Call) and len(value.args) == 1 and not value.args[0].keyword:
        func = value.func
        spelled = (func.value if isinstance(func, cst.Name)
                   else func.attr.value if isinstance(func, cst.Attribute) else "")
        if spelled.lower() == "root":
            return value.args[0].value
    return value


def _string(node: Optional[cst.CSTNode]) -> Optional[str]:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _monotone(bound: Bound, function) -> Bound:
    if bound is None or isinstance(bound, _Finite):
        return bound
    if bound == -INF:
        try:
            return function(-INF)
        except (OverflowError, ValueError):
            return -INF
    try:
        return function(bound)
    except OverflowError:
        return INF


def _softplus(value: float) -> float:
    if value == -INF:
        return 0.0
    if value == INF:
        return INF
    return math.log1p(math.exp(-abs(value))) + max(value, 0.0)


def _calls_in(bodies: list) -> list[cst.Call]:
    """Every call in the given code, not in nested functions, classes or lambdas."""
    found: list[cst.Call] = []
    stack = list(reversed(bodies))
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(node, cst.Call):
            found.append(node)
        stack.extend(reversed(node.children))
    return found


def _assigned_names(body: cst.CSTNode) -> set[str]:
    names: set[str] = set()
    stack: list[cst.CSTNode] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        targets: list[cst.CSTNode] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, cst.For):
            targets = [node.target]
        elif isinstance(node, cst.NamedExpr):
            targets = [node.target]
        for target in targets:
            for inner in _names(target):
                names.add(inner)
        stack.extend(node.children)
    return names


def _names(target: cst.CSTNode) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names(e.value)]
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    return []

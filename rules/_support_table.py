"""ELB014's knowledge of supports: where each TFP distribution has density, and interval arithmetic on them.

Kept apart from the rule so that the facts can be checked on their own: `SUPPORTS` says, for each TFP
distribution elbolint knows, where it has density, which bijector TFP itself uses to reach that support
(`experimental_default_event_space_bijector()`) and what TFP's `log_prob` returns outside it;
tests/test_support_table.py checks every entry against TFP (the bijector's class, its image, the
log-density outside), so the table cannot drift. `Support` and `wider` compare a surrogate's support with
a prior's; `describe` words a support for a message. Pure data and arithmetic: no LibCST, no resolver.
Not a rule module (it defines no Rule subclass with a code), so the registry skips it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

INF = math.inf


class FiniteBound:
    """A bound that is a parameter of the distribution: finite, value not visible."""

    def __repr__(self) -> str:
        return "FINITE"


#: A finite bound whose value elbolint cannot read (`Uniform(low=a, ...)`).
FINITE = FiniteBound()
#: A bound that may be anything, infinite included (`TruncatedNormal(..., low=lows)`): unknown.
Bound = Union[float, FiniteBound, None]


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


@dataclass(frozen=True)
class Support:
    """Where one distribution (as written in the file) has density: `kind` as in SupportSpec, and for an
    interval its bounds (a number, FINITE, or None when unknown)."""

    kind: str
    low: Bound = -INF
    high: Bound = INF

    @property
    def real(self) -> bool:
        return self.kind == "interval" and self.low == -INF and self.high == INF


def describe_bound(bound: Bound, text: str) -> str:
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
    low, high = describe_bound(support.low, low_text), describe_bound(support.high, high_text)
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
    if isinstance(surrogate, FiniteBound) or isinstance(prior, FiniteBound):
        return False
    return surrogate < prior


def _above(surrogate: Bound, prior: Bound) -> bool:
    if surrogate is None or prior is None:
        return False
    if surrogate == INF:
        return prior != INF
    if isinstance(surrogate, FiniteBound) or isinstance(prior, FiniteBound):
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


def monotone(bound: Bound, function: Callable[[float], float]) -> Bound:
    """A bound moved by an increasing function (an infinite bound stays infinite where the function overflows)."""
    if bound is None or isinstance(bound, FiniteBound):
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


def softplus(value: float) -> float:
    if value == -INF:
        return 0.0
    if value == INF:
        return INF
    return math.log1p(math.exp(-abs(value))) + max(value, 0.0)


"""ELB014's support table, checked against TFP itself so that it cannot drift: for every entry,
TFP's `experimental_default_event_space_bijector()` is the one the table names and maps the real
line exactly onto the table's support, and TFP's `log_prob` outside that support is what the
finding's message says (-inf where TFP checks the support, NaN or a finite number where it does
not). Imports TensorFlow Probability (a test dependency); skipped without it."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from elbolint.rules.surrogate_support_mismatch import (
    BOUND_PARAMETERS, EXCLUDED, REAL_LINE_IMAGES, SUPPORTS, SupportSpec,
)

tfp = pytest.importorskip("tensorflow_probability")


class _Submodule:
    """`tfp.distributions` or `tfp.bijectors`, looked up on first use. TFP's own lazy modules load
    TensorFlow when pytest's collection asks a module global for `__bases__` (to see whether it is a
    unittest class), which would put a TensorFlow import into every run that merely collects this file."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(getattr(tfp, self._name), attribute)


tfd, tfb = _Submodule("distributions"), _Submodule("bijectors")

EYE3 = np.eye(3, dtype=np.float32)

#: One instance of every distribution in the table, with parameters that move its bounds away
#: from their defaults (so a bound read from the wrong parameter fails).
INSTANCES = {
    "Normal": lambda: tfd.Normal(0.5, 2.0), "StudentT": lambda: tfd.StudentT(3.0, 0.0, 1.0),
    "Laplace": lambda: tfd.Laplace(0.0, 1.0), "Cauchy": lambda: tfd.Cauchy(0.0, 1.0),
    "Logistic": lambda: tfd.Logistic(0.0, 1.0), "Gumbel": lambda: tfd.Gumbel(0.0, 1.0),
    "Moyal": lambda: tfd.Moyal(0.0, 1.0), "SinhArcsinh": lambda: tfd.SinhArcsinh(0.0, 1.0, 0.3, 1.2),
    "GeneralizedNormal": lambda: tfd.GeneralizedNormal(0.0, 1.0, 1.5),
    "TwoPieceNormal": lambda: tfd.TwoPieceNormal(0.0, 1.0, 1.5),
    "TwoPieceStudentT": lambda: tfd.TwoPieceStudentT(3.0, 0.0, 1.0, 1.5),
    "ExpGamma": lambda: tfd.ExpGamma(2.0, 1.0), "ExpInverseGamma": lambda: tfd.ExpInverseGamma(2.0, 1.0),
    "Horseshoe": lambda: tfd.Horseshoe(1.0),
    "ExponentiallyModifiedGaussian": lambda: tfd.ExponentiallyModifiedGaussian(0.0, 1.0, 1.0),
    "LambertWNormal": lambda: tfd.LambertWNormal(0.0, 1.0, 0.1),
    "NormalInverseGaussian": lambda: tfd.NormalInverseGaussian(0.0, 1.0, tailweight=1.0, skewness=0.0),
    "DoublesidedMaxwell": lambda: tfd.DoublesidedMaxwell(0.0, 1.0), "SigmoidBeta": lambda: tfd.SigmoidBeta(2.0, 2.0),
    "MultivariateNormalDiag": lambda: tfd.MultivariateNormalDiag([0.0, 0.0], [1.0, 2.0]),
    "MultivariateNormalTriL": lambda: tfd.MultivariateNormalTriL([0.0, 0.0], np.eye(2, dtype=np.float32)),
    "MultivariateNormalFullCovariance": lambda: tfd.MultivariateNormalFullCovariance(
        [0.0, 0.0], np.eye(2, dtype=np.float32)),
    "MultivariateNormalDiagPlusLowRank": lambda: tfd.MultivariateNormalDiagPlusLowRank(
        [0.0, 0.0], [1.0, 1.0], np.ones([2, 1], np.float32)),
    "MultivariateNormalDiagPlusLowRankCovariance": lambda: tfd.MultivariateNormalDiagPlusLowRankCovariance(
        [0.0, 0.0], [1.0, 1.0], np.ones([2, 1], np.float32)),
    # MultivariateNormalLinearOperator, MultivariateStudentTLinearOperator: below (they need a LinearOperator)
    "Gamma": lambda: tfd.Gamma(2.0, 1.0), "HalfNormal": lambda: tfd.HalfNormal(1.0),
    "HalfCauchy": lambda: tfd.HalfCauchy(2.0, 1.0), "HalfStudentT": lambda: tfd.HalfStudentT(3.0, -1.0, 1.0),
    "LogNormal": lambda: tfd.LogNormal(0.0, 1.0), "Exponential": lambda: tfd.Exponential(1.0),
    "InverseGamma": lambda: tfd.InverseGamma(2.0, 1.0), "Chi2": lambda: tfd.Chi2(3.0), "Chi": lambda: tfd.Chi(3.0),
    "Weibull": lambda: tfd.Weibull(2.0, 1.0), "Pareto": lambda: tfd.Pareto(2.0, 3.0),
    "LogLogistic": lambda: tfd.LogLogistic(0.0, 1.0), "InverseGaussian": lambda: tfd.InverseGaussian(1.0, 1.0),
    "GammaGamma": lambda: tfd.GammaGamma(2.0, 2.0, 1.0), "NoncentralChi2": lambda: tfd.NoncentralChi2(3.0, 1.0),
    "BetaQuotient": lambda: tfd.BetaQuotient(2.0, 2.0, 2.0, 2.0),
    "Beta": lambda: tfd.Beta(2.0, 2.0), "Kumaraswamy": lambda: tfd.Kumaraswamy(2.0, 2.0),
    "LogitNormal": lambda: tfd.LogitNormal(0.0, 1.0), "RelaxedBernoulli": lambda: tfd.RelaxedBernoulli(0.5, logits=0.0),
    "Uniform": lambda: tfd.Uniform(-1.0, 4.0), "TruncatedNormal": lambda: tfd.TruncatedNormal(0.0, 1.0, -1.0, 2.0),
    "TruncatedCauchy": lambda: tfd.TruncatedCauchy(0.0, 1.0, -1.0, 2.0),
    "Triangular": lambda: tfd.Triangular(-1.0, 3.0, 0.5), "PERT": lambda: tfd.PERT(-1.0, 0.5, 3.0),
    "Bates": lambda: tfd.Bates(3.0, -1.0, 3.0),
    "Dirichlet": lambda: tfd.Dirichlet([2.0, 2.0, 2.0]),
    "RelaxedOneHotCategorical": lambda: tfd.RelaxedOneHotCategorical(0.5, logits=[0.0, 0.0, 0.0]),
    "LKJ": lambda: tfd.LKJ(3, 2.0), "CholeskyLKJ": lambda: tfd.CholeskyLKJ(3, 2.0),
    "WishartTriL": lambda: tfd.WishartTriL(4.0, EYE3),
}


def _identity():
    """A LinearOperator, without importing TensorFlow here. Built when an instance is, not at import:
    collecting this module (even when it is deselected) then loads no TensorFlow."""
    return tfd.MultivariateNormalDiag([0.0, 0.0]).scale


def _linear_operator_instances():
    return {
        "MultivariateNormalLinearOperator": lambda: tfd.MultivariateNormalLinearOperator([0.0, 0.0], _identity()),
        "MultivariateStudentTLinearOperator": lambda: tfd.MultivariateStudentTLinearOperator(
            3.0, [0.0, 0.0], _identity()),
    }


INSTANCES.update(_linear_operator_instances())

#: The parameters the instances above were built with, for bounds the table names by parameter.
BOUND_VALUES = {
    "HalfCauchy": {"loc": 2.0}, "HalfStudentT": {"loc": -1.0}, "Pareto": {"scale": 3.0},
    "Uniform": {"low": -1.0, "high": 4.0}, "TruncatedNormal": {"low": -1.0, "high": 2.0},
    "TruncatedCauchy": {"low": -1.0, "high": 2.0}, "Triangular": {"low": -1.0, "high": 3.0},
    "PERT": {"low": -1.0, "high": 3.0}, "Bates": {"low": -1.0, "high": 3.0},
}


@pytest.fixture(autouse=True)
def _numpy2_pad(monkeypatch):
    """TFP 0.25's Pad bijector (inside SoftmaxCentered, Dirichlet's bijector) calls
    `np.reshape(x, newshape=...)`, which NumPy 2.4 removed; give that one module a NumPy that
    still accepts it (the bijector itself is unchanged)."""
    from tensorflow_probability.python.bijectors import pad

    class _NumPy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def reshape(a, *args, newshape=None, **kwargs):
            return np.reshape(a, newshape, **kwargs) if newshape is not None else np.reshape(a, *args, **kwargs)

    monkeypatch.setattr(pad, "np", _NumPy())


def describe(bijector) -> str:
    """`Chain(Shift,Exp)`: the bijector's classes, as the table writes them."""
    if isinstance(bijector, tfb.Chain):
        return "Chain(" + ",".join(describe(b) for b in bijector.bijectors) + ")"
    if isinstance(bijector, tfb.Invert):
        return f"Invert({describe(bijector.bijector)})"
    return type(bijector).__name__


def bound(spec: SupportSpec, name: str, which: str) -> float:
    value = getattr(spec, which)
    return BOUND_VALUES[name][value] if isinstance(value, str) else value


def unconstrained_inputs(distribution, bijector):
    """A grid from -1000 to 1000 in every unconstrained coordinate (and random points)."""
    shape = [int(d) for d in bijector.inverse_event_shape(distribution.event_shape)]
    grid = np.concatenate([-np.logspace(3, -3, 25), [0.0], np.logspace(-3, 3, 25)]).astype(np.float32)
    inputs = np.broadcast_to(grid.reshape([-1] + [1] * len(shape)), [len(grid)] + shape)
    random = np.random.RandomState(0).normal(scale=3.0, size=[64] + shape).astype(np.float32)
    return np.concatenate([inputs, random])


def test_every_entry_has_an_instance():
    assert set(INSTANCES) == set(SUPPORTS)
    for name in (*SUPPORTS, *EXCLUDED):
        assert hasattr(tfd, name), name


@pytest.mark.parametrize("name", sorted(SUPPORTS))
def test_bijector_is_tfps_own(name):
    bijector = INSTANCES[name]().experimental_default_event_space_bijector()
    assert describe(bijector) == SUPPORTS[name].bijector


@pytest.mark.parametrize("name", sorted(SUPPORTS))
def test_bijector_maps_the_real_line_onto_the_support(name):
    spec = SUPPORTS[name]
    distribution = INSTANCES[name]()
    bijector = distribution.experimental_default_event_space_bijector()
    values = np.asarray(bijector.forward(unconstrained_inputs(distribution, bijector)), dtype=np.float64)
    values = values[np.isfinite(values).all(axis=tuple(range(1, values.ndim)))] if values.ndim > 1 else values
    if spec.kind == "interval":
        low, high = bound(spec, name, "low"), bound(spec, name, "high")
        finite = values[np.isfinite(values)]
        if low == -math.inf:
            assert finite.min() < -100, (name, finite.min())
        else:
            assert low - 1e-4 <= finite.min() <= low + 1e-2, (name, finite.min(), low)
        if high == math.inf:
            assert values.max() > 100, (name, values.max())
        else:
            assert high - 1e-2 <= finite.max() <= high + 1e-4, (name, finite.max(), high)
    elif spec.kind == "simplex":
        assert (values >= 0).all() and np.allclose(values.sum(axis=-1), 1.0, atol=1e-5)
    elif spec.kind in ("correlation", "positive-definite"):
        assert np.allclose(values, np.swapaxes(values, -1, -2), atol=1e-4)
        assert (np.linalg.eigvalsh(values) > -1e-5).all()
        if spec.kind == "correlation":
            assert np.allclose(np.diagonal(values, axis1=-2, axis2=-1), 1.0, atol=1e-5)
    elif spec.kind == "cholesky-correlation":
        assert np.allclose(np.triu(values, 1), 0.0)
        assert np.allclose(np.linalg.norm(values, axis=-1), 1.0, atol=1e-5)
    else:
        pytest.fail(f"unknown kind {spec.kind}")


OUTSIDE = {  # a point outside each set-valued support
    "simplex": np.array([0.6, 0.6, -0.2], np.float32),
    "correlation": np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32),
    "cholesky-correlation": np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32),
    "positive-definite": -EYE3,
}


def _outside_points(spec: SupportSpec, name: str, event_shape) -> list:
    if spec.kind != "interval":
        return [OUTSIDE[spec.kind]]
    points = []
    low, high = bound(spec, name, "low"), bound(spec, name, "high")
    if low != -math.inf:
        points.append(low - 0.5)
    if high != math.inf:
        points.append(high + 0.5)
    return [np.full(event_shape, p, np.float32) for p in points]


@pytest.mark.parametrize("name", sorted(SUPPORTS))
def test_log_prob_outside_the_support_is_what_the_message_says(name):
    spec = SUPPORTS[name]
    distribution = INSTANCES[name]()
    event_shape = [int(d) for d in distribution.event_shape]
    if spec.outside == "none":
        assert spec.kind == "interval" and spec.low == -math.inf and spec.high == math.inf
        for point in (-3.0, -0.7, 0.6, 3.0):
            assert np.isfinite(distribution.log_prob(np.full(event_shape, point, np.float32))), (name, point)
        return
    points = _outside_points(spec, name, event_shape)
    assert points, name
    for point in points:
        value = float(distribution.log_prob(point))
        if spec.outside == "-inf":
            assert value == -math.inf, (name, point, value)
        else:
            assert spec.outside == "unchecked"
            assert value != -math.inf, (name, point, value)  # NaN, or a finite value: TFP does not check


def test_excluded_distributions_are_excluded_for_their_reasons():
    # VonMises: its bijector maps onto [-pi, pi], but its log_prob is periodic, finite everywhere.
    von_mises = tfd.VonMises(0.0, 1.0)
    assert describe(von_mises.experimental_default_event_space_bijector()) == "Sigmoid"
    assert np.isfinite(von_mises.log_prob(10.0))
    # GeneralizedPareto: the support is bounded above only when the concentration is negative.
    for excluded in (tfd.GeneralizedPareto(0.0, 1.0, 0.5), tfd.GeneralizedExtremeValue(0.0, 1.0, 0.5)):
        flip = type(excluded)(0.0, 1.0, -0.5)
        grid = np.linspace(-50, 50, 101).astype(np.float32)
        up = np.asarray(excluded.experimental_default_event_space_bijector().forward(grid))
        down = np.asarray(flip.experimental_default_event_space_bijector().forward(grid))
        assert (up.min(), up.max()) != pytest.approx((down.min(), down.max()), abs=1e-2)


@pytest.mark.parametrize("name", sorted(BOUND_PARAMETERS))
def test_bound_parameters_follow_tfps_signatures(name):
    parameters = list(inspect.signature(getattr(tfd, name).__init__).parameters.values())[1:]
    for (expected, default), actual in zip(BOUND_PARAMETERS[name], parameters):
        assert actual.name == expected, (name, actual.name, expected)
        if default is None:
            assert actual.default is inspect.Parameter.empty, (name, expected)
        else:
            assert actual.default == default, (name, expected, actual.default)


@pytest.mark.parametrize("member", sorted(REAL_LINE_IMAGES))
def test_real_line_images_of_the_bijectors_the_rule_follows(member):
    arguments = {"Shift": (1.5,), "Scale": (2.0,)}.get(member, ())
    bijector = getattr(tfb, member)(*arguments)
    grid = np.concatenate([-np.logspace(3, -3, 25), [0.0], np.logspace(-3, 3, 25)]).astype(np.float32)
    values = np.asarray(bijector.forward(grid), dtype=np.float64)
    low, high = REAL_LINE_IMAGES[member]
    if low == -math.inf:
        assert values.min() < -100
    else:
        assert low - 1e-4 <= values.min() <= low + 1e-2
    if high == math.inf:
        assert values.max() > 100
    else:
        assert high - 1e-2 <= values.max() <= high + 1e-4

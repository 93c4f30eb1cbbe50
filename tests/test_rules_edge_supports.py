"""ELB014's support table, one distribution at a time: each prior with a surrogate whose support is
wider, and each surrogate family against a prior with a narrower support.

Why: the fixtures use a few priors (HalfNormal, Gamma, Uniform, ...), and the table
(`rules/_support_table.py`) is read by name, so a distribution lost from it (read as unknown,
never reported) passes them. tests/test_support_table.py checks the table's facts against TFP,
not that the rule reads them. Each case here is one model: a one-parameter prior and a Poisson
likelihood, fitted with `tfp.vi.fit_surrogate_posterior`; only the prior or the surrogate changes.
The expected supports are written out here.
"""

from __future__ import annotations

import pytest

from conftest import lint
from elbolint.config import Config

MODEL = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

counts = np.random.RandomState(0).poisson(3.0, size=50).astype(np.float32)
model = tfd.JointDistributionSequential([
    {prior},
    lambda theta: tfd.Independent(tfd.Poisson(rate=counts + theta), reinterpreted_batch_ndims=1),
])
surrogate = tfd.JointDistributionSequential([
    {surrogate},
])
losses = tfp.vi.fit_surrogate_posterior(
    lambda theta: model.log_prob([theta, counts]), surrogate,
    optimizer=tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=100)
'''
SURROGATE_LINE = 14
REPORTED = [(SURROGATE_LINE, "ELB014")]
PARAMETERS = "tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus())"

POSITIVE_PRIORS = [
    "tfd.Gamma(2.0, 1.0)", "tfd.HalfNormal(1.0)", "tfd.HalfCauchy(0.0, 1.0)", "tfd.HalfStudentT(3.0, 0.0, 1.0)",
    "tfd.LogNormal(0.0, 1.0)", "tfd.Exponential(1.0)", "tfd.InverseGamma(2.0, 1.0)", "tfd.Chi2(3.0)", "tfd.Chi(3.0)",
    "tfd.Weibull(1.5, 1.0)", "tfd.LogLogistic(0.0, 1.0)", "tfd.InverseGaussian(1.0, 1.0)",
    "tfd.GammaGamma(2.0, 2.0, 1.0)", "tfd.NoncentralChi2(3.0, 1.0)", "tfd.BetaQuotient(2.0, 2.0, 2.0, 2.0)",
]
# Supports narrower than the positive half-line: a LogNormal surrogate is too wide for them as well.
BOUNDED_PRIORS = [
    "tfd.Pareto(2.0, 1.0)", "tfd.Beta(2.0, 2.0)", "tfd.Kumaraswamy(2.0, 2.0)", "tfd.LogitNormal(0.0, 1.0)",
    "tfd.RelaxedBernoulli(0.5, probs=0.5)", "tfd.Uniform(0.0, 2.0)", "tfd.TruncatedNormal(0.0, 1.0, 0.0, 2.0)",
    "tfd.TruncatedCauchy(0.0, 1.0, 0.0, 2.0)", "tfd.Triangular(0.0, 2.0, 1.0)", "tfd.PERT(0.0, 1.0, 2.0)",
    "tfd.Bates(4, 0.0, 2.0)",
]
REAL_LINE_PRIORS = ["tfd.Normal(0.0, 1.0)", "tfd.StudentT(3.0, 0.0, 1.0)", "tfd.VonMises(0.0, 1.0)"]

REAL_LINE_SURROGATES = [
    "Normal", "StudentT", "Laplace", "Cauchy", "Logistic", "Gumbel", "Moyal", "SinhArcsinh", "GeneralizedNormal",
    "TwoPieceNormal", "TwoPieceStudentT", "ExpGamma", "ExpInverseGamma", "Horseshoe",
    "ExponentiallyModifiedGaussian", "LambertWNormal", "NormalInverseGaussian", "DoublesidedMaxwell", "SigmoidBeta",
]
POSITIVE_SURROGATES = ["Gamma", "LogNormal", "Weibull", "LogLogistic", "InverseGamma", "Chi2", "Exponential"]


def findings(tmp_path, prior: str, surrogate: str) -> list[tuple[int, str]]:
    path = tmp_path / "fit.py"
    path.write_text(MODEL.format(prior=prior, surrogate=surrogate), encoding="utf-8")
    enabled = Config().enabled_codes() | {"ELB014"}
    return sorted((d.line, d.code) for d in lint(path, enabled) if d.code == "ELB014")


@pytest.mark.parametrize("prior", POSITIVE_PRIORS + BOUNDED_PRIORS)
def test_a_normal_surrogate_is_too_wide_for_every_bounded_prior(tmp_path, prior):
    assert findings(tmp_path, prior, f"tfd.Normal({PARAMETERS})") == REPORTED


@pytest.mark.parametrize("prior", POSITIVE_PRIORS + BOUNDED_PRIORS + REAL_LINE_PRIORS)
def test_a_lognormal_surrogate_fits_exactly_the_positive_priors(tmp_path, prior):
    expected = REPORTED if prior in BOUNDED_PRIORS else []
    assert findings(tmp_path, prior, f"tfd.LogNormal({PARAMETERS})") == expected


@pytest.mark.parametrize("prior", REAL_LINE_PRIORS)
def test_nothing_is_too_wide_for_a_prior_on_the_real_line(tmp_path, prior):
    assert findings(tmp_path, prior, f"tfd.Normal({PARAMETERS})") == []


@pytest.mark.parametrize("family", REAL_LINE_SURROGATES)
def test_every_real_line_surrogate_is_too_wide_for_a_gamma_prior(tmp_path, family):
    assert findings(tmp_path, "tfd.Gamma(2.0, 1.0)", f"tfd.{family}({PARAMETERS})") == REPORTED


@pytest.mark.parametrize("family", POSITIVE_SURROGATES)
def test_a_positive_surrogate_fits_a_gamma_prior_and_not_a_beta_prior(tmp_path, family):
    assert findings(tmp_path, "tfd.Gamma(2.0, 1.0)", f"tfd.{family}({PARAMETERS})") == []
    assert findings(tmp_path, "tfd.Beta(2.0, 2.0)", f"tfd.{family}({PARAMETERS})") == REPORTED


@pytest.mark.parametrize("bijector, reported", [
    ("tfb.Exp()", False), ("tfb.Softplus()", False), ("tfb.Square()", False), ("tfb.AbsoluteValue()", False),
    ("tfb.Identity()", True), ("tfb.Shift(1.0)", True), ("tfb.Scale(2.0)", True), ("tfb.Tanh()", True),
    ("tfb.Sigmoid()", False), ("tfb.NormalCDF()", False),
])
def test_a_normal_surrogate_through_a_bijector_for_a_gamma_prior(tmp_path, bijector, reported):
    surrogate = f"tfd.TransformedDistribution(tfd.Normal({PARAMETERS}), {bijector})"
    assert findings(tmp_path, "tfd.Gamma(2.0, 1.0)", surrogate) == (REPORTED if reported else [])


@pytest.mark.parametrize("bijector, reported", [
    ("tfb.Sigmoid()", False), ("tfb.NormalCDF()", False), ("tfb.Exp()", True), ("tfb.Softplus()", True),
    ("tfb.Tanh()", True),
])
def test_a_normal_surrogate_through_a_bijector_for_a_beta_prior(tmp_path, bijector, reported):
    surrogate = f"tfd.TransformedDistribution(tfd.Normal({PARAMETERS}), {bijector})"
    assert findings(tmp_path, "tfd.Beta(2.0, 2.0)", surrogate) == (REPORTED if reported else [])


@pytest.mark.parametrize("infinity", ["np.inf", "float('inf')", "float('infinity')"])
def test_an_infinite_bound_of_a_truncated_prior(tmp_path, infinity):
    prior = f"tfd.TruncatedNormal(1.0, 2.0, low=0.0, high={infinity})"
    assert findings(tmp_path, prior, f"tfd.Normal({PARAMETERS})") == REPORTED
    assert findings(tmp_path, prior, f"tfd.LogNormal({PARAMETERS})") == []
    prior = f"tfd.TruncatedNormal(1.0, 2.0, low=-{infinity}, high=0.0)"
    assert findings(tmp_path, prior, f"tfd.Normal({PARAMETERS})") == REPORTED

"""Paths the fixtures never take: one distribution's `log_prob` as the whole target (ELB014), an
initial state given as one tensor (ELB002), and each spelling of a `# noqa` comment.

Why: a sampled mutation run found no test reaching these branches, so any change in them passed.
Each case is a small realistic program; the expected findings are written out.
"""

from __future__ import annotations

import pytest

from conftest import lint
from elbolint.config import Config

ONE_DISTRIBUTION_TARGET = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

surrogate = {surrogate}
losses = tfp.vi.fit_surrogate_posterior(
    tfd.Gamma(2.0, 1.0).log_prob, surrogate, optimizer=tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=100)
'''
NORMAL = "tfd.Normal(tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus()))"
LOGNORMAL = "tfd.LogNormal(tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus()))"


def findings(tmp_path, source: str, extra: frozenset = frozenset()) -> list[tuple[int, str]]:
    path = tmp_path / "program.py"
    path.write_text(source, encoding="utf-8")
    return sorted((d.line, d.code) for d in lint(path, Config().enabled_codes() | extra))


@pytest.mark.parametrize("surrogate, expected", [
    (NORMAL, [(8, "ELB014")]),
    (LOGNORMAL, []),
    (f"tfd.JointDistributionSequential([{NORMAL}, {NORMAL}])", []),  # two parts for one target: not matched
])
def test_a_single_distribution_as_the_target(tmp_path, surrogate, expected):
    source = ONE_DISTRIBUTION_TARGET.format(surrogate=surrogate)
    assert findings(tmp_path, source, frozenset({"ELB014"})) == expected


CHAIN = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

kernel = tfp.mcmc.HamiltonianMonteCarlo(lambda x: -tf.reduce_sum(x**2), step_size=0.1, num_leapfrog_steps=3)
samples = tfp.mcmc.sample_chain(100, current_state={state}, kernel=kernel, trace_fn=None)
initial_state = {state}
'''


@pytest.mark.parametrize("state, far", [
    ("tf.constant([500.0, 0.0])", True), ("np.array([500.0])", True), ("[tf.constant(500.0)]", True),
    ("tf.constant([5.0, 0.0])", False), ("np.array([-5.0])", False),
])
def test_an_initial_state_given_as_one_tensor(tmp_path, state, far):
    expected = [(6, "ELB002"), (7, "ELB002")] if far else []
    assert findings(tmp_path, CHAIN.format(state=state)) == expected


SUPPRESSED = '''import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

surrogate = tfd.Normal(tf.Variable(0.0), tf.Variable(1.0))  {comment}
optimizer = tf.optimizers.Adam(0.01, clipnorm=1.0)
losses = tfp.vi.fit_surrogate_posterior(lambda z: -z**2, surrogate, optimizer, num_steps=10)
'''


@pytest.mark.parametrize("comment, expected", [
    ("", [(6, "ELB001")]),
    ("# noqa", []),
    ("# noqa:", []),
    ("# noqa: ELB001", []),
    ("# noqa:elb001", []),
    ("# noqa: ELB002", [(6, "ELB001"), (6, "ELB902")]),
    ("# noqa: ELB002, ELB001", [(6, "ELB902")]),
])
def test_each_spelling_of_a_noqa_comment(tmp_path, comment, expected):
    assert findings(tmp_path, SUPPRESSED.format(comment=comment)) == expected


SNIPPET = '''"""A snippet from a blog post, without its imports."""
surrogate = {distribution}(0.0, {variable}(1.0))
losses = {fit}(lambda z: -z**2, surrogate, {optimizer}(0.01), num_steps=10)
'''


@pytest.mark.parametrize("distribution, variable, fit, optimizer, expected", [
    ("tfd.Normal", "tf.Variable", "tfp.vi.fit_surrogate_posterior", "tf.optimizers.Adam",
     [(2, "ELB001"), (3, "ELB003")]),
    ("tfp.distributions.Normal", "tensorflow.Variable", "tensorflow_probability.vi.fit_surrogate_posterior",
     "tf_keras.optimizers.Adam", [(2, "ELB001"), (3, "ELB003")]),
    ("tensorflow_probability.distributions.Normal", "tf.Variable", "tfp.vi.fit_surrogate_posterior",
     "keras.optimizers.Adam", [(2, "ELB001"), (3, "ELB003")]),
    ("mylib.Normal", "tf.Variable", "tfp.vi.fit_surrogate_posterior", "tf.optimizers.Adam", [(3, "ELB003")]),
    ("tfd.Normal", "tf.Variable", "tfp.vi.fit_surrogate_posterior", "tfk.optimizers.Adam", [(2, "ELB001")]),
])
def test_conventional_names_left_unbound_mean_their_packages(tmp_path, distribution, variable, fit, optimizer,
                                                            expected):
    source = SNIPPET.format(distribution=distribution, variable=variable, fit=fit, optimizer=optimizer)
    assert findings(tmp_path, source) == expected


def test_a_conventional_layer_alias_left_unbound(tmp_path):
    source = ('"""A snippet without imports."""\nmodel = tf_keras.Sequential([tfpl.DenseFlipout(8)])\n'
              'optimizer = tf.keras.optimizers.Adam(0.01)\n')
    assert findings(tmp_path, source) == [(3, "ELB003")]


EXP_SCALE = '''import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
v = tf.Variable([0.0, 0.0])
surrogate = {distribution}
optimizer = tf.optimizers.Adam(0.01, clipnorm=1.0)
losses = tfp.vi.fit_surrogate_posterior(lambda z: -tf.reduce_sum(z**2), surrogate, optimizer, num_steps=10)
'''


@pytest.mark.parametrize("distribution, exp_scale", [
    ("tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=tf.exp(v))", True),
    ("tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_identity_multiplier=tf.exp(v[0]))", True),
    ("tfd.MultivariateNormalDiag([0.0, 0.0], tf.math.exp(v))", True),
    ("tfd.Normal(0.0, scale=tf.exp(v[0]))", True),
    ("tfd.MultivariateNormalDiag(loc=tf.exp(v))", False),
    ("tfd.Gamma(2.0, rate=tf.exp(v[0]))", False),
])
def test_an_inline_exp_is_a_scale_transform_only_in_a_scale(tmp_path, distribution, exp_scale):
    found = findings(tmp_path, EXP_SCALE.format(distribution=distribution), frozenset({"ELB012"}))
    assert found == [(6, "ELB004")] + ([(6, "ELB012")] if exp_scale else [])

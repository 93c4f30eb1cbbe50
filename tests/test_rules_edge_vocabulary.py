"""Each word of the shared TFP vocabulary, one at a time: a file that is VI only through that word.

Why: the vocabulary tables (`rules/_tfp.py`: VI fits and losses, surrogate builders, VI-only
constructs, variational layers; `elbolint/names.py`: the spellings of one module) are read as sets,
so a fixture that uses several words still passes when one word is lost from a table. Here each
case has exactly one sign of VI (or one spelling), so dropping that word, or an `in` / `not in`
swapped where a table is read, changes the findings. The expected names are written out here, not
imported from the tables, so a table edited by mistake cannot change the test with it.

Each VI case: a module builds something variational and configures an optimizer that it never
uses itself (the training script imports both); an optimizer without a visible use is judged at
file level, so ELB003 (missing gradient clipping) reports it exactly when the word makes the file
do VI. The near misses are the same module without a sign of VI.
"""

from __future__ import annotations

import pytest

from conftest import lint

HEADER = '''"""A model module: the training script imports the objects built here."""
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfpl = tfp.layers

'''
OPTIMIZER = "optimizer = tf.keras.optimizers.Adam(learning_rate=0.01)\n"

VI_SIGNS = {
    "fit_surrogate_posterior": (
        "losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, q, optimizer=None, num_steps=10)"),
    "fit_surrogate_posterior_stateless": (
        "params, losses = tfp.vi.fit_surrogate_posterior_stateless("
        "target_log_prob_fn, build_fn, initial_parameters, optimizer=None, num_steps=10)"),
    "monte_carlo_variational_loss": "loss = tfp.vi.monte_carlo_variational_loss(target_log_prob_fn, q, sample_size=8)",
    "kl_reverse": "loss = tfp.vi.kl_reverse(log_ratio)",
    "kl_forward": "loss = tfp.vi.kl_forward(log_ratio)",
    "monte_carlo_csiszar_f_divergence": (
        "loss = tfp.vi.monte_carlo_csiszar_f_divergence(f, target_log_prob_fn, q, num_draws=8)"),
    "csiszar_vimco": "loss = tfp.vi.csiszar_vimco(f, target_log_prob_fn, q, num_draws=8)",
    "build_factored_surrogate_posterior": (
        "q = tfp.experimental.vi.build_factored_surrogate_posterior(event_shape=[3])"),
    "build_factored_surrogate_posterior_stateless": (
        "init_fn, build_fn = tfp.experimental.vi.build_factored_surrogate_posterior_stateless(event_shape=[3])"),
    "build_affine_surrogate_posterior": (
        "q = tfp.experimental.vi.build_affine_surrogate_posterior(event_shape=[3], operators='diag')"),
    "build_affine_surrogate_posterior_stateless": (
        "init_fn, build_fn = tfp.experimental.vi.build_affine_surrogate_posterior_stateless(event_shape=[3])"),
    "build_asvi_surrogate_posterior": (
        "q = tfp.experimental.vi.build_asvi_surrogate_posterior(tfd.Sample(tfd.Normal(0.0, 1.0), 3))"),
    "build_trainable_location_scale_distribution": (
        "q = tfp.experimental.vi.build_trainable_location_scale_distribution(tf.zeros(3), tf.ones(3))"),
    "build_split_flow_surrogate_posterior": (
        "q = tfp.experimental.vi.build_split_flow_surrogate_posterior(event_shape=[3], trainable_bijector=None)"),
    "sts.build_factored_surrogate_posterior": "q = tfp.sts.build_factored_surrogate_posterior(model=sts_model)",
    "sts.build_factored_variational_loss": (
        "loss, q = tfp.sts.build_factored_variational_loss(model=sts_model, observed_time_series=series)"),
    "distributions.VariationalGaussianProcess": (
        "vgp = tfd.VariationalGaussianProcess(kernel, index_points, inducing_index_points, loc, scale)"),
    "layers.VariationalGaussianProcess": (
        "layer = tfpl.VariationalGaussianProcess(num_inducing_points=8, kernel_provider=kp)"),
    "DenseVariational": "layer = tfpl.DenseVariational(8, make_posterior_fn=posterior, make_prior_fn=prior)",
    "DenseFlipout": "layer = tfpl.DenseFlipout(8, activation='relu')",
    "DenseReparameterization": "layer = tfpl.DenseReparameterization(8)",
    "DenseLocalReparameterization": "layer = tfpl.DenseLocalReparameterization(8)",
    "Convolution1DFlipout": "layer = tfpl.Convolution1DFlipout(8, kernel_size=3)",
    "Convolution2DFlipout": "layer = tfpl.Convolution2DFlipout(8, kernel_size=3)",
    "Convolution3DFlipout": "layer = tfpl.Convolution3DFlipout(8, kernel_size=3)",
    "Convolution1DReparameterization": "layer = tfpl.Convolution1DReparameterization(8, kernel_size=3)",
    "Convolution2DReparameterization": "layer = tfpl.Convolution2DReparameterization(8, kernel_size=3)",
    "Convolution3DReparameterization": "layer = tfpl.Convolution3DReparameterization(8, kernel_size=3)",
    "KLDivergenceRegularizer": "regularizer = tfpl.KLDivergenceRegularizer(prior, weight=1.0 / 60000)",
    "KLDivergenceAddLoss": "layer = tfpl.KLDivergenceAddLoss(prior)",
    **{f"tfn.{name}": f"layer = tfp.experimental.nn.{name}(4, 8)" for name in (
        "AffineVariationalFlipout", "AffineVariationalReparameterization", "AffineVariationalReparameterizationLocal",
        "ConvolutionVariationalFlipout", "ConvolutionVariationalReparameterization",
        "ConvolutionVariationalFlipoutV2", "ConvolutionVariationalReparameterizationV2",
        "ConvolutionTransposeVariationalFlipout", "ConvolutionTransposeVariationalReparameterization",
        "VariationalLayer",
    )},
}

NOT_VI = {
    "a distribution": "prior = tfd.Normal(0.0, 1.0)",
    "a plain layer": "layer = tf.keras.layers.Dense(8, activation='relu')",
    "a distribution layer": "layer = tfpl.IndependentNormal(3)",
    "MCMC": "kernel = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob_fn, step_size=0.1, num_leapfrog_steps=3)",
    "a VI name that is not called": "fit = tfp.vi.fit_surrogate_posterior",
    "a Csiszar function alone": "f = tfp.vi.jensen_shannon",
    "a Gaussian process": "gp = tfd.GaussianProcess(kernel, index_points)",
}


def findings(tmp_path, line: str) -> list[tuple[int, str]]:
    path = tmp_path / "model.py"
    path.write_text(HEADER + line + "\n" + OPTIMIZER, encoding="utf-8")
    return sorted((d.line, d.code) for d in lint(path))


OPTIMIZER_LINE = HEADER.count("\n") + 2


@pytest.mark.parametrize("word", sorted(VI_SIGNS))
def test_one_sign_of_vi_makes_an_unused_optimizer_a_vi_optimizer(tmp_path, word):
    assert (OPTIMIZER_LINE, "ELB003") in findings(tmp_path, VI_SIGNS[word])


@pytest.mark.parametrize("what", sorted(NOT_VI))
def test_without_a_sign_of_vi_the_optimizer_is_none_of_elbolints_business(tmp_path, what):
    assert findings(tmp_path, NOT_VI[what]) == []


SURROGATE = '''"""A mean-field surrogate fitted with an unclipped optimizer."""
import tensorflow as tf
import tensorflow_probability as tfp

{imports}

surrogate = {distribution}(tf.Variable(0.0), scale=tf.Variable(1.0))
losses = tfp.vi.fit_surrogate_posterior(lambda z: -z**2, surrogate, {optimizer}(0.01), num_steps=10)
'''

# Every spelling of the Normal class that canonical names map to tfp.distributions.Normal.
NORMAL_SPELLINGS = {
    "tfp.distributions": ("", "tfp.distributions.Normal"),
    "private module": ("from tensorflow_probability.python.distributions import normal", "normal.Normal"),
    "python package": ("from tensorflow_probability.python import distributions as tfd", "tfd.Normal"),
    "jax substrate": ("from tensorflow_probability.substrates import jax as tfp_jax", "tfp_jax.distributions.Normal"),
    "numpy substrate": ("from tensorflow_probability.substrates import numpy as tfpn", "tfpn.distributions.Normal"),
    "import as": ("import tensorflow_probability.python.distributions as tfd", "tfd.Normal"),
}

# Every spelling of the Adam class that canonical names map to keras.optimizers.Adam.
ADAM_SPELLINGS = {
    "tf.optimizers": ("", "tf.optimizers.Adam"),
    "tf.keras": ("", "tf.keras.optimizers.Adam"),
    "tf.compat.v2": ("", "tf.compat.v2.keras.optimizers.Adam"),
    "tf_keras": ("import tf_keras", "tf_keras.optimizers.Adam"),
    "keras": ("import keras", "keras.optimizers.Adam"),
    "keras.src": ("from keras.src import optimizers", "optimizers.Adam"),
    "legacy": ("", "tf.keras.optimizers.legacy.Adam"),
    "experimental": ("", "tf.keras.optimizers.experimental.Adam"),
    "optimizer_v2": ("from keras.optimizers.optimizer_v2 import adam", "adam.Adam"),
    "tensorflow.python.keras": ("from tensorflow.python.keras import optimizers", "optimizers.Adam"),
    "tfp's tf_keras": ("from tensorflow_probability.python.internal import tf_keras", "tf_keras.optimizers.Adam"),
}


@pytest.mark.parametrize("spelling", sorted(NORMAL_SPELLINGS))
def test_every_spelling_of_a_distribution_is_the_distribution(tmp_path, spelling):
    imports, distribution = NORMAL_SPELLINGS[spelling]
    path = tmp_path / "fit.py"
    path.write_text(SURROGATE.format(imports=imports, distribution=distribution,
                                     optimizer="tf.optimizers.Adam"), encoding="utf-8")
    assert sorted((d.line, d.code) for d in lint(path)) == [(7, "ELB001"), (8, "ELB003")]


@pytest.mark.parametrize("spelling", sorted(ADAM_SPELLINGS))
def test_every_spelling_of_an_optimizer_is_the_optimizer(tmp_path, spelling):
    imports, optimizer = ADAM_SPELLINGS[spelling]
    path = tmp_path / "fit.py"
    path.write_text(SURROGATE.format(imports=imports, distribution="tfp.distributions.Normal",
                                     optimizer=optimizer), encoding="utf-8")
    assert sorted((d.line, d.code) for d in lint(path)) == [(7, "ELB001"), (8, "ELB003")]


KERAS_MODEL = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


class BayesDense(tf.keras.layers.Dense):
    def __init__(self, units, **kwargs):
        self.options = kwargs.copy()
        super().__init__(units)


x = np.random.randn(256, 4).astype(np.float32)
y = np.random.randn(256, 1).astype(np.float32)
model = tf.keras.Sequential([
    BayesDense(16, {keywords}),
    tf.keras.layers.Dense(1),
])
model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
model.fit(x, y, epochs=5)
'''


@pytest.mark.parametrize("keywords, variational", [
    ("kl_weight=1 / 256", True), ("kl_use_exact=True", True), ("make_posterior_fn=posterior", True),
    ("make_prior_fn=prior", True), ("kernel_posterior_fn=posterior", True), ("kernel_divergence_fn=divergence", True),
    ("bias_divergence_fn=divergence", True), ("kernel_prior_fn=prior", True), ("posterior_fn=posterior", True),
    ("posterior=q, prior=p", True), ("posterior=q, prior=p, activation='relu'", True),
    ("kernel_posterior_scale_mean=-9.0", True), ("bias_posterior_loc_initializer=init", True),
    ("make_posterior_tensor_fn=f", True),
    ("posterior=q", False), ("prior=p", False), ("class_posterior_fn=f", False), ("kl_coeff=0.2", False),
])
def test_a_variational_layers_keyword_makes_the_model_variational(tmp_path, keywords, variational):
    """A layer class of the file with no sign of VI in its body: only the keywords it is given say
    whether the compiled model is variational (and its unclipped optimizer reported)."""
    path = tmp_path / "train.py"
    path.write_text(KERAS_MODEL.format(keywords=keywords), encoding="utf-8")
    assert sorted((d.line, d.code) for d in lint(path)) == ([(18, "ELB003")] if variational else [])

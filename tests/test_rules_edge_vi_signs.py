"""Hand-written signs of VI and their near misses, each alone in a file with an unclipped optimizer.

Why: a KL divergence is a sign of VI only where it is an objective (inside a `GradientTape`, an
`add_loss(...)`, a loss or step def, assigned to a loss); a KL printed once is a diagnostic. The
fixtures mix several signs per file, so a lost condition (an `add_loss` not recognised, every call
taken for one) passes them. Here each file has exactly one candidate sign.
"""

from __future__ import annotations

import pytest

from conftest import lint

KERAS_LAYER = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class GaussianLayer(tf.keras.layers.Layer):
    def build(self, input_shape):
        self.mu = self.add_weight(shape=(int(input_shape[-1]), 8), initializer="zeros")
        self.rho = self.add_weight(shape=(int(input_shape[-1]), 8), initializer="zeros")

    def report_weights(self):
        weights = tfd.Normal(self.mu, tf.nn.softplus(self.rho))
        reference = tfd.Normal(0.0, 1.0)
        {penalty}

    def call(self, inputs):
        return tf.matmul(inputs, self.mu)


x = np.random.randn(512, 4).astype(np.float32)
y = np.random.randn(512, 8).astype(np.float32)
model = tf.keras.Sequential([GaussianLayer()])
model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
model.fit(x, y, epochs=3)
'''
OPTIMIZER_LINE = 25


@pytest.mark.parametrize("penalty, vi", [
    ("self.add_loss(tf.reduce_sum(tfd.kl_divergence(weights, reference)) / 512.0)", True),
    ("self.add_loss(tf.reduce_sum(weights.kl_divergence(reference)) / 512.0)", True),
    ("self.add_loss(1e-4 * tf.reduce_sum(tf.square(self.mu)))", False),
    ("self.add_metric(tf.reduce_sum(tfd.kl_divergence(weights, reference)), name='kl')", False),
    ("tf.print('kl', tf.reduce_sum(tfd.kl_divergence(weights, reference)))", False),
])
def test_a_kl_in_add_loss_is_an_objective_and_a_kl_shown_is_not(tmp_path, penalty, vi):
    path = tmp_path / "layer.py"
    path.write_text(KERAS_LAYER.format(penalty=penalty), encoding="utf-8")
    found = sorted((d.line, d.code) for d in lint(path) if d.code == "ELB003")
    assert found == ([(OPTIMIZER_LINE, "ELB003")] if vi else [])

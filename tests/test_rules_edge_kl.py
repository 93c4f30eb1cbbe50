"""ELB010 (unscaled KL): every spelling of "the layers' whole KL" in a mini-batch loss, scaled and not.

Why: the fixtures read the layers' KL as `sum(model.losses)` mostly; the other spellings
(`tf.add_n`, `tf.reduce_sum`, `tf.math.*`) and the ways of dividing by the dataset size are each
one entry of a table or one branch, which a fixture using another spelling does not pin. Each case
is one hand-written training loop over slices of the arrays with a Flipout classifier.
"""

from __future__ import annotations

import pytest

from conftest import lint

LOOP = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

x_train = np.random.RandomState(7).rand(20000, 32).astype(np.float32)
y_train = np.random.RandomState(8).randint(0, 4, 20000)

model = tf.keras.Sequential([
    tfp.layers.DenseFlipout(64, activation="relu"),
    tfp.layers.DenseFlipout(4),
])
cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = tf.keras.optimizers.Adam(1e-3, clipnorm=1.0)

for start in range(0, len(x_train), 100):
    x, y = x_train[start:start + 100], y_train[start:start + 100]
    with tf.GradientTape() as tape:
        kl = {kl}
        loss = cross_entropy(y, model(x)) + {scaled}
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
'''
LAYER_LINES = [(9, "ELB010"), (10, "ELB010")]
KL_SPELLINGS = ["sum(model.losses)", "tf.add_n(model.losses)", "tf.math.add_n(model.losses)",
                "tf.reduce_sum(model.losses)", "tf.math.reduce_sum(model.losses)"]


def findings(tmp_path, kl: str, scaled: str) -> list[tuple[int, str]]:
    path = tmp_path / "train.py"
    path.write_text(LOOP.format(kl=kl, scaled=scaled), encoding="utf-8")
    return sorted((d.line, d.code) for d in lint(path) if d.code == "ELB010")


@pytest.mark.parametrize("kl", KL_SPELLINGS)
def test_the_whole_kl_next_to_a_batch_mean_is_reported(tmp_path, kl):
    assert findings(tmp_path, kl, "kl") == LAYER_LINES


@pytest.mark.parametrize("kl", KL_SPELLINGS)
@pytest.mark.parametrize("scaled", ["kl / len(x_train)", "kl / x_train.shape[0]", "kl / 20000.0",
                                    "kl * (1.0 / len(x_train))"])
def test_a_kl_divided_by_the_dataset_size_is_not(tmp_path, kl, scaled):
    assert findings(tmp_path, kl, scaled) == []

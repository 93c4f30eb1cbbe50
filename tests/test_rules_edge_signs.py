"""ELB013's sign tables, one entry at a time: each TF / Keras function, activation string and Keras
layer whose sign the rule knows, in a `DistributionLambda` head.

Why: the fixtures use a handful of functions and layers, and a sign table is read as a set, so a
name lost from a table (read as "unknown", never reported) or moved to the wrong table passes
them. Each case here is one regression head: `Dense -> DistributionLambda(Normal(loc, scale))` where
`scale` is one function of the network output. Two forms per function:

- `f(t) + t` must be reported for every function the rule knows (a known sign plus a raw output
  can be <= 0), and is not reported for an unknown function: this pins that the name is in a table;
- `1e-3 + f(t)` is reported exactly for the functions that can give a value <= 0 (signed ones and
  those that keep their input's sign): this pins which table.

The expected signs are written out here, not imported from `rules/_sign_lattice.py`.
"""

from __future__ import annotations

import pytest

from conftest import lint

HEAD = '''import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfpl = tfp.layers

x = np.random.randn(256, 4).astype(np.float32)
y = np.random.randn(256, 1).astype(np.float32)
model = tf.keras.Sequential([
    tf.keras.layers.Dense(16, activation="relu"),
    {layer},
    tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale={scale})),
])
model.compile(optimizer=tf.keras.optimizers.Adam(0.01, clipnorm=1.0), loss=lambda y, rv: -rv.log_prob(y))
model.fit(x, y, epochs=5)
'''
SCALE_LINE = 14
LINEAR = "tf.keras.layers.Dense(2)"

POSITIVE_OR_NONNEGATIVE = [
    "tf.nn.softplus", "tf.math.softplus", "tf.math.exp", "tf.exp", "tf.sigmoid", "tf.nn.sigmoid", "tf.math.sigmoid",
    "tf.nn.softmax", "tf.math.softmax", "tf.keras.activations.softplus", "tf.keras.activations.exponential",
    "tf.keras.activations.sigmoid", "tf.keras.activations.softmax", "keras.ops.softplus", "keras.ops.exp",
    "keras.ops.sigmoid", "keras.ops.softmax",
    "tf.nn.relu", "tf.nn.relu6", "tf.math.abs", "tf.math.square", "tf.abs", "tf.square",
    "tf.keras.activations.relu", "keras.ops.relu", "keras.ops.abs", "keras.ops.square",
]
SIGNED = [
    "tf.nn.tanh", "tf.nn.elu", "tf.nn.selu", "tf.nn.leaky_relu", "tf.nn.gelu", "tf.nn.silu", "tf.nn.swish",
    "tf.math.tanh", "tf.tanh", "tf.keras.activations.linear", "tf.keras.activations.tanh",
    "tf.keras.activations.elu", "tf.keras.activations.selu", "tf.keras.activations.gelu",
    "tf.keras.activations.swish", "tf.keras.activations.silu",
]
SIGN_KEEPING = [
    "tf.reshape", "tf.squeeze", "tf.expand_dims", "tf.identity", "tf.cast", "tf.convert_to_tensor",
    "tf.broadcast_to", "tf.tile",
]
# Extra arguments some functions need to be realistic calls.
ARGUMENTS = {"tf.reshape": ", [-1, 1]", "tf.expand_dims": ", -1", "tf.cast": ", tf.float32",
             "tf.broadcast_to": ", [256, 1]", "tf.tile": ", [1, 1]", "tf.squeeze": ", -1"}

ACTIVATIONS_POSITIVE = ["softplus", "exponential", "exp", "sigmoid", "softmax", "hard_sigmoid", "relu", "relu6"]
ACTIVATIONS_SIGNED = ["linear", "tanh", "elu", "selu", "swish", "silu", "gelu", "leaky_relu", "softsign", "mish"]

# Keras and TFP layers whose default output is signed (linear, or tanh for the recurrent ones).
SIGNED_BY_DEFAULT = [
    "tf.keras.layers.Conv1D(2, 3)", "tf.keras.layers.Conv2D(2, 3)", "tf.keras.layers.Conv3D(2, 3)",
    "tf.keras.layers.Conv1DTranspose(2, 3)", "tf.keras.layers.Conv2DTranspose(2, 3)",
    "tf.keras.layers.Conv3DTranspose(2, 3)", "tf.keras.layers.SeparableConv1D(2, 3)",
    "tf.keras.layers.SeparableConv2D(2, 3)", "tf.keras.layers.DepthwiseConv2D(3)",
    "tf.keras.layers.EinsumDense('ab,bc->ac', output_shape=2)", "tf.keras.layers.LSTM(2)",
    "tf.keras.layers.GRU(2)", "tf.keras.layers.SimpleRNN(2)",
    "tfpl.DenseFlipout(2)", "tfpl.DenseReparameterization(2)", "tfpl.DenseLocalReparameterization(2)",
    "tfpl.DenseVariational(2, posterior, prior)", "tfpl.VariableLayer(2)", "tfpl.Convolution1DFlipout(2, 3)",
    "tfpl.Convolution2DFlipout(2, 3)", "tfpl.Convolution3DFlipout(2, 3)",
    "tfpl.Convolution1DReparameterization(2, 3)", "tfpl.Convolution2DReparameterization(2, 3)",
    "tfpl.Convolution3DReparameterization(2, 3)",
    "tf.keras.layers.BatchNormalization()", "tf.keras.layers.LayerNormalization()",
]
# Layers that keep the sign of the layer before them.
SIGN_KEEPING_LAYERS = [
    "tf.keras.layers.Reshape((2,))", "tf.keras.layers.Flatten()", "tf.keras.layers.Dropout(0.1)",
    "tf.keras.layers.Permute((1,))", "tf.keras.layers.GaussianDropout(0.1)", "tf.keras.layers.AlphaDropout(0.1)",
    "tf.keras.layers.SpatialDropout1D(0.1)", "tf.keras.layers.SpatialDropout2D(0.1)",
]


def findings(tmp_path, layer: str, scale: str) -> list[tuple[int, str]]:
    path = tmp_path / "head.py"
    path.write_text(HEAD.format(layer=layer, scale=scale), encoding="utf-8")
    return sorted((d.line, d.code) for d in lint(path) if d.code == "ELB013")  # variational layers: ELB010 too


REPORTED = [(SCALE_LINE, "ELB013")]


@pytest.mark.parametrize("function", POSITIVE_OR_NONNEGATIVE + SIGNED + SIGN_KEEPING)
def test_a_known_function_plus_a_raw_output_can_be_negative(tmp_path, function):
    call = f"{function}(t[..., 1:]{ARGUMENTS.get(function, '')})"
    assert findings(tmp_path, LINEAR, f"{call} + t[..., :1]") == REPORTED


@pytest.mark.parametrize("function", POSITIVE_OR_NONNEGATIVE + SIGNED + SIGN_KEEPING)
def test_which_functions_keep_a_scale_positive(tmp_path, function):
    call = f"{function}(t[..., 1:]{ARGUMENTS.get(function, '')})"
    expected = [] if function in POSITIVE_OR_NONNEGATIVE else REPORTED
    assert findings(tmp_path, LINEAR, f"1e-3 + {call}") == expected


def test_an_unknown_function_is_never_reported(tmp_path):
    assert findings(tmp_path, LINEAR, "my_positive_transform(t[..., 1:]) + t[..., :1]") == []


@pytest.mark.parametrize("activation", ACTIVATIONS_POSITIVE + ACTIVATIONS_SIGNED)
def test_each_activation_string_of_the_layer_before(tmp_path, activation):
    layer = f"tf.keras.layers.Dense(2, activation={activation!r})"
    assert findings(tmp_path, layer, "t[..., 1:] - 1.0") == REPORTED
    assert findings(tmp_path, layer, "t[..., 1:]") == ([] if activation in ACTIVATIONS_POSITIVE else REPORTED)


def test_the_activation_may_be_given_by_position_or_as_a_function(tmp_path):
    assert findings(tmp_path, "tf.keras.layers.Dense(2, 'softplus')", "t[..., 1:]") == []
    assert findings(tmp_path, "tf.keras.layers.Dense(2, 'linear')", "t[..., 1:]") == REPORTED
    assert findings(tmp_path, "tf.keras.layers.Dense(2, activation=tf.nn.softplus)", "t[..., 1:]") == []
    assert findings(tmp_path, "tf.keras.layers.Dense(2, activation=tf.nn.tanh)", "t[..., 1:]") == REPORTED


@pytest.mark.parametrize("layer", SIGNED_BY_DEFAULT)
def test_layers_whose_default_output_is_signed(tmp_path, layer):
    assert findings(tmp_path, layer, "t[..., 1:]") == REPORTED


@pytest.mark.parametrize("layer", SIGN_KEEPING_LAYERS)
def test_layers_that_keep_the_sign_of_the_layer_before(tmp_path, layer):
    two = f"{LINEAR},\n    {layer}"
    assert findings(tmp_path, two, "t[..., 1:]") == [(SCALE_LINE + 1, "ELB013")]
    positive = f"tf.keras.layers.Dense(2, activation='softplus'),\n    {layer}"
    assert findings(tmp_path, positive, "t[..., 1:]") == []


def test_an_activation_layer_sets_the_sign(tmp_path):
    assert findings(tmp_path, f"{LINEAR},\n    tf.keras.layers.Activation('softplus')", "t[..., 1:]") == []
    assert findings(tmp_path, f"{LINEAR},\n    tf.keras.layers.Activation('tanh')", "t[..., 1:]") == [
        (SCALE_LINE + 1, "ELB013")]


@pytest.mark.parametrize("scale, reported", [
    ("tf.maximum(t[..., 1:], 1e-3)", False), ("tf.math.maximum(1e-3, t[..., 1:])", False),
    ("tf.maximum(t[..., 1:], -1.0)", True), ("tf.clip_by_value(t[..., 1:], 1e-3, 10.0)", False),
    ("tf.clip_by_value(t[..., 1:], -1.0, 10.0)", True),
    ("tf.nn.softplus(t[..., 1:]) * tf.nn.softplus(t[..., :1])", False),
    ("tf.nn.relu(t[..., 1:]) * tf.nn.softplus(t[..., :1])", False),
    ("tf.nn.softplus(t[..., 1:]) * t[..., :1]", True),
    ("tf.nn.softplus(t[..., 1:]) + tf.nn.relu(t[..., :1])", False),
    ("tfp.bijectors.Softplus()(t[..., 1:])", False), ("tfp.bijectors.Exp()(t[..., 1:])", False),
    ("tfp.bijectors.Sigmoid()(t[..., 1:])", False), ("tfp.bijectors.SoftClip(low=1e-3)(t[..., 1:])", False),
    ("tfp.bijectors.Shift(1.0)(t[..., 1:])", False),
])
def test_the_arithmetic_of_signs(tmp_path, scale, reported):
    assert findings(tmp_path, LINEAR, scale) == (REPORTED if reported else [])


def test_time_distributed_has_the_sign_of_the_layer_it_wraps(tmp_path):
    wrapped = "tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(2))"
    assert findings(tmp_path, wrapped, "t[..., 1:]") == REPORTED
    wrapped = "tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(2, activation='softplus'))"
    assert findings(tmp_path, wrapped, "t[..., 1:]") == []

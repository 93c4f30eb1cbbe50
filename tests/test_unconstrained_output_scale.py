"""ELB013's fix (`1e-3 + tf.math.softplus(<expr>)`, spelled as the file spells TensorFlow) and the
input classification the fixtures do not pin down on their own."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from elbolint.fixes import fixed_bytes
from elbolint.linter import lint_file
from elbolint.registry import all_rules

ENABLED = {"ELB013", "ELB008"}

HEAD = """\
model = keras.Sequential([
    keras.layers.Dense(2),
    tfp.layers.DistributionLambda(lambda t: tfp.distributions.Normal(loc=t[..., :1], scale=t[..., 1:])),
])
"""


def run(source: str):
    return lint_file(Path("model.py"), all_rules(), {}, ENABLED, data=source.encode())


def codes(source: str) -> list[tuple[int, str]]:
    return [(d.line, d.code) for d in run(source).diagnostics]


@pytest.mark.parametrize("imports, spelled", [
    ("import tensorflow as tf\nimport tensorflow_probability as tfp\nfrom tensorflow import keras\n",
     "tf.math.softplus"),
    ("import tensorflow\nimport tensorflow_probability as tfp\nfrom tensorflow import keras\n",
     "tensorflow.math.softplus"),
    ("import tensorflow.math as tfm\nimport tensorflow_probability as tfp\nfrom tensorflow import keras\n",
     "tfm.softplus"),
])
def test_fix_wraps_the_raw_output_in_softplus(imports, spelled):
    result = run(imports + HEAD)
    [finding] = result.diagnostics
    assert finding.code == "ELB013" and finding.fix is not None
    fixed = fixed_bytes(result).decode()
    assert f"scale=1e-3 + {spelled}(t[..., 1:])" in fixed
    cst.parse_module(fixed)
    assert codes(fixed) == []  # a second --fix has nothing left to do


def test_no_fix_when_the_file_has_no_name_for_tensorflow():
    source = "import tensorflow_probability as tfp\nfrom tensorflow import keras\n" + HEAD
    [finding] = run(source).diagnostics
    assert finding.code == "ELB013" and finding.fix is None


def test_no_fix_when_tf_is_shadowed_inside_the_function():
    source = """\
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions


def head(t, tf=None):
    return tfd.Normal(t[..., :1], t[..., 1:])


params = tf.keras.layers.Dense(2)(tf.keras.Input((3,)))
out = tfp.layers.DistributionLambda(head)(params)
"""
    [finding] = run(source).diagnostics
    assert finding.code == "ELB013" and finding.fix is None


def test_parenthesised_expression_is_fixed_as_a_whole():
    source = HEAD.replace("scale=t[..., 1:]", "scale=(0.1 * t[..., 1:])")
    imports = "import tensorflow as tf\nimport tensorflow_probability as tfp\nfrom tensorflow import keras\n"
    result = run(imports + source)
    fixed = fixed_bytes(result).decode()
    assert "scale=(1e-3 + tf.math.softplus(0.1 * t[..., 1:]))" in fixed
    assert codes(fixed) == []


@pytest.mark.parametrize("producer, flagged", [
    ("tf.keras.layers.Dense(2)", True),
    ("tf.keras.layers.Dense(2, activation=None)", True),
    ("tf.keras.layers.Dense(2, 'linear')", True),
    ("tf.keras.layers.Dense(2, activation='tanh')", True),
    ("tfp.layers.DenseFlipout(2)", True),
    ("tf.keras.layers.BatchNormalization()", True),
    ("tf.keras.layers.Dense(2, activation='softplus')", False),
    ("tf.keras.layers.Dense(2, activation=tf.nn.softplus)", False),
    ("tf.keras.layers.Dense(2, activation='exponential')", False),
    ("tf.keras.layers.Dense(2, activation=tf.exp)", False),
    ("tf.keras.layers.Dense(2, activation='sigmoid')", False),
    ("tf.keras.layers.Dense(2, activation='relu')", False),  # >= 0, not <= 0 by construction
    ("tf.keras.layers.Dense(2, activation=my_activation)", False),  # cannot be read
    ("tf.keras.layers.Activation('softplus')", False),
    ("tf.keras.layers.Lambda(lambda h: h)", False),
    ("MyPositiveLayer()", False),
])
def test_the_layer_before_decides(producer, flagged):
    source = f"""\
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
model = tf.keras.Sequential([
    {producer},
    tfp.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=t[..., 1:])),
])
"""
    assert codes(source) == ([(6, "ELB013")] if flagged else [])


def test_only_the_def_in_force_is_used():
    source = """\
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
params = tf.keras.layers.Dense(2)(tf.keras.Input((1,)))


def head(p):
    return tfd.Normal(loc=p[..., :1], scale=1.0)


fixed = tfp.layers.DistributionLambda(head)(params)


def head(p):
    return tfd.Normal(loc=p[..., :1], scale=p[..., 1:])


learned = tfp.layers.DistributionLambda(head)(params)
"""
    assert codes(source) == [(15, "ELB013")]


def test_elb008_flags_a_raw_variational_gp_factor_and_not_a_transformed_one():
    source = """\
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
tfb = tfp.bijectors
kernel = tfp.math.psd_kernels.ExponentiatedQuadratic()
z = np.zeros([4, 1])
raw = tfd.VariationalGaussianProcess(kernel, z, z, tf.Variable(np.zeros(4)), tf.Variable(np.eye(4)))
safe = tfd.VariationalGaussianProcess(
    kernel, z, z, tf.Variable(np.zeros(4)),
    variational_inducing_observations_scale=tfp.util.TransformedVariable(np.eye(4), tfb.FillScaleTriL()),
)
"""
    assert codes(source) == [(8, "ELB008")]

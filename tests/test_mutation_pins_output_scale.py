"""ELB013 (a DistributionLambda's positive parameter fed a raw network output) behaviour that the
fixtures pass over: keyword spellings of `tf.clip_by_value` and of the `Activation` layer, list inputs
whose elements are `tf.maximum` of an output or a slice of one, and a split stored on an attribute.

Why: the mutation score of tools/mutation.py counts a changed condition no test notices as a
survivor. Each case lints a short model and asserts the exact ELB013 findings (line) the rule
produces, so losing the keyword, the table entry or the guard fails a test.
"""

from __future__ import annotations

from conftest import lint

SEQUENTIAL = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

x = np.random.randn(256, 4).astype(np.float32)
y = np.random.randn(256, 1).astype(np.float32)
model = tf.keras.Sequential([
    tf.keras.layers.Dense(2),
    tf.keras.layers.Activation({activation}),
    tfp.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale={scale})),
])
model.compile(optimizer=tf.keras.optimizers.Adam(0.01, clipnorm=1.0), loss=lambda y, rv: -rv.log_prob(y))
model.fit(x, y, epochs=5)
'''
HEAD_LINE = 12

FUNCTIONAL = '''import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

features = tf.keras.Input(shape=(3,))
outputs = tf.keras.layers.Dense(2)(features)
head = tfp.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[0], scale=t[1]))([{loc}, {scale}])
model = tf.keras.Model(features, head)
model.compile(optimizer=tf.keras.optimizers.Adam(0.01, clipnorm=1.0), loss=lambda y, d: -d.log_prob(y))
'''


def found(tmp_path, source: str) -> list[tuple[int, str]]:
    path = tmp_path / "model.py"
    path.write_text(source, encoding="utf-8")
    return [(d.line, d.code) for d in lint(path)]


def test_the_lower_bound_of_clip_by_value_is_read_by_keyword_too(tmp_path):
    clip = "tf.clip_by_value(t[..., 1:], {low}, clip_value_max=10.0)"
    for low, reported in (("1e-3", False), ("-1.0", True), ("clip_value_min=1e-3", False),
                          ("clip_value_min=-1.0", True)):
        source = SEQUENTIAL.format(activation='"linear"', scale=clip.format(low=low))
        assert found(tmp_path, source) == ([(HEAD_LINE, "ELB013")] if reported else []), low


def test_the_function_of_an_activation_layer_is_read_by_keyword_too(tmp_path):
    for activation, reported in (('"linear"', True), ('activation="linear"', True), ('"softplus"', False),
                                 ('activation="softplus"', False)):
        source = SEQUENTIAL.format(activation=activation, scale="t[..., 1:]")
        assert found(tmp_path, source) == ([(HEAD_LINE, "ELB013")] if reported else []), activation


def test_a_list_element_that_is_the_maximum_of_an_output_and_a_constant(tmp_path):
    """`tf.maximum(raw, 1e-3)` is positive; `tf.maximum(raw, -1.0)` can still be negative."""
    raw = "tf.keras.layers.Dense(2)(features)"
    assert found(tmp_path, FUNCTIONAL.format(loc="outputs", scale=f"tf.maximum({raw}, -1.0)")) == [(8, "ELB013")]
    assert found(tmp_path, FUNCTIONAL.format(loc="outputs", scale=f"tf.maximum({raw}, 1e-3)")) == []


def test_a_list_element_sliced_from_an_output_is_read_without_a_crash(tmp_path):
    """A slice (`outputs[..., :1]`) is an input the rule cannot read; a positive scale next to it."""
    source = FUNCTIONAL.format(loc="outputs[..., :1]", scale="1e-3 + tf.nn.softplus(outputs[..., 1:])")
    assert found(tmp_path, source) == []


def test_a_split_stored_on_an_attribute_is_not_read_as_unpacked_names(tmp_path):
    source = '''import tensorflow as tf
import tensorflow_probability as tfp


class Head:
    def split(self, t):
        self.parts = tf.split(t, 2, axis=-1)
        return tfp.distributions.Normal(self.parts[0], tf.nn.softplus(self.parts[1]))


layer = tfp.layers.DistributionLambda(Head().split)
'''
    assert found(tmp_path, source) == []

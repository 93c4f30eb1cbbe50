"""Literal folding and thresholds, at their edges: the constant forms an initial value or a learning
rate is read through, and the values just on each side of a rule's threshold.

Why: the fixtures use one or two literal forms each and values far from the thresholds, so a
folding branch lost (`tf.fill(dims, x)` read as unknown) or a `>=` turned into `>` passes them all.
Here every form is tried with a value that must be reported and one that must not, and every
threshold with the value on it and the value just below it.
"""

from __future__ import annotations

import pytest

from conftest import lint

SURROGATE = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

surrogate = tfd.Normal(
    loc=tf.Variable({loc}),
    scale=tfp.util.TransformedVariable({scale}, tfb.Softplus()),
)
losses = tfp.vi.fit_surrogate_posterior(
    lambda z: -z**2, surrogate, tf.optimizers.Adam({rate}, clipnorm=1.0), num_steps=10)
'''
LOC_LINE, SCALE_LINE, RATE_LINE = 9, 10, 13

# Every constant form the initial value of a variable is folded through ({v}: the number).
FORMS = [
    "{v}", "-{v}", "+{v}", "[{v}, 0.0]", "(0.0, {v})", "tf.constant({v})", "np.array({v})", "np.asarray([{v}])",
    "tf.convert_to_tensor({v})", "tf.fill([3], {v})", "np.full([3], {v})", "tf.ones([3]) * {v}",
    "{v} * np.ones(3)", "tf.constant([[{v}]])",
]


def findings(tmp_path, loc="0.0", scale="1.0", rate="0.01") -> list[tuple[int, str]]:
    path = tmp_path / "fit.py"
    path.write_text(SURROGATE.format(loc=loc, scale=scale, rate=rate), encoding="utf-8")
    return sorted((d.line, d.code) for d in lint(path))


@pytest.mark.parametrize("form", FORMS)
def test_a_far_start_is_read_through_every_constant_form(tmp_path, form):
    assert findings(tmp_path, loc=form.format(v="500.0")) == [(LOC_LINE, "ELB002")]
    assert findings(tmp_path, loc=form.format(v="5.0")) == []


@pytest.mark.parametrize("value, reported", [("100.0", True), ("-100.0", True), ("99.5", False), ("-99.5", False)])
def test_the_far_start_threshold_is_inclusive(tmp_path, value, reported):
    assert findings(tmp_path, loc=value) == ([(LOC_LINE, "ELB002")] if reported else [])


@pytest.mark.parametrize("scale, reported", [
    ("0.0", True), ("-1.0", True), ("tf.zeros([3])", True), ("np.zeros(3)", True), ("tf.zeros_like(x)", True),
    ("[0.5, 0.0]", True), ("tf.constant(0.0)", True),
    ("1e-3", False), ("tf.ones([3])", False), ("np.ones_like(x)", False), ("[0.5, 0.1]", False),
])
def test_a_positive_parameter_starting_at_zero_or_below(tmp_path, scale, reported):
    assert findings(tmp_path, scale=scale) == ([(SCALE_LINE, "ELB002")] if reported else [])


@pytest.mark.parametrize("rate, reported", [
    ("0.5", True), ("1.0", True), ("tf.constant(2.0)", True), ("0.49", False), ("0.1", False),
    ("learning_rate=0.5", True), ("learning_rate=0.25", False),
    ("lr=0.5", True), ("lr=0.05", False),
])
def test_the_learning_rate_threshold_is_inclusive(tmp_path, rate, reported):
    assert findings(tmp_path, rate=rate) == ([(RATE_LINE, "ELB009")] if reported else [])


def test_a_learning_rate_schedule_or_a_variable_rate_is_not_a_constant(tmp_path):
    schedule = "tf.keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=100, decay_rate=0.9)"
    assert findings(tmp_path, rate=schedule) == []
    assert findings(tmp_path, rate="tf.Variable(1.0)") == []

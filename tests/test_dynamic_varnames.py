"""Evidence names variables as the user wrote them: bound name, then `dist.param` path, then `name=`,
then TensorFlow's own name (imports TensorFlow in-process: a few seconds, so marked dynamic)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dynamic


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TFP's own distutils version check
def test_labels_prefer_python_names():
    tf = pytest.importorskip("tensorflow")
    tfp = pytest.importorskip("tensorflow_probability")
    from elbolint.dynamic.child.varnames import given_name, variable_labels

    tfd, tfb = tfp.distributions, tfp.bijectors
    raw_scale = tf.Variable(1.0)
    inline_loc = tf.Variable(0.0)
    transformed = tfp.util.TransformedVariable(1.0, tfb.Softplus())
    named = tf.Variable(2.0, name="offset")
    anonymous = tf.Variable(3.0)
    joint = tfd.JointDistributionSequential([
        tfd.Normal(loc=tf.Variable(0.0), scale=1.0),
        tfd.Normal(loc=0.0, scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())),
    ])
    namespace = {
        "raw_scale": raw_scale, "scale": transformed,
        "surrogate": tfd.Normal(loc=inline_loc, scale=raw_scale), "joint": joint, "tf": tf,
    }
    joint_vars = list(joint.trainable_variables)
    labels = variable_labels(
        [raw_scale, inline_loc, transformed.pretransformed_input, named, anonymous] + joint_vars, [namespace])
    assert labels[:5] == ["raw_scale", "surrogate.loc", "scale", "offset", anonymous.name]
    assert anonymous.name.startswith("Variable")
    assert sorted(labels[5:]) == ["joint[0].loc", "joint[1].scale"]
    assert given_name(raw_scale, [namespace]) == "raw_scale"
    assert given_name(inline_loc, [namespace]) is None  # a path is not a name of its own
    assert given_name(named, [namespace]) == "offset"
    # an inner scope (the loop's function locals) wins over module globals
    assert variable_labels([raw_scale], [{"s": raw_scale}, namespace]) == ["s"]

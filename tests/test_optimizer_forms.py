"""Optimizer forms followed by ELB003 / ELB009 (which optimizer trains the ELBO, and whether it
clips): Keras string optimizers, TF1 optimizers, optimizers made by helper functions, models and
optimizers bound in `if` branches, and manual clipping that counts only on gradients. The fixtures
carry the realistic programs; these tests pin the messages, the absence of fixes where no clipnorm
can be added, and the small building blocks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from conftest import lint
from elbolint.rules._tfp import BranchScopes

HEADER = """\
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers
"""


def findings(tmp_path: Path, body: str, codes=("ELB003", "ELB009")):
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    offset = HEADER.count("\n")
    return [(d.line - offset, d.code, d) for d in lint(path, set(codes))]


BNN = """
bnn = tf_keras.Sequential([tfpl.DenseFlipout(8, activation="relu"), tfpl.DenseFlipout(1)])
"""

VI_LOOP = """
surrogate = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
optimizer = tf.optimizers.Adam(0.01)
for step in range(100):
    with tf.GradientTape() as tape:
        loss = tfp.vi.monte_carlo_variational_loss(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate)
{clip}
    optimizer.apply_gradients(zip(grads, surrogate.trainable_variables))
"""


def test_string_optimizer_message_suggests_an_object_and_offers_no_fix(tmp_path):
    found = findings(tmp_path, BNN + 'bnn.compile(optimizer="Adam", loss="mse")\n')
    assert [(line, code) for line, code, _ in found] == [(3, "ELB003")]
    diagnostic = found[0][2]
    assert "no clipping is possible without an optimizer object" in diagnostic.message
    assert "tf_keras.optimizers.Adam(clipnorm=1.0)" in diagnostic.message
    assert diagnostic.fix is None


def test_string_optimizer_class_follows_the_string(tmp_path):
    found = findings(tmp_path, BNN + 'bnn.compile("rmsprop", loss="mse")\n')
    assert "tf_keras.optimizers.RMSprop(clipnorm=1.0)" in found[0][2].message


def test_strings_that_are_not_optimizers_are_ignored(tmp_path):
    assert findings(tmp_path, BNN + 'bnn.compile(optimizer="my_custom_thing", loss="adam")\n') == []


def test_string_optimizers_have_the_default_learning_rate_so_elb009_is_silent(tmp_path):
    assert findings(tmp_path, BNN + 'bnn.compile(optimizer="sgd", loss="mse")\n', codes=("ELB009",)) == []


@pytest.mark.parametrize("spelling", [
    "tf.compat.v1.train.AdamOptimizer(0.01)",
    "tf.train.GradientDescentOptimizer(0.01)",
    "tf.compat.v1.train.RMSPropOptimizer(learning_rate=0.01)",
])
def test_tf1_optimizer_message_suggests_clipping_the_gradients_and_offers_no_fix(tmp_path, spelling):
    found = findings(tmp_path, BNN + f"train_op = {spelling}.minimize(sum(bnn.losses))\n")
    assert [(line, code) for line, code, _ in found] == [(3, "ELB003")]
    diagnostic = found[0][2]
    assert "TF1 optimizers take no clipnorm" in diagnostic.message
    assert "tf.clip_by_global_norm" in diagnostic.message
    assert diagnostic.fix is None


def test_tf1_optimizer_through_the_compat_v1_module_alias(tmp_path):
    path = tmp_path / "graph.py"
    path.write_text(textwrap.dedent("""\
        import tensorflow.compat.v1 as tf
        import tensorflow_probability as tfp

        net = tf.keras.Sequential([tfp.layers.DenseFlipout(1)])
        optimizer = tf.compat.v1.train.AdamOptimizer(0.01)
        train_op = optimizer.minimize(sum(net.losses))
        """), encoding="utf-8")
    assert [(d.line, d.code) for d in lint(path, {"ELB003"})] == [(5, "ELB003")]


def test_tf1_high_learning_rate_asks_for_a_smaller_rate_not_for_clipping(tmp_path):
    """Clipping bounds the gradient, not the step: after `--fix` adds clipnorm the rate is still too high."""
    found = findings(tmp_path, BNN + "opt = tf.train.GradientDescentOptimizer(1.0)\n", codes=("ELB009",))
    assert [(line, code) for line, code, _ in found] == [(3, "ELB009")]
    assert "Use a rate of 1e-3..0.1 or a decaying schedule" in found[0][2].message
    assert "it does not replace this" in found[0][2].message


@pytest.mark.parametrize("clip, flagged", [
    ("    grads = tape.gradient(loss, surrogate.trainable_variables)", True),
    ("    grads = tape.gradient(tf.clip_by_value(loss, -1e3, 1e3), surrogate.trainable_variables)", True),
    ("    grads = tape.gradient(loss, surrogate.trainable_variables)\n"
     "    _, norm = tf.clip_by_global_norm(grads, 1.0)", True),
    ("    grads, _ = tf.clip_by_global_norm(tape.gradient(loss, surrogate.trainable_variables), 1.0)", False),
    ("    grads = [tf.clip_by_value(g, -1., 1.) for g in tape.gradient(loss, surrogate.trainable_variables)]",
     False),
    ("    raw = tape.gradient(loss, surrogate.trainable_variables)\n"
     "    grads = []\n"
     "    for g in raw:\n"
     "        grads.append(tf.clip_by_norm(g, 1.0))", False),
])
def test_manual_clipping_counts_only_on_gradients(tmp_path, clip, flagged):
    found = findings(tmp_path, VI_LOOP.format(clip=clip), codes=("ELB003",))
    assert bool(found) is flagged, found


def test_clipped_gradients_exempt_only_the_optimizer_that_applies_them(tmp_path):
    found = findings(tmp_path, """
        surrogate = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
        clipped = tf.optimizers.Adam(0.01)
        fitted = tf.optimizers.Adam(0.01)
        with tf.GradientTape() as tape:
            loss = tfp.vi.monte_carlo_variational_loss(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate)
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, surrogate.trainable_variables), 1.0)
        clipped.apply_gradients(zip(grads, surrogate.trainable_variables))
        tfp.vi.fit_surrogate_posterior(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate, fitted, 10)
        """, codes=("ELB003",))
    assert [(line, code) for line, code, _ in found] == [(4, "ELB003")]  # `fitted`, not `clipped`


def test_optimizer_made_by_a_method_of_the_file_is_followed_to_its_clipped_use(tmp_path):
    found = findings(tmp_path, """
        class Trainer:
            def __init__(self, surrogate):
                self.surrogate = surrogate
                self.optimizer = self._make_optimizer()

            def _make_optimizer(self):
                return tf.optimizers.Adam(0.01)

            def step(self, target):
                with tf.GradientTape() as tape:
                    loss = tfp.vi.monte_carlo_variational_loss(target, self.surrogate)
                grads = [tf.clip_by_norm(g, 1.0) for g in tape.gradient(loss, self.surrogate.trainable_variables)]
                self.optimizer.apply_gradients(zip(grads, self.surrogate.trainable_variables))
        """, codes=("ELB003",))
    assert found == []


def _run_branches(source: str) -> BranchScopes:
    """Feed BranchScopes the assignments and `if` statements of `source` (module level)."""
    scopes = BranchScopes(lambda a, b: a | b, frozenset())

    class Feeder(cst.CSTVisitor):
        def visit_If(self, node):
            scopes.enter_child(node)
            scopes.enter_if(node)

        def leave_If(self, node):
            scopes.leave_if(node)
            scopes.leave_child(node)

        def visit_IndentedBlock(self, node):
            scopes.enter_child(node)

        def leave_IndentedBlock(self, node):
            scopes.leave_child(node)

        def visit_Else(self, node):
            scopes.enter_child(node)

        def leave_Else(self, node):
            scopes.leave_child(node)

        def visit_Assign(self, node):
            scopes.bind(node.targets[0].target.value, frozenset({node.value.value}))

    cst.parse_module(textwrap.dedent(source)).visit(Feeder())
    return scopes


def test_branch_scopes_merge_every_branch_and_the_value_before_an_if_without_else():
    scopes = _run_branches("""
        x = 'before'
        y = 'before'
        if a:
            x = 'if'
        elif b:
            x = 'elif'
            y = 'elif'
        else:
            x = 'else'
        if c:
            z = 'only here'
        """)
    assert scopes.lookup("x") == {"'if'", "'elif'", "'else'"}  # the `else` covers the rest
    assert scopes.lookup("y") == {"'before'", "'elif'"}
    assert scopes.lookup("z") == {"'only here'"}


def test_branch_scopes_each_branch_starts_from_the_bindings_before_the_if():
    scopes = _run_branches("""
        x = 'before'
        if a:
            x = 'if'
            seen_in_if = 'x'
        else:
            pass
        """)
    assert scopes.lookup("x") == {"'if'", "'before'"}


def test_clipping_set_on_the_optimizer_after_construction_counts(tmp_path):
    """`opt.clipnorm = 1.0` after construction clips (Keras reads it at apply time); `= None` does not."""
    body = BNN + "opt = tf_keras.optimizers.Adam(0.01)\nopt.clipnorm = 1.0\nbnn.compile(optimizer=opt, loss='mse')\n"
    assert findings(tmp_path, body, codes=("ELB003",)) == []
    body = BNN + "opt = tf_keras.optimizers.Adam(0.01)\nopt.clipnorm = None\nbnn.compile(optimizer=opt, loss='mse')\n"
    assert [(line, code) for line, code, _ in findings(tmp_path, body, codes=("ELB003",))] == [(3, "ELB003")]

"""The shared notion of "doing VI" (rules/_vi_context.py, issue 9 point 1): which signs count,
which near misses do not, and how an optimizer next to hand-written VI is judged per training
site. The fixtures (`fixtures/ELB003/bad_vae_kl_layers.py`, `bad_vi_written_by_hand.py`,
`good_not_vi_near_misses.py`) carry realistic programs; these tests pin each sign alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from conftest import lint
from elbolint.resolver import Resolver
from elbolint.analyses.optimizer_roles import OptimizerRoles
from elbolint.walk import walk

HEADER = """\
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers
"""


def flagged(tmp_path: Path, body: str) -> list[int]:
    """Lines (relative to the body) of ELB003 findings."""
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    offset = HEADER.count("\n")
    return [d.line - offset for d in lint(path, {"ELB003"})]


TRAIN = """
optimizer = tf.keras.optimizers.Adam(0.01)
for step in range(10):
    with tf.GradientTape() as tape:
        loss = {loss}
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
"""

SIGNS = {
    "kl-objective in a tape": ("""
        q = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
        variables = q.trainable_variables
        """, "tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)) - tf.reduce_mean(q.sample(4))"),
    "kl method in a loss function": ("""
        q = tfd.Normal(tf.Variable(0.0), 1.0)
        variables = q.trainable_variables
        def elbo_loss():
            return q.kl_divergence(tfd.Normal(0.0, 1.0))
        """, "elbo_loss()"),
    "own samples scored": ("""
        loc = tf.Variable(0.0)
        variables = [loc]
        def negative_elbo():
            dist = tfd.Normal(loc, 1.0)
            z = dist.sample(8)
            return tf.reduce_mean(dist.log_prob(z) - tfd.Normal(0.0, 1.0).log_prob(z))
        """, "negative_elbo()"),
    "named surrogate": ("""
        surrogate = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
        variables = surrogate.trainable_variables
        """, "-tf.reduce_mean(surrogate.log_prob(1.0))"),
}


@pytest.mark.parametrize("name", sorted(SIGNS))
def test_each_hand_written_sign_makes_the_training_optimizer_drive_vi(tmp_path, name):
    setup, loss = SIGNS[name]
    body = textwrap.dedent(setup) + TRAIN.format(loss=loss)
    line = textwrap.dedent(body).splitlines().index("optimizer = tf.keras.optimizers.Adam(0.01)") + 1
    assert flagged(tmp_path, body) == [line]


NEAR_MISSES = {
    "maximum likelihood": ("""
        dist = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
        variables = dist.trainable_variables
        """, "-tf.reduce_mean(dist.log_prob([1.0, 2.0]))"),
    "policy gradient": ("""
        net = tf_keras.layers.Dense(2)
        variables = net.trainable_variables
        def policy_loss(states):
            policy = tfd.Categorical(logits=net(states))
            actions = policy.sample()
            return -tf.reduce_mean(policy.log_prob(actions))
        """, "policy_loss(tf.ones([4, 3]))"),
    "gaussian policy with a trainable log-std": ("""
        net = tf_keras.layers.Dense(2)
        log_std = tf.Variable(tf.zeros(2))
        variables = [*net.trainable_variables, log_std]
        def policy_loss(states, advantages):
            policy = tfd.Normal(net(states), tf.exp(log_std))
            actions = policy.sample()
            return -tf.reduce_mean(tf.reduce_sum(policy.log_prob(actions), -1) * advantages)
        """, "policy_loss(tf.ones([4, 3]), tf.ones([4]))"),
    "flow fitted by maximum likelihood, its own samples scored for monitoring": ("""
        shift = tf.Variable(tf.zeros(2))
        flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfb.Shift(shift))
        variables = [shift]
        def train_step_loss(data):
            samples = flow.sample(16)
            tf.print(tf.reduce_mean(flow.log_prob(samples)))
            return -tf.reduce_mean(flow.log_prob(data))
        """, "train_step_loss(tf.ones([4, 2]))"),
    "kl printed at module level": ("""
        print(tfd.kl_divergence(tfd.Normal(0.0, 1.0), tfd.Normal(1.0, 1.0)))
        net = tf_keras.layers.Dense(1)
        variables = net.trainable_variables
        """, "tf.reduce_mean(net(tf.ones([4, 3])) ** 2)"),
    "untrainable named posterior": ("""
        posterior = tfd.Normal(0.0, 1.0)
        net = tf_keras.layers.Dense(1)
        variables = net.trainable_variables
        """, "-tf.reduce_mean(posterior.log_prob(net(tf.ones([4, 3]))))"),
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_are_not_vi(tmp_path, name):
    setup, loss = NEAR_MISSES[name]
    assert flagged(tmp_path, textwrap.dedent(setup) + TRAIN.format(loss=loss)) == []


def test_hand_written_vi_is_judged_per_training_site(tmp_path):
    """A notebook fits a distribution by maximum likelihood in one cell and defines a
    Bayes-by-backprop model in another: only the optimizer whose training reaches the VI is flagged."""
    body = """
    dist = tfd.Normal(tf.Variable(0.0), 1.0)
    mle = tf.keras.optimizers.SGD(0.05)
    for _ in range(10):
        with tf.GradientTape() as tape:
            nll = -tf.reduce_mean(dist.log_prob([1.0, 2.0]))
        mle.apply_gradients(zip(tape.gradient(nll, [dist.loc]), [dist.loc]))

    class Bayesian(tf_keras.Model):
        def build(self, shape):
            self.mu = self.add_weight(shape=(shape[-1], 1))
            self.rho = self.add_weight(shape=(shape[-1], 1))

        def call(self, x):
            q = tfd.Normal(self.mu, tf.nn.softplus(self.rho))
            self.add_loss(tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))))
            return tf.matmul(x, q.sample())

    model = Bayesian()
    vi = tf.keras.optimizers.Adam(0.01)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2) + sum(model.losses)
        vi.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    """
    lines = textwrap.dedent(body).splitlines()
    assert flagged(tmp_path, body) == [lines.index("vi = tf.keras.optimizers.Adam(0.01)") + 1]


def test_a_redefined_helper_is_read_as_its_latest_definition(tmp_path):
    """Notebooks redefine `build_model`: the call reads the definition in force, not every one."""
    body = """
    def build_model():
        return tf_keras.Sequential([tfpl.DenseFlipout(1)])

    bnn = build_model()
    bnn.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")

    def build_model():
        return tf_keras.Sequential([tf_keras.layers.Dense(1)])

    plain = build_model()
    plain.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    """
    assert flagged(tmp_path, body) == [6]


def test_evidence_names_each_kind(tmp_path):
    source = HEADER + textwrap.dedent("""
    q_z = tfd.Normal(tf.Variable(0.0), 1.0)
    vae_prior = tfd.Normal(0.0, 1.0)
    regulariser = tfpl.KLDivergenceRegularizer(vae_prior)
    fit = tfp.vi.fit_surrogate_posterior
    with tf.GradientTape() as tape:
        kl = tfd.kl_divergence(q_z, vae_prior)
    """)
    module = cst.parse_module(source)
    resolver = Resolver()
    roles = OptimizerRoles(resolver)

    class Feed(cst.BatchableCSTVisitor):
        def visit_Call(self, node):
            roles.visit_call(node)

        def leave_Call(self, node):
            roles.vi.leave_call(node)

        def visit_Assign(self, node):
            roles.visit_assign(node)

        def visit_With(self, node):
            roles.vi.visit_with(node)

        def leave_With(self, node):
            roles.vi.leave_with(node)

    walk(module, [resolver, Feed()])
    assert set(roles.vi.evidence) == {"named-surrogate", "kl-layer", "kl-objective"}


def test_a_snippet_without_imports_is_read_with_the_conventional_names(tmp_path):
    """Blog snippets and notebooks often omit their imports; `tfd`, `tfp`, `tf` can only be TFP/TF."""
    path = tmp_path / "snippet.py"
    path.write_text(textwrap.dedent("""
        surrogate = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
        optimizer = tf.optimizers.Adam(0.01)
        tfp.vi.fit_surrogate_posterior(lambda z: tfd.Normal(0.0, 1.0).log_prob(z), surrogate, optimizer, 100)
    """), encoding="utf-8")
    assert [(d.code, d.line) for d in lint(path, {"ELB003"})] == [("ELB003", 3)]


def test_minimize_is_judged_by_its_loss(tmp_path):
    """A MAP `tfp.math.minimize(lambda: ...)` next to an ELBO minimised through a def of the file."""
    body = """
    w = tf.Variable(0.0)
    map_fit = tfp.math.minimize(lambda: -tfd.Normal(0.0, 1.0).log_prob(w), optimizer=tf.optimizers.Adam(0.1), num_steps=5)

    q = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
    def loss_fn():
        return tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))
    vi_fit = tfp.math.minimize(loss_fn, optimizer=tf.optimizers.Adam(0.1), num_steps=5)
    """
    assert flagged(tmp_path, body) == [8]


@pytest.mark.parametrize("builder, expected", [
    ("model = bayesian_resnet((32, 32, 3), num_classes=10)", [6]),
    ("model = make_model(kernel_posterior_scale_mean=-9.0)", [6]),
    ("model = make_model(class_posterior_fn=None)", []),
    ("model = make_model(8)", []),
])
def test_models_from_other_modules_are_read_by_their_builders(tmp_path, builder, expected):
    """TFP's cifar10_bnn: `bayesian_resnet(...)` of another module, trained with TF1's AdamOptimizer."""
    body = f"""
    from my_project.models import bayesian_resnet, make_model
    {builder}
    images = tf.ones([4, 32, 32, 3])
    loss = tf.reduce_mean(model(images)) + sum(model.losses)
    train_op = tf.compat.v1.train.AdamOptimizer(0.001).minimize(loss)
    """
    assert flagged(tmp_path, body) == expected


@pytest.mark.parametrize("name, says", [
    ("elbo", True), ("neg_elbo", True), ("negativeELBO", True), ("nelbo", True), ("ELBOLoss", True),
    ("elbolint_probe", False), ("elbow", False), ("Elbow_angle", False),
])
def test_elbo_is_a_word_of_the_name(name, says):
    from elbolint.analyses.vi_context import _says_elbo

    assert _says_elbo(name) is says


def test_a_tf1_graph_loss_with_a_kl_is_vi(tmp_path):
    body = """
    q = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))
    loss = tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)) - tf.reduce_mean(q.log_prob(1.0))
    train_op = tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss)
    """
    assert flagged(tmp_path, body) == [4]  # the body's first line is blank

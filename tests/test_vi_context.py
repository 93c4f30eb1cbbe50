"""The shared notion of "doing VI" (elbolint/analyses/vi_context.py): which signs count,
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
    map_fit = tfp.math.minimize(lambda: -tfd.Normal(0., 1.).log_prob(w), optimizer=tf.optimizers.Adam(0.1), num_steps=5)

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


# ------------------------------------- VI built from layer classes, drawn by hand, and the TF1 MAP
BBB_LAYER = """
class BayesLayer(tf_keras.layers.Layer):
    def build(self, shape):
        self.loc = self.add_weight(shape=(shape[-1], 1))
        self.rho = self.add_weight(shape=(shape[-1], 1))

    def call(self, x):
        q = tfd.Normal(self.loc, tf.nn.softplus(self.rho))
        self.add_loss(tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))))
        return tf.matmul(x, q.sample())
"""


@pytest.mark.parametrize("wrapper", [
    # the wrapper creates the layer in __init__
    "class Net(tf_keras.Model):\n    def __init__(self):\n        super().__init__()\n        self.out = BayesLayer()\n"
    "    def call(self, x):\n        return self.out(x)\n",
    # ... through a helper method of its own
    "class Net(tf_keras.Model):\n    def __init__(self):\n        super().__init__()\n        self.out = self.make()\n"
    "    def make(self):\n        return BayesLayer()\n    def call(self, x):\n        return self.out(x)\n",
])
def test_a_model_class_built_from_a_vi_layer_class_does_vi(tmp_path, wrapper):
    """The VI layer is reached only through the Model subclass (a loop over `Net()`, and `Net()` compiled)."""
    body = BBB_LAYER + wrapper + """
net = Net()
loop_optimizer = tf.keras.optimizers.Adam(0.01)
for step in range(10):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(net(tf.ones([4, 3]))) + sum(net.losses)
    loop_optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
compiled = Net()
compiled.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
"""
    lines = body.splitlines()
    compiled = next(i for i, line in enumerate(lines, 1) if line.startswith("compiled.compile("))
    assert flagged(tmp_path, body) == [lines.index("loop_optimizer = tf.keras.optimizers.Adam(0.01)") + 1, compiled]


def test_a_plain_model_class_next_to_a_vi_layer_class_is_plain(tmp_path):
    body = BBB_LAYER + """
class Plain(tf_keras.Model):
    def __init__(self):
        super().__init__()
        self.out = tf_keras.layers.Dense(1)
    def call(self, x):
        return self.out(x)

plain = Plain()
optimizer = tf.keras.optimizers.Adam(0.01)
for step in range(10):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(plain(tf.ones([4, 3])))
    optimizer.apply_gradients(zip(tape.gradient(loss, plain.trainable_variables), plain.trainable_variables))
"""
    assert flagged(tmp_path, body) == []


def test_a_vi_layer_class_given_star_arguments_is_variational(tmp_path):
    body = BBB_LAYER + """
options = {"name": "bayes"}
inputs = tf_keras.Input(shape=(3,))
model = tf_keras.Model(inputs, BayesLayer(**options)(inputs))
model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
"""
    assert flagged(tmp_path, body) == [len(body.splitlines())]


HAND_DRAWN = {
    "scored by its posterior and the prior": """
        eps = tf.random.normal([3, 1])
        w = mu + tf.nn.softplus(rho) * eps
        kl = tfd.Normal(mu, tf.nn.softplus(rho)).log_prob(w) - tfd.Normal(0.0, 1.0).log_prob(w)
        """,
    "noise first, scale by name": """
        sigma = tf.math.softplus(rho)
        w = tf.random.normal([3, 1]) * sigma + mu
        kl = tfd.Normal(0.0, 1.0).log_prob(w)
        """,
    "noise from a standard normal's sample": """
        w = mu + tf.exp(rho) * tfd.Normal(0.0, 1.0).sample([3, 1])
        kl = tfd.Normal(mu, tf.exp(rho)).log_prob(w)
        """,
}


@pytest.mark.parametrize("name", sorted(HAND_DRAWN))
def test_a_draw_reparameterised_by_hand_and_scored_is_vi(tmp_path, name):
    body = """
mu = tf.Variable(tf.zeros([3, 1]))
rho = tf.Variable(tf.fill([3, 1], -3.0))
optimizer = tf.keras.optimizers.Adam(0.01)
for step in range(10):
    with tf.GradientTape() as tape:
""" + textwrap.indent(textwrap.dedent(HAND_DRAWN[name]), " " * 8) + """
        loss = tf.reduce_sum(kl) + tf.reduce_mean((tf.ones([4, 3]) @ w) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, [mu, rho]), [mu, rho]))
"""
    assert flagged(tmp_path, body) == [4]


def test_a_draw_reparameterised_by_hand_whose_kl_is_a_helper_method_is_vi(tmp_path):
    """krasserm's Bayes by backprop: `add_loss(self.kl_loss(kernel, self.kernel_mu, sigma))`, the
    helper building `Normal(mu, sigma)` from its arguments."""
    body = """
class Dense(tf_keras.layers.Layer):
    def build(self, shape):
        self.kernel_mu = self.add_weight(shape=(shape[-1], 1))
        self.kernel_rho = self.add_weight(shape=(shape[-1], 1))

    def call(self, x):
        kernel_sigma = tf.math.softplus(self.kernel_rho)
        kernel = self.kernel_mu + kernel_sigma * tf.random.normal(self.kernel_mu.shape)
        self.add_loss(self.kl_loss(kernel, self.kernel_mu, kernel_sigma))
        return x @ kernel

    def kl_loss(self, w, mu, sigma):
        return tf.reduce_sum(tfd.Normal(mu, sigma).log_prob(w) - tfd.Normal(0.0, 1.0).log_prob(w))

inputs = tf_keras.Input(shape=(1,))
model = tf_keras.Model(inputs, Dense()(inputs))
model.compile(optimizer=tf_keras.optimizers.Adam(0.08), loss="mse")
"""
    assert flagged(tmp_path, body) == [len(body.splitlines())]


HAND_DRAWN_NEAR_MISSES = {
    "noisy weights, never scored": """
        w = mu + tf.nn.softplus(rho) * tf.random.normal([3, 1])
        loss = tf.reduce_mean((tf.ones([4, 3]) @ w) ** 2)
        """,
    "a policy's action around a network output": """
        mean = net(tf.ones([4, 3]))
        action = mean + tf.exp(rho[0]) * tf.random.normal([4, 1])
        loss = -tf.reduce_mean(tfd.Normal(mean, tf.exp(rho[0])).log_prob(action))
        """,
    "a Langevin step: noise scaled by the step size": """
        proposal = mu + 0.01 * tf.random.normal([3, 1])
        loss = -tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(proposal))
        """,
}


@pytest.mark.parametrize("name", sorted(HAND_DRAWN_NEAR_MISSES))
def test_hand_drawn_near_misses_are_not_vi(tmp_path, name):
    body = """
net = tf_keras.layers.Dense(1)
mu = tf.Variable(tf.zeros([3, 1]))
rho = tf.Variable(tf.fill([3, 1], -3.0))
optimizer = tf.keras.optimizers.Adam(0.01)
for step in range(10):
    with tf.GradientTape() as tape:
""" + textwrap.indent(textwrap.dedent(HAND_DRAWN_NEAR_MISSES[name]), " " * 8) + """
    optimizer.apply_gradients(zip(tape.gradient(loss, [mu, rho]), [mu, rho]))
"""
    assert flagged(tmp_path, body) == []


@pytest.mark.parametrize("spelling", [
    "tfn = tfp.experimental.nn",
    "from tensorflow_probability.python.experimental import nn as tfn",
])
def test_tfp_experimental_nn_variational_layers_are_vi_per_network(tmp_path, spelling):
    """A tfn Bayesian network next to a plain tfn network, each trained in its own loop or with
    `tfn.util.make_fit_op` (judged by its loss, as `tfp.math.minimize`)."""
    body = spelling + """
x = tf.ones([8, 4])
bnn = tfn.Sequential([tfn.AffineVariationalReparameterization(4, 2), tf.nn.relu])
dnn = tfn.Sequential([tfn.Affine(4, 2), tf.nn.relu])
bnn_loop = tf.keras.optimizers.Adam(0.01)
for _ in range(10):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(bnn(x)) + bnn.extra_loss
    bnn_loop.apply_gradients(zip(tape.gradient(loss, bnn.trainable_variables), bnn.trainable_variables))
dnn_loop = tf.keras.optimizers.Adam(0.01)
for _ in range(10):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(dnn(x))
    dnn_loop.apply_gradients(zip(tape.gradient(loss, dnn.trainable_variables), dnn.trainable_variables))

def bnn_loss():
    return tf.reduce_mean(bnn(x)) + tfn.losses.compute_extra_loss(bnn), ()

def dnn_loss():
    return tf.reduce_mean(dnn(x)), ()

bnn_fit = tfn.util.make_fit_op(bnn_loss, tf.keras.optimizers.Adam(0.01), bnn.trainable_variables)
dnn_fit = tfn.util.make_fit_op(dnn_loss, tf.keras.optimizers.Adam(0.01), dnn.trainable_variables)
"""
    lines = body.splitlines()
    assert flagged(tmp_path, body) == [lines.index("bnn_loop = tf.keras.optimizers.Adam(0.01)") + 1,
                                       next(i for i, line in enumerate(lines, 1) if line.startswith("bnn_fit ="))]


TF1_MAP = """
mu_map = tf.Variable(0.0)
map_loss = -joint.log_prob([mu_map, data])
map_op = tf.compat.v1.train.AdamOptimizer(0.1).minimize(map_loss)
"""
TF1_VI = {
    "an ELBO by name": """
q_mu = tf.Variable(0.0)
q = tfd.Normal(q_mu, tf.nn.softplus(tf.Variable(0.0)))
z = q.sample(8)
elbo = tf.reduce_mean(joint.log_prob([z, tf.broadcast_to(data, [8, 5])]) - q.log_prob(z))
vi_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(-elbo)
""",
    "a KL followed back from the loss": """
w_loc = tf.Variable(0.0)
w_dist = tfd.Normal(w_loc, tf.nn.softplus(tf.Variable(0.0)))
kl = tfd.kl_divergence(w_dist, tfd.Normal(0.0, 1.0))
nll = -tf.reduce_sum(tfd.Normal(w_loc, 1.0).log_prob(data))
total = nll + kl
vi_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(total)
""",
    "the ELBO's own samples": """
w_loc = tf.Variable(0.0)
w_dist = tfd.Normal(w_loc, tf.nn.softplus(tf.Variable(0.0)))
draws = w_dist.sample(8)
objective = -tf.reduce_mean(joint.log_prob([draws, tf.broadcast_to(data, [8, 5])]) - w_dist.log_prob(draws))
vi_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(objective)
""",
    "a variational model's losses": """
bnn = tf_keras.Sequential([tfpl.DenseFlipout(1)])
nll = -tf.reduce_mean(tfd.Normal(bnn(tf.ones([5, 2])), 1.0).log_prob(data))
loss = nll + sum(bnn.losses) / 5.0
vi_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(loss)
""",
}


@pytest.mark.parametrize("map_first", [True, False])
@pytest.mark.parametrize("name", sorted(TF1_VI))
def test_a_tf1_map_fit_next_to_vi_is_judged_by_its_own_loss(tmp_path, name, map_first):
    """A TF1 notebook's MAP cell is not VI because another cell minimises an ELBO."""
    setup = """
data = tf.constant([1.0, 2.0, 0.5, 1.5, 1.0])
joint = tfd.JointDistributionSequential([tfd.Normal(0.0, 5.0), lambda m: tfd.Sample(tfd.Normal(m, 1.0), 5)])
"""
    body = setup + (TF1_MAP + TF1_VI[name] if map_first else TF1_VI[name] + TF1_MAP)
    lines = body.splitlines()
    assert flagged(tmp_path, body) == [next(i for i, line in enumerate(lines, 1) if line.startswith("vi_op ="))]


def test_a_loss_tensor_that_cannot_be_read_is_judged_where_it_is_minimised(tmp_path):
    """A parameter (or `loss += kl`) cannot be followed: the training site around the `minimize` decides."""
    body = """
q = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()))

def fit_step(loss):
    tf.compat.v1.summary.scalar("kl", tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)))
    return tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss)

def vi_step():
    kl = tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))
    loss = -tf.reduce_mean(q.log_prob(1.0))
    loss += kl
    return tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss)

def mle_step(loss):
    return tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss)
"""
    assert flagged(tmp_path, body) == [6, 12]

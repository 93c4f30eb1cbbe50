"""Rule behaviour that the fixtures pass over: each test pins one condition, table entry or message
part of a rule that a sampled mutation changed without any fast test failing.

Why: the mutation score of tools/mutation.py counts a changed condition no test notices as a
survivor. Each case here lints a short source and asserts the exact findings (code and line) or the
message part the code under test produces, so losing that condition fails a test.
"""

from __future__ import annotations

from conftest import lint
from elbolint.config import Config

HEADER = '''import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors
'''


def diagnostics(tmp_path, source: str, code: str, name: str = "model.py") -> list:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return [d for d in lint(path) if d.code == code]


def findings(tmp_path, source: str, code: str) -> list[tuple[int, str]]:
    return sorted((d.line, d.code) for d in diagnostics(tmp_path, source, code))


# ------------------------------------------------------------------ ELB002 extreme initializer
FIT = HEADER + '''
{setup}
surrogate = {surrogate}
losses = tfp.vi.fit_surrogate_posterior(
    lambda z: -z**2, surrogate, tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=10)
'''


def test_a_far_start_names_the_positional_location_of_sinh_arcsinh(tmp_path):
    source = FIT.format(setup="", surrogate="tfd.SinhArcsinh(tf.Variable(500.0), 1.0, 0.0, 1.0)")
    found = diagnostics(tmp_path, source, "ELB002")
    assert [(d.line, d.code) for d in found] == [(9, "ELB002")]
    assert found[0].message.startswith("`loc` starts at 500")


def test_an_element_of_a_variable_made_from_tf_constant_is_read(tmp_path):
    setup = "state = tf.Variable(tf.constant([263.0, 0.5]))"
    far = FIT.format(setup=setup, surrogate="tfd.Normal(state[0], tfp.util.TransformedVariable(1.0, tfb.Softplus()))")
    near = FIT.format(setup=setup, surrogate="tfd.Normal(state[1], tfp.util.TransformedVariable(1.0, tfb.Softplus()))")
    assert findings(tmp_path, far, "ELB002") == [(8, "ELB002")]
    assert findings(tmp_path, near, "ELB002") == []
    from_the_end = far.replace("state[0]", "state[-2]")
    assert findings(tmp_path, from_the_end, "ELB002") == [(8, "ELB002")]


def test_a_positional_parameter_of_a_negative_binomial_is_named(tmp_path):
    source = FIT.format(setup="", surrogate="tfd.NegativeBinomial(5.0, tf.Variable(500.0))")
    found = diagnostics(tmp_path, source, "ELB002")
    assert [(d.line, d.code) for d in found] == [(9, "ELB002")]
    assert found[0].message.startswith("`logits` starts at 500")


def test_a_sample_shape_is_not_a_constant_of_the_model(tmp_path):
    """A model's own constants raise the bar for a far start; `sample_shape=5000` is not one."""
    surrogate = ("tfd.Sample(tfd.Normal(tf.Variable(500.0), tfp.util.TransformedVariable(1.0, tfb.Softplus())), "
                 "sample_shape={shape})")
    assert findings(tmp_path, FIT.format(setup="", surrogate=surrogate.format(shape="5000")), "ELB002") == \
        [(9, "ELB002")]


# ------------------------------------------------------------------ ELB005 joint lambda arguments
JOINT = HEADER + '''

{decorator}def likelihood(beta, sigma):
    return tfd.Normal(loc=beta, scale=sigma)


model = tfd.JointDistributionSequential([
    tfd.Normal(loc=0.0, scale=1.0, name="beta"),
    likelihood,
])
'''


def test_a_def_component_with_too_many_parameters_is_reported_unless_decorated(tmp_path):
    assert findings(tmp_path, JOINT.format(decorator=""), "ELB005") == [(15, "ELB005")]
    assert findings(tmp_path, JOINT.format(decorator="@tf.function\n"), "ELB005") == []


# ------------------------------------------------------------------ ELB010 unscaled KL
LOOP = HEADER + '''
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
        kl = sum(model.losses)
        {kl_line}
        loss = {loss}
        {after}
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
'''
LAYER_LINES = [(12, "ELB010"), (13, "ELB010")]


def loop(kl_line: str = "pass", loss: str = "cross_entropy(y, model(x)) + kl", after: str = "pass") -> str:
    return LOOP.format(kl_line=kl_line, loss=loss, after=after)


def batched(kl_line: str = "pass", loss: str = "cross_entropy(y, model(x)) + kl") -> str:
    """The loop over a `.batch(...)` data set: a KL that cannot be read as scaled is reported."""
    return loop(kl_line, loss).replace(
        "for start in range(0, len(x_train), 100):\n"
        "    x, y = x_train[start:start + 100], y_train[start:start + 100]\n",
        "dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(20000).batch(100)\n"
        "for x, y in dataset:\n")


def test_a_kl_divided_in_place_is_scaled_but_added_to_in_place_is_not(tmp_path):
    assert findings(tmp_path, batched(), "ELB010") == LAYER_LINES
    assert findings(tmp_path, batched("kl /= len(x_train)"), "ELB010") == []
    assert findings(tmp_path, batched("kl *= 1.0 / len(x_train)"), "ELB010") == []
    assert findings(tmp_path, batched("kl += 0.0"), "ELB010") == LAYER_LINES
    assert findings(tmp_path, batched("kl -= 0.0"), "ELB010") == LAYER_LINES


def test_a_kl_scaled_by_a_division_or_multiplication_call(tmp_path):
    for scaled in ("tf.math.divide(kl, len(x_train))", "tf.divide(kl, 20000.0)",
                   "tf.multiply(kl, 1.0 / len(x_train))", "tf.math.multiply(1.0 / 20000.0, kl)"):
        assert findings(tmp_path, batched(loss=f"cross_entropy(y, model(x)) + {scaled}"), "ELB010") == [], scaled
    assert findings(tmp_path, batched(loss="cross_entropy(y, model(x)) + tf.add(kl, 0.0)"), "ELB010") == LAYER_LINES


def test_a_mean_over_a_sum_is_not_read_as_a_per_example_mean(tmp_path):
    per_example = "tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x))"
    assert findings(tmp_path, loop(loss=f"tf.reduce_mean({per_example}) + kl"), "ELB010") == LAYER_LINES
    for summed in (f"tf.add_n([{per_example}])", f"tf.reduce_sum({per_example})"):
        assert findings(tmp_path, loop(loss=f"tf.reduce_mean({summed}) + kl"), "ELB010") == [], summed


COMPILED = HEADER + '''
x_train = np.random.RandomState(0).rand(60000, 784).astype(np.float32)
y_train = np.random.RandomState(1).randint(0, 10, 60000)

model = tf.keras.Sequential([tfp.layers.DenseFlipout(10)])
{between}
model.compile({compile_args})
model.fit(x_train, y_train, batch_size=128, epochs=1)
'''
OPTIMIZER = "tf.keras.optimizers.Adam(clipnorm=1.0)"


def test_a_model_only_looked_at_is_not_trained(tmp_path):
    for looked_at in ("print(id(shown))", "print(shown)", "print(isinstance(shown, tf.keras.Model))"):
        between = f"shown = tf.keras.Sequential([tfp.layers.DenseFlipout(4)])\n{looked_at}"
        source = COMPILED.format(between=between, compile_args=f"{OPTIMIZER}, loss='mse'")
        assert findings(tmp_path, source, "ELB010") == [(11, "ELB010")], looked_at
    between = "shown = tf.keras.Sequential([tfp.layers.DenseFlipout(4)])\nkeep(shown)"
    source = COMPILED.format(between=between, compile_args=f"{OPTIMIZER}, loss='mse'")
    assert findings(tmp_path, source, "ELB010") == [(11, "ELB010"), (12, "ELB010")]


def test_a_positional_compiled_loss_is_quoted_in_the_message(tmp_path):
    source = COMPILED.format(between="pass", compile_args=f"{OPTIMIZER}, 'mse'")
    found = diagnostics(tmp_path, source, "ELB010")
    assert [(d.line, d.code) for d in found] == [(11, "ELB010")]
    assert "`loss='mse'`" in found[0].message


# ------------------------------------------------------------------ ELB014 surrogate support
SUPPORT_MODEL = HEADER + '''import math

counts = np.random.RandomState(0).poisson(3.0, size=50).astype(np.float32)
model = tfd.JointDistributionSequential([
    {prior},
    lambda theta: tfd.Independent(tfd.Poisson(rate=counts + theta), reinterpreted_batch_ndims=1),
])
surrogate = tfd.JointDistributionSequential([
    tfd.LogNormal(tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus())),
])
losses = tfp.vi.fit_surrogate_posterior(
    lambda theta: model.log_prob([theta, counts]), surrogate,
    optimizer=tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=100)
'''


def test_an_infinite_upper_bound_is_read_through_every_spelling(tmp_path):
    enabled = Config().enabled_codes() | {"ELB014"}
    path = tmp_path / "fit.py"
    for high, reported in (("np.inf", False), ("math.inf", False), ("np.Inf", False), ("float('inf')", False),
                           ("10.0", True)):
        path.write_text(SUPPORT_MODEL.format(prior=f"tfd.Uniform(0.0, {high})"), encoding="utf-8")
        assert [(d.line, d.code) for d in lint(path, enabled) if d.code == "ELB014"] == \
            ([(15, "ELB014")] if reported else []), high


# ------------------------------------------------------------------ ELB013 unconstrained output scale
UNPACKED_HEAD = HEADER + '''

def positive_pair(t):
    return t[..., :1], tf.nn.softplus(t[..., 1:])


def head(t):
    loc, scale = {unpacked}
    return tfd.Normal(loc=loc, scale=scale)


x = np.random.randn(256, 4).astype(np.float32)
y = np.random.randn(256, 1).astype(np.float32)
model = tf.keras.Sequential([
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(2),
    tfp.layers.DistributionLambda(head),
])
model.compile(optimizer=tf.keras.optimizers.Adam(0.01, clipnorm=1.0), loss=lambda y, rv: -rv.log_prob(y))
model.fit(x, y, epochs=5)
'''


def test_only_a_split_or_unstack_hands_raw_network_outputs_to_the_unpacked_names(tmp_path):
    for unpacked, reported in (("tf.split(t, 2, axis=-1)", True), ("tf.unstack(t, axis=-1)", True),
                               ("positive_pair(t)", False), ("tf.nn.softplus(t), tf.nn.softplus(t)", False)):
        expected = [(15, "ELB013")] if reported else []
        assert findings(tmp_path, UNPACKED_HEAD.format(unpacked=unpacked), "ELB013") == expected, unpacked


def test_a_compiled_loss_is_read_through_four_levels_of_containers(tmp_path):
    """Multi-output losses nest (`{"out": ["mse", ...]}`); four levels are read, the fifth is not."""
    averaged = "averaged over the batch's examples"
    for loss, read in (("'mse'", True), ("[[[['mse']]]]", True), ("[[[[['mse']]]]]", False)):
        source = COMPILED.format(between="pass", compile_args=f"{OPTIMIZER}, loss={loss}")
        (found,) = diagnostics(tmp_path, source, "ELB010")
        assert (averaged in found.message) is read, loss


# ------------------------------------------------------------------ ELB004 eager parameter transform
TARGET = HEADER + '''data = np.random.RandomState(9).normal(1.7, 0.1, size=60).astype(np.float32)


def target_log_prob_fn(mu):
    return tfd.Normal(1.7, 0.3).log_prob(mu) + tf.reduce_sum(tfd.Normal(mu[..., None], 0.1).log_prob(data), -1)


'''
METHOD_READS_MODULE_SCALE = TARGET + '''loc = tf.Variable(1.5)
scale = tf.nn.softplus(tf.Variable(1.0))


class Posterior(tf.Module):
    def {name}(self, x):
        q = tfd.Normal(loc, scale)
        return -tf.reduce_mean(q.log_prob(x))
'''


def test_a_module_level_transform_read_by_a_method_is_reported_when_the_method_trains(tmp_path):
    assert findings(tmp_path, METHOD_READS_MODULE_SCALE.format(name="elbo"), "ELB004") == [(20, "ELB004")]
    assert findings(tmp_path, METHOD_READS_MODULE_SCALE.format(name="describe"), "ELB004") == []
    # TF1 graph mode: the transform is a node of the graph, evaluated again at every session.run
    graph_mode = METHOD_READS_MODULE_SCALE.format(name="elbo").replace(
        "loc = tf.Variable(1.5)", "tf.compat.v1.disable_eager_execution()\nloc = tf.Variable(1.5)")
    assert findings(tmp_path, graph_mode, "ELB004") == []


LOSS_IN_THE_DEF = TARGET + '''
def fit_model():
    loc = tf.Variable(1.5)
    spread = tf.nn.softplus(tf.Variable(1.0))

    def loss_fn():
        q = tfd.Normal(loc, spread)
        z = q.sample(8)
        return -tf.reduce_mean(target_log_prob_fn(z) - q.log_prob(z))

    {use}


fit_model()
'''


def test_a_transform_computed_in_the_def_whose_loss_function_trains_is_reported(tmp_path):
    minimize = "tfp.math.minimize(loss_fn, num_steps=100, optimizer=tf.optimizers.Adam(0.05, clipnorm=1.0))"
    assert findings(tmp_path, LOSS_IN_THE_DEF.format(use=minimize), "ELB004") == [(20, "ELB004")]
    assert findings(tmp_path, LOSS_IN_THE_DEF.format(use="print(loss_fn)"), "ELB004") == []


# ------------------------------------------------------------------ ELB003 models bound in branches
BRANCHES = HEADER + '''import sys

x_train = np.random.RandomState(0).rand(256, 4).astype(np.float32)
y_train = np.random.RandomState(1).rand(256, 1).astype(np.float32)
kl = lambda q, p, _: tfd.kl_divergence(q, p) / x_train.shape[0]
{bindings}
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
'''
BAYES = "tf.keras.Sequential([tfp.layers.DenseFlipout(1, kernel_divergence_fn=kl)])"
PLAIN = "tf.keras.Sequential([tf.keras.layers.Dense(1)])"


def test_each_branch_of_an_if_starts_from_the_bindings_before_it(tmp_path):
    bindings = f"model = {BAYES}\nif len(sys.argv) > 1:\n    model = {PLAIN}\nelse:\n    print('as built')"
    assert findings(tmp_path, BRANCHES.format(bindings=bindings), "ELB003") == [(17, "ELB003")]
    # a block nested in a branch (a loop) continues the branch's own bindings
    bindings = (f"if len(sys.argv) > 1:\n    model = {BAYES}\n    for _ in range(2):\n        print('built')\n"
                f"else:\n    model = {PLAIN}")
    assert findings(tmp_path, BRANCHES.format(bindings=bindings), "ELB003") == [(18, "ELB003")]


def test_after_an_if_a_name_may_hold_what_any_branch_bound(tmp_path):
    bindings = f"if len(sys.argv) > 1:\n    model = {BAYES}\nelse:\n    model = {PLAIN}"
    assert findings(tmp_path, BRANCHES.format(bindings=bindings), "ELB003") == [(16, "ELB003")]
    bindings = f"if len(sys.argv) > 1:\n    model = {PLAIN}\nelse:\n    model = {PLAIN}"
    assert findings(tmp_path, BRANCHES.format(bindings=bindings), "ELB003") == []


BUILT_SURROGATE = HEADER + '''
y = np.array([0.4, -0.3, 1.2, 0.8, 0.1], dtype=np.float32)
model = tfd.JointDistributionNamed(dict(
    sigma=tfd.HalfCauchy(0.0, 1.0),
    mu=tfd.Normal(0.0, 2.0),
    y=lambda mu, sigma: tfd.Sample(tfd.Normal(mu, sigma), sample_shape=5),
))
pinned = model.experimental_pin(y=y)
surrogate = tfp.experimental.vi.build_factored_surrogate_posterior(
    event_shape={{"sigma": [], "mu": []}}, bijector={bijector})
tfp.vi.fit_surrogate_posterior(
    pinned.unnormalized_log_prob, surrogate, optimizer=tf.optimizers.Adam(0.05, clipnorm=1.0), num_steps=200)
'''


def test_a_bijector_per_named_component_is_read_by_name(tmp_path):
    enabled = Config().enabled_codes() | {"ELB014"}
    path = tmp_path / "fit.py"
    for bijector, reported in (('{"sigma": tfb.Softplus(), "mu": tfb.Identity()}', False),
                               ('{"mu": tfb.Identity(), "sigma": tfb.Exp()}', False),
                               ('{"sigma": tfb.Identity(), "mu": tfb.Identity()}', True),
                               ('{"mu": tfb.Identity(), "sigma": tfb.Tanh()}', True)):
        path.write_text(BUILT_SURROGATE.format(bijector=bijector), encoding="utf-8")
        assert [d.code for d in lint(path, enabled) if d.code == "ELB014"] == (["ELB014"] if reported else []), \
            bijector


def test_a_bijector_per_positional_component_is_read_in_order(tmp_path):
    enabled = Config().enabled_codes() | {"ELB014"}
    path = tmp_path / "fit.py"
    listed = BUILT_SURROGATE.replace(
        """model = tfd.JointDistributionNamed(dict(
    sigma=tfd.HalfCauchy(0.0, 1.0),
    mu=tfd.Normal(0.0, 2.0),
    y=lambda mu, sigma: tfd.Sample(tfd.Normal(mu, sigma), sample_shape=5),
))""", """model = tfd.JointDistributionSequential([
    tfd.HalfCauchy(0.0, 1.0, name="sigma"),
    tfd.Normal(0.0, 2.0, name="mu"),
    lambda mu, sigma: tfd.Sample(tfd.Normal(mu, sigma), sample_shape=5, name="y"),
])""").replace('event_shape={{"sigma": [], "mu": []}}', "event_shape=[[], []]")
    for bijector, reported in (("[tfb.Exp(), tfb.Identity()]", False), ("[tfb.Identity(), tfb.Identity()]", True),
                               ("[tfb.Identity(), tfb.Exp()]", True)):
        path.write_text(listed.format(bijector=bijector), encoding="utf-8")
        assert [d.code for d in lint(path, enabled) if d.code == "ELB014"] == (["ELB014"] if reported else []), \
            bijector


def test_a_sigmoid_of_a_positive_base_is_not_read_as_the_whole_unit_interval(tmp_path):
    """sigmoid maps (0, inf) onto (0.5, 1): within a Uniform(0.25, 1) prior; of a real base, (0, 1) is not."""
    enabled = Config().enabled_codes() | {"ELB014"}
    path = tmp_path / "fit.py"
    lognormal = "tfd.LogNormal(tf.Variable(0.5), tfp.util.TransformedVariable(0.5, tfb.Softplus()))"
    for base, reported in ((lognormal, False), (lognormal.replace("LogNormal", "Normal"), True)):
        source = SUPPORT_MODEL.format(prior="tfd.Uniform(0.25, 1.0)").replace(
            lognormal, f"tfd.TransformedDistribution({base}, tfb.Sigmoid())")
        path.write_text(source, encoding="utf-8")
        assert [d.code for d in lint(path, enabled) if d.code == "ELB014"] == (["ELB014"] if reported else []), base


def test_a_positional_kl_weight_of_dense_variational_scales_its_kl(tmp_path):
    layer = "tfp.layers.DenseVariational(10, posterior, prior{weight})"
    for weight, reported in ((", 1 / x_train.shape[0]", False), (", kl_weight=1 / x_train.shape[0]", False),
                             ("", True)):
        between = "posterior = prior = None"
        source = COMPILED.format(between=between, compile_args=f"{OPTIMIZER}, loss='mse'").replace(
            "tfp.layers.DenseFlipout(10)", layer.format(weight=weight))
        assert findings(tmp_path, source, "ELB010") == ([(11, "ELB010")] if reported else []), weight


# ------------------------------------------------------------------ ELB006 missing Independent
REGRESSION = HEADER + '''
features = np.random.RandomState(9).normal(size=(100, 8)).astype(np.float32)
labels = np.random.RandomState(10).normal(size=100).astype(np.float32)
regression = tfd.JointDistributionSequential([
    tfd.Normal(loc=tf.zeros(8), scale=1.0, name="weights"),
    lambda weights: tfd.Independent(
        tfd.Normal(tf.linalg.matvec(features, weights), 1.0), reinterpreted_batch_ndims=1),
])
weights = tf.Variable(tf.zeros(8))
{block}
    density = regression.log_prob([weights, labels])
'''


def test_a_log_prob_under_a_gradient_tape_must_be_a_scalar(tmp_path):
    assert findings(tmp_path, REGRESSION.format(block="with tf.GradientTape() as tape:"), "ELB006") == \
        [(11, "ELB006")]
    assert findings(tmp_path, REGRESSION.format(block="with tf.compat.v1.GradientTape() as tape:"), "ELB006") == \
        [(11, "ELB006")]
    assert findings(tmp_path, REGRESSION.format(block="with tf.name_scope('report'):"), "ELB006") == []


# ------------------------------------------------------------------ ELB003 gradients clipped by hand
VALUE_AND_GRADIENT = HEADER + '''
data = np.random.RandomState(0).normal(size=100).astype(np.float32)
loc = tf.Variable(0.0)
raw = tf.Variable(0.0)
surrogate = tfd.Normal(loc, tfp.util.DeferredTensor(raw, tf.nn.softplus))


def negative_elbo():
    z = surrogate.sample(16)
    return -tf.reduce_mean(tfd.Normal(0.0, 1.0).log_prob(z) - surrogate.log_prob(z))


optimizer = tf.optimizers.Adam(0.01)
for step in range(100):
    loss, grads = tfp.math.value_and_gradient(negative_elbo, [loc, raw])
    {clip}
    optimizer.apply_gradients(zip(grads, [loc, raw]))
'''


def test_gradients_from_value_and_gradient_clipped_by_hand_count_as_clipped(tmp_path):
    clipped = VALUE_AND_GRADIENT.format(clip="grads = [tf.clip_by_norm(g, 1.0) for g in grads]")
    assert findings(tmp_path, clipped, "ELB003") == []
    assert findings(tmp_path, VALUE_AND_GRADIENT.format(clip="pass"), "ELB003") == [(19, "ELB003")]


def test_an_auto_batched_sequential_model_is_read_like_a_sequential_one(tmp_path):
    enabled = Config().enabled_codes() | {"ELB014"}
    path = tmp_path / "fit.py"
    for joint in ("JointDistributionSequential", "JointDistributionSequentialAutoBatched"):
        source = SUPPORT_MODEL.format(prior="tfd.Uniform(0.0, 10.0)").replace(
            "model = tfd.JointDistributionSequential", f"model = tfd.{joint}")
        path.write_text(source, encoding="utf-8")
        assert [(d.line, d.code) for d in lint(path, enabled) if d.code == "ELB014"] == [(15, "ELB014")], joint


# ------------------------------------------------------------------ ELB011 constant surrogate
def test_a_fit_given_its_trainable_variables_has_something_to_train(tmp_path):
    fit = HEADER + '''
losses = tfp.vi.fit_surrogate_posterior(
    lambda z: -z**2, tfd.Normal(0.0, 1.0), tf.optimizers.Adam(0.1, clipnorm=1.0), num_steps=10{more})
'''
    assert findings(tmp_path, fit.format(more=""), "ELB011") == [(9, "ELB011")]
    assert findings(tmp_path, fit.format(more=", trainable_variables=[]"), "ELB011") == []


def test_the_layers_losses_read_through_a_name_are_a_kl_weighted_by_batch_size_over_n(tmp_path):
    weighted = batched(loss="cross_entropy(y, model(x)) + kl * 100 / len(x_train)")
    assert findings(tmp_path, weighted, "ELB010") == [(23, "ELB010")]
    through_a_name = weighted.replace("kl = sum(model.losses)", "terms = model.losses\n        kl = sum(terms)")
    (found,) = [d for d in diagnostics(tmp_path, through_a_name, "ELB010") if d.line == 24]
    assert found.message.startswith("`kl * 100 / len(x_train)` weighs the KL by batch_size / N")


def test_the_layers_losses_summed_layer_by_layer_are_still_the_whole_kl(tmp_path):
    """`model.layers` hands each layer on: its `.losses` are read elsewhere, not scaled here."""
    per_layer = batched().replace("kl = sum(model.losses)", "kl = sum(sum(layer.losses) for layer in model.layers)")
    assert findings(tmp_path, per_layer, "ELB010") == LAYER_LINES


# ------------------------------------------------------------------ ELB002 initial states and slices
def test_an_initial_state_of_variables_is_read_through_the_variable(tmp_path):
    start = HEADER + "\ninitial_state = [{first}, tf.Variable(0.5)]\n"
    for first in ("500.0", "tf.Variable(500.0)", "tfp.util.TransformedVariable(500.0, tfb.Softplus())"):
        found = diagnostics(tmp_path, start.format(first=first), "ELB002")
        assert [(d.line, d.message.startswith("initial state starts at 500")) for d in found] == [(8, True)], first


def test_a_slice_bounded_by_a_negated_name_is_not_read(tmp_path):
    setup = "state = tf.Variable([263.0, 0.5])\nk = len(tf.config.list_physical_devices())"
    scale = "tfp.util.TransformedVariable(1.0, tfb.Softplus())"
    for selection in ("state[-k:]", "state[0:k]"):
        source = FIT.format(setup=setup, surrogate=f"tfd.Normal({selection}, {scale})")
        assert [d.code for d in lint_all(tmp_path, source)] == [], selection
    source = FIT.format(setup=setup, surrogate=f"tfd.Normal(state[-2:-1], {scale})")
    assert findings(tmp_path, source, "ELB002") == [(8, "ELB002")]  # at the variable


def lint_all(tmp_path, source: str) -> list:
    path = tmp_path / "model.py"
    path.write_text(source, encoding="utf-8")
    return lint(path)

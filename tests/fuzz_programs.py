"""The TFP-flavoured program generator of the fuzz tests (tests/test_fuzz.py, benchmarks/fuzz_long.py):
hypothesis strategies for mostly valid Python that is dense in what the rules look for (distributions,
variables, optimizers, fits, lambdas, `*`/`**` arguments), so that the rules reach their deep paths and
fixes. Kept apart from the properties and the mutations so that each module stays readable on its own;
test_fuzz.py imports `tfp_programs` and `PREFIX` from here (and benchmarks/fuzz_long.py reads them
through test_fuzz)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

#: Prepended to hypothesmith's programs: without a TensorFlow mention the linter skips the file
#: unparsed, and with these names bound the resolver has something to resolve.
PREFIX = "import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\ntfb = tfp.bijectors\n"


# --------------------------------------------------------------------------- TFP-flavoured programs
# Mostly *valid* Python (invalid input comes from the mutations), dense in the patterns the rules
# look for, so that their deep paths and fixes run: weights are set by repeating list entries.
_NAMES = ["x", "v", "w", "b", "s", "q", "loc", "scale", "model", "data", "self.s", "self.v", "tfd", "tf", "tfp",
          "surrogate", "optimizer", "y"]
_LITERALS = [
    "0.", "1.", "-1.", "0", "100.", "-100", "1e3", "1e-3", "1e999", "-0.0", "0.5", "2", "1j", "True",
    "None", "'a'", "b'x'", "...", "[0., 1.]", "[]", "()", "{}", "np.linspace(-1, 1, 50)", "tf.zeros([3])",
    "tf.ones(3)", "np.float32(1.)", "f'{x}'", "-(-1.)", "+1.", "~1", "0x10", "1_000.0", "tf.float32",
]
_VARIABLES = [
    "tf.Variable(1.)", "tf.Variable(0.)", "tf.Variable(-1.)", "tf.Variable(100.)", "tf.Variable(1e4, name='s')",
    "tf.Variable(tf.zeros([3]))", "tf.Variable(1., trainable=False)", "tf.Variable(1., constraint=f)",
    "tfp.util.TransformedVariable(1., tfb.Softplus())", "tfp.util.TransformedVariable(1., tfb.Exp())",
    "tfp.util.TransformedVariable(1., bijector=tfb.Exp())", "tf.Variable(initial_value=0.5)",
    "tf.Variable(tf.eye(3))", "tfp.util.DeferredTensor(v, tf.exp)", "tf.nn.softplus(tf.Variable(1.))",
]
_DISTRIBUTIONS = [
    "tfd.Normal", "tfd.Normal", "tfd.Gamma", "tfd.HalfNormal", "tfd.StudentT", "tfd.Bernoulli", "tfd.Categorical",
    "tfd.MultivariateNormalTriL", "tfd.MultivariateNormalDiag", "tfd.MultivariateNormalFullCovariance",
    "tfd.Independent", "tfd.Sample", "tfp.distributions.Normal", "tfd.LogNormal", "tfd.Binomial",
]
_CALLEES = _DISTRIBUTIONS + [
    "tf.Variable", "tfp.util.TransformedVariable", "tfp.util.DeferredTensor",
    "tfd.JointDistributionSequential", "tfd.JointDistributionSequential", "tfd.JointDistributionNamed",
    "tfd.JointDistributionSequentialAutoBatched", "tf.nn.softplus", "tf.exp", "tf.math.exp",
    "tf.square", "tf.abs", "tf.constant", "tf.zeros", "tf.optimizers.Adam", "tf.keras.optimizers.SGD",
    "tf_keras.optimizers.RMSprop", "keras.optimizers.Adam", "tfp.vi.fit_surrogate_posterior",
    "tfp.vi.monte_carlo_variational_loss", "tfp.experimental.vi.build_factored_surrogate_posterior",
    "tfp.layers.DenseFlipout", "tfp.layers.DenseVariational", "tfp.layers.Convolution2DReparameterization",
    "tfb.Softplus", "tfb.Exp", "tf.keras.Sequential", "tf.clip_by_global_norm", "tf.GradientTape",
    "model.compile", "model.fit", "ds.batch", "f", "g", "range", "tfd.Normal(0., 1.).log_prob", "super().__init__",
]
_KEYWORDS = [
    "loc", "scale", "scale", "scale_diag", "rate", "probs", "probs", "logits", "scale_tril", "covariance_matrix",
    "concentration", "df", "learning_rate", "learning_rate", "lr", "clipnorm", "global_clipnorm",
    "kernel_divergence_fn", "kl_weight", "name", "trainable", "constraint", "batch_size", "epochs",
    "surrogate_posterior", "optimizer", "num_steps", "initial_value", "bijector", "target_log_prob_fn",
    "current_state", "reinterpreted_batch_ndims", "sample_shape", "dtype", "model", "distribution",
]
_OPERATORS = ["+", "-", "*", "/", "**", "@", "//", "%", "if x else"]
_PARAMETERS = ["x", "y", "z", "loc", "scale", "w", "b", "a=1.", "c=None", "*args", "**kw"]


def _parameter_order(name: str) -> int:
    """Valid order: plain, defaulted, *args, **kw (CPython refuses any other)."""
    return 3 if name.startswith("**") else 2 if name.startswith("*") else 1 if "=" in name else 0


def _parameters(extra_first: str = ""):
    return st.lists(st.sampled_from(_PARAMETERS), max_size=4, unique=True).map(
        lambda names: ", ".join(([extra_first] if extra_first else []) + sorted(names, key=_parameter_order))
    )


def _call(children):
    # (order, text): positional and *iterable first, then keywords, then **mapping: always valid.
    argument = st.one_of(
        children.map(lambda v: (0, v)),
        st.builds(lambda k, v: (1, f"{k}={v}"), st.sampled_from(_KEYWORDS), children),
        st.builds(lambda k, v: (1, f"{k}={v}"), st.sampled_from(_KEYWORDS), st.sampled_from(_VARIABLES + _LITERALS)),
        children.map(lambda v: (0, f"*{v}")),
        children.map(lambda v: (2, f"**{v}")),
    )
    return st.builds(
        lambda callee, args: f"{callee}({', '.join(text for _, text in sorted(args, key=lambda a: a[0]))})",
        st.sampled_from(_CALLEES), st.lists(argument, max_size=4),
    )


def _atom(text: str) -> str:
    """Parenthesise a number before `.attr` / `[i]` (`1e3.sample` is a tokenizer error)."""
    return f"({text})" if re.match(r"[-+~0-9.]", text) else text


def _expression_extend(children):
    return st.one_of(
        _call(children),
        _call(children),
        _call(children),
        st.builds(lambda p, body: f"(lambda {p}: {body})", _parameters(), children),
        st.builds(lambda a, op, b: f"({a} {op} {b})", children, st.sampled_from(_OPERATORS), children),
        children.map(lambda v: f"(-{v})"),
        st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.lists(children, max_size=3).map(lambda items: f"({', '.join(items)},)" if items else "()"),
        st.builds(lambda ks, vs: "{" + ", ".join(f"'{k}': {v}" for k, v in zip(ks, vs)) + "}",
                  st.lists(st.sampled_from(["w", "b", "y", "z"]), max_size=3), st.lists(children, max_size=3)),
        st.builds(lambda v, i: f"{_atom(v)}[{i}]", children, st.sampled_from(["0", "-1", "..., 1:", ":", "x"])),
        st.builds(lambda v, a: f"{_atom(v)}.{a}", children,
                  st.sampled_from(["sample", "log_prob", "numpy", "assign", "variables", "trainable_variables"])),
        st.builds(lambda n, v: f"({n} := {v})", st.sampled_from(["x", "v", "s"]), children),
    )


tfp_expressions = st.recursive(
    st.sampled_from(_NAMES + _LITERALS + _VARIABLES), _expression_extend, max_leaves=10
)
_TARGETS = ["x", "v", "w", "s", "q", "model", "self.s", "self.v", "initial_state", "x, y", "optimizer",
            "surrogate", "surrogate", "scale", "x = y", "*x, y", "x[0]", "kernel_divergence_fn"]


def _indent(block: str) -> str:
    return "".join("    " + line + "\n" if line else "\n" for line in block.splitlines())


def _statement_extend(children):
    body = st.lists(children, min_size=1, max_size=3).map("".join)
    return st.one_of(
        st.builds(lambda name, p, b: f"def {name}({p}):\n{_indent(b)}",
                  st.sampled_from(["f", "g", "__init__", "build", "loss_fn", "model_fn", "call"]),
                  st.sampled_from(["", "self"]).flatmap(_parameters), body),
        st.builds(lambda d, b: f"{d}\ndef loss():\n{_indent(b)}",
                  st.sampled_from(["@tf.function", "@staticmethod", "@f(x)", "@tfd.JointDistributionCoroutine"]), body),
        st.builds(lambda name, base, b: f"class {name}({base}):\n{_indent(b)}",
                  st.sampled_from(["M", "Model"]), st.sampled_from(["tf.Module", "tf.keras.Model", "object", ""]),
                  body),
        st.builds(lambda e, b: f"with {e} as tape:\n{_indent(b)}",
                  st.one_of(st.just("tf.GradientTape()"), tfp_expressions), body),
        st.builds(lambda e, b: f"for i in {e}:\n{_indent(b)}", tfp_expressions, body),
        st.builds(lambda e, b, c: f"if {e}:\n{_indent(b)}else:\n{_indent(c)}", tfp_expressions, body, body),
        st.builds(lambda b: f"try:\n{_indent(b)}except Exception:\n    pass\n", body),
    )


tfp_simple_statements = st.one_of(
    st.builds(lambda t, e: f"{t} = {e}\n", st.sampled_from(_TARGETS), tfp_expressions),
    st.builds(lambda t, e: f"{t} = {e}\n", st.sampled_from(_TARGETS), tfp_expressions),
    st.builds(lambda d, k, v: f"surrogate = {d}(loc=tf.Variable(0.), {k}={v})\n",
              st.sampled_from(_DISTRIBUTIONS), st.sampled_from(_KEYWORDS), st.sampled_from(_VARIABLES + _NAMES)),
    st.builds(lambda o, k, v: f"optimizer = {o}({k}={v})\n",
              st.sampled_from(["tf.optimizers.Adam", "tf.keras.optimizers.SGD", "tf_keras.optimizers.Adam",
                               "keras.optimizers.RMSprop"]),
              st.sampled_from(["learning_rate", "lr", "clipnorm", "name"]), st.sampled_from(_LITERALS)),
    st.builds(lambda e: f"losses = tfp.vi.fit_surrogate_posterior(target, {e}, optimizer=optimizer, num_steps=10)\n",
              tfp_expressions),
    st.builds(lambda t, e: f"{t} += {e}\n", st.sampled_from(["x", "v", "self.s"]), tfp_expressions),
    st.builds(lambda t, e: f"{t}: tf.Variable = {e}\n", st.sampled_from(["x", "v", "self.s"]), tfp_expressions),
    tfp_expressions.map(lambda e: f"{e}\n"),
    tfp_expressions.map(lambda e: f"return {e}\n"),
    tfp_expressions.map(lambda e: f"x = yield {e}\n"),
    st.sampled_from([
        "pass\n", "del x\n", "global v\n", "import numpy as np\n",
        "from tensorflow_probability import distributions as tfd\n",
        "from tensorflow_probability import *\n", "import tf_keras as keras\n", "tfd = tfp.distributions\n",
        "model.fit(x, y, batch_size=32, epochs=3)\n", "ds = ds.batch(64)\n", "model.summary()\n",
        "grads = tape.gradient(loss, surrogate.trainable_variables)\n", "x = tf.Variable\n",
        "from tensorflow_probability.python.distributions import Normal as tfd\n",
        "import tensorflow.compat.v1 as tf\n",
    ]),
)

tfp_statements = st.recursive(tfp_simple_statements, _statement_extend, max_leaves=8)

tfp_programs = st.lists(tfp_statements, min_size=1, max_size=8).map(lambda stmts: PREFIX + "".join(stmts))

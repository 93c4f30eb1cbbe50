"""The shared resolver: every alias form of a TFP or Keras object resolves to one canonical name."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper

from elbolint.names import canonical
from elbolint.resolver import Resolver


class _Collect(cst.BatchableCSTVisitor):
    """Records the resolver's answer for every call, as rules see it during the traversal."""

    def __init__(self, resolver):
        super().__init__()
        self.resolver = resolver
        self.calls: dict[str, frozenset[str]] = {}

    def visit_Call(self, node):
        self.calls[cst.Module([]).code_for_node(node.func)] = self.resolver.call_names(node)


def resolve(code: str) -> dict[str, frozenset[str]]:
    wrapper = MetadataWrapper(cst.parse_module(code), unsafe_skip_copy=True)
    resolver = Resolver()
    collector = _Collect(resolver)
    wrapper.visit_batched([resolver, collector])
    return collector.calls


NORMAL = "tensorflow_probability.distributions.Normal"
ADAM = "keras.optimizers.Adam"


@pytest.mark.parametrize(
    "code, call",
    [
        ("import tensorflow_probability as tfp\ntfd = tfp.distributions\ntfd.Normal(0., 1.)", "tfd.Normal"),
        ("import tensorflow_probability as tfp\ntfp.distributions.Normal(0., 1.)", "tfp.distributions.Normal"),
        ("from tensorflow_probability import distributions as d\nd.Normal(0., 1.)", "d.Normal"),
        ("from tensorflow_probability.python.distributions import Normal\nNormal(0., 1.)", "Normal"),
        ("from tensorflow_probability.python.distributions.normal import Normal as N\nN(0., 1.)", "N"),
        ("import tensorflow_probability.substrates.jax as tfp\ntfp.distributions.Normal(0., 1.)",
         "tfp.distributions.Normal"),
        ("import tensorflow_probability as tfp\nNormal = tfp.distributions.Normal\nNormal(0., 1.)", "Normal"),
        ("def f():\n    import tensorflow_probability as tfp\n    return tfp.distributions.Normal(0., 1.)",
         "tfp.distributions.Normal"),
    ],
)
def test_distribution_aliases_resolve_to_one_name(code, call):
    assert resolve(code)[call] == {NORMAL}


@pytest.mark.parametrize(
    "code, call",
    [
        ("import tensorflow as tf\ntf.optimizers.Adam()", "tf.optimizers.Adam"),
        ("import tensorflow as tf\ntf.keras.optimizers.Adam()", "tf.keras.optimizers.Adam"),
        ("import tensorflow as tf\ntf.keras.optimizers.legacy.Adam()", "tf.keras.optimizers.legacy.Adam"),
        ("import tf_keras\ntf_keras.optimizers.Adam()", "tf_keras.optimizers.Adam"),
        ("import tf_keras as tfk\ntfk.optimizers.Adam()", "tfk.optimizers.Adam"),
        ("import keras\nkeras.optimizers.Adam()", "keras.optimizers.Adam"),
        ("import tensorflow as tf\ntfk = tf.keras\ntfk.optimizers.Adam()", "tfk.optimizers.Adam"),
        ("from tensorflow.keras.optimizers import Adam\nAdam()", "Adam"),
    ],
)
def test_optimizer_aliases_resolve_to_one_name(code, call):
    assert resolve(code)[call] == {ADAM}


def test_unknown_and_shadowed_names_do_not_resolve():
    calls = resolve(
        "import tensorflow_probability as tfp\n"
        "tfd = tfp.distributions\n"
        "def f(tfd):\n    return tfd.Normal(0., 1.)\n"
        "Normal(0., 1.)\n"
    )
    assert calls["tfd.Normal"] == frozenset()
    assert calls["Normal"] == frozenset()


def test_rebinding_an_alias_to_a_value_drops_it():
    calls = resolve("import tensorflow as tf\ntf = object()\ntf.Variable(1.0)\n")
    assert calls["tf.Variable"] == frozenset()


def test_canonical_names():
    assert canonical("tensorflow_probability.python.distributions.normal.Normal") == NORMAL
    assert canonical("tensorflow.compat.v2.keras.optimizers.SGD") == "keras.optimizers.SGD"
    assert canonical("tensorflow_probability.python.vi.csiszar_divergence.monte_carlo_variational_loss") == (
        "tensorflow_probability.vi.monte_carlo_variational_loss"
    )
    assert canonical("tensorflow.nn.softplus") == "tensorflow.nn.softplus"


def test_value_of_follows_names_and_self_attributes():
    seen = {}

    class Probe(cst.BatchableCSTVisitor):
        def __init__(self, resolver):
            super().__init__()
            self.resolver = resolver

        def visit_Call(self, node):
            if isinstance(node.func, cst.Name) and node.func.value == "use":
                value = self.resolver.value_of(node.args[0].value)
                seen[len(seen)] = cst.Module([]).code_for_node(value)

    code = (
        "a = make(1)\nb = a\nuse(b)\n"
        "class C:\n    def __init__(self):\n        self.s = make(2)\n    def g(self):\n        use(self.s)\n"
        "def h(a):\n    use(a)\n"
    )
    wrapper = MetadataWrapper(cst.parse_module(code), unsafe_skip_copy=True)
    resolver = Resolver()
    wrapper.visit_batched([resolver, Probe(resolver)])
    assert seen == {0: "make(1)", 1: "make(2)", 2: "a"}


def test_star_imports_of_tf_keras_and_tfp_packages_resolve_unbound_names():
    """`from tensorflow.keras.optimizers import *` then `Adam(lr)` (real notebooks do this): every
    star-imported TF/TFP/Keras package is a candidate; builtins, local names and star imports of
    other packages are not touched."""
    calls = resolve(
        "from tensorflow.keras.optimizers import *\n"
        "from tensorflow_probability.python.layers import *\n"
        "from numpy import *\n"
        "def Normal(x): return x\n"
        "Adam(0.01)\nDenseFlipout(8)\nNormal(1)\nzip([], [])\n"
    )
    assert ADAM in calls["Adam"]
    assert "tensorflow_probability.layers.DenseFlipout" in calls["DenseFlipout"]
    assert calls["Normal"] == frozenset() and calls["zip"] == frozenset()
    assert not any(name.startswith("numpy.") for names in calls.values() for name in names)


def test_tf_keras_from_tfp_internal_is_keras():
    """TFP's own examples: `from tensorflow_probability.python.internal import tf_keras`."""
    calls = resolve("from tensorflow_probability.python.internal import tf_keras\ntf_keras.optimizers.Adam(0.1)\n")
    assert calls["tf_keras.optimizers.Adam"] == frozenset({ADAM})


def test_tuple_assigned_aliases_resolve():
    """`tfd, tfb = tfp.distributions, tfp.bijectors` is as common as two lines."""
    calls = resolve("import tensorflow_probability as tfp\n"
                    "tfd, tfb = tfp.distributions, tfp.bijectors\n"
                    "(d, b) = (tfp.distributions, tfp.bijectors)\n"
                    "tfd.Normal(0., 1.)\nb.Softplus()\n")
    assert calls["tfd.Normal"] == frozenset({NORMAL})
    assert calls["b.Softplus"] == frozenset({"tensorflow_probability.bijectors.Softplus"})

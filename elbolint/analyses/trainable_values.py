"""Which values are trainable: variables, distributions with trainable parameters, draws
reparameterised by hand (VIContext's `own-samples` and `named-surrogate` signs).

Why a module of its own: these are readings of one expression through the resolver, with no state
of the traversal: whether a trainable variable (`tf.Variable`, `TransformedVariable`,
`DeferredTensor`, `add_weight`) is among the values an expression is built from, whether a
distribution's parameters are trainable and not a network's outputs (a posterior, not a policy),
whether `mu + tf.nn.softplus(rho) * eps` is a Bayes-by-backprop draw, and whether a name says it is
the approximate posterior. vi_context.py decides what they mean for the file.
"""

from __future__ import annotations

import re

import libcst as cst

from elbolint.analyses.vi_signs import any_call
from elbolint.cst_helpers import dotted_name
from elbolint.resolver import Resolver
from elbolint.rules._tfp import DEFERRED_TENSOR, TRANSFORMED_VARIABLE, VARIABLE, distribution_name, is_keras_weight

#: A name that says it is an approximate posterior (`surrogate`, `posterior`, `variational`, `guide`,
#: `q`, `q_z`, `qz`).
SURROGATE_NAME = re.compile(r"surrogate|posterior|variational|guide|^q$|^q_|^q[A-Z0-9]|^q[a-z]$", re.IGNORECASE)
_TRAINABLE_MAKERS = VARIABLE | TRANSFORMED_VARIABLE | DEFERRED_TENSOR
#: Standard normal noise: `tf.random.normal`, `tf.random.stateless_normal`, TF1's `tf.random_normal`,
#: `np.random.randn`, `K.random_normal`.
_NOISE_PACKAGES = frozenset({"tensorflow", "numpy", "keras", "jax"})
_NOISE_FUNCTIONS = frozenset({"normal", "random_normal", "randn", "standard_normal", "truncated_normal",
                              "stateless_normal"})
#: Methods of a tensor or variable, not a user's callable (`self.mu.read_value()`).
_TENSOR_METHODS = frozenset({"read_value", "value", "numpy", "get_shape"})
#: How many operations deep `trainable` looks for a trainable variable in an expression.
_DEPTH = 6


class TrainableValues:
    """The readings above, through one file's resolver (asked while the traversal is at the value)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def hand_draw(self, value: cst.BaseExpression) -> bool:
        """`mu + tf.nn.softplus(rho) * eps` (either order, `-` too): standard normal noise (`eps =
        tf.random.normal(...)`, `tfd.Normal(0., 1.).sample(...)`, `np.random.randn(...)`) scaled by a
        trainable value (the `trainable` sense) and shifted, with no network output among the
        location and scale (a policy's `net(obs) + std * eps` is reinforcement learning)."""
        if not (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract))):
            return False
        for location, spread in ((value.left, value.right), (value.right, value.left)):
            spread = self.resolver.value_of(spread) if isinstance(spread, cst.Name) else spread
            if not (isinstance(spread, cst.BinaryOperation) and isinstance(spread.operator, cst.Multiply)):
                continue
            for scale, noise in ((spread.left, spread.right), (spread.right, spread.left)):
                if (self._standard_noise(noise) and self.trainable(scale, 0)
                        and not self._computed_by_user(scale) and not self._computed_by_user(location)):
                    return True
        return False

    def _standard_noise(self, node: cst.BaseExpression) -> bool:
        node = self.resolver.value_of(node) if isinstance(node, cst.Name) else node
        if not isinstance(node, cst.Call):
            return False
        names = self.resolver.call_names(node)
        if any(n.split(".", 1)[0] in _NOISE_PACKAGES and n.rsplit(".", 1)[-1] in _NOISE_FUNCTIONS for n in names):
            return True
        func = node.func  # `tfd.Normal(0., 1.).sample(shape)`: a draw of a distribution with no trainable parameter
        return (not names and isinstance(func, cst.Attribute) and func.attr.value == "sample"
                and isinstance(func.value, cst.Call) and distribution_name(self.resolver, func.value) is not None
                and not self.trainable(func.value, 0))

    def _computed_by_user(self, node: cst.BaseExpression) -> bool:
        """A value computed by a callable of the user's (a network, a layer), followed through a name."""
        resolver = self.resolver
        node = resolver.value_of(node) if isinstance(node, (cst.Name, cst.Attribute)) else node

        def users_callable(call: cst.Call) -> bool:
            return not resolver.call_names(call) and not is_keras_weight(call) and not (
                isinstance(call.func, cst.Attribute) and call.func.attr.value in _TENSOR_METHODS)

        return any_call(node, users_callable)

    def named_surrogate(self, node: cst.BaseExpression) -> bool:
        """`q_dist = q()`, `posterior = make_posterior()`: a sampled distribution whose name says it
        is the approximate posterior, built where we cannot read it (a function defined in a
        later notebook cell, a `tf.function`, an encoder network). A VAE's `q_z = encoder(x)` is VI too."""
        name = dotted_name(node)
        return name is not None and bool(SURROGATE_NAME.search(name.rsplit(".", 1)[-1]))

    def trainable_distribution(self, node: cst.BaseExpression) -> bool:
        """A distribution whose parameters are trainable variables and not a network's outputs: a
        policy `tfd.Normal(net(obs), tf.exp(log_std))` is conditional (reinforcement learning samples
        and scores it too), a posterior `tfd.Normal(self.mu, softplus(self.rho))` is not."""
        value = self.resolver.value_of(node)
        return (isinstance(value, cst.Call) and distribution_name(self.resolver, value) is not None
                and self.trainable(value, 0) and not self._conditional(value))

    def _conditional(self, call: cst.Call) -> bool:
        """Some parameter is computed by a callable of the user's (a network, a layer): `net(obs)`."""
        resolver = self.resolver

        def users_callable(node: cst.Call) -> bool:
            return not resolver.call_names(node) and not is_keras_weight(node)

        return any(any_call(arg.value, users_callable) for arg in call.args)

    def trainable(self, node: cst.CSTNode, depth: int) -> bool:
        """Whether a trainable variable is among the values this expression is built from."""
        if depth > _DEPTH:
            return False
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.resolver.value_of(node)
            return value is not node and self.trainable(value, depth + 1)
        if isinstance(node, cst.Call):
            if not self.resolver.call_names(node).isdisjoint(_TRAINABLE_MAKERS):
                return not any(a.keyword is not None and a.keyword.value == "trainable"
                               and isinstance(a.value, cst.Name) and a.value.value == "False" for a in node.args)
            if is_keras_weight(node):
                return True
            return any(self.trainable(arg.value, depth + 1) for arg in node.args)
        if isinstance(node, cst.BinaryOperation):
            return self.trainable(node.left, depth + 1) or self.trainable(node.right, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self.trainable(node.expression, depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            return any(self.trainable(e.value, depth + 1) for e in node.elements)
        if isinstance(node, cst.Subscript):
            return self.trainable(node.value, depth + 1)
        return False

"""Canonical qualified names, so that every spelling of one TFP/Keras object compares equal.

`tfp.distributions.Normal`, `tensorflow_probability.python.distributions.normal.Normal` and
`tfp.substrates.jax.distributions.Normal` are one class to a rule; so are `tf.optimizers.Adam`,
`tf.keras.optimizers.Adam`, `tf_keras.optimizers.Adam` and `keras.optimizers.Adam`. Rules compare
canonical names (strings built with the constants below) as sets, never by suffix.
"""

from __future__ import annotations

from functools import lru_cache

TFP = "tensorflow_probability"
TFD = f"{TFP}.distributions"
TFB = f"{TFP}.bijectors"
TFPL = f"{TFP}.layers"
TFP_UTIL = f"{TFP}.util"
TFP_VI = f"{TFP}.vi"
TFP_EXPERIMENTAL_VI = f"{TFP}.experimental.vi"
TF = "tensorflow"
KERAS_OPTIMIZERS = "keras.optimizers"

# Prefix rewrites, applied in order until none matches.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("tensorflow.compat.v2.", "tensorflow."),
    (f"{TFP}.python.", f"{TFP}."),
    (f"{TFP}.substrates.numpy.", f"{TFP}."),
    (f"{TFP}.substrates.jax.", f"{TFP}."),
    (f"{TFP}.internal.tf_keras.", "keras."),  # `from tensorflow_probability.python.internal import tf_keras`
    ("tensorflow.python.keras.", "keras."),
    ("tensorflow.keras.", "keras."),
    ("tf_keras.", "keras."),
    ("keras.src.", "keras."),
    ("tensorflow.optimizers.", "keras.optimizers."),
    ("keras.optimizers.legacy.", "keras.optimizers."),
    ("keras.optimizers.experimental.", "keras.optimizers."),
    ("keras.optimizers.optimizer_v2.", "keras.optimizers."),
)

# Packages whose public names are re-exported from private modules (`distributions.normal.Normal`).
_FLAT_PACKAGES = (TFD, TFB, TFPL, TFP_UTIL, TFP_VI, KERAS_OPTIMIZERS, "keras.layers")


@lru_cache(maxsize=16384)
def canonical(name: str) -> str:
    """Return the canonical spelling of a fully qualified dotted name (cached: a file asks for the
    same few names thousands of times, and profiling showed this loop among the top costs)."""
    changed = True
    while changed:
        changed = False
        for old, new in _PREFIXES:
            if name.startswith(old):
                name = new + name[len(old):]
                changed = True
    for package in _FLAT_PACKAGES:
        if name.startswith(package + "."):
            rest = name[len(package) + 1:].split(".")
            # `<package>.<private_module>.<Public>` -> `<package>.<Public>`
            if len(rest) == 2 and rest[0].islower():
                return f"{package}.{rest[1]}"
    return name


def names_in(package: str, *members: str) -> frozenset[str]:
    """`names_in(TFD, "Normal", "Gamma")` -> the canonical names of those members."""
    return frozenset(f"{package}.{m}" for m in members)


def member_of(qualified: str, package: str) -> str | None:
    """`member_of("tensorflow_probability.distributions.Normal", TFD)` -> "Normal"."""
    prefix = package + "."
    if qualified.startswith(prefix) and "." not in qualified[len(prefix):]:
        return qualified[len(prefix):]
    return None

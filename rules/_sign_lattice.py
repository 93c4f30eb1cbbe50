"""The sign lattice of ELB013: what is known about the sign of a tensor, and which TF / Keras calls fix it.

Why this module exists: ELB013 (unconstrained_output_scale.py) asks whether a positive-only parameter
of a `DistributionLambda`'s distribution can be <= 0. It reads expressions into signs of this
lattice: POS (strictly positive), NONNEG (>= 0), ANY (can be <= 0) and UNKNOWN (an opaque call, a
custom layer: never reported). The combinators (`add_signs`, `multiply_signs`, `max_signs`,
`combine_layers`) are the lattice's arithmetic; the tables say which functions, activations, bijectors
and Keras layers produce which sign, or pass their input's sign through. An expression's sign may
depend on the layer's input, known only at the end of the file: `InputModel` is what flows into
the `DistributionLambda`, and a `SignFn` maps it to (sign, depends on the input). The rule module
keeps the reading of the code (the resolver, the file's layers); this module holds no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from elbolint.names import TF, TFB, TFPL, names_in

# ----------------------------------------------------------------------------- signs
#: What is known about the sign of a tensor: strictly positive, >= 0, anything (can be <= 0), or
#: not known (an opaque call, a custom layer): only ANY is ever reported.
POS, NONNEG, ANY, UNKNOWN = "positive", "non-negative", "any", "unknown"

POSITIVE_FUNCTIONS = names_in(f"{TF}.nn", "softplus", "sigmoid", "softmax") | names_in(
    f"{TF}.math", "softplus", "exp", "sigmoid", "softmax",
) | names_in(TF, "exp", "sigmoid") | names_in(
    "keras.activations", "softplus", "exponential", "sigmoid", "softmax",
) | names_in(
    "keras.ops", "softplus", "exp", "sigmoid", "softmax",
)
NONNEGATIVE_FUNCTIONS = names_in(f"{TF}.nn", "relu", "relu6") | names_in(f"{TF}.math", "abs", "square") | names_in(
    TF, "abs", "square",
) | names_in("keras.activations", "relu") | names_in("keras.ops", "relu", "abs", "square")
SIGNED_FUNCTIONS = names_in(f"{TF}.nn", "tanh", "elu", "selu", "leaky_relu", "gelu", "silu", "swish") | names_in(
    f"{TF}.math", "tanh",
) | names_in(TF, "tanh") | names_in("keras.activations", "linear", "tanh", "elu", "selu", "gelu", "swish", "silu")
#: Functions whose result has the sign of their first argument, element by element.
SIGN_PRESERVING = names_in(
    TF, "reshape", "squeeze", "expand_dims", "identity", "cast", "gather", "transpose", "convert_to_tensor",
    "broadcast_to", "tile", "split", "unstack",
) | names_in("keras.backend", "reshape", "squeeze", "expand_dims")
MAXIMUM = names_in(TF, "maximum") | names_in(f"{TF}.math", "maximum")
CLIP = names_in(TF, "clip_by_value")
POSITIVE_BIJECTORS = names_in(TFB, "Softplus", "Exp", "Sigmoid", "SoftClip")

ACTIVATION_STRINGS = {
    "softplus": POS, "exponential": POS, "exp": POS, "sigmoid": POS, "softmax": POS, "hard_sigmoid": NONNEG,
    "relu": NONNEG, "relu6": NONNEG, "linear": ANY, "tanh": ANY, "elu": ANY, "selu": ANY, "swish": ANY,
    "silu": ANY, "gelu": ANY, "leaky_relu": ANY, "softsign": ANY, "mish": ANY,
}

_KERAS_LAYERS = "keras.layers"
#: Layers whose output is their activation (linear, or tanh for the recurrent ones, by default):
#: layer -> (position of `activation`, default sign).
ACTIVATED_LAYERS: dict[str, tuple[Optional[int], str]] = {
    **{f"{_KERAS_LAYERS}.{name}": (1, ANY) for name in ("Dense",)},
    **{f"{_KERAS_LAYERS}.{name}": (None, ANY) for name in (
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
        "SeparableConv2D", "DepthwiseConv2D", "EinsumDense", "LSTM", "GRU", "SimpleRNN",
    )},
    **{f"{TFPL}.{name}": (1, ANY) for name in (
        "DenseFlipout", "DenseReparameterization", "DenseLocalReparameterization",
    )},
    **{f"{TFPL}.{name}": (None, ANY) for name in (
        "DenseVariational", "VariableLayer", "Convolution1DFlipout", "Convolution2DFlipout", "Convolution3DFlipout",
        "Convolution1DReparameterization", "Convolution2DReparameterization", "Convolution3DReparameterization",
    )},
}
#: Layers that output a real-valued tensor whatever their input.
SIGNED_LAYERS = names_in(_KERAS_LAYERS, "BatchNormalization", "LayerNormalization", "Input", "InputLayer")
#: Layers that keep the sign of what flows into them (look one layer further back).
TRANSPARENT_LAYERS = names_in(
    _KERAS_LAYERS, "Reshape", "Flatten", "Dropout", "Permute", "RepeatVector", "GaussianDropout", "AlphaDropout",
    "SpatialDropout1D", "SpatialDropout2D",
)
CONCATENATE = names_in(_KERAS_LAYERS, "Concatenate", "concatenate") | names_in(TF, "concat")
ACTIVATION_LAYER = f"{_KERAS_LAYERS}.Activation"
TIME_DISTRIBUTED = f"{_KERAS_LAYERS}.TimeDistributed"



@dataclass(frozen=True)
class InputModel:
    """What the DistributionLambda's input is: one tensor of a known sign, or a list of tensors
    (`DistributionLambda(f)([loc, scale])`) with one sign each."""

    sign: str = ANY
    elements: Optional[tuple[str, ...]] = None
    producer: str = ""  # "Dense(2)", for messages
    seen: bool = True  # False: no call of the layer was seen (built elsewhere, called through a name not followed)

    def of(self, index: Optional[int]) -> str:
        if self.elements is None:
            if index is not None and not self.seen:
                return UNKNOWN  # `t[1]` of an input never seen: a list whose elements cannot be read
            return self.sign
        if index is None:  # a slice of the stacked list: known only when every element has one sign
            return combine_layers(self.elements) if self.elements else UNKNOWN
        if not -len(self.elements) <= index < len(self.elements):
            return UNKNOWN
        return self.elements[index]


#: No call of the layer seen: a single tensor is taken as a raw network output (the layer's usual
#: input), but an element of a list input (`t[1]`) gets the benefit of the doubt.
NOT_VISIBLE = InputModel(ANY, seen=False)

#: A sign computed once the input is known: model -> (sign, depends on the input).
SignFn = Callable[[InputModel], tuple[str, bool]]


def constant(sign: str) -> SignFn:
    return lambda model: (sign, False)


def add_signs(a: tuple[str, bool], b: tuple[str, bool]) -> tuple[str, bool]:
    signs = {a[0], b[0]}
    if UNKNOWN in signs:
        sign = UNKNOWN
    elif signs <= {POS, NONNEG}:
        sign = POS if POS in signs else NONNEG
    else:
        sign = ANY
    return sign, a[1] or b[1]


def multiply_signs(a: tuple[str, bool], b: tuple[str, bool]) -> tuple[str, bool]:
    signs = {a[0], b[0]}
    if UNKNOWN in signs:
        sign = UNKNOWN
    elif signs == {POS}:
        sign = POS
    elif signs <= {POS, NONNEG}:
        sign = NONNEG
    else:
        sign = ANY
    return sign, a[1] or b[1]


def max_signs(a: tuple[str, bool], b: tuple[str, bool]) -> tuple[str, bool]:
    signs = {a[0], b[0]}
    for sign in (POS, NONNEG, UNKNOWN):
        if sign in signs:
            return sign, a[1] or b[1]
    return ANY, a[1] or b[1]


def combine_layers(signs: Sequence[str]) -> str:
    """The sign of a concatenation: the same for every part, else unknown (which part is sliced?)."""
    distinct = set(signs)
    return distinct.pop() if len(distinct) == 1 else UNKNOWN

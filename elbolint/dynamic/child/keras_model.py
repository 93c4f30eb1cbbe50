"""What the Keras driver (drive_keras.py) reads off a Keras model and its fit call, without changing
either: whether the model does variational inference (`variational_model`, `vi_layer`), the dataset
size and batches of a fit's `x`, `DenseVariational`'s `kl_weight`, and, as tensors of a training step's
own graph, the global gradient norm, the prior's mean stddev, the layers' unweighted KL and the
divergence terms they added.

Why a module of its own: the driver's recorder is about the seams (wrapping `fit`, `train_step` and
`train_function`, when to stop); these are plain readings of TFP and Keras objects. Most return None
instead of raising, and the recorder calls the rest where a failure only leaves a value out of the
trace: a reading never gets in the way of the user's program.
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Optional


def layers_of(model) -> list:
    """Every layer of the model, nested ones included (its top-level layers when Keras cannot say)."""
    try:
        return list(model._flatten_layers(include_self=False, recursive=True))
    except Exception:
        try:
            return list(model.layers)
        except Exception:
            return []


def defined_in(obj, path: str, run_name: str) -> bool:
    """`obj` (a class or function) is written in the user's file (`path`, or the module run as `run_name`)."""
    if obj is None:
        return False
    try:
        return os.path.abspath(inspect.getfile(obj)) == path
    except (TypeError, OSError):
        return getattr(obj, "__module__", None) == run_name


def variational_model(model, path: str, run_name: str) -> bool:
    """A model worth the Keras driver: a layer from tensorflow_probability, or a layer or the model's
    own class written in the user's file (a custom Bayesian layer, a custom `train_step`)."""
    if defined_in(type(model), path, run_name):
        return True
    for layer in layers_of(model):
        if vi_layer(layer) or defined_in(type(layer), path, run_name):
            return True
    return False


def vi_layer(layer) -> bool:
    """A `tfp.layers` layer that does VI: a variational layer (a kernel posterior or a KL penalty), a
    KL layer, a variational GP, or a distribution layer regularised by a KL. A point-estimate
    `DistributionLambda` network is not one (the loop recorder takes it), so in a notebook that
    trains one before its Bayesian network, the Bayesian network is the fit this driver checks."""
    cls = type(layer)
    if not cls.__module__.startswith("tensorflow_probability"):
        return False
    if hasattr(layer, "kernel_posterior") or hasattr(layer, "_kl_divergence_fn"):
        return True
    if any(word in cls.__name__ for word in ("KLDivergence", "Variational", "Flipout", "Reparameterization")):
        return True  # also before the layer is built (a Sequential without an Input, `train_on_batch`)
    regulariser = getattr(layer, "activity_regularizer", None)
    return regulariser is not None and type(regulariser).__module__.startswith("tensorflow_probability")


def dense_variational_weight(layer) -> Optional[float]:
    """`kl_weight` of a `tfp.layers.DenseVariational` (read from its divergence penalty's closure)."""
    fn = getattr(layer, "_kl_divergence_fn", None)
    if fn is None or type(layer).__name__ != "DenseVariational":
        return None
    try:
        cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
    except (AttributeError, ValueError):
        return None
    if "weight" not in cells:
        return None
    weight = cells["weight"]
    if weight is None:
        return 1.0
    return to_float(weight)


def examples_in(x) -> Optional[int]:
    """The number of examples in a fit's `x` when it is arrays (not a dataset or a generator)."""
    import tensorflow as tf

    if x is None or isinstance(x, tf.data.Dataset):
        return None
    try:
        leaves = tf.nest.flatten(x)
    except Exception:
        return None
    for leaf in leaves:
        shape = getattr(leaf, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] is not None:
            try:
                return int(shape[0])
            except (TypeError, ValueError):
                return None
    return None


def batches_in(x) -> Optional[int]:
    """Batches per epoch of a finite `tf.data.Dataset` or a Keras `Sequence`."""
    import tensorflow as tf

    try:
        if isinstance(x, tf.data.Dataset):
            count = int(x.cardinality())
            return count if count > 0 else None
        if hasattr(x, "__len__") and hasattr(x, "__getitem__") and not hasattr(x, "shape"):
            count = len(x)
            return count if count > 0 else None
    except Exception:
        return None
    return None


def global_norm(grads):
    """The global norm of a step's gradients (sparse ones by their values), None when there is none."""
    import tensorflow as tf

    squares = []
    for grad in grads:
        if grad is None:
            continue
        if isinstance(grad, tf.IndexedSlices):
            grad = grad.values
        squares.append(tf.reduce_sum(tf.square(tf.cast(grad, tf.float32))))
    return tf.sqrt(tf.add_n(squares)) if squares else None


def mean_prior_scale(layers):
    """The mean stddev of the layers' kernel priors, None when no prior has one."""
    import tensorflow as tf

    scales = []
    for layer in layers:
        try:
            scales.append(tf.reshape(tf.cast(layer.kernel_prior.stddev(), tf.float32), [-1]))
        except Exception:
            continue
    return tf.reduce_mean(tf.concat(scales, axis=0)) if scales else None


def raw_kl(layers):
    """The sum of KL(posterior || prior) of the layers' kernels (and biases, when the layer adds a
    bias divergence), unweighted, as a scalar tensor; None when one is not analytic."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    raws = []
    try:
        for layer in layers:
            kl = tf.reduce_sum(tfp.distributions.kl_divergence(layer.kernel_posterior, layer.kernel_prior))
            bias_q, bias_p = getattr(layer, "bias_posterior", None), getattr(layer, "bias_prior", None)
            if getattr(layer, "bias_divergence_fn", None) is not None and \
                    isinstance(bias_q, tfp.distributions.Distribution) and \
                    isinstance(bias_p, tfp.distributions.Distribution):
                kl = kl + tf.reduce_sum(tfp.distributions.kl_divergence(bias_q, bias_p))
            raws.append(tf.cast(kl, tf.float32))
    except Exception:
        return None
    return tf.add_n(raws) if raws else None


def added_losses(layers):
    """The sum of the same layers' own losses (their weighted divergence terms); None if one added none."""
    import tensorflow as tf

    added = []
    try:
        for layer in layers:
            losses = list(layer.losses)
            if not losses:
                return None
            added.append(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in losses]))
    except Exception:
        return None
    return tf.add_n(added) if added else None


def to_float(value) -> Optional[float]:
    """A scalar log value as a float, None when it is not one."""
    try:
        import numpy as np

        return float(np.asarray(value, dtype=np.float64).reshape(()))
    except Exception:
        return None


def median_of(values: list) -> Optional[float]:
    """The median of the finite values, None when there is none."""
    from statistics import median

    values = [v for v in values if v is not None and math.isfinite(v)]
    return median(values) if values else None

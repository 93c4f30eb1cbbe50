"""Fitting and measuring, shared by every driver (see drivers.py): the brief fit of a target and a
surrogate, the reference fit, the log-prob shape check, the positive-parameter minima, and the helpers
that turn an exception into a user-facing reason at the user's line. Imports TensorFlow lazily, inside
the functions, so the drivers' text checks stay importable without it.

The brief fit never touches the user's optimizer: it fits with a copy (same class, `get_config()`, fresh
state). It records, per step, the loss, the global gradient norm, which variables got a None/zero
gradient and the minimum of every positive-only parameter of the surrogate's distributions.
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import time
import traceback
from typing import Any, Optional

from elbolint.dynamic.varnames import variable_labels
from elbolint.rules._tfp import POSITIVE_PARAMETERS as POSITIVE  # one list for static and dynamic


def seed_everything(seed: int = 0) -> None:
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def exception_text(error: BaseException) -> str:
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(str(error).split()))
    if len(text) > 600:
        text = text[:600] + " ..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def user_line(error: BaseException, path: str) -> Optional[int]:
    """The deepest line of the user's file in the traceback (where their code went wrong)."""
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


def user_frame(path: str):
    """The innermost frame of the user's file on the current stack, or None."""
    frame = sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == path:
            return frame
        frame = frame.f_back
    return None


def caller_line(path: str) -> Optional[int]:
    frame = user_frame(path)
    return frame.f_lineno if frame is not None else None


def fit_trace(context, target, surrogate, optimizer, num_steps, kwargs, *, line, source, namespace,
              anchors=None) -> dict:
    """The trace of a brief fit (and the reference fit) of `target` and `surrogate`, as a driver
    returns it. The user's `num_steps` caps the budget; a fit that raises becomes the trace's
    `failure` at the user's line. Every recording seam is disarmed first (our own steps are not the
    user's)."""
    context.quiet()
    steps = int(context.settings["steps"])
    if num_steps is not None:
        try:
            steps = max(1, min(steps, int(num_steps)))
        except (TypeError, ValueError):
            pass
    anchors = dict(anchors or {})
    anchors.update(anchor_names(namespace, surrogate, anchors))
    trace: dict[str, Any] = {"source": source, "line": line, "budget": steps,
                             "anchors": anchors, "user_num_steps": jsonable(num_steps)}
    sample_size = kwargs.get("sample_size", 1)
    trainable = kwargs.get("trainable_variables")
    options = {k: kwargs[k] for k in ("discrepancy_fn", "importance_sample_size") if k in kwargs}
    try:
        fit = brief_fit(target, surrogate, copy_optimizer(optimizer), steps, sample_size, trainable,
                        options, namespace)
    except (context.Stop, SystemExit, MemoryError):
        raise
    except BaseException as error:
        trace["failure"] = {"kind": "exception", "message": exception_text(error),
                            "line": user_line(error, context.path) or line}
        return trace
    trace["fit"] = fit
    if context.settings.get("reference", True):
        trace["reference"] = reference_fit(target, surrogate, steps, sample_size)
    return trace


def anchor_names(namespace: dict, surrogate, known: dict) -> dict:
    """Module-level names of the surrogate and of a JointDistribution model, to report at their lines."""
    import tensorflow_probability as tfp

    found = {}
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if value is surrogate and "surrogate" not in known:
            found.setdefault("surrogate", name)
        elif isinstance(value, tfp.distributions.JointDistribution) and "model" not in known:
            found.setdefault("model", name)
    return found


def jsonable(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pinned_target(model, surrogate):
    """The model's log-prob as a function of the surrogate's components; components the surrogate
    lacks are pinned to a seeded sample drawn from the model (prior-predictive data)."""
    import tensorflow as tf

    sample = model.sample(seed=(0, 1))
    flat = tf.nest.flatten(sample)
    surrogate_count = len(tf.nest.flatten(surrogate.event_shape_tensor()))
    if surrogate_count >= len(flat):
        if isinstance(sample, dict):
            return lambda **kw: model.log_prob(kw)
        return lambda *args: model.log_prob(list(args))
    names = model._flat_resolve_names()
    pins = {names[i]: flat[i] for i in range(surrogate_count, len(flat))}
    pinned = model.experimental_pin(**pins)
    return pinned.unnormalized_log_prob


def copy_optimizer(optimizer):
    """Same class and hyperparameters, fresh state; a clipped Adam when the user gave none."""
    if optimizer is None:
        return default_optimizer(0.1)
    try:
        return type(optimizer).from_config(optimizer.get_config())
    except Exception:
        return optimizer


def default_optimizer(learning_rate: float):
    try:
        import tf_keras

        return tf_keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0)
    except ImportError:  # pragma: no cover
        import tensorflow as tf

        return tf.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0)


def _call_target(target, sample):
    if isinstance(sample, dict):
        return target(**sample)
    if isinstance(sample, (list, tuple)):
        return target(*sample)
    return target(sample)


def positive_parameters(surrogate, seed, scopes=()):
    """(name, value) for every positive-only parameter of the surrogate's distributions; the name
    carries the user's name for the variable behind the value when it has one (see varnames.py)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    from elbolint.dynamic.varnames import given_name, underlying

    tfd = tfp.distributions
    if isinstance(surrogate, tfd.JointDistribution):
        dists, _ = surrogate.sample_distributions(seed=seed)
        flat = tf.nest.flatten(dists, expand_composites=False)
        labels = surrogate._flat_resolve_names()
    else:
        flat, labels = [surrogate], [None]
    found = []
    for index, dist in enumerate(flat):
        label = labels[index] if index < len(labels) and labels[index] else f"component {index}"
        stack = [dist]
        while stack:
            d = stack.pop()
            if not isinstance(d, tfd.Distribution):
                continue
            for key, value in (d.parameters or {}).items():
                if key in POSITIVE and value is not None and not callable(value):
                    kind = type(dist).__name__
                    prefix = f"`{key}` of {kind}" + (f" '{label}'" if len(flat) > 1 or labels[0] else "")
                    variable = underlying(value)
                    name = given_name(variable, scopes) if variable is not None else None
                    if name and name != key:
                        prefix += f" (`{name}`)"
                    found.append((prefix, value))
            for attribute in ("distribution", "_distribution"):
                inner = getattr(d, attribute, None)
                if isinstance(inner, tfd.Distribution):
                    stack.append(inner)
                    break
    return found


def logprob_shape(target, surrogate) -> tuple[list[int], int]:
    """ELB106's evidence: the target's log-prob shape of one surrogate sample, and the rank it should
    have (the surrogate's own log-prob rank)."""
    import tensorflow as tf

    sample = surrogate.sample(seed=(1, 2))
    lp = tf.convert_to_tensor(_call_target(target, sample))
    expected = len(tf.convert_to_tensor(surrogate.log_prob(sample)).shape)
    return [int(d) if d is not None else -1 for d in lp.shape], expected


def untracked_variables(namespace: dict, variables) -> list[str]:
    """ELB105's evidence: module-level trainable variables that the fit never touches."""
    import tensorflow as tf

    ids = {id(v) for v in variables}
    return [f"`{name}`" for name, value in list(namespace.items())
            if isinstance(value, tf.Variable) and value.trainable and id(value) not in ids]


def brief_fit(target, surrogate, optimizer, steps, sample_size, trainable, options, namespace) -> dict:
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    started = time.monotonic()
    variables = tuple(trainable) if trainable is not None else tuple(surrogate.trainable_variables)
    fit: dict[str, Any] = {"loss": [], "grad_norm": [], "none_grad": [], "zero_grad": [], "untracked": [],
                           "positive": {}, "no_trainable": not variables}

    fit["logprob_shape"], fit["expected_rank"] = logprob_shape(target, surrogate)
    fit["untracked"] = untracked_variables(namespace, variables)
    if not variables:
        fit["seconds"] = time.monotonic() - started
        return fit

    labels = variable_labels(variables, [namespace])
    positives = positive_parameters(surrogate, (3, 4), [namespace])
    fit["positive"] = {name: [] for name, _ in positives}
    none_mask: list[bool] = []

    def loss_fn(step_seed):
        return tfp.vi.monte_carlo_variational_loss(target, surrogate, sample_size=sample_size,
                                                   seed=step_seed, **options)

    if hasattr(optimizer, "build"):
        try:
            optimizer.build(list(variables))
        except Exception:
            pass

    def step(step_seed):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            loss = tf.reduce_sum(loss_fn(step_seed))
        grads = tape.gradient(loss, variables)
        none_mask[:] = [g is None for g in grads]
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        norm = tf.linalg.global_norm([g for g, _ in pairs]) if pairs else tf.constant(0.0)
        zeros = tf.stack([tf.reduce_all(tf.equal(g, 0)) for g, _ in pairs]) if pairs else tf.zeros([0], tf.bool)
        mins = [tf.reduce_min(tf.cast(tf.convert_to_tensor(v), tf.float64)) for _, v in positives]
        if pairs:
            optimizer.apply_gradients(pairs)
        return loss, norm, zeros, mins

    compiled = tf.function(step, autograph=False)
    # the parameters' values before a step's update
    always_zero = None
    for i in range(steps):
        loss, norm, zeros, mins = compiled(tf.constant([i, 7], tf.int32))
        loss_value = float(loss)
        fit["loss"].append(loss_value)
        fit["grad_norm"].append(float(norm))
        for (name, _), value in zip(positives, mins):
            fit["positive"][name].append(float(value))
        zeros = np.asarray(zeros)
        always_zero = zeros if always_zero is None else (always_zero & zeros)
        if not math.isfinite(loss_value) and i >= 1 and not math.isfinite(fit["loss"][-2]):
            break  # NaN twice in a row: the rest of the budget says nothing new
    present = [label for label, none in zip(labels, none_mask) if not none]
    fit["none_grad"] = [f"`{label}`" for label, none in zip(labels, none_mask) if none]
    if always_zero is not None and fit["loss"] and all(math.isfinite(v) for v in fit["loss"]):
        fit["zero_grad"] = [f"`{label}`" for label, zero in zip(present, always_zero) if zero]
    fit["final_estimate"] = final_estimate(target, surrogate, options)
    fit["seconds"] = time.monotonic() - started
    return fit


def final_estimate(target, surrogate, options=None, samples: int = 256) -> Optional[float]:
    """The loss after the fit with many samples: a low-noise number to compare surrogates by."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    try:
        loss = tfp.vi.monte_carlo_variational_loss(target, surrogate, sample_size=samples,
                                                   seed=(5, 6), **(options or {}))
        return float(tf.reduce_sum(loss))
    except Exception:  # a target that does not broadcast over a sample dimension: one sample at a time
        pass
    try:
        single = tf.function(lambda seed: tf.reduce_sum(tfp.vi.monte_carlo_variational_loss(
            target, surrogate, sample_size=1, seed=seed, **(options or {}))), autograph=False)
        values = [float(single(tf.constant([i, 9], tf.int32))) for i in range(64)]
        return sum(values) / len(values)
    except Exception:
        return None


AFFINE_MAX_LATENT = 32  # a full-covariance reference costs O(d^2) parameters: only for small latents


def reference_fit(target, surrogate, steps, sample_size) -> dict:
    """The same target fitted with default surrogates on the user's support and a clipped Adam:
    `build_factored_surrogate_posterior` (mean-field) always, and `build_affine_surrogate_posterior`
    (full covariance) when the latent size is at most AFFINE_MAX_LATENT. The factored one gives the
    reference initial loss (ELB102); the better final estimate of the two is the reference for ELB108."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    started = time.monotonic()
    try:
        bijector = surrogate.experimental_default_event_space_bijector()
        factored = _fit_reference(
            lambda: tfp.experimental.vi.build_factored_surrogate_posterior(
                event_shape=surrogate.event_shape, bijector=bijector, dtype=surrogate.dtype),
            target, steps, sample_size)
        result = {"kind": "factored", **factored}
        latent = _latent_size(surrogate)
        if latent is not None and 1 < latent <= AFFINE_MAX_LATENT:
            try:
                affine = _fit_reference(
                    lambda: tfp.experimental.vi.build_affine_surrogate_posterior(
                        event_shape=surrogate.event_shape, bijector=bijector,
                        dtype=tf.nest.flatten(surrogate.dtype)[0]),
                    target, steps, sample_size)
                result["affine_final_estimate"] = affine["final_estimate"]
                if (affine["final_estimate"] is not None and result["final_estimate"] is not None
                        and affine["final_estimate"] < result["final_estimate"]):
                    result["final_estimate"] = affine["final_estimate"]
                    result["kind"] = "affine"
            except (SystemExit, MemoryError):
                raise
            except Exception as error:
                result["affine_error"] = exception_text(error)
        result["seconds"] = time.monotonic() - started
        return result
    except (SystemExit, MemoryError):
        raise
    except BaseException as error:
        return {"error": exception_text(error), "seconds": time.monotonic() - started}


def _latent_size(surrogate) -> Optional[int]:
    import tensorflow as tf

    try:
        shapes = tf.nest.flatten(surrogate.event_shape_tensor())
        return int(sum(int(tf.reduce_prod(s)) for s in shapes))
    except Exception:
        return None


def _fit_reference(build, target, steps, sample_size) -> dict:
    import tensorflow as tf
    import tensorflow_probability as tfp

    seed_everything(1)
    reference = build()
    variables = reference.trainable_variables
    optimizer = default_optimizer(0.1)
    optimizer.build(list(variables))

    @tf.function(autograph=False)
    def step(step_seed):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            loss = tf.reduce_sum(tfp.vi.monte_carlo_variational_loss(
                target, reference, sample_size=sample_size, seed=step_seed))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    losses = [float(step(tf.constant([i, 11], tf.int32))) for i in range(steps)]
    return {"loss": losses, "final_estimate": final_estimate(target, reference)}

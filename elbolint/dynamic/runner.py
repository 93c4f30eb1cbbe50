"""Inside the sandboxed child: find what to run in one model file, run the brief fit and the reference
fit, and return a JSON-safe trace for the classifier. Imports TensorFlow, so only the worker uses it.

Finding what to run, in this order (issue 4):
1. the probe: a module-level function (default `elbolint_probe`) returning a mapping with
   `target_log_prob_fn`, `surrogate_posterior` and optionally `optimizer`, `num_steps`, `sample_size`;
2. the file's own `tfp.vi.fit_surrogate_posterior(...)` calls: the file runs as `__main__` with that
   function replaced by a recorder, so scripts that load their data in `main()` work too; the first call
   is fitted for the budget and the script is then stopped (nothing after the fit matters here);
   a hand-written loop (`monte_carlo_variational_loss` + `apply_gradients`/`minimize`) in the same run
   is recorded step by step as it runs (see loop.py) and stopped after the budget;
3. import the module (not as `__main__`) and pair module-level objects: the surrogate (a distribution
   with trainable variables), the model (a `JointDistribution*`), the optimizer. Model components the
   surrogate lacks are pinned to a seeded prior-predictive sample (`model.experimental_pin`).

The brief fit never touches the user's optimizer: it fits with a copy (same class, `get_config()`, fresh
state). It records, per step, the loss, the global gradient norm, which variables got a None/zero
gradient and the minimum of every positive-only parameter of the surrogate's distributions.
"""

from __future__ import annotations

import math
import os
import random
import re
import runpy
import sys
import time
import traceback
from typing import Any, Optional

from elbolint.dynamic.varnames import variable_labels
from elbolint.rules._tfp import POSITIVE_PARAMETERS as POSITIVE  # one list for static and dynamic


class _FitRecorded(BaseException):
    """Stops the user's script once its first fit has been recorded (BaseException: rarely caught)."""


class ProbeError(Exception):
    """The probe or the pairing found something unusable; its message becomes an ELB100 reason."""


def seed_everything(seed: int = 0) -> None:
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def run_file(job: dict) -> dict:
    """The child's entry point: `job` has path, strategy, settings (DynamicSettings.to_json())."""
    import tensorflow as tf

    started = time.monotonic()
    path = os.path.abspath(job["path"])
    settings = job["settings"]
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    seed_everything(0)
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    recorder = Recorder(path, settings)
    recorder.install()
    trace: dict[str, Any]
    try:
        trace = recorder.locate_and_fit(job.get("strategy", "main"))
    except _FitRecorded:
        trace = recorder.finish_loop() if recorder.loop.steps and not recorder.trace.get("fit") \
            else recorder.trace
    except BaseException as error:
        if not recorder.loop.steps or isinstance(error, MemoryError):
            trace = _failed_run(error, recorder, path, settings)
        else:  # the loop ran some steps and then stopped the script (a NaN check, sys.exit, ...)
            trace = recorder.finish_loop(stopped_by=exception_text(error))
    trace["seconds"] = time.monotonic() - started
    return trace


def _failed_run(error: BaseException, recorder: "Recorder", path: str, settings: dict) -> dict:
    """The trace of a run that stopped before anything was recorded (or after a recorded fit)."""
    if isinstance(error, SystemExit):
        trace = recorder.trace or {}
        if not trace.get("fit"):
            code = error.code if error.code is not None else 0
            trace = {"failure": {"kind": "exit", "message": f"the model called sys.exit({code!r}) before "
                                 "any fit could be recorded", "line": user_line(error, path)}}
        return trace
    if isinstance(error, MemoryError):
        return {"failure": {"kind": "memory",
                            "message": f"memory limit exceeded ({settings['memory_mib']} MiB per file)"}}
    message = str(error) if isinstance(error, ProbeError) else exception_text(error)
    # the user's own code raised while being executed (or the probe was unusable)
    return {"failure": {"kind": "exception", "message": message, "line": user_line(error, path)}}


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


def caller_line(path: str) -> Optional[int]:
    frame = sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == path:
            return frame.f_lineno
        frame = frame.f_back
    return None


class Recorder:
    """Holds the run's trace; replaces fit_surrogate_posterior while the user's script runs."""

    def __init__(self, path: str, settings: dict):
        from elbolint.dynamic.loop import LoopRecorder

        self.path = path
        self.settings = settings
        self.trace: dict[str, Any] = {}
        self.loop = LoopRecorder(path, int(settings["steps"]), _FitRecorded)

    # ---------------------------------------------------------------- locating
    def install(self) -> None:
        import tensorflow_probability as tfp
        from tensorflow_probability.python import vi as vi_package
        from tensorflow_probability.python.vi import optimization

        recorder = self

        def fit_surrogate_posterior(target_log_prob_fn, surrogate_posterior, optimizer=None,
                                    num_steps=None, *args, **kwargs):
            if recorder.loop.steps:  # a hand-written loop already ran: that is the fit to report
                raise _FitRecorded()
            line = caller_line(recorder.path)
            namespace = sys._getframe(1).f_globals
            recorder.fit(target_log_prob_fn, surrogate_posterior, optimizer, num_steps,
                         kwargs, line=line, source="fit_surrogate_posterior", namespace=namespace)
            raise _FitRecorded()

        for module in (tfp.vi, vi_package, optimization):
            module.fit_surrogate_posterior = fit_surrogate_posterior
        self.loop.install()

    def locate_and_fit(self, strategy: str) -> dict:
        probe = self.settings["probe"]
        if strategy == "probe":
            namespace = runpy.run_path(self.path, run_name="__elbolint_probe__")
            function = namespace.get(probe)
            if not callable(function):
                raise ProbeError(f"{probe} is not a function")
            spec = function()
            if not hasattr(spec, "get") or "target_log_prob_fn" not in spec or "surrogate_posterior" not in spec:
                raise ProbeError(f"{probe}() must return a mapping with target_log_prob_fn and "
                                 "surrogate_posterior (optionally optimizer, num_steps, sample_size)")
            self.fit(spec["target_log_prob_fn"], spec["surrogate_posterior"], spec.get("optimizer"),
                     spec.get("num_steps"), {"sample_size": spec.get("sample_size", 1)},
                     line=function.__code__.co_firstlineno, source="probe", namespace=namespace)
            return self.trace
        run_name = "__main__" if strategy == "main" else "__elbolint_import__"
        self.loop.arm()
        namespace = runpy.run_path(self.path, run_name=run_name)
        if self.loop.steps:  # a hand-written loop ran to its end within the budget
            return self.finish_loop()
        self.loop.disarm()
        # No fit call was reached: pair the module-level objects.
        self.pair(namespace)
        return self.trace

    def pair(self, namespace: dict) -> None:
        import tensorflow_probability as tfp

        tfd = tfp.distributions
        surrogate = model = optimizer = None
        names = {}
        for name, value in namespace.items():
            if name.startswith("__"):
                continue
            if isinstance(value, tfd.Distribution):
                try:
                    trainable = bool(value.trainable_variables)
                except Exception:
                    trainable = False
                if trainable and surrogate is None:
                    surrogate, names["surrogate"] = value, name
                elif not trainable and isinstance(value, tfd.JointDistribution) and model is None:
                    model, names["model"] = value, name
            elif optimizer is None and hasattr(value, "apply_gradients") and hasattr(value, "get_config") \
                    and not isinstance(value, type):
                optimizer = value
        if surrogate is None or model is None:
            self.trace = {"nothing": "no elbolint_probe, no fit_surrogate_posterior call reached, and no "
                                     "module-level surrogate (distribution with trainable variables) and "
                                     "JointDistribution model to pair"}
            return
        target = pinned_target(model, surrogate)
        self.fit(target, surrogate, optimizer, None, {}, line=None, source="pair", namespace=namespace,
                 anchors=names)

    # ------------------------------------------------------------------ fitting
    def fit(self, target, surrogate, optimizer, num_steps, kwargs, *, line, source, namespace,
            anchors=None) -> None:
        import tensorflow as tf

        self.loop.disarm()
        steps = int(self.settings["steps"])
        if num_steps is not None:
            try:
                steps = max(1, min(steps, int(num_steps)))
            except (TypeError, ValueError):
                pass
        anchors = dict(anchors or {})
        anchors.update(_anchor_names(namespace, surrogate, anchors))
        self.trace = {"source": source, "line": line, "budget": steps,
                      "anchors": anchors, "user_num_steps": _jsonable(num_steps)}
        sample_size = kwargs.get("sample_size", 1)
        trainable = kwargs.get("trainable_variables")
        options = {k: kwargs[k] for k in ("discrepancy_fn", "importance_sample_size") if k in kwargs}
        try:
            fit = brief_fit(target, surrogate, copy_optimizer(optimizer), steps, sample_size, trainable,
                            options, namespace)
        except (_FitRecorded, SystemExit, MemoryError):
            raise
        except BaseException as error:
            self.trace["failure"] = {"kind": "exception", "message": exception_text(error),
                                     "line": user_line(error, self.path) or line}
            return
        self.trace["fit"] = fit
        if self.settings.get("reference", True):
            self.trace["reference"] = reference_fit(target, surrogate, steps, sample_size)
        del tf


    def finish_loop(self, stopped_by: Optional[str] = None) -> dict:
        """The trace of a recorded hand-written loop: its steps, plus what needs the recorded
        target and surrogate (log-prob shape, final estimate, reference fit)."""
        loop = self.loop
        loop.disarm()
        first = loop.first or {}
        surrogate = loop.surrogate()
        namespace = loop.namespace
        fit = loop.record(lambda variables: variable_labels(variables, [loop.locals, namespace]))
        fit["untracked"] = untracked_variables(namespace, loop.variables)
        anchors = _anchor_names(namespace, surrogate, {}) if surrogate is not None else {}
        self.trace = {"source": "loop", "line": first.get("line") or loop.line, "budget": loop.budget,
                      "anchors": anchors, "user_num_steps": None, "fit": fit}
        if stopped_by:
            self.trace["stopped_by"] = stopped_by
        target = first.get("target")
        if target is None:
            return self.trace
        try:
            fit["logprob_shape"], fit["expected_rank"] = logprob_shape(target, surrogate)
        except (SystemExit, MemoryError):
            raise
        except Exception:
            pass
        fit["final_estimate"] = final_estimate(target, surrogate, first.get("options"))
        if self.settings.get("reference", True) and fit["loss"]:
            self.trace["reference"] = reference_fit(target, surrogate, len(fit["loss"]),
                                                    first.get("sample_size", 1))
        return self.trace


def _anchor_names(namespace: dict, surrogate, known: dict) -> dict:
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


def _jsonable(value):
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

"""Driver 3, `keras`: a Keras model with `tfp.layers` variational layers trained by the user's own
`model.fit` (or `train_on_batch`, or a custom `train_step`), tf-keras or Keras 3.

Why a driver of its own: the `loop` driver sees a Keras fit only through the optimizer's
`apply_gradients` (the loss and the gradient norm of each batch), and only with every `tf.function` run
eagerly. What shows an unscaled KL (ELB010) is the split of each batch's loss: the variational layers'
divergence terms (`model.losses`) against the data term, and the posterior scales being pulled to
the prior. So the user's own `fit` runs, with their data, batch size, loss, optimizer and callbacks,
compiled as Keras compiles it; only three seams are added:

- `Model.fit` / `train_on_batch` (class level, tf-keras and Keras 3 when loaded): the first model that
  is variational (a `tfp.layers` layer that does VI, see keras_model.vi_layer, or a layer or model class of the
  user's file) whose fit a finding points at (or any, when the parent cannot tell) is claimed; the
  fit's `x`, `batch_size` and `validation_split` give the dataset size N. A variational fit no finding
  points at, or one an earlier run of the file recorded (process/site_runs.py), is left to the `loop`
  driver, which cuts it short like a baseline's. Other models' fits run untouched (the `loop` driver
  sees them as before). Claiming turns the `loop` driver's seams off, and the eager mode it armed: the
  user's fit runs compiled, as Keras compiles it;
- the claimed model's `train_step` (an instance attribute wrapping the user's own, custom or not) adds
  a few values to the step's logs, inside the step's own graph: the loss the step differentiates (from
  `tf.GradientTape.gradient`), `sum(model.losses)`, the global gradient norm before clipping, the batch
  size, and for layers with `kernel_posterior`/`kernel_prior` (the Flipout/Reparameterization families)
  the posterior's minimum and mean stddev, the prior's mean stddev and the unweighted KL;
- the model's `train_function` takes those values out of the logs again (callbacks, the progress bar,
  `History` and `train_on_batch`'s result never see them), records them per batch, and stops the
  script with the drivers' `Stop` after the budget (`context.budget` batches, across fit calls of the
  same model) or after two non-finite losses in a row.

The trace's `fit` has `loss`, `grad_norm` (as the other drivers', so ELB101/ELB103/ELB107 apply) plus
`kl`, `data` (loss - KL), `kl_weight` (the layers' KL term over their unweighted KL, or
`DenseVariational`'s `kl_weight`), `dataset_size`, `batch_size` and `posterior_scale`: the classifier's
ELB109 reads them. Which Keras ran is the worker's `keras` (tf-keras under TF_USE_LEGACY_KERAS=1 for
`tfp.layers`, see keras_flavour in __init__.py). Nothing here raises into the user's program: a value
that cannot be computed is left out, and a model that fails on its own is the user's failure (ELB100 at
their line); a fit that recorded nothing returns None (the next driver, or "nothing to run").
This module holds the seams and the recorder; what is read off the model and its fit call (whether it
does VI, the dataset size, a step's KL terms and gradient norm) is in keras_model.py.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any, Optional

from elbolint.dynamic.child.drive_loop import saw_no_vi
from elbolint.dynamic.child.failures import exception_text, user_frame
from elbolint.dynamic.child.keras_model import (added_losses, batches_in, defined_in, dense_variational_weight,
                                                examples_in, global_norm, layers_of, mean_prior_scale, median_of,
                                                raw_kl, to_float, variational_model)
from elbolint.dynamic.child.loop import TIME_MIN_STEPS, TIME_SHARE
from elbolint.dynamic.child.seams import replace
from elbolint.dynamic.child.sites import COMPILED, site, unflagged

NAME = "keras"

#: A Keras training call next to Keras or TFP's layers: the file is worth running as `__main__`.
_TRAINS = re.compile(r"\.(fit|fit_generator|train_on_batch)\s*\(")
_KERAS = re.compile(r"\bkeras\b|\btfp\.layers\b|\btfpl\b|\btf_keras\b|\bSequential\b|\.compile\s*\(")

PREFIX = "__elbolint_"
_TOTAL, _KL, _NORM, _BATCH = (PREFIX + k for k in ("total", "kl", "grad_norm", "batch"))
_SCALE_MIN, _SCALE_MEAN, _PRIOR, _RAW_KL, _LAYER_KL = (
    PREFIX + k for k in ("scale_min", "scale_mean", "prior_scale", "raw_kl", "layer_kl"))

#: Model classes whose `fit`, `train_on_batch` and `make_train_function` get the seams, when loaded.
_MODEL_CLASSES = (("tf_keras.src.engine.training", "Model"),
                  ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer"),
                  ("keras.src.engine.training", "Model"))


def applies(source: str, probe: str) -> bool:
    return True  # the seams cost nothing until a variational model is fitted (a sibling module may fit it)


def runs_file(source: str) -> bool:
    return bool(_TRAINS.search(source) and _KERAS.search(source))


def install(context) -> None:
    recorder = KerasRecorder(context)
    recorder.install()
    context.store[NAME] = recorder
    context.on_quiet(recorder.disarm)


def run(context) -> Optional[dict]:
    recorder = context.store.get(NAME)
    context.execute()
    if recorder is None or context.claimed != NAME or not recorder.loss \
            or isinstance(context.error, MemoryError):
        return None
    recorder.disarm()
    trace = recorder.trace()
    if context.error is not None:
        trace["stopped_by"] = exception_text(context.error)
    return trace


class KerasRecorder:
    def __init__(self, context):
        self.context = context
        self.path = context.path
        self.budget = context.budget
        self.started = time.monotonic()  # the file's run started about now (installed first)
        self.time_cut: Optional[float] = None
        self.armed = True
        self.model = None  # the claimed model
        self.active = 0  # depth of the claimed model's fit/train_on_batch calls
        self.calls: list[str] = []
        self.line: Optional[int] = None
        self.site: dict = {}
        self.dataset_size: Optional[int] = None
        self.dataset_batches: Optional[int] = None  # a dataset's or a Sequence's batches per epoch
        self.batch_size: Optional[int] = None  # from the fit call (the recorded batches win)
        self.layers: list[str] = []
        self.variational: list = []  # layers with kernel_posterior and kernel_prior
        self.kl_weights: list[float] = []  # DenseVariational's own kl_weight
        self.loss: list[float] = []
        self.kl: list[Optional[float]] = []
        self.grad_norm: list[Optional[float]] = []
        self.batches: list[Optional[float]] = []
        self.scale_min: list[Optional[float]] = []
        self.scale_mean: list[Optional[float]] = []
        self.prior_scale: Optional[float] = None
        self.raw_kl: list[Optional[float]] = []
        self.layer_kl: list[Optional[float]] = []
        self.approximate_loss = False  # the step's loss was not seen: Keras's running mean instead
        self.custom_train_step = False
        self._stepping = False
        self._stash = None
        self._times: list[float] = []

    # ------------------------------------------------------------------ seams
    def install(self) -> None:
        import tensorflow as tf

        recorder = self
        original_gradient = tf.GradientTape.gradient

        @functools.wraps(original_gradient)
        def gradient(tape, target, sources, *args, **kwargs):
            grads = original_gradient(tape, target, sources, *args, **kwargs)
            if recorder._stepping:
                recorder._stash = (target, grads)
            return grads

        replace(tf.GradientTape, "gradient", gradient, NAME)
        for cls in model_classes():
            for name, kind in (("fit", "fit"), ("fit_generator", "fit"), ("train_on_batch", "train_on_batch")):
                if name in cls.__dict__:
                    replace(cls, name, self._wrap_call(cls.__dict__[name], kind), NAME)
            if "make_train_function" in cls.__dict__:
                replace(cls, "make_train_function", self._wrap_make(cls.__dict__["make_train_function"]), NAME)
        for cls in compiling_classes():
            replace(cls, "compile", self._wrap_compile(cls.__dict__["compile"]), NAME)

    def _wrap_compile(self, original):
        """Note the user's line of each model's `compile` (a run's site names it, see sites.py)."""
        path = self.path

        @functools.wraps(original)
        def compile(model, *args, **kwargs):
            frame = user_frame(path)
            if frame is not None:
                COMPILED[id(model)] = frame.f_lineno
            return original(model, *args, **kwargs)

        return compile

    def disarm(self) -> None:
        self.armed = False

    def _wrap_call(self, original, kind: str):
        recorder = self

        @functools.wraps(original)
        def call(model, *args, **kwargs):
            if recorder.active or not recorder._wants(model):
                return original(model, *args, **kwargs)
            if recorder.model is None:
                recorder._claim(model)
            recorder._note_call(original, kind, model, args, kwargs)
            try:
                return recorder._recording(original, model, args, kwargs)
            except Exception as error:  # the user's program failed inside its own fit: not our frames
                raise _without_seams(error)

        return call

    def _wrap_make(self, original):
        recorder = self

        @functools.wraps(original)
        def make_train_function(model, *args, **kwargs):
            if model is not recorder.model:
                return original(model, *args, **kwargs)
            result = original(model, *args, **kwargs)
            function = getattr(model, "train_function", None) or result
            if function is None or getattr(function, "_elbolint", False):
                return result
            wrapped = recorder._wrap_function(model, function)
            model.train_function = wrapped
            return wrapped

        return make_train_function

    def _wants(self, model) -> bool:
        """The first variational model fitted while armed, and later fits of that same model."""
        if not self.armed:
            return False
        if self.context.claimed not in (None, NAME) and not saw_no_vi(self.context):
            return False
        if self.model is not None:
            if model is self.model:
                return True
            if self.loss:  # another model after the claimed one: its record is complete
                self.armed = False
                raise self.context.Stop()
            return False
        if not variational_model(model, self.path, self.context.run_name):
            return False
        return not self._nobodys(model)

    def _nobodys(self, model) -> bool:
        """No finding points at this fit of a variational model (sites.unflagged), or an earlier run of
        the file recorded it already: the `loop` driver cuts it short (loop.BRIEF) like a baseline's,
        so the budget goes to the flagged fit."""
        settings = self.context.settings
        record = site(self.path, "keras", optimizer=getattr(model, "optimizer", None), model=model)
        return unflagged(record, settings.get("flagged_spans"), settings.get("flagged_names"),
                         settings.get("done_sites"))

    def _claim(self, model) -> None:
        self.context.claimed = NAME
        self.model = model
        # The `loop` driver can no longer record (the fit is claimed): its seams go off, and with them
        # the eager mode it armed, so the user's fit runs compiled, as Keras compiles it.
        loop = self.context.store.get("loop")
        if loop is not None and getattr(loop, "armed", False):
            loop.disarm()
        layers = layers_of(model)
        self.layers = [type(layer).__name__ for layer in layers
                       if type(layer).__module__.startswith("tensorflow_probability")]
        self.variational = [layer for layer in layers if hasattr(layer, "kernel_posterior")]  # once built
        for layer in layers:
            weight = dense_variational_weight(layer)
            if weight is not None:
                self.kl_weights.append(weight)
        step = getattr(type(model), "train_step", None)
        self.custom_train_step = defined_in(step, self.path, self.context.run_name)
        original_step = model.train_step
        object.__setattr__(model, "train_step", self._wrap_step(model, original_step))
        try:
            model.train_function = None  # rebuilt through make_train_function, with the step wrapped
        except Exception:
            pass

    def _note_call(self, original, kind: str, model, args, kwargs) -> None:
        self.calls.append(kind)
        if self.line is None:
            frame = user_frame(self.path)
            self.line = frame.f_lineno if frame is not None else None
            self.site = site(self.path, "keras", optimizer=getattr(model, "optimizer", None), model=model,
                             line=self.line)
        if kind != "fit" or self.dataset_size is not None or self.dataset_batches is not None:
            return
        try:
            bound = inspect.signature(original).bind(model, *args, **kwargs).arguments
        except TypeError:
            return
        x = bound.get("x")
        size = examples_in(x)
        if size is not None:
            split = bound.get("validation_split") or 0.0
            try:
                size = int(size * (1.0 - float(split)))
            except (TypeError, ValueError):
                pass
            self.dataset_size = size
            batch = bound.get("batch_size")
            self.batch_size = int(batch) if isinstance(batch, int) else min(32, size)
        else:
            self.dataset_batches = batches_in(x)

    def _recording(self, original, model, args, kwargs):
        """Run the user's own call with the claimed model's seams live."""
        self.active += 1
        try:
            return original(model, *args, **kwargs)
        finally:
            self.active -= 1

    # --------------------------------------------------------------- the step
    def _wrap_step(self, model, original_step):
        recorder = self

        def train_step(data):
            # the unweighted KL at the variables the forward pass reads (before the update)
            raw = raw_kl(recorder.variational) if recorder.armed and recorder.variational else None
            recorder._stepping, recorder._stash = True, None
            try:
                logs = original_step(data)
            finally:
                recorder._stepping = False
            stash, recorder._stash = recorder._stash, None
            if not isinstance(logs, Mapping) or not recorder.armed:
                return logs
            extra = recorder._step_values(model, data, stash, raw)
            if not extra:
                return logs
            logs = dict(logs)
            logs.update(extra)
            return logs

        train_step._elbolint = True
        return train_step

    def _step_values(self, model, data, stash, raw=None) -> dict:
        """The recorded values of one step, as tensors of the step's own graph (never raises)."""
        import tensorflow as tf

        values: dict[str, Any] = {}

        def put(key, build) -> None:
            try:
                value = build()
                if value is not None:
                    values[key] = tf.cast(tf.reshape(value, []), tf.float32)
            except Exception:
                pass

        def total(tensors):
            parts = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors if t is not None]
            return tf.add_n(parts) if parts else None

        if stash is not None:
            target, grads = stash
            put(_TOTAL, lambda: total(tf.nest.flatten(target)))
            put(_NORM, lambda: global_norm(tf.nest.flatten(grads)))
        put(_KL, lambda: total(list(model.losses)))
        put(_BATCH, lambda: tf.shape(tf.nest.flatten(data)[0])[0])
        if not self.variational:  # a model built by its first batch has its posteriors now
            self.variational = [layer for layer in layers_of(model) if hasattr(layer, "kernel_posterior")]
        scales = []
        for layer in self.variational:
            try:
                scales.append(tf.reshape(tf.cast(layer.kernel_posterior.stddev(), tf.float32), [-1]))
            except Exception:
                continue
        if scales:
            joined = tf.concat(scales, axis=0)
            put(_SCALE_MIN, lambda: tf.reduce_min(joined))
            put(_SCALE_MEAN, lambda: tf.reduce_mean(joined))
        put(_PRIOR, lambda: mean_prior_scale(self.variational))
        if raw is None:
            raw = raw_kl(self.variational)
        added = added_losses(self.variational) if raw is not None else None
        if added is not None:
            values[_RAW_KL], values[_LAYER_KL] = raw, added
        return values

    def _wrap_function(self, model, function):
        recorder = self

        def train_function(*args, **kwargs):
            logs = function(*args, **kwargs)
            if not isinstance(logs, Mapping) or not any(str(k).startswith(PREFIX) for k in logs):
                if recorder.armed and model is recorder.model and isinstance(logs, Mapping):
                    recorder._on_batch({}, logs)
                return logs
            extra = {k: logs[k] for k in logs if str(k).startswith(PREFIX)}
            logs = {k: v for k, v in logs.items() if not str(k).startswith(PREFIX)}
            if recorder.armed and model is recorder.model:
                recorder._on_batch(extra, logs)
            return logs

        train_function._elbolint = True
        return train_function

    def _on_batch(self, extra: dict, logs: Mapping) -> None:
        now = time.monotonic()
        self._times[1:] = [now]
        if not self._times[:1]:
            self._times = [now]
        values = {k: to_float(v) for k, v in extra.items()}
        loss = values.get(_TOTAL)
        if loss is None:
            loss = to_float(logs.get("loss"))
            self.approximate_loss = True
        if loss is None:
            return
        self.loss.append(loss)
        self.kl.append(values.get(_KL))
        self.grad_norm.append(values.get(_NORM))
        self.batches.append(values.get(_BATCH))
        self.scale_min.append(values.get(_SCALE_MIN))
        self.scale_mean.append(values.get(_SCALE_MEAN))
        self.raw_kl.append(values.get(_RAW_KL))
        self.layer_kl.append(values.get(_LAYER_KL))
        if self.prior_scale is None:
            self.prior_scale = values.get(_PRIOR)
        nan_twice = len(self.loss) >= 2 and not any(math.isfinite(v) for v in self.loss[-2:])
        if len(self.loss) >= self.budget or nan_twice:
            self.armed = False
            raise self.context.Stop()
        timeout = float(self.context.settings.get("timeout", 60.0))
        if len(self.loss) >= TIME_MIN_STEPS and now - self.started > TIME_SHARE * timeout:
            self.time_cut = now - self.started  # slow: fewer batches, not the sandbox's timeout
            self.armed = False
            raise self.context.Stop()

    # -------------------------------------------------------------- the trace
    def trace(self) -> dict:
        kl = self.kl if any(v is not None for v in self.kl) else []
        data = [loss - k if k is not None else None for loss, k in zip(self.loss, kl)]
        batch = median_of([b for b in self.batches if b is not None])
        batch_size = int(batch) if batch is not None else self.batch_size
        size = self.dataset_size
        if size is None and self.dataset_batches and batch_size:
            size = self.dataset_batches * batch_size
        fit: dict[str, Any] = {
            "loss": list(self.loss),
            "grad_norm": list(self.grad_norm) if all(v is not None for v in self.grad_norm) else [],
            "kl": list(kl), "data": data if kl else [],
            "kl_weight": self._kl_weight(),
            "dataset_size": size, "batch_size": batch_size,
            "positive": {}, "none_grad": [], "zero_grad": [], "untracked": [], "no_trainable": False,
            "seconds": self._times[-1] - self._times[0] if self._times else 0.0,
        }
        fit.update(self._optimizer())
        if any(v is not None for v in self.scale_min):
            fit["posterior_scale"] = {"min": list(self.scale_min), "mean": list(self.scale_mean),
                                      "prior": self.prior_scale}
        cut = {"time_cut": {"steps": len(self.loss), "seconds": round(self.time_cut, 2)}} if self.time_cut else {}
        return {
            **cut,
            "source": "keras", "line": self.line, "site": dict(self.site), "budget": self.budget, "anchors": {},
            "user_num_steps": None, "fit": fit,
            "keras_model": {"calls": sorted(set(self.calls)), "layers": sorted(set(self.layers)),
                            "custom_train_step": self.custom_train_step,
                            "approximate_loss": self.approximate_loss},
        }

    def _optimizer(self) -> dict:
        """The claimed model's optimizer's constant rate and clipping, for the replays (replays.py)."""
        from elbolint.dynamic.child.optimizers import clipping_of, constant_learning_rate

        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return {}
        try:
            return {"learning_rate": constant_learning_rate(optimizer), "clipping": clipping_of(optimizer)}
        except Exception:
            return {}

    def _kl_weight(self) -> Optional[float]:
        """The weight of the variational layers' KL in each batch's loss: their added loss over their
        unweighted KL (median over the batches), else DenseVariational's own `kl_weight`."""
        ratios = [a / r for a, r in zip(self.layer_kl, self.raw_kl)
                  if a is not None and r is not None and math.isfinite(a) and math.isfinite(r) and r > 0]
        weights = list(self.kl_weights)
        ratio = median_of(ratios)  # None when there is no ratio
        if ratio is not None:
            weights.append(ratio)
        return max(weights) if weights else None


# ------------------------------------------------------------------ helpers
_HERE = os.path.abspath(__file__)


def _without_seams(error: BaseException) -> BaseException:
    """`error` with this module's frames taken out of its traceback: the seams only pass the user's
    exception through (Keras filters its own frames, so one of ours could look like the raiser)."""
    import types

    entries = []
    tb = error.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for entry in reversed(entries):
        if os.path.abspath(entry.tb_frame.f_code.co_filename) == _HERE:
            continue
        rebuilt = types.TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return error.with_traceback(rebuilt)


def compiling_classes() -> list[type]:
    """The classes among the Keras models' bases that define `compile` themselves."""
    return list({klass for root in model_classes() for klass in root.__mro__ if "compile" in klass.__dict__})


def model_classes() -> list[type]:
    """The Model classes of the Keras packages already loaded (importing one costs seconds)."""
    import sys

    found = []
    for module, name in _MODEL_CLASSES:
        if module.split(".")[0] not in sys.modules:
            continue
        try:
            cls = getattr(__import__(module, fromlist=[name]), name)
        except Exception:
            continue
        if cls not in found:
            found.append(cls)
    return found

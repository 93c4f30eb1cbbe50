"""Hand-written training loops: record the script's own optimisation steps while it runs as `__main__`.

Why: many VI scripts never call `tfp.vi.fit_surrogate_posterior`; they write
`with tf.GradientTape() as tape: loss = tfp.vi.monte_carlo_variational_loss(...)` and
`optimizer.apply_gradients(...)` (or `optimizer.minimize(...)`) themselves. Import-and-pair would fit a
*different* loop than the user's (our optimizer copy, our loss); recording the user's own steps shows
what their loop really does. Nothing here knows about the user's loop structure, only two seams every
such loop goes through:

- `tfp.vi.monte_carlo_variational_loss` is wrapped: the first call's target and surrogate are kept
  (the reference fit, the log-prob shape check and the parameter minima need them) and every call's
  value is the step's loss. When the loss is built by hand (`loss = -elbo`), the value passed to
  `GradientTape.gradient` is the loss instead.
- `apply_gradients` of the Keras optimizer base classes (keras 3, tf_keras, tf_keras legacy; `minimize`
  goes through it) is wrapped at the class level: each call is one step (gradient global norm, None and
  zero gradients per variable, positive-parameter minima before the update). After the budget, or two
  NaN losses in a row, the script is stopped with the drivers' `Stop`.

A run that no static finding points at (its site's lines are in none of the `flagged` spans
the parent sends, see `flagged_spans` in __init__.py) is *brief*: a Keras baseline's `fit`, a MAP
`tfp.math.minimize` loop, a loop of another optimizer. It is recorded for `BRIEF` steps only and then
cut short without ending the script: a Keras `fit` stops after that batch (`model.stop_training`), any
other loop goes on untouched (its steps are no longer recorded) until it ends, at most `PASS_SHARE` of
the per-file timeout in all (`pass_share`: more in a run meant for a later site, see
process/site_runs.py), else the script is stopped as before. The next run starts a fresh record,
so every flagged run gets the whole budget.

Recording needs concrete values, so while armed `tf.function`s run eagerly
(`tf.config.run_functions_eagerly`); every fit of elbolint's own disarms first. Nothing is restored: the
forked child exits after the run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from typing import Any, Callable, Iterator, Optional

from elbolint.dynamic.child.failures import user_frame
from elbolint.dynamic.child.seams import replace

#: Steps recorded of a run no finding points at, before it is cut short.
BRIEF = 10
#: Share of the per-file timeout the cut-short runs may go on untouched, in all; in a run of the file
#: meant for a later flagged site (the earlier ones pass untouched) or a replay of a run (its timeout is
#: the time left, the passes before the judged run take as long as in the first run), SITE_PASS_SHARE.
PASS_SHARE, SITE_PASS_SHARE = 0.25, 0.6
#: Share of the per-file timeout after which a slow run is stopped with what it recorded (fewer
#: steps, never the sandbox's timeout, which would lose the record): the rest is for the final
#: estimate, the reference fit and the sandbox's margin. At least TIME_MIN_STEPS steps are recorded.
TIME_SHARE, TIME_MIN_STEPS = 0.5, 2


class LoopRecorder:
    def __init__(self, path: str, budget: int, stop: Callable[[], BaseException],
                 on_first_step: Optional[Callable[[], None]] = None, flagged: Optional[list] = None,
                 timeout: float = 60.0, flagged_names: Optional[list] = None,
                 raw_parameters: Optional[list] = None, done_sites: Optional[list] = None,
                 replay: bool = False):
        self.path = path
        self.on_first_step = on_first_step
        self.budget = budget
        self.stop = stop
        self.armed = False
        self.flagged = flagged  # [first, last] spans of the flagged training calls; None: every run is
        self.flagged_names = flagged_names or []  # names bound to the flagged optimizers and models
        self.raw_parameters = raw_parameters or []  # the raw variables ELB001/007/008 findings are about
        self.done_sites = done_sites or []  # sites an earlier run of the file recorded (site_runs.py)
        self.pass_share = SITE_PASS_SHARE if self.done_sites or replay else PASS_SHARE
        self.timeout = timeout
        self.started = time.monotonic()  # the file's run started about now (the recorder is installed first)
        self.time_cut: Optional[float] = None  # seconds when a slow run was stopped by the time budget
        self.cut: list[dict] = []  # the sites of the brief runs cut short before this one
        self.passed = 0.0  # seconds the cut-short runs went on untouched, in all
        self._fresh()

    def _fresh(self) -> None:
        """A new run's record (the previous run was brief and cut short)."""
        self.brief = False  # no finding points at this run: BRIEF steps, then cut short
        self.passing = False  # the brief run was cut short: its further steps run untouched
        self._key: Optional[tuple[str, Any]] = None  # what tells this run's steps from the next run's
        self._callers: Optional[tuple] = None  # a hand-written loop's call (_another_run)
        self._keras_model = None
        self._pass_started = 0.0
        self.first: Optional[dict] = None  # the first monte_carlo_variational_loss call
        self.variables: list = []  # every variable seen in apply_gradients, in order of first sight
        self.loss: list[float] = []
        self.grad_norm: list[float] = []
        self.none_steps: dict[int, int] = {}  # id(variable) -> steps with a None gradient
        self.always_zero: dict[int, bool] = {}
        self.positives: Optional[list] = None
        self.positive: dict[str, list[float]] = {}
        self.line: Optional[int] = None  # the user's line of the first apply_gradients/minimize
        self.site: dict = {}  # where the run is in the user's file (sites.py)
        self.learning_rate: Optional[float] = None  # the run's optimizer's constant rate, if any
        self.clipping: dict = {}  # the clipping the run's optimizer applies (optimizers.clipping_of)
        self.optimizers: set[int] = set()  # id() of the optimizers stepping in this run
        self.namespace: dict = {}  # globals of the user's file, where the loop runs
        self.locals: dict[str, Any] = {}  # locals of the user's functions on the stack at the first step
        self._mc_loss: Optional[float] = None
        self._tape_loss: Optional[float] = None
        self._depth = 0
        self._times: list[float] = []  # monotonic time of the first and the latest step

    @property
    def steps(self) -> int:
        return len(self.grad_norm)

    # ------------------------------------------------------------------ seams
    def install(self) -> None:
        import tensorflow as tf
        import tensorflow_probability as tfp
        from tensorflow_probability.python import vi as vi_package
        from tensorflow_probability.python.vi import csiszar_divergence

        original_loss = csiszar_divergence.monte_carlo_variational_loss
        recorder = self

        @functools.wraps(original_loss)
        def monte_carlo_variational_loss(target_log_prob_fn, surrogate_posterior, *args, **kwargs):
            loss = original_loss(target_log_prob_fn, surrogate_posterior, *args, **kwargs)
            if recorder.armed and recorder._depth == 0:
                recorder._on_loss(original_loss, target_log_prob_fn, surrogate_posterior, args, kwargs, loss)
            return loss

        for module in (tfp.vi, vi_package, csiszar_divergence):
            if getattr(module, "monte_carlo_variational_loss", None) is not monte_carlo_variational_loss:
                replace(module, "monte_carlo_variational_loss", monte_carlo_variational_loss, "loop")

        original_gradient = tf.GradientTape.gradient

        @functools.wraps(original_gradient)
        def gradient(tape, target, *args, **kwargs):
            if recorder.armed and recorder._depth == 0:
                recorder._tape_loss = _total(target)
            return original_gradient(tape, target, *args, **kwargs)

        replace(tf.GradientTape, "gradient", gradient, "loop")
        for cls in optimizer_classes():
            if "apply_gradients" in cls.__dict__:
                replace(cls, "apply_gradients", self._wrap_apply(cls.__dict__["apply_gradients"]), "loop")

    def _wrap_apply(self, original):
        recorder = self

        @functools.wraps(original)
        def apply_gradients(optimizer, grads_and_vars, *args, **kwargs):
            import tensorflow as tf

            if not recorder.armed or recorder._depth or not tf.executing_eagerly():
                return original(optimizer, grads_and_vars, *args, **kwargs)
            if recorder.passing:
                if recorder._same_run():
                    recorder._pass_on()
                    return original(optimizer, grads_and_vars, *args, **kwargs)
                recorder._next_run()
            pairs = list(grads_and_vars)
            if recorder.steps and recorder._another_run(pairs):
                return recorder._pass_other(original, optimizer, pairs, *args, **kwargs)
            if recorder.steps == 0:
                recorder._note_site(optimizer)
            elif id(optimizer) not in recorder.optimizers:
                recorder._note_optimizer(optimizer)
            recorder._on_step(pairs)
            recorder._depth += 1
            try:
                result = original(optimizer, pairs, *args, **kwargs)
            finally:
                recorder._depth -= 1
            if recorder.brief and (recorder.steps >= BRIEF or recorder._nan_twice()):
                recorder._cut_short()
                return result
            if recorder.steps >= recorder.budget or recorder._nan_twice():
                recorder.armed = False
                raise recorder.stop()
            if recorder.out_of_time():
                recorder.time_cut = time.monotonic() - recorder.started
                recorder.armed = False
                raise recorder.stop()
            return result

        return apply_gradients

    @contextlib.contextmanager
    def untouched(self) -> Iterator[None]:
        """Steps taken inside are neither recorded nor cut short: a fit an earlier run of the file
        recorded, passed on the way to a later flagged site (drive_fit._briefly)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def out_of_time(self) -> bool:
        """A slow run has used its share of the per-file time (TIME_SHARE)."""
        return self.steps >= TIME_MIN_STEPS and time.monotonic() - self.started > TIME_SHARE * self.timeout

    def arm(self) -> None:
        import tensorflow as tf

        self.armed = True
        tf.config.run_functions_eagerly(True)

    def disarm(self) -> None:
        import tensorflow as tf

        self.armed = False
        tf.config.run_functions_eagerly(False)

    # -------------------------------------------------------------- recording
    def _on_loss(self, original, target, surrogate, args, kwargs, loss) -> None:
        if self.first is None:
            import inspect

            try:
                bound = inspect.signature(original).bind(target, surrogate, *args, **kwargs).arguments
            except TypeError:
                bound = {}
            frame = user_frame(self.path)
            self.first = {
                "target": target, "surrogate": surrogate,
                "sample_size": bound.get("sample_size", 1),
                "options": {k: bound[k] for k in ("discrepancy_fn", "importance_sample_size") if k in bound},
                "line": frame.f_lineno if frame else None,
                "stack": _stack_lines(self.path),
            }
        self._mc_loss = _total(loss)

    def _note_site(self, optimizer) -> None:
        """Where the run is (sites.py): a Keras `fit` of a model no other driver claimed (a
        deterministic baseline), a `tfp.math.minimize` loop, or a hand-written loop."""
        from elbolint.dynamic.child.sites import on_stack, site

        try:
            keras_fit = on_stack("keras", "fit", "fit_generator", "train_on_batch")
            model = keras_fit.f_locals.get("self") if keras_fit is not None else None
            if model is not None:
                self.site = site(self.path, "keras", optimizer=optimizer, model=model)
                self._keras_model = model
            elif on_stack("tensorflow_probability/python/math", "minimize") is not None:
                self.site = site(self.path, "minimize", optimizer=optimizer)
            else:
                self.site = site(self.path, "loop", optimizer=optimizer)
                self._callers = _callers(self.path)
        except Exception:
            self.site = {"kind": "loop"}
        from elbolint.dynamic.child.optimizers import clipping_of, constant_learning_rate

        self.learning_rate = constant_learning_rate(optimizer)  # for the smaller-rate replay (replays.py)
        self.clipping = clipping_of(optimizer)
        self.optimizers = {id(optimizer)}
        try:
            self._key = self._run_key()
            self.brief = self._is_brief()
        except Exception:
            self._key, self.brief = ("loop", ()), False

    def _note_optimizer(self, optimizer) -> None:
        """Another optimizer stepping in the same run (one per part of the surrogate): the run's rate is
        its highest constant rate (the one a smaller-rate replay is for; the replay slows every optimizer
        of the run), and the run clips only if every optimizer does."""
        from elbolint.dynamic.child.optimizers import clipping_of, constant_learning_rate

        self.optimizers.add(id(optimizer))
        try:
            rate, clips = constant_learning_rate(optimizer), clipping_of(optimizer)
        except Exception:
            return
        if isinstance(rate, (int, float)) and (self.learning_rate is None or rate > self.learning_rate):
            self.learning_rate = rate
        if not clips:
            self.clipping = {}

    # ---------------------------------------------------------- brief runs
    def _run_key(self):
        """The run a step belongs to: the Keras model being fitted, the `tfp.math.minimize` call, or
        the user's lines on the stack (a hand-written loop)."""
        from elbolint.dynamic.child.sites import on_stack, user_frames

        keras_fit = on_stack("keras", "fit", "fit_generator", "train_on_batch")
        model = keras_fit.f_locals.get("self") if keras_fit is not None else None
        if model is not None:
            return ("keras", model)
        minimize = on_stack("tensorflow_probability/python/math", "minimize")
        if minimize is not None:
            return ("minimize", minimize)
        return ("loop", tuple(sorted({f.f_lineno for f in user_frames(self.path)})))

    def _another_run(self, pairs: list) -> bool:
        """A step of another hand-written run while this one is recorded: the same loop called again
        from another line of the user's file (`train(q_safe, ...)`, then `train(q_bad, ...)`), on
        variables this run never updated. Its steps are not this run's evidence: they pass
        unrecorded, and the recording goes on if this run's own caller steps again (alternating
        blocks). The same variables from another line (a warm-up step before the loop) are this run."""
        own = self._callers
        if own is None or self.site.get("kind") != "loop":
            return False
        try:
            key = _callers(self.path)
        except Exception:
            return False
        return key is not None and key != own and not any(id(v) in self.always_zero for _, v in pairs)

    def _pass_other(self, original, optimizer, pairs: list, *args, **kwargs):
        """Another run's step (`_another_run`), untouched; the script is stopped once this run's share
        of the time is spent."""
        self._mc_loss = self._tape_loss = None
        passed = getattr(self, "trained_before", [])  # trained by another run: not this run's ELB105 evidence
        self.trained_before = passed + [v for _, v in pairs if all(v is not seen for seen in passed)]
        if time.monotonic() - self.started > TIME_SHARE * self.timeout:
            self.armed = False
            raise self.stop()
        self._depth += 1
        try:
            return original(optimizer, pairs, *args, **kwargs)
        finally:
            self._depth -= 1

    def _same_run(self) -> bool:
        try:
            key = self._run_key()
        except Exception:
            return True
        own = self._key
        if own is None:  # no step noted yet: nothing to tell this run from
            return True
        return key[0] == own[0] and key[1] is own[1] if key[0] != "loop" else key == own

    def _cut_short(self) -> None:
        self.passing = True
        self._pass_started = time.monotonic()
        self.site["brief"] = self.steps
        if self._keras_model is not None:
            try:
                self._keras_model.stop_training = True  # Keras stops after this batch, fit returns
            except Exception:
                pass

    def _pass_on(self) -> None:
        """A step of a run cut short: untouched, unless the cut-short runs have taken too long."""
        if self._keras_model is not None and not getattr(self._keras_model, "stop_training", True):
            self._keras_model.stop_training = True  # the same model fitted again
        if self.passed + time.monotonic() - self._pass_started > self.pass_share * self.timeout:
            self.site["brief_timeout"] = True  # the script is stopped while this run goes on
            self.armed = False
            raise self.stop()

    def _next_run(self) -> None:
        """A run after a brief one: a fresh record (the brief run's is dropped, its site kept)."""
        self.passed += time.monotonic() - self._pass_started
        self.cut.append(dict(self.site))
        cut, passed, armed, started = self.cut, self.passed, self.armed, self.started
        before = list(getattr(self, "trained_before", [])) + list(self.variables)
        LoopRecorder.__init__(self, self.path, self.budget, self.stop, self.on_first_step, self.flagged,
                              self.timeout, self.flagged_names, self.raw_parameters, self.done_sites,
                              self.pass_share == SITE_PASS_SHARE)
        self.cut, self.passed, self.armed, self.started = cut, passed, armed, started
        self.trained_before = before  # what the runs cut short trained (not this run's ELB105 evidence)

    def _is_brief(self) -> bool:
        from elbolint.dynamic.child.sites import unflagged

        return unflagged(self.site, self.flagged, self.flagged_names, self.done_sites)

    def _on_step(self, pairs: list) -> None:
        import numpy as np
        import tensorflow as tf

        self._times[1:] = [time.monotonic()]
        if self.steps == 0:
            if self.on_first_step is not None:
                self.on_first_step()
            self._times[:1] = [time.monotonic()]
            frame = user_frame(self.path)
            if frame is not None:
                self.line = frame.f_lineno
                self.namespace = frame.f_globals
                self.locals = _locals(frame, self.path)
        loss = self._mc_loss if self._mc_loss is not None else self._tape_loss
        if self._tape_loss is not None and not math.isfinite(self._tape_loss):
            # the objective actually differentiated (the ELBO plus the user's own terms) is not finite:
            # that is the step's loss, whatever the ELBO part alone says (measured: a hurdle model whose
            # extra term NaNs while monte_carlo_variational_loss stays finite)
            loss = self._tape_loss
        if loss is None and self.loss:
            loss = self.loss[-1]
        if loss is not None:
            self.loss.append(loss)
        self._mc_loss = self._tape_loss = None
        fresh = [(g, v) for g, v in pairs if id(v) not in self.always_zero]
        squares = 0.0
        for grad, variable in pairs:
            key = id(variable)
            if key not in self.always_zero:
                self.variables.append(variable)
                self.always_zero[key] = True
                self.none_steps[key] = 0
            if grad is None:
                self.none_steps[key] += 1
                continue
            values = np.asarray(tf.convert_to_tensor(grad), dtype=np.float64)
            squares += float(np.sum(np.square(values)))
            self.always_zero[key] = self.always_zero[key] and not np.any(values)
        self.grad_norm.append(math.sqrt(squares))
        from elbolint.dynamic.child.fitting import _minimum

        if self.positives is None:
            self.positives = self._find_positives(pairs)
            self.positive = {name: [] for name, _ in self.positives}
        elif fresh:
            self._watch_more(fresh, _minimum)

        for name, value in self.positives:
            try:
                self.positive[name].append(float(_minimum(value)))
            except Exception:
                pass

    def _find_positives(self, pairs: list) -> list:
        from elbolint.dynamic.child.fitting import positive_parameters

        surrogate = self.surrogate(pairs)
        found = []
        if surrogate is not None:
            try:
                found = positive_parameters(surrogate, (3, 4), [self.locals, self.namespace])
            except Exception:
                found = []
        return found + self._raw_watches(pairs, found)

    def _watch_more(self, fresh: list, minimum) -> None:
        """Variables a later step updates for the first time (a loop with one optimizer per part of the
        surrogate steps them in a second `apply_gradients`): their constrained parameters are watched
        too. Until now nothing updated them, so their minimum at the earlier steps was what it is now."""
        try:
            more = self._find_positives(fresh)
        except Exception:
            return
        known = {name for name, _ in self.positives or []}
        for name, watch in more:
            if name in known:
                continue
            try:
                before = float(minimum(watch))
            except Exception:
                continue
            assert self.positives is not None
            self.positives.append((name, watch))
            self.positive[name] = [before] * (self.steps - 1)  # this step's own value is appended next
            known.add(name)

    def _raw_watches(self, pairs: list, found: list) -> list:
        """Watches on the updated variables a static finding names as a constrained parameter
        (watch.raw_watches): told by the user's name for each variable this loop updates."""
        from elbolint.dynamic.child.varnames import variable_labels
        from elbolint.dynamic.child.watch import raw_watches

        if not self.raw_parameters:
            return []
        variables = [v for _, v in pairs]
        labels = variable_labels(variables, [self.locals, self.namespace])

        def resolve(name):
            matches = [v for v, label in zip(variables, labels) if label == name]
            return matches[0] if len(matches) == 1 else None  # not updated here, or not told apart

        return raw_watches(self.raw_parameters, resolve, found)

    def surrogate(self, pairs: Optional[list] = None):
        """The recorded surrogate; without a monte_carlo_variational_loss call, the distribution in
        the user's frames whose trainable variables are the ones being updated."""
        if self.first is not None:
            return self.first["surrogate"]
        import tensorflow_probability as tfp

        updated = {id(v) for _, v in pairs or []} or {id(v) for v in self.variables}
        frame = user_frame(self.path)
        scopes = [self.namespace]
        while frame is not None:
            if os.path.abspath(frame.f_code.co_filename) == self.path:
                scopes.insert(0, frame.f_locals)
            frame = frame.f_back
        for scope in scopes:
            for value in list(scope.values()):
                if isinstance(value, tfp.distributions.Distribution):
                    try:
                        mine = {id(v) for v in value.trainable_variables}
                    except Exception:
                        continue
                    if mine and mine & updated:
                        return value
        return None

    def _nan_twice(self) -> bool:
        return len(self.loss) >= 2 and not math.isfinite(self.loss[-1]) and not math.isfinite(self.loss[-2])

    def record(self, labels: Callable[[list], list[str]]) -> dict[str, Any]:
        """The steps as the trace's `fit` (same keys as the `fit` driver's trace, fitting.py)."""
        names = labels(self.variables)
        finite = bool(self.loss) and all(math.isfinite(v) for v in self.loss)
        return {
            "loss": list(self.loss), "grad_norm": list(self.grad_norm),
            "none_grad": [f"`{n}`" for n, v in zip(names, self.variables)
                          if self.none_steps[id(v)] == self.steps],
            "zero_grad": [f"`{n}`" for n, v in zip(names, self.variables)
                          if finite and self.always_zero[id(v)] and self.none_steps[id(v)] < self.steps],
            "positive": {k: v for k, v in self.positive.items() if v},
            "watched": {name: watch.identity() for name, watch in self.positives or []
                        if hasattr(watch, "identity") and self.positive.get(name)},
            "constrained": [name for name, watch in self.positives or [] if getattr(watch, "strict", False)],
            "untracked": [], "no_trainable": False,
            "seconds": self._times[-1] - self._times[0] if self._times else 0.0,
            "learning_rate": self.learning_rate, "clipping": dict(self.clipping),
        }


def optimizer_classes() -> list[type]:
    """The optimizer base classes of keras 3 and tf_keras (new and legacy) that are importable, with
    their loaded subclasses that define `apply_gradients` themselves (e.g. loss-scale wrappers)."""
    roots = []
    for module, name in (("keras.src.optimizers.base_optimizer", "BaseOptimizer"),
                         ("tf_keras.src.optimizers.optimizer", "_BaseOptimizer"),
                         ("tf_keras.src.optimizers.legacy.optimizer_v2", "OptimizerV2")):
        try:
            roots.append(getattr(__import__(module, fromlist=[name]), name))
        except Exception:
            continue
    found, stack = [], list(roots)
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def _total(value) -> Optional[float]:
    """The sum of an eager tensor (or nest of them) as a float; None for symbolic values."""
    import numpy as np
    import tensorflow as tf

    try:
        parts = tf.nest.flatten(value)
        return float(sum(np.sum(np.asarray(p.numpy() if hasattr(p, "numpy") else p, dtype=np.float64))
                         for p in parts))
    except Exception:
        return None


def _locals(frame, path: str) -> dict[str, Any]:
    """Locals of the user's functions on the stack (innermost wins), to name variables by."""
    found: dict[str, Any] = {}
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == path and frame.f_locals is not frame.f_globals:
            for name, value in frame.f_locals.items():
                found.setdefault(name, value)
        frame = frame.f_back
    return found


def _callers(path: str) -> Optional[tuple]:
    """What tells one call of a training loop from another: the innermost user function's code and
    the lines its callers in the user's file are at (not the innermost line: one loop may step from
    two lines, e.g. two optimizers)."""
    from elbolint.dynamic.child.sites import user_frames

    frames = user_frames(path)
    return (frames[0].f_code, tuple(f.f_lineno for f in frames[1:])) if frames else None


def _stack_lines(path: str) -> list[int]:
    from elbolint.dynamic.child.sites import user_frames

    try:
        return sorted({frame.f_lineno for frame in user_frames(path)})
    except Exception:
        return []

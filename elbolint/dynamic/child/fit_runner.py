"""The user's `fit_surrogate_posterior` call, run per seed in one compiled loop (`_Runner`), with the
re-runs that test a fix: the same seeds clipped (the counterfactual that confirms ELB003,
`_Runner._clipped_runs`) and at a 10x smaller constant learning rate (ELB009's,
`_Runner._smaller_rate_runs`).

Why a module of its own: fitting.py decides what a driver's trace holds (which checks, which
evidence, which references); this module only runs the fit and records it, step by step, the same
way for the user's fit and for reference.py's reference fits.

The fit never touches the user's optimizer: it fits with a copy (same class, `get_config()`, fresh
state), in one compiled loop traced once and run once per seed (setting `seeds`) from the same initial
values (the variables the fit trains and the optimizer's slots are reset between seeds), in chunks of
CHUNK steps (a seed stops after two NaN losses in a row). It records, per step, the loss, the global
gradient norm, which variables got an always-zero gradient, and the minimum of every watched
positive-only parameter (before the first step, then after each). When the compiled form fails, the
call runs exactly as the user wrote it (`_Runner._native`); if that fails too, `_UserFitError`
carries the user's own exception out.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, cast

from elbolint.dynamic.child.failures import exception_text
from elbolint.dynamic.child.optimizers import (COUNTERFACTUAL_CLIPNORM, RATE_COUNTERFACTUAL_FACTOR,
                                               RATE_COUNTERFACTUAL_FROM, clipping_of, constant_learning_rate,
                                               copy_optimizer, maybe_clipped, optimizer_variables, rate_variable)
from elbolint.dynamic.child.reference import _estimate_graph
from elbolint.dynamic.verdicts.seeds import counterfactual_seeds, final_loss, finite_run, rate_unstable, unstable


def original_fit():
    """TFP's own `fit_surrogate_posterior`, even while the fit driver's recorder replaces it."""
    from tensorflow_probability.python.vi import optimization

    function = optimization.fit_surrogate_posterior
    return getattr(function, "__elbolint_original__", function)


class _UserFitError(Exception):
    """The user's own form of the fit raised (`original`): the program fails on its own."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original
        self.__traceback__ = original.__traceback__


#: Steps per call of the compiled fit: between chunks a seed stops early (two NaN losses in a row),
#: and a later step that raises keeps the steps before it.
CHUNK = 100


class _Recording:
    """The user's optimizer copy, as TFP's `minimize` sees it: records the variables the fit's
    tape watched (those it trains, the target's own included), to reset them between seeds."""

    def __init__(self, inner, clip=None):
        self.inner = inner
        self.watched: list = []
        #: a boolean tf.Variable read at run time: when true, the gradients are clipped to a global
        #: norm of COUNTERFACTUAL_CLIPNORM first (the counterfactual run, see _Runner.counterfactual)
        self.clip = clip

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        pairs = list(grads_and_vars)
        if not self.watched:
            self.watched.extend(v for _, v in pairs)
        if self.clip is not None:
            pairs = maybe_clipped(pairs, self.clip)
        return self.inner.apply_gradients(pairs, *args, **kwargs)


def _max(values) -> Optional[float]:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def _minimum(value):
    """A watched parameter's measure (watch.Watch), or a plain value's minimum."""
    import tensorflow as tf

    measure = getattr(value, "measure", None)
    if measure is not None:
        return measure()
    return tf.reduce_min(tf.cast(tf.convert_to_tensor(value), tf.float64))


class _Runner:
    """Runs the user's `fit_surrogate_posterior` call (TFP's own function, the user's arguments) in
    one compiled function traced once, then called per seed and chunk with the variables (and the
    optimizer's slots) reset to their initial values. When that compiled form fails, the user's call
    is run as the user wrote it (eagerly, their seed, one seed): if that fails too, the program fails
    on its own (_UserFitError); else the compiled form was elbolint's limitation, noted in `skipped`."""

    def __init__(self, target, surrogate, optimizer, kwargs, positive_values, estimate_options=None,
                 thresholds: Optional[dict] = None, rate_flagged: bool = False):
        self.target, self.surrogate, self.optimizer = target, surrogate, optimizer
        # the final estimate is built into the compiled fit (one function, not two, to trace); None: none
        self.estimate_options = estimate_options
        self.fused = False
        self.kwargs = {k: v for k, v in kwargs.items() if k not in ("optimizer", "num_steps", "trace_fn", "seed")}
        self.user_trace_fn = kwargs.get("trace_fn")
        self.user_seed = kwargs.get("seed")
        self.chunked = kwargs.get("convergence_criterion") is None  # a criterion's state spans the fit
        self.positive_values = positive_values
        self.watched: list = []
        # The counterfactual (ELB110): an optimizer that does not clip is re-run clipped when its
        # runs were unstable (a non-finite loss, or a gradient norm above `exploding`).
        self.counterfactual_wanted = not clipping_of(optimizer)
        self.exploding = float((thresholds or {}).get("exploding_gradient_norm", 1000.0))
        self.counterfactual: Optional[dict] = None
        self.clip: Any = None  # the clipping switch (a tf.Variable) while the runs need one
        # The smaller-rate counterfactual (ELB112): an optimizer with a constant learning rate of at
        # least RATE_COUNTERFACTUAL_FROM is re-run at a RATE_COUNTERFACTUAL_FACTOR times smaller rate
        # when its runs were unstable (see rate_unstable), or always when the file has an ELB009 finding
        # (a high rate can also leave a fit stuck far from where a smaller one ends, finite and flat).
        self.rate = constant_learning_rate(optimizer)
        self.rate_flagged = rate_flagged
        self.smaller_rate: Optional[dict] = None
        self.diverging = (float((thresholds or {}).get("diverging_rise", 0.5)),
                          float((thresholds or {}).get("diverging_min_rise", 10.0)))
        # TFP's fit, step for step, in one compiled loop (a third of minimize's tracing cost); the
        # arguments it does not mirror (a convergence criterion, a trace_fn, jit_compile, arguments
        # this TFP added) run through TFP's own function instead
        self.mirrored = not (set(self.kwargs) - {"sample_size", "discrepancy_fn", "importance_sample_size",
                                                 "trainable_variables"}) and self.user_trace_fn is None

    def _prebuild(self, recording) -> None:
        """Create the optimizer's slots before tracing (a tf.function that creates variables is
        traced twice): the variables the fit's tape watches, found by one eager evaluation of the
        loss with the user's sample shape. Any failure leaves the slots to the first trace."""
        import tensorflow as tf
        from tensorflow_probability.python.vi import csiszar_divergence

        inner = recording.inner
        if not callable(getattr(inner, "build", None)):
            return
        trainable = self.kwargs.get("trainable_variables")
        try:
            if trainable is not None:
                watched = list(trainable)
            else:
                with tf.GradientTape() as tape:
                    csiszar_divergence.monte_carlo_variational_loss(
                        self.target, self.surrogate, sample_size=self.kwargs.get("sample_size", 1),
                        importance_sample_size=self.kwargs.get("importance_sample_size", 1),
                        discrepancy_fn=self.kwargs.get("discrepancy_fn", csiszar_divergence.kl_reverse),
                        seed=(9, 9))
                watched = list(tape.watched_variables())
            if watched:
                inner.build(watched)
        except Exception:
            pass

    def _mirror(self, recording):
        """`fit_surrogate_posterior` as TFP 0.25 writes it (vi/optimization.py + math/minimize.py):
        per step `monte_carlo_variational_loss(target, surrogate, sample_size, importance_sample_size,
        discrepancy_fn, reparameterization gradients)` under a tape that watches the accessed
        variables (or `trainable_variables`), then `optimizer.apply_gradients` on the watched ones.
        The target sees exactly the user's sample shape. Steps run in a `tf.while_loop`."""
        import functools

        import tensorflow as tf
        from tensorflow_probability.python.internal import samplers
        from tensorflow_probability.python.vi import csiszar_divergence

        kwargs = self.kwargs
        trainable = kwargs.get("trainable_variables")
        loss_fn = functools.partial(
            csiszar_divergence.monte_carlo_variational_loss, self.target, self.surrogate,
            sample_size=kwargs.get("sample_size", 1),
            importance_sample_size=kwargs.get("importance_sample_size", 1),
            discrepancy_fn=kwargs.get("discrepancy_fn", csiszar_divergence.kl_reverse),
            gradient_estimator=csiszar_divergence.GradientEstimators.REPARAMETERIZATION)
        dtype = tf.nest.flatten(self.surrogate.dtype)[0]
        dtype = dtype if getattr(tf.as_dtype(dtype), "is_floating", False) else tf.float32
        runner = self

        @tf.function(autograph=False)
        def compiled(seed, steps, final):
            count = len(runner.positive_values)

            def body(i, arrays):
                with tf.GradientTape(watch_accessed_variables=trainable is None) as tape:
                    for v in trainable or []:
                        tape.watch(v)
                    loss = loss_fn(seed=samplers.fold_in(seed, tf.cast(i, tf.int32)))
                watched = tape.watched_variables()
                grads = tape.gradient(loss, watched)
                pairs = [(g, v) for g, v in zip(grads, watched) if g is not None]
                if not runner.watched:
                    runner.watched = [v for _, v in pairs]
                ops = [recording.apply_gradients(pairs)] if pairs else []
                with tf.control_dependencies(ops):
                    norm = tf.linalg.global_norm([g for g, _ in pairs]) if pairs else tf.constant(0.0)
                    zeros = (tf.stack([tf.reduce_all(tf.equal(g, 0)) for g, _ in pairs]) if pairs
                             else tf.zeros([0], tf.bool))
                    mins = [_minimum(v) for v in runner.positive_values]
                    values = [tf.cast(tf.reduce_sum(loss), tf.float64), tf.cast(norm, tf.float64), zeros,
                              tf.cast(loss, dtype)] + mins
                return i + 1, [a.write(i, v) for a, v in zip(arrays, values)]

            arrays = [tf.TensorArray(tf.float64, size=steps), tf.TensorArray(tf.float64, size=steps),
                      tf.TensorArray(tf.bool, size=steps), tf.TensorArray(dtype, size=steps)]
            arrays += [tf.TensorArray(tf.float64, size=steps) for _ in range(count)]
            _, arrays = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), arrays))
            stacked = [a.stack() for a in arrays]
            out = {"loss": stacked[0], "norm": stacked[1], "zeros": stacked[2], "user": stacked[3],
                   "mins": stacked[4:], "converged": tf.zeros([steps], tf.bool)}
            nan = lambda: tf.constant(float("nan"), tf.float64)  # noqa: E731
            if runner.estimate_options is not None:
                try:  # a check of ours: if it cannot even be built, it is skipped, the fit is not
                    body = _estimate_graph(runner.target, runner.surrogate, *runner.estimate_options)
                    out["estimate"] = tf.cond(final, body, nan)
                    runner.fused = True
                except Exception:
                    runner.fused = False
            return out

        return compiled

    def trace_fn(self, quantities):
        import tensorflow as tf

        grads = [g for g in quantities.gradients if g is not None]
        user = self.user_trace_fn(quantities) if self.user_trace_fn is not None else quantities.loss
        return {
            "loss": tf.reduce_sum(quantities.loss),
            "converged": tf.reduce_all(quantities.has_converged),
            "norm": tf.linalg.global_norm(grads) if grads else tf.constant(0.0),
            "zeros": tf.stack([tf.reduce_all(tf.equal(g, 0)) for g in grads]) if grads else tf.zeros([0], tf.bool),
            "mins": [_minimum(v) for v in self.positive_values],
            "user": user,
        }

    def _seed(self, seed: int, chunk: int):
        import tensorflow as tf
        import tensorflow_probability as tfp

        if seed == 0 and self.user_seed is not None:
            base = tfp.random.sanitize_seed(self.user_seed)
            return base if chunk == 0 else tfp.random.split_seed(base, n=chunk + 1)[chunk]
        return tf.constant([1000 * seed + chunk, 7], tf.int32)

    def run(self, budget: int, seeds: int, estimate, skipped: list, deadline: Optional[float] = None,
            cut_at: Optional[float] = None):
        """Every seed (until `deadline`, a time.monotonic() value: a slow model gets fewer seeds rather
        than the sandbox's timeout, which would cost the whole record), then the counterfactual. A
        first seed still fitting at `cut_at` stops after its current chunk (`time_cut`: a slow model
        gets fewer steps), and every later run takes as many steps as it did."""
        import tensorflow as tf

        fit_fn = original_fit()
        self.clip = tf.Variable(False, trainable=False) if self.counterfactual_wanted else None
        recording = _Recording(copy_optimizer(self.optimizer), self.clip)
        if self.mirrored:
            compiled = self._mirror(recording)
        else:
            @tf.function(autograph=False)
            def compiled(seed, steps, final):
                return fit_fn(self.target, self.surrogate, optimizer=recording, num_steps=steps,
                              trace_fn=self.trace_fn, seed=seed, **self.kwargs)

        state: list = []
        initial: list = []
        failed: Optional[Exception]
        if self.mirrored:
            self._prebuild(recording)
        try:
            function = compiled.get_concrete_function(tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32),
                                                      tf.TensorSpec([], tf.bool))
            self.watched = list(recording.watched)
            state = _unique(list(recording.watched) + optimizer_variables(recording.inner))
            initial = [v.numpy() for v in state]
            first = self._one(function, 0, budget, estimate, strict=True, cut_at=cut_at)
            if first.get("time_cut"):
                budget = first["time_cut"]["steps"]
        except (SystemExit, MemoryError):
            raise
        except Exception as error:
            failed = error
        else:
            failed = None
        if failed is not None:  # outside the handler: the user's form must not carry our error along
            _assign(state, initial)
            self.counterfactual_wanted = False  # the user's call as written: no counterfactual run
            return self._native(budget, estimate, skipped, failed)
        runs, finals = [first], [v.numpy() for v in state]
        for seed in range(1, seeds):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append(f"seeds {seed + 1}-{seeds} skipped: 40 % of the per-file timeout is spent")
                break
            _assign(state, initial)
            runs.append(self._one(function, seed, budget, estimate, strict=False))
        extra_until = cut_at if cut_at is not None else deadline
        if self.clip is not None and unstable(runs, self.exploding):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append("clipping counterfactual skipped: 40 % of the per-file timeout is spent")
                self.counterfactual_wanted = False
            else:
                self.counterfactual = self._clipped_runs(function, state, initial, budget,
                                                         self._rerun_seeds(runs, extra_until))
        if self.rate is not None and self.rate >= RATE_COUNTERFACTUAL_FROM \
                and (self.rate_flagged or rate_unstable(runs, self.exploding, *self.diverging)):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append("smaller-rate counterfactual skipped: 40 % of the per-file timeout is spent")
            else:
                self.smaller_rate = self._smaller_rate_runs(function, state, initial, budget,
                                                            self._rerun_seeds(runs, extra_until), recording.inner,
                                                            skipped)
        _assign(state, finals)  # the surrogate as the user's own fit (first seed) left it
        return runs, first.pop("result")

    @staticmethod
    def _rerun_seeds(runs: list, extra_until: Optional[float]):
        """The seeds a counterfactual re-runs (seeds.counterfactual_seeds): the runs' own, then the extra
        ones it needs to show anything, each only while `extra_until` has not passed (a slow fit whose
        seeds were cut by the time budget must not time out in its re-runs: fewer re-runs confirm
        nothing, and the verdict says so)."""
        for seed in range(counterfactual_seeds(runs)):
            if seed >= len(runs) and extra_until is not None and time.monotonic() > extra_until:
                return
            yield seed

    def _clipped_runs(self, function, state, initial, budget: int, seeds) -> dict:
        """The same seeds again with the gradients clipped (what ELB003 suggests): does the fix fix it?"""
        self.clip.assign(True)
        clipped = []
        try:
            for seed in seeds:
                _assign(state, initial)
                record = self._one(function, seed, budget, None, strict=False)
                clipped.append({"seed": seed, "finite": finite_run(record["loss"]),
                                "final": final_loss(record["loss"]), "max_grad_norm": _max(record["grad_norm"])})
        finally:
            self.clip.assign(False)
        return {"clipnorm": COUNTERFACTUAL_CLIPNORM, "runs": clipped}

    def _smaller_rate_runs(self, function, state, initial, budget: int, seeds, optimizer,
                           skipped: list) -> Optional[dict]:
        """The same seeds again with the same optimizer copy (same class and config, fresh state) at a
        RATE_COUNTERFACTUAL_FACTOR times smaller learning rate, everything else unchanged (what ELB009
        suggests): does the fix fix it? The rate is the optimizer's learning-rate variable, read by the
        compiled fit at run time, so nothing is traced again; it is set back afterwards."""
        variable = rate_variable(optimizer)
        if variable is None:
            skipped.append("smaller-rate counterfactual skipped: the optimizer's learning rate is not a variable")
            return None
        original = float(variable.numpy())
        smaller = cast(float, self.rate) / RATE_COUNTERFACTUAL_FACTOR  # run() calls this only with a rate
        reruns = []
        try:
            for seed in seeds:
                _assign(state, initial)  # (Keras 3 keeps its rate among its variables: set it after)
                variable.assign(smaller)
                if abs(float(variable.numpy()) - smaller) > 1e-6 * smaller:
                    skipped.append("smaller-rate counterfactual skipped: the learning rate could not be set")
                    return None
                record = self._one(function, seed, budget, None, strict=False)
                reruns.append({"seed": seed, "finite": finite_run(record["loss"]),
                               "final": final_loss(record["loss"]), "max_grad_norm": _max(record["grad_norm"])})
        finally:
            variable.assign(original)
        return {"learning_rate": self.rate, "smaller": smaller, "factor": RATE_COUNTERFACTUAL_FACTOR,
                "runs": reruns}

    def _one(self, function, seed: int, budget: int, estimate, strict: bool, cut_at: Optional[float] = None) -> dict:
        import tensorflow as tf

        started = time.monotonic()
        record: dict[str, Any] = {"seed": seed, "loss": [], "grad_norm": [], "always_zero": None,
                                  "mins": [[float(_minimum(v))] for v in self.positive_values]}
        users, done, chunk = [], 0, 0
        while done < budget:
            steps = min(CHUNK, budget - done) if self.chunked else budget - done
            try:
                out = function(self._seed(seed, chunk), tf.constant(steps, tf.int32), tf.constant(False))
            except (SystemExit, MemoryError):
                raise
            except Exception as error:
                if strict and done == 0:
                    raise
                record["stopped_by"] = f"step {done + 1}: {exception_text(error)}"
                break
            n = self._append(record, out, steps)
            if seed == 0:
                users.append(tf.nest.map_structure(lambda t: t[:n], out["user"]))
            done += steps
            chunk += 1
            losses = record["loss"]
            if n < steps or (len(losses) >= 2 and not math.isfinite(losses[-1]) and not math.isfinite(losses[-2])):
                break  # converged (the user's criterion) or NaN twice in a row: nothing new to see
            if cut_at is not None and done < budget and time.monotonic() > cut_at:
                record["time_cut"] = {"steps": done, "seconds": round(time.monotonic() - started, 2)}
                break  # slow: fewer steps, never the sandbox's timeout (which would lose the record)
        record["final_estimate"] = None
        if record["loss"]:
            try:
                if self.fused:  # no step: the estimate of the state the steps left
                    value = float(function(self._seed(seed, chunk), tf.constant(0, tf.int32),
                                           tf.constant(True))["estimate"])
                    record["final_estimate"] = value if math.isfinite(value) else None
                elif estimate is not None:
                    record["final_estimate"] = estimate()
            except Exception:
                pass
        if seed == 0:
            record["result"] = (users[0] if len(users) == 1 else
                                tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *users)) if users else None
        return record

    @staticmethod
    def _append(record: dict, out, steps: int) -> int:
        """Adds one chunk's traced values; returns how many steps count (a converged fit stops)."""
        import numpy as np

        converged = np.asarray(out["converged"])
        n = int(np.argmax(converged)) + 1 if converged.any() else steps
        record["loss"] += [float(v) for v in np.asarray(out["loss"])[:n]]
        record["grad_norm"] += [float(v) for v in np.asarray(out["norm"])[:n]]
        zeros = np.asarray(out["zeros"])[:n]
        if zeros.ndim == 2 and zeros.shape[0]:
            chunk_zero = zeros.all(axis=0)
            record["always_zero"] = chunk_zero if record["always_zero"] is None else record["always_zero"] & chunk_zero
        for values, mins in zip(record["mins"], out["mins"]):
            values += [float(v) for v in np.asarray(mins)[:n]]
        return n

    def _native(self, budget: int, estimate, skipped: list, compiled_error: BaseException):
        """The user's call as written (eager, their seed): their program's own behaviour."""
        recording = _Recording(copy_optimizer(self.optimizer))
        initial = [[float(_minimum(v))] for v in self.positive_values]
        try:
            out = original_fit()(self.target, self.surrogate, optimizer=recording, num_steps=budget,
                                 trace_fn=self.trace_fn, seed=self.user_seed, **self.kwargs)
        except (SystemExit, MemoryError):
            raise
        except Exception as error:
            raise _UserFitError(error) from None
        self.watched = list(recording.watched)
        skipped.append("one seed only: the fit does not run in elbolint's compiled loop "
                       f"({exception_text(compiled_error)}); it ran as written")
        record: dict[str, Any] = {"seed": 0, "loss": [], "grad_norm": [], "always_zero": None,
                                  "mins": initial}
        self._append(record, out, budget)
        record["final_estimate"] = None
        if estimate is not None:
            try:
                record["final_estimate"] = estimate()
            except Exception:
                pass
        return [record], out["user"]



def _unique(variables: list) -> list:
    seen, found = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            found.append(v)
    return found


def _assign(variables: list, values: list) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)

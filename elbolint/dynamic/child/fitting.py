"""Fitting and measuring, shared by every driver (see drivers.py): the brief fit of a target and a
surrogate over several seeds (and, for an optimizer that does not clip, the same seeds re-run with
clipping: the counterfactual that confirms ELB003, see `_Runner._clipped_runs`; for an optimizer with
a high constant learning rate, the same seeds re-run at a 10x smaller rate: the counterfactual that
confirms ELB009, see `_Runner._smaller_rate_runs`), the log-prob shape check and the
positive-parameter minima. What the fit is compared with (final estimates, the reference fit) is in
reference.py, what is read from and done to the user's optimizer in optimizers.py, when a re-run is
worth making in verdicts/seeds.py, and whose failure an exception is in failures.py. Imports
TensorFlow lazily, inside the functions, so the drivers' text checks stay importable without it.

Never change the program's meaning (issue 8): the brief fit IS the user's call, TFP's
`fit_surrogate_posterior` step for step (`_Runner._mirror`, or TFP's own function for arguments it
does not mirror: a convergence criterion, a trace_fn, jit_compile) with the user's `sample_size`,
`discrepancy_fn`, `importance_sample_size`, `trainable_variables` and seed, and every other call
elbolint makes on the user's target (the log-prob shape check, the final estimates, the reference
fits) uses the user's own sample shape. When elbolint's compiled form fails, the call runs exactly as
the user wrote it: if that fails too the program fails on its own (ELB100), else it was our limit
(noted in the trace's `skipped`); a check of ours that raises is skipped and noted, never ELB100.

The fit never touches the user's optimizer: it fits with a copy (same class, `get_config()`, fresh
state), in one compiled loop traced once and run once per seed (setting `seeds`) from the same initial
values (the variables the fit trains and the optimizer's slots are reset between seeds), in chunks of
CHUNK steps (a seed stops after two NaN losses in a row). It records, per step, the loss, the global
gradient norm, which variables were never trained or got an always-zero gradient, and the minimum of
every positive-only parameter of the surrogate's distributions (before the first step, then after
each). Steps: the user's own `num_steps` up to the cap (`budget_for`).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Optional

from elbolint.dynamic.child.failures import exception_text, user_failure
from elbolint.dynamic.child.optimizers import (COUNTERFACTUAL_CLIPNORM, RATE_COUNTERFACTUAL_FACTOR,
                                               RATE_COUNTERFACTUAL_FROM, clipping_of, constant_learning_rate,
                                               copy_optimizer, maybe_clipped, optimizer_variables, rate_variable)
from elbolint.dynamic.child.reference import _estimate_graph, _estimator, reference_fit
from elbolint.dynamic.child.targets import call_target
from elbolint.dynamic.child.varnames import variable_labels
from elbolint.dynamic.verdicts.seeds import final_loss, finite_run, rate_unstable, unstable
from elbolint.rules._tfp import POSITIVE_PARAMETERS as POSITIVE  # one list for static and dynamic


def seed_everything(seed: int = 0) -> None:
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def budget_for(settings: dict, num_steps) -> int:
    """Steps to fit: the user's own `num_steps` when the call states it, capped by
    `max(steps, max_steps)`; the `steps` budget when it does not (a probe without `num_steps`, a
    pairing, a hand-written loop)."""
    steps = int(settings["steps"])
    cap = max(steps, int(settings.get("max_steps", steps)))
    if num_steps is None:
        return steps
    try:
        return max(1, min(cap, int(num_steps)))
    except (TypeError, ValueError):
        return steps


def original_fit():
    """TFP's own `fit_surrogate_posterior`, even while the fit driver's recorder replaces it."""
    from tensorflow_probability.python.vi import optimization

    function = optimization.fit_surrogate_posterior
    return getattr(function, "__elbolint_original__", function)


def fit_trace(context, target, surrogate, optimizer, num_steps, kwargs, *, line, source, namespace,
              anchors=None, keep: Optional[dict] = None) -> dict:
    """The trace of a brief fit (and the reference fit) of `target` and `surrogate`, as a driver
    returns it. The fit is the user's own call: TFP's `fit_surrogate_posterior` with the user's
    arguments (`sample_size`, `discrepancy_fn`, `importance_sample_size`, `trainable_variables`,
    `convergence_criterion`, `jit_compile`, `seed`, ...), a fresh copy of the optimizer, the
    user's `num_steps` up to the cap (see `budget_for`), run from the same initial values once per
    seed (setting `seeds`). A fit that raises in the user's own form becomes the trace's `failure` at
    the user's line. Checks of elbolint's own (log-prob shape, final estimate, reference fit) never
    fail the trace: one that raises is skipped and noted in `skipped`. Every recording seam is
    disarmed first (our own steps are not the user's). `keep`, when given, receives "result": what
    the user's call returns (the first seed's traced values), for a recorder to hand back."""
    context.quiet()
    settings = context.settings
    budget = budget_for(settings, num_steps)
    anchors = dict(anchors or {})
    anchors.update(anchor_names(namespace, surrogate, anchors))
    for key, value in (("optimizer", optimizer), ("target", target)):
        name = next((n for n, v in namespace.items() if v is value and not n.startswith("__")), None)
        if name and value is not None and key not in anchors:
            anchors[key] = name
    trace: dict[str, Any] = {"source": source, "line": line, "budget": budget,
                             "anchors": anchors, "user_num_steps": jsonable(num_steps)}
    clipping = clipping_of(optimizer)
    if clipping:
        trace["clipping"] = clipping
    kwargs = dict(kwargs)
    sample_size = kwargs.get("sample_size", 1)
    skipped: list[str] = []
    shape = None
    try:  # before the fit, on the initial surrogate
        shape = logprob_shape(target, surrogate, sample_size)
    except (context.Stop, SystemExit, MemoryError):
        raise
    except Exception as error:
        skipped.append(f"log_prob shape check skipped: {exception_text(error)}")
    seeds = max(1, int(settings.get("seeds", 1)))
    try:
        deadline = time.monotonic() + 0.4 * float(settings.get("timeout", 60.0))
        fit, runs, result = seeded_fit(target, surrogate, optimizer, budget, kwargs, namespace, seeds,
                                       skipped, context.path, thresholds=settings.get("thresholds"),
                                       deadline=deadline,
                                       rate_flagged="ELB009" in (settings.get("flagged_codes") or []),
                                       raw_parameters=settings.get("raw_parameters"))
    except (context.Stop, SystemExit, MemoryError):
        raise
    except _UserFitError as error:  # anything else is elbolint's own failure: the driver says not-run
        trace["failure"] = user_failure(error.original, context.path, line)
        if skipped:
            trace["skipped"] = skipped
        return trace
    if shape is not None:
        fit["logprob_shape"], fit["expected_rank"] = shape
    # variables another run of the program trains: a loop's, a run cut short before, an earlier fit's
    loop = context.store.get("loop")
    _drop_trained_elsewhere(fit, runs, namespace, list(getattr(loop, "variables", ())) + list(
        getattr(loop, "trained_before", ())) + list(context.store.get("trained", ())))
    trace["fit"] = fit
    if len(runs) > 1:
        trace["seeds"] = runs
    if keep is not None:
        keep["result"] = result
    if settings.get("reference", True) and time.monotonic() > deadline:
        skipped.append("reference fit skipped: 40 % of the per-file timeout is spent")
    elif settings.get("reference", True):
        trace["reference"] = reference_fit(target, surrogate, budget, sample_size, user_fit=fit,
                                           thresholds=settings.get("thresholds"))
        if trace["reference"].get("error"):
            skipped.append(f"reference fit skipped: {trace['reference']['error']}")
    # --- ELB111 (richer_family.py): a full-rank reference started from the user's fitted solution ---
    if settings.get("reference", True):
        from elbolint.dynamic.child.richer_family import richer_deadline, richer_reference

        trace["richer"] = richer_reference(target, surrogate, sample_size, fit, label=anchors.get("surrogate"),
                                           deadline=richer_deadline(deadline, settings.get("timeout", 60.0)))
        if trace["richer"].get("error"):
            skipped.append(f"full-rank reference (ELB111) skipped: {trace['richer']['error']}")
    # --- end ELB111 ---
    if skipped:
        trace["skipped"] = skipped
    return trace


def _drop_trained_elsewhere(fit: dict, runs: list, namespace: dict, trained) -> None:
    """ELB105's "module variables this fit never touches" leaves out variables another training
    loop of the program updates (a maximum-likelihood model fitted before the VI fit is not a
    surrogate variable that lost its gradient)."""
    ids = {id(v) for v in trained}
    if not ids or not fit.get("untracked"):
        return
    elsewhere = {f"`{name}`" for name, value in namespace.items() if id(value) in ids}
    keep = [label for label in fit["untracked"] if label not in elsewhere]
    for record in [fit, *runs]:
        record["untracked"] = keep


class _UserFitError(Exception):
    """The user's own form of the fit raised (`original`): the program fails on its own."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original
        self.__traceback__ = original.__traceback__


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


def positive_parameters(surrogate, seed, scopes=()):
    """(label, Watch) for every constrained parameter of the surrogate's distributions (positive-only
    parameters, `scale_tril`'s diagonal, `covariance_matrix`'s eigenvalues, `probs`; see watch.py); the
    label names the parameter, the distribution that owns it, the joint component and the user's name
    for the variable behind the value when it has one (see varnames.py)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    from elbolint.dynamic.child.varnames import given_name, underlying
    from elbolint.dynamic.child.watch import COVARIANCE, PROBS, TRIL, Watch

    tfd = tfp.distributions
    if isinstance(surrogate, tfd.JointDistribution):
        dists, _ = surrogate.sample_distributions(seed=seed)
        flat = tf.nest.flatten(dists, expand_composites=False)
        labels = surrogate._flat_resolve_names()
    else:
        flat, labels = [surrogate], [None]
    wanted = POSITIVE | TRIL | COVARIANCE | PROBS
    found = []
    for index, dist in enumerate(flat):
        component = labels[index] if index < len(labels) and labels[index] else None
        label = component or f"component {index}"
        stack = [dist]
        while stack:
            d = stack.pop()
            if not isinstance(d, tfd.Distribution):
                continue
            for key, value in (d.parameters or {}).items():
                if key in wanted and value is not None and not callable(value):
                    kind = type(d).__name__
                    prefix = f"`{key}` of {kind}" + (f" '{label}'" if len(flat) > 1 or labels[0] else "")
                    variable = underlying(value)
                    name = given_name(variable, scopes) if variable is not None else None
                    if name and name != key:
                        prefix += f" (`{name}`)"
                    found.append((prefix, Watch(prefix, value, key, kind, component if len(flat) > 1 or labels[0]
                                                else None, name, isinstance(value, tfp.util.DeferredTensor))))
            for attribute in ("distribution", "_distribution"):
                inner = getattr(d, attribute, None)
                if isinstance(inner, tfd.Distribution):
                    stack.append(inner)
                    break
    return found


def logprob_shape(target, surrogate, sample_size=1) -> tuple[list[int], int]:
    """ELB106's evidence: the shape of the target's log-prob of one surrogate sample, and the rank it
    should have (the surrogate's own batch rank). The target is called exactly as the user's fit calls
    it: on `sample_size` samples (a leading sample dimension), never on one bare sample, so a target
    that maps over its samples (`tf.vectorized_map`) sees what it expects; the sample dimension is
    then taken off the shapes."""
    import tensorflow as tf

    size = int(sample_size)
    sample = surrogate.sample(size, seed=(1, 2))
    lp = tf.convert_to_tensor(call_target(target, sample))
    rank = len(tf.convert_to_tensor(surrogate.log_prob(sample)).shape)
    shape = [int(d) if d is not None else -1 for d in lp.shape]
    if shape[:1] == [size]:
        shape = shape[1:]
    return shape, max(rank - 1, 0)


def untracked_variables(namespace: dict, variables) -> list[str]:
    """ELB105's evidence: module-level trainable variables that the fit never touches."""
    import tensorflow as tf

    ids = {id(v) for v in variables}
    return [f"`{name}`" for name, value in list(namespace.items())
            if isinstance(value, tf.Variable) and value.trainable and id(value) not in ids]


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


def _raw_positives(raw_parameters, namespace, found, trainable) -> list:
    """The raw variables static findings name (watch.raw_watches), looked up by name in the file's
    namespace: a plain `tf.Variable` the fit trains (all the variables the loss reads, unless the call
    lists its `trainable_variables`)."""
    import tensorflow as tf

    from elbolint.dynamic.child.watch import raw_watches

    listed = None if trainable is None else {id(v) for v in trainable}

    def resolve(name):
        value = namespace.get(name)
        if not isinstance(value, tf.Variable) or not value.trainable:
            return None
        return value if listed is None or id(value) in listed else None

    watches = []
    for label, watch in raw_watches(raw_parameters, resolve, found):
        try:
            float(_minimum(watch))
            watches.append((label, watch))
        except Exception:
            pass
    return watches


def seeded_fit(target, surrogate, optimizer, budget, kwargs, namespace, seeds, skipped, path,
               positives_wanted: bool = True, thresholds: Optional[dict] = None,
               deadline: Optional[float] = None, rate_flagged: bool = False,
               raw_parameters: Optional[list] = None):
    """The user's fit, once per seed from the same initial values: `(fit, runs, result)` where `runs`
    holds one record per seed (loss, gradient norm, positive-parameter minima, final estimate),
    `fit` is the first seed's record with the seed-independent evidence (variables never trained),
    and `result` what the user's call returns for the first seed. Raises _UserFitError when the
    user's own form of the call fails."""
    started = time.monotonic()
    trainable = kwargs.get("trainable_variables")
    variables = tuple(trainable) if trainable is not None else tuple(surrogate.trainable_variables)
    fit: dict[str, Any] = {"loss": [], "grad_norm": [], "none_grad": [], "zero_grad": [], "untracked": [],
                           "positive": {}, "no_trainable": not variables}
    fit["untracked"] = untracked_variables(namespace, variables)
    if not variables:
        fit["seconds"] = time.monotonic() - started
        return fit, [fit], None
    positives = []
    if positives_wanted:
        try:
            for name, value in positive_parameters(surrogate, (3, 4), [namespace]):
                try:
                    float(_minimum(value))
                    positives.append((name, value))
                except Exception:
                    pass
        except Exception as error:
            skipped.append(f"positive-parameter minima skipped: {exception_text(error)}")
        positives += _raw_positives(raw_parameters, namespace, positives, trainable)
    sample_size = kwargs.get("sample_size", 1)
    options = {k: kwargs[k] for k in ("discrepancy_fn", "importance_sample_size") if k in kwargs}
    estimate = None  # compiled only when the fit's own function does not carry it (see _Runner)
    try:
        estimate = _estimator(target, surrogate, options, sample_size)
    except Exception as error:
        skipped.append(f"final estimate skipped: {exception_text(error)}")

    runner = _Runner(target, surrogate, optimizer, kwargs, [value for _, value in positives],
                     estimate_options=(options, sample_size), thresholds=thresholds, rate_flagged=rate_flagged)
    runs, result = runner.run(budget, seeds, estimate, skipped, deadline)
    watched = runner.watched
    labels = variable_labels(list(watched), [namespace]) if watched else []
    seen = {id(v) for v in watched}
    surrogate_labels = variable_labels(list(variables), [namespace])
    constrained = _constrained(positives)
    # ELB105: a module variable the fit's own tape trained (fit_surrogate_posterior trains every variable
    # the loss reads, the model's included) is no variable the fit never touches
    trained = {f"`{name}`" for name, value in namespace.items() if id(value) in seen}
    fit["untracked"] = [label for label in fit["untracked"] if label not in trained]
    for record in runs:
        mins = record.pop("mins")
        record["positive"] = {name: values for (name, _), values in zip(positives, mins)}
        record["constrained"] = constrained
        record["watched"] = {name: watch.identity() for name, watch in positives}
        always_zero = record.pop("always_zero")
        record["none_grad"] = [f"`{label}`" for label, v in zip(surrogate_labels, variables) if id(v) not in seen]
        finite = bool(record["loss"]) and all(math.isfinite(v) for v in record["loss"])
        record["zero_grad"] = ([f"`{label}`" for label, zero in zip(labels, always_zero) if zero]
                               if finite and always_zero is not None else [])
        record["untracked"] = fit["untracked"]
        record["no_trainable"] = False
    first = runs[0]
    if runner.counterfactual_wanted:  # None: the runs were stable, nothing for clipping to fix
        first["counterfactual"] = runner.counterfactual
    if runner.smaller_rate is not None:
        first["smaller_rate"] = runner.smaller_rate
    first["seconds"] = time.monotonic() - started
    return first, runs, result


def _constrained(positives) -> list[str]:
    """The positive parameters kept positive by a transform (`TransformedVariable(..., Softplus())`,
    `DeferredTensor`): such a value reaches 0 only by underflow while the fit diverges, which is the
    divergence's evidence (ELB101/ELB107), not a raw scale's (ELB104)."""
    try:
        import tensorflow_probability as tfp
    except ImportError:  # pragma: no cover - the child always has TFP
        return []
    return [name for name, value in positives
            if getattr(value, "strict", False) or isinstance(value, tfp.util.DeferredTensor)]


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
        self.clip = None
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

    def run(self, budget: int, seeds: int, estimate, skipped: list, deadline: Optional[float] = None):
        """Every seed (until `deadline`, a time.monotonic() value: a slow model gets fewer seeds rather
        than the sandbox's timeout, which would cost the whole record), then the counterfactual."""
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

        state, initial = [], []
        if self.mirrored:
            self._prebuild(recording)
        try:
            function = compiled.get_concrete_function(tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32),
                                                      tf.TensorSpec([], tf.bool))
            self.watched = list(recording.watched)
            state = _unique(list(recording.watched) + optimizer_variables(recording.inner))
            initial = [v.numpy() for v in state]
            first = self._one(function, 0, budget, estimate, strict=True)
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
        if self.clip is not None and unstable(runs, self.exploding):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append("clipping counterfactual skipped: 40 % of the per-file timeout is spent")
                self.counterfactual_wanted = False
            else:
                self.counterfactual = self._clipped_runs(function, state, initial, budget, len(runs))
        if self.rate is not None and self.rate >= RATE_COUNTERFACTUAL_FROM \
                and (self.rate_flagged or rate_unstable(runs, self.exploding, *self.diverging)):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append("smaller-rate counterfactual skipped: 40 % of the per-file timeout is spent")
            else:
                self.smaller_rate = self._smaller_rate_runs(function, state, initial, budget, len(runs),
                                                            recording.inner, skipped)
        _assign(state, finals)  # the surrogate as the user's own fit (first seed) left it
        return runs, first.pop("result")

    def _clipped_runs(self, function, state, initial, budget: int, seeds: int) -> dict:
        """The same seeds again with the gradients clipped (what ELB003 suggests): does the fix fix it?"""
        self.clip.assign(True)
        clipped = []
        try:
            for seed in range(seeds):
                _assign(state, initial)
                record = self._one(function, seed, budget, None, strict=False)
                clipped.append({"seed": seed, "finite": finite_run(record["loss"]),
                                "final": final_loss(record["loss"]), "max_grad_norm": _max(record["grad_norm"])})
        finally:
            self.clip.assign(False)
        return {"clipnorm": COUNTERFACTUAL_CLIPNORM, "runs": clipped}

    def _smaller_rate_runs(self, function, state, initial, budget: int, seeds: int, optimizer,
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
        smaller = self.rate / RATE_COUNTERFACTUAL_FACTOR
        reruns = []
        try:
            for seed in range(seeds):
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

    def _one(self, function, seed: int, budget: int, estimate, strict: bool) -> dict:
        import tensorflow as tf

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



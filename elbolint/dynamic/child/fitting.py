"""Fitting and measuring, shared by every driver (see drivers.py): what a driver's trace of a
`fit_surrogate_posterior` call holds — the brief fit of a target and a surrogate over several seeds
(with its counterfactual re-runs), the log-prob shape check, the positive-parameter minima, the
variables the fit never touches, and the references it is compared with. How the fit itself runs,
per seed in one compiled loop, and the re-runs (clipped for ELB003, `_Runner._clipped_runs`; a 10x
smaller rate for ELB009, `_Runner._smaller_rate_runs`) is in fit_runner.py (`_Runner`, `_minimum`
and `original_fit` are re-exported here); what the fit is compared with (final estimates, the
reference fits) in reference.py and richer_family.py, what is read from and done to the user's
optimizer in optimizers.py, when a re-run is worth making in verdicts/seeds.py, and whose failure an
exception is in failures.py. Imports TensorFlow lazily, inside the functions, so the drivers' text
checks stay importable without it.

Never change the program's meaning: the brief fit IS the user's call, TFP's
`fit_surrogate_posterior` step for step (`_Runner._mirror`, or TFP's own function for arguments it
does not mirror: a convergence criterion, a trace_fn, jit_compile) with the user's `sample_size`,
`discrepancy_fn`, `importance_sample_size`, `trainable_variables` and seed, and every other call
elbolint makes on the user's target (the log-prob shape check, the final estimates, the reference
fits) uses the user's own sample shape. When elbolint's compiled form fails, the call runs exactly as
the user wrote it: if that fails too the program fails on its own (ELB100), else it was our limit
(noted in the trace's `skipped`); a check of ours that raises is skipped and noted, never ELB100.

The fit never touches the user's optimizer: it fits with a copy (fit_runner.py). Per step it records
the loss, the global gradient norm, which variables were never trained or got an always-zero
gradient, and the minimum of every positive-only parameter of the surrogate's distributions (before
the first step, then after each). Steps: the user's own `num_steps` up to the cap (`budget_for`).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Optional

from elbolint.dynamic.child.failures import exception_text, user_failure
# the compiled per-seed fit; `_Runner` (reference.py), `_minimum` (loop.py) and `original_fit` are also
# imported from here
from elbolint.dynamic.child.fit_runner import _minimum, _Runner, _UserFitError, original_fit  # noqa: F401
from elbolint.dynamic.child.loop import TIME_SHARE
from elbolint.dynamic.child.optimizers import clipping_of
from elbolint.dynamic.child.reference import _estimator, reference_fit
from elbolint.dynamic.child.targets import call_target
from elbolint.dynamic.child.varnames import variable_labels
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
    anchors = _fit_anchors(namespace, surrogate, optimizer, target, anchors)
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
        deadline, cut_at = _fit_deadlines(settings)
        fit, runs, result = seeded_fit(target, surrogate, optimizer, budget, kwargs, namespace, seeds,
                                       skipped, context.path, thresholds=settings.get("thresholds"),
                                       deadline=deadline, cut_at=cut_at,
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
    if fit.get("time_cut"):
        trace["time_cut"] = fit.pop("time_cut")
    if len(runs) > 1:
        trace["seeds"] = runs
    if keep is not None:
        keep["result"] = result
    if settings.get("reference", True):  # as many steps as the user's fit took (a slow fit is cut: time_cut)
        steps = (trace.get("time_cut") or {}).get("steps") or budget
        _add_references(trace, target, surrogate, steps, sample_size, settings, deadline, skipped)
    if skipped:
        trace["skipped"] = skipped
    return trace


def _fit_deadlines(settings: dict) -> tuple[float, float]:
    """When a fit stops starting more seeds and reference fits (`deadline`, 40 % of the per-file
    timeout) and when its first seed stops stepping (`cut_at`, TIME_SHARE of it), from now; a fit
    given `fit_seconds` of its own (one of several flagged fits of the run, drive_fit._fit_seconds)
    keeps those proportions of that time (its whole allotment is 80 % of the timeout for a single fit)."""
    now = time.monotonic()
    own = settings.get("fit_seconds")
    span = float(own) / 0.8 if own is not None else float(settings.get("timeout", 60.0))
    return now + 0.4 * span, now + TIME_SHARE * span


def _fit_anchors(namespace: dict, surrogate, optimizer, target, anchors: Optional[dict]) -> dict:
    """The module-level names a fit's findings are reported at: the driver's own `anchors`, then the
    surrogate's and a JointDistribution model's (anchor_names), the optimizer's and the target's."""
    anchors = dict(anchors or {})
    anchors.update(anchor_names(namespace, surrogate, anchors))
    for key, value in (("optimizer", optimizer), ("target", target)):
        name = next((n for n, v in namespace.items() if v is value and not n.startswith("__")), None)
        if name and value is not None and key not in anchors:
            anchors[key] = name
    return anchors


def _add_references(trace: dict, target, surrogate, budget: int, sample_size, settings: dict, deadline: float,
                    skipped: list[str]) -> None:
    """The fits the user's fit is compared with, into `trace`: the default mean-field reference fit
    (ELB102/ELB108, reference.py; not once 40 % of the per-file timeout is spent) and the full-rank
    reference started from the user's fitted solution (ELB111, richer_family.py). One that fails is
    noted in `skipped`."""
    fit = trace["fit"]
    if time.monotonic() > deadline:
        skipped.append("reference fit skipped: 40 % of the per-file timeout is spent")
    else:
        trace["reference"] = reference_fit(target, surrogate, budget, sample_size, user_fit=fit,
                                           thresholds=settings.get("thresholds"))
        if trace["reference"].get("error"):
            skipped.append(f"reference fit skipped: {trace['reference']['error']}")
    from elbolint.dynamic.child.richer_family import richer_deadline, richer_reference

    trace["richer"] = richer_reference(target, surrogate, sample_size, fit, label=trace["anchors"].get("surrogate"),
                                       deadline=richer_deadline(deadline, settings.get("timeout", 60.0)))
    if trace["richer"].get("error"):
        skipped.append(f"full-rank reference (ELB111) skipped: {trace['richer']['error']}")


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


def anchor_names(namespace: dict, surrogate, known: dict) -> dict:
    """Module-level names of the surrogate and of a JointDistribution model, to report at their lines."""
    import tensorflow_probability as tfp

    found: dict[str, str] = {}
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
               raw_parameters: Optional[list] = None, cut_at: Optional[float] = None):
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
    runs, result = runner.run(budget, seeds, estimate, skipped, deadline, cut_at)
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

"""ELB111 `restrictive-family`: after the user's own fit, a richer family fitted on the same target,
started from the user's fitted solution, shows how much the user's family leaves on the table.

Why a module of its own: ELB108 (classify.py) compares the user's fit against a *default mean-field*
reference, so a mean-field surrogate on a strongly correlated posterior looks "fine" to it: converged,
finite, as good as any mean-field fit can be. Only a family that can represent correlations shows the
loss, and it has to start where the user's fit ended: on the regression of Example 2 of "What causes
extremely large loss values when using TensorFlow Probability and the ELBO loss function?" with x in
[20, 21], the same full-rank family fitted from scratch ends at an ELBO of -418 after 2,000 steps, far
*below* the mean-field fit's 16.07 (started from the mean-field solution it reaches 18.77), so a cold
reference would hide the gap it is meant to show.

What runs (in the child, `richer_reference`, called by fitting.fit_trace after the user's fit and
the ELB108 reference; the user's surrogate is left as the user's fit left it, only sampled):

1. Only a surrogate that is a product of independent scalar factors (`mean_field`, surrogate_family.py):
   Normal, LogNormal, ... with scalar events, `Independent`/`Sample` of those, `MultivariateNormalDiag`,
   elementwise transforms of them (Softplus, Exp, Shift, Scale, ...), and joint distributions of such
   components with no dependencies between them. Anything else (a `MultivariateNormalTriL`, an affine or
   flow surrogate, a structured joint surrogate, a mixture) is left alone: it is not the family this
   finding is about. Latent sizes 2..MAX_LATENT only (a full covariance is O(d^2) parameters).
2. The unconstrained space is the surrogate's own `experimental_default_event_space_bijector()` (a
   joint one for a joint surrogate: per component). INIT_SAMPLES samples of the fitted surrogate,
   pulled back through it, are moment-matched: their mean and the Cholesky factor of their covariance
   initialise a `MultivariateNormalTriL` over all latents, pushed forward through the same bijector.
   At step 0 the reference *is* the user's solution (up to the Gaussian shape of the pull-back), so it
   can only improve on it, up to the noise of its own optimisation.
3. It is fitted by stochastic gradient ascent of the ELBO (Adam, its rate decaying geometrically from
   LEARNING_RATE to FINAL_LEARNING_RATE, DRAWS_PER_STEP x the user's own `sample_size` draws per step)
   for at most STEPS steps, for each of SEEDS seeds, in chunks of CHUNK steps with a time check
   between chunks (MAX_SECONDS, and never past the per-file deadline
   fitting.py gives it, `richer_deadline`). Each seed also fits a mean-field Gaussian on the same
   unconstrained space (the same code with the Cholesky factor's off-diagonal masked out: the user's
   own family for Normal and LogNormal factors) from the same start for as many steps: the *control*.
   A fit that had not converged gains from more steps alone; the control takes that share out, so
   the gain is what the richer family adds (without it the fixture restrictive_family_far_inputs.py
   "gained" 21 nats, of which 18 were its unfinished fit). All seeds' references and controls are
   fitted at once, as one batch of fits (`_Fitter`: the target called on all their draws together;
   Adam is elementwise, so each fit follows its own gradient as if alone), which also stops them at
   the same step when time runs out; a target that cannot take the larger batch gets one fit at a
   time. Measured on a 30-latent Brownian smoothing model: 21 s -> 13 s of CPU, the same gains.
4. The user's fitted surrogate and each seed's reference and control are estimated with
   ESTIMATE_SAMPLES samples in ESTIMATE_BATCHES calls of the target (or batches of the user's own
   `sample_size`, for a target that takes no other): the ELBO `E[log p(z) - log q(z)]` and its Monte
   Carlo standard error (the standard deviation of the batch means over sqrt(batches)).

The decision (`decide`, in elbolint/dynamic/verdicts/restrictive.py: pure Python, tested without
TensorFlow): per seed, gain = reference ELBO -
max(user's ELBO, control ELBO), its standard error from both estimates. ELB111 when the median gain
over the seeds exceeds `max(restrictive_gap_min, restrictive_gap_se x its standard error)` (defaults
1.0 nat and 6 standard errors), at least half of the seeds gain more than `restrictive_gap_min` each,
and some latent's standard deviation under the reference is `restrictive_spread_min` (1.5) times the
user's surrogate's or more (the user's uncertainty is materially wrong, not just many weak
correlations adding up). For a Gaussian posterior the mean-field loss is -1/2 log det(correlation):
in two dimensions 1 nat is a correlation of 0.93, where the mean-field spreads are 2.7x too narrow.

Measurements behind the thresholds (2026-12-07, this kind of machine: 2 shared cores, TF 2.21 +
TFP 0.25; `python -m elbolint.dynamic.child.richer_measure [words of case names]` fits each case natively,
1,000 steps of Adam(0.05), then runs this check and prints the gains (gain, standard error) of 3 seeds):

- Noise of the ELBO estimate (1,024 samples): standard error 0.005-0.08 nats on every fitted
  surrogate below (0.56-0.69 on unconverged user fits, which the control replaces); the gain's
  standard error 0.004-0.07. The seeds' gains on one case differ by at most 0.34 nats.
- Well-specified families, 27 cases x 3 seeds: a mean-field Normal on the regression with centred x
  (6 data sets), a log-normal surrogate for a positive noise scale (6), a logistic regression on 3
  centred inputs (6), a regression on 20 independent inputs with 200 rows (6) and 6 inputs with 100
  rows, [1]-shaped weight and bias components (fixtures/seed/) with centred x, eight schools non-centred (mean-field
  over mu, tau as log-normal and 8 thetas): gains from -0.011 to +0.247 nats, spread ratios at most
  1.25. No ELB111. The 1-nat floor is 4x the largest false gain; 6 standard errors (at most 0.43
  here) only matter for a target whose estimates are much noisier.
- Restrictive families, all reported in 3 of 3 seeds: the weight-and-bias regression with x in [20, 21]
  (the fixture's data) gains 2.41-2.75 nats (18.77 - 16.07 = 2.7 above, on other data; correlation
  -0.995, the mean-field `bias` spread 6.5x too narrow); x in [5, 6] 2.64-2.74; x in [2, 3] 2.21-2.26
  (correlation -0.99);
  the same with [1]-shaped components as at x in [20, 21]; an affine 'diag' surrogate
  2.15-2.27; 20 independent inputs with only 40 rows 2.17-2.28 (correlations up to -0.59, spreads
  1.9x too narrow).

5. Then, from the best full-rank reference's solution, a normalizing flow (richer_flow.py, the trace's
   `richer.flow`, with its own time cap and measurements): the second reference, which shows what a
   non-Gaussian posterior (curved, skewed, heavy-tailed) costs, where the full-rank reference gains nothing.

Cost (reported in the evidence: `seconds`, `steps`, `step_cap`, `seeds_run`, `stopped`): 3-8 s per
fit in the measurements above (2-20 latents); MAX_SECONDS caps it, and the seeds the time budget
leaves out are reported (`stopped`); a seed without its control does not count. It also runs after
a hand-written loop (drive_loop.py) on the loop's recorded target and surrogate.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional

from elbolint.dynamic.child.surrogate_family import mean_field
from elbolint.dynamic.child.targets import call_target
from elbolint.dynamic.verdicts.restrictive import _num

#: Reference fit: steps per seed (the step cap), seeds, Adam's rate, draws per step.
STEPS = 1000
SEEDS = 3
LEARNING_RATE = 0.1
FINAL_LEARNING_RATE = 0.002
DRAWS_PER_STEP = 2
CHUNK = 250
#: Wall-clock cap of the whole check (all seeds and estimates), seconds.
MAX_SECONDS = 20.0
#: Samples of the fitted surrogate moment-matched for the reference's start; samples per estimate.
INIT_SAMPLES = 4096
ESTIMATE_SAMPLES = 1024
ESTIMATE_BATCHES = 32
ESTIMATE_MAX_BATCHES = 2048
#: Latent sizes the full-rank reference is fitted for.
MAX_LATENT = 32
# --------------------------------------------------------------------------------------------------
# The reference fit: TensorFlow, in the child.


def _flat_names(surrogate, flat_shapes, label) -> list[str]:
    """One name per scalar latent: the joint component's name (or the surrogate's own name), with an
    index when the component holds several scalars."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    names = None
    structure = surrogate.dtype  # a dict or named structure names its parts (ASVI's and the builders' too)
    if isinstance(structure, dict) or hasattr(structure, "_fields"):
        keyed = structure if isinstance(structure, dict) else structure._asdict()
        # tf.nest flattens a dict in sorted key order, a named tuple in field order
        keys = sorted(keyed) if isinstance(structure, dict) else list(keyed)
        names = [str(k) for k in keys for _ in tf.nest.flatten(keyed[k])]
    if type(surrogate).__name__ == "DeferredModule":
        try:
            surrogate = surrogate._build_module()
        except Exception:
            pass
    if names is None and isinstance(surrogate, tfp.distributions.JointDistribution):
        try:
            names = [str(n) for n in tf.nest.flatten(surrogate._model_unflatten(surrogate._flat_resolve_names()))]
        except Exception:
            names = None
    if names is None or len(names) != len(flat_shapes):
        names = [label or "z"] if len(flat_shapes) == 1 else [f"{label or 'z'}[{i}]" for i in range(len(flat_shapes))]
    found = []
    for name, shape in zip(names, flat_shapes):
        size = int(np.prod(shape)) if len(shape) else 1
        if size == 1:
            found.append(str(name))
        else:
            found += [f"{name}[{', '.join(str(i) for i in index)}]" for index in np.ndindex(*shape)]
    return found


def _per_sample(value, n):
    """A per-sample quantity summed over its non-sample axes, as a vector of n (a constant broadcasts)."""
    import tensorflow as tf

    value = tf.cast(tf.convert_to_tensor(value), tf.float64)
    if value.shape.rank and value.shape.rank > 1:
        value = tf.reduce_sum(value, axis=list(range(1, value.shape.rank)))
    return tf.broadcast_to(value, [n]) if value.shape.rank in (0, None) or value.shape[0] != n else value


#: Share of the per-file timeout the check may use past the fit's own deadline (the fit has 40 % of it, see
#: fitting.fit_trace); it is not started with less than MIN_SECONDS left.
TIMEOUT_SHARE = 0.2
MIN_SECONDS = 3.0


def richer_deadline(fit_deadline: Optional[float], timeout) -> Optional[float]:
    """The time.monotonic() value the check must end by: the fit's deadline plus TIMEOUT_SHARE of the
    per-file timeout (the file's own work after the fit and the sandbox's margin keep the rest)."""
    if fit_deadline is None:
        return None
    try:
        return fit_deadline + TIMEOUT_SHARE * float(timeout)
    except (TypeError, ValueError):
        return fit_deadline


def richer_reference(target, surrogate, sample_size, user_fit: Optional[dict], *, deadline: Optional[float] = None,
                     label: Optional[str] = None, steps: int = STEPS, seeds: int = SEEDS,
                     max_seconds: float = MAX_SECONDS) -> dict:
    """The trace part `richer` (see the module docstring): the user's fitted surrogate's ELBO and each
    seed's full-rank reference ELBO, with standard errors, correlations and spread ratios; or
    `{"skipped": why}`. Never raises: an error of ours is `{"error": ...}`."""
    started = time.monotonic()
    stop_at = started + max_seconds if deadline is None else min(started + max_seconds, deadline)
    if stop_at - started < MIN_SECONDS:
        return {"skipped": "the time budget is spent"}
    if user_fit is not None:
        losses = user_fit.get("loss") or []
        if not losses or any(_num(v) is None for v in losses):
            return {"skipped": "the fit's loss is not finite"}
    try:
        import tensorflow as tf

        if not all(tf.as_dtype(d).is_floating for d in tf.nest.flatten(surrogate.dtype)):
            return {"skipped": "discrete latents"}
        why = mean_field(surrogate)
        if why:
            return {"skipped": f"not a mean-field surrogate: {why}"}
        return _richer(target, surrogate, int(sample_size or 1), label, steps, seeds, started, stop_at, deadline)
    except (SystemExit, MemoryError):
        raise
    except Exception as error:
        from elbolint.dynamic.child.failures import exception_text

        return {"error": exception_text(error), "seconds": round(time.monotonic() - started, 2)}


def _richer(target, surrogate, size, label, steps, seeds, started, stop_at, deadline=None) -> dict:
    """The check itself, on a mean-field surrogate with floating latents (richer_reference decided that):
    the user's solution pulled back and moment-matched, the user's ELBO, every seed's reference and
    control fitted from there, and the evidence the decision reads."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfb = tfp.bijectors
    bijector = surrogate.experimental_default_event_space_bijector()
    dtype = tf.float64
    user_dtype = tf.nest.flatten(surrogate.dtype)[0]
    solution = _pulled_back(surrogate, bijector, label)
    if "skipped" in solution:
        return solution
    latent, user_sd = solution["latent"], solution["user_sd"]
    fill = tfb.FillScaleTriL(diag_shift=np.float64(1e-6))
    user_estimate, per_batch, batches, strict = _user_estimate(target, surrogate, size, dtype)
    if user_estimate[0][0] is None:
        return {"skipped": "the fitted surrogate's ELBO is not finite", "latent": latent}
    start = {"mean": solution["mean"], "full": fill.inverse(tf.constant(solution["tril"], dtype)).numpy(),
             "diagonal": fill.inverse(tf.constant(np.diag(user_sd), dtype)).numpy(), "latent": latent}
    fitter = _Fitter(target, bijector, fill, start, size, steps, dtype, user_dtype, solution["shapes"],
                     solution["sizes"], solution["unconstrained"], batches, per_batch)
    fitter.strict = strict
    results, stopped = _fit_members(fitter, seeds, stop_at)
    runs, best, total_steps = _reference_runs(results, seeds)
    part: dict[str, Any] = {"latent": latent, "names": solution["names"], "user_elbo": user_estimate[0][0],
                            "user_se": user_estimate[0][1], "start_elbo": fitter.start_elbo, "reference": runs,
                            "steps": total_steps, "step_cap": steps, "seeds": seeds,
                            "seconds": round(time.monotonic() - started, 2)}
    if stopped:
        part["stopped"] = stopped
    if best is not None:
        part.update(_correlations(best, solution["names"], user_sd))
        part["flow"] = _flow_part(fitter, results, solution["names"], user_sd, deadline)  # its own `seconds`
    return part


def _flow_part(fitter, results: dict, names: list[str], user_sd, deadline: Optional[float]) -> dict:
    """The normalizing-flow reference (richer_flow.py), started from the best full-rank reference's
    solution, within its own time cap and never past the per-file deadline."""
    from elbolint.dynamic.child.richer_flow import flow_deadline, flow_reference

    fits = [r for (_, kind), r in results.items() if kind == "full" and r["elbo"] is not None]
    if not fits:
        return {"skipped": "no full-rank reference to start from"}
    best = max(fits, key=lambda r: r["elbo"])
    return flow_reference(fitter, {"loc": best["loc"], "tril": best["tril"]}, user_sd, names, flow_deadline(deadline))


def _pulled_back(surrogate, bijector, label) -> dict:
    """The user's solution, pulled back to the unconstrained space and moment-matched: INIT_SAMPLES
    samples' `mean`, the Cholesky factor `tril` of their covariance, each latent's standard deviation
    `user_sd`, the pulled-back sample (`unconstrained`, its parts' `shapes` and `sizes`), the `latent`
    count and the latents' `names`; or `{"skipped": why}` for a surrogate the check cannot take."""
    import numpy as np
    import tensorflow as tf

    sample = surrogate.sample(INIT_SAMPLES, seed=(11, 12))
    probe = tf.convert_to_tensor(surrogate.log_prob(sample))
    if int(np.prod(probe.shape[1:])) != 1:
        return {"skipped": f"the surrogate is a batch of {int(np.prod(probe.shape[1:]))} distributions"}
    unconstrained = bijector.inverse(sample)
    flat = [tf.convert_to_tensor(u) for u in tf.nest.flatten(unconstrained)]
    shapes = [u.shape[1:] for u in flat]
    sizes = [int(np.prod(s)) if len(s) else 1 for s in shapes]
    latent = sum(sizes)
    if latent < 2 or latent > MAX_LATENT:
        return {"skipped": f"{latent} latent value{'s' if latent != 1 else ''} (checked for 2 to {MAX_LATENT})",
                "latent": latent}
    matrix = np.concatenate([np.reshape(u.numpy().astype(np.float64), [INIT_SAMPLES, -1]) for u in flat], axis=1)
    matrix = matrix[np.all(np.isfinite(matrix), axis=1)]
    if len(matrix) < INIT_SAMPLES // 2:
        return {"skipped": "the fitted surrogate's samples do not map back to the unconstrained space"}
    cov = np.cov(matrix, rowvar=False) + 1e-8 * np.eye(latent)
    return {"mean": matrix.mean(axis=0), "tril": np.linalg.cholesky(cov), "user_sd": np.sqrt(np.diag(cov)),
            "unconstrained": unconstrained, "shapes": shapes, "sizes": sizes, "latent": latent,
            "names": _flat_names(surrogate, [tuple(s) for s in shapes], label)}


def _user_estimate(target, surrogate, size: int, dtype) -> tuple[list, int, int, bool]:
    """The user's fitted surrogate's ELBO estimate (`[(mean, standard error)]`), with the batch shape
    the estimates use: ESTIMATE_SAMPLES samples in ESTIMATE_BATCHES calls of the target; a target
    that only takes the user's own sample size (`strict`) gets that many per call (many more calls,
    the same estimate). Returns (estimate, per_batch, batches, strict)."""
    import tensorflow as tf

    def user_elbo(n):
        def elbo(seed):
            x = surrogate.sample(n, seed=seed)
            return tf.reduce_mean(_per_sample(call_target(target, x), n) - _per_sample(surrogate.log_prob(x), n))
        return elbo

    per_batch = size * max(1, -(-ESTIMATE_SAMPLES // (ESTIMATE_BATCHES * size)))
    batches, strict = ESTIMATE_BATCHES, False
    try:
        user_estimate = _estimates(user_elbo(per_batch), batches, dtype, base=0)
    except (SystemExit, MemoryError):
        raise
    except Exception:
        per_batch, batches, strict = size, max(2, min(ESTIMATE_MAX_BATCHES, -(-ESTIMATE_SAMPLES // size))), True
        user_estimate = _estimates(user_elbo(per_batch), batches, dtype, base=0)
    return user_estimate, per_batch, batches, strict


def _fit_members(fitter: _Fitter, seeds: int, stop_at: float) -> tuple[dict, Optional[str]]:
    """Every seed's reference and its mean-field control, fitted at once as one batch of fits (the
    target called on all their samples together); for a target that cannot take the larger batch, one
    fit at a time until the time budget is spent. Returns ({(seed, kind): result}, why it stopped)."""
    members = [(seed, kind) for seed in range(seeds) for kind in ("full", "mean_field")]
    try:
        if fitter.strict:
            raise ValueError("the target takes only its own sample size")
        return fitter.fit(members, stop_at)
    except (SystemExit, MemoryError):
        raise
    except Exception:
        pass
    fitter.strict = True
    results: dict = {}
    stopped: Optional[str] = None
    for member in members:
        if time.monotonic() > stop_at:
            stopped = f"seeds {member[0] + 1}-{seeds} not run: the time budget is spent"
            break
        result, stopped = fitter.fit([member], stop_at)
        results.update(result)
        if stopped:
            break
    return results, stopped


def _reference_runs(results: dict, seeds: int) -> tuple[list, Optional[Any], int]:
    """The trace's `reference` records, one per seed fitted (its control's ELBO only when the control
    ran as many steps), the Cholesky factor of the best full-rank reference, and the most steps run."""
    runs, best, total_steps = [], None, 0
    for seed in range(seeds):
        full, control = results.get((seed, "full")), results.get((seed, "mean_field"))
        if full is None:
            break
        record = {"seed": seed, "steps": full["steps"], "elbo": full["elbo"], "se": full["se"]}
        if control is not None and control["steps"] == full["steps"]:  # the same number of steps, or it does not count
            record.update(mean_field_elbo=control["elbo"], mean_field_se=control["se"])
        if full["elbo"] is not None and (best is None or full["elbo"] > best[0]):
            best = (full["elbo"], full["tril"])
        total_steps = max(total_steps, full["steps"])
        runs.append(record)
    return runs, None if best is None else best[1], total_steps


def _correlations(tril, names: list[str], user_sd) -> dict:
    """What the best reference revealed: its three strongest correlations and each latent's standard
    deviation under it over the user's (`spread_ratio`)."""
    import numpy as np

    latent = len(user_sd)
    cov = tril @ tril.T
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    pairs = sorted(((names[i], names[j], float(corr[i, j])) for i in range(latent) for j in range(i + 1, latent)),
                   key=lambda item: -abs(item[2]))
    return {"correlations": [list(p) for p in pairs[:3]],
            "spread_ratio": {names[i]: float(sd[i] / user_sd[i]) for i in range(latent) if user_sd[i] > 0}}


def _estimator(elbo, batches, dtype):
    """Monte Carlo estimates of one or several ELBOs, traced once and run for any base seed:
    `elbo(seed)` gives a scalar or a vector (one per fit) per batch; `run(base)` gives per entry (mean,
    standard error of the batch means), or (None, None) when fewer than half the batches are finite."""
    import numpy as np
    import tensorflow as tf

    @tf.function(autograph=False)
    def estimate(base):
        values = tf.TensorArray(dtype, size=batches)

        def body(i, values):
            return i + 1, values.write(i, elbo(tf.stack([base, i])))

        _, values = tf.while_loop(lambda i, _: i < batches, body, (tf.constant(0), values))
        return values.stack()

    def run(base: int) -> list:
        values = estimate(tf.constant(base)).numpy()
        found: list[tuple[Optional[float], Optional[float]]] = []
        for column in np.reshape(values, [batches, -1]).T:
            column = column[np.isfinite(column)]
            if len(column) < batches // 2:
                found.append((None, None))
            else:
                found.append((float(column.mean()), float(column.std(ddof=1) / math.sqrt(len(column)))))
        return found

    return run


def _estimates(elbo, batches, dtype, base: int) -> list:
    return _estimator(elbo, batches, dtype)(base)


class _Fitter:
    """Fits a batch of full-rank references and mean-field controls (`members`: (seed, "full" or
    "mean_field")) on the unconstrained space, all from the moment-matched start, by Adam on their
    summed ELBOs (Adam acts elementwise, so each fit follows its own gradient exactly as if alone);
    each member draws its own noise. Why a batch: the seeds and controls cost one target call per step
    instead of six (the check was 15 s on a 30-latent model, and the per-file budget cut it short)."""

    def __init__(self, target, bijector, fill, start, size, steps, dtype, user_dtype, shapes, sizes, unconstrained,
                 batches, per_batch):
        import tensorflow as tf

        self.target, self.bijector, self.fill, self.start = target, bijector, fill, start
        self.size, self.steps, self.dtype, self.user_dtype = size, steps, dtype, user_dtype
        self.shapes, self.sizes, self.batches, self.per_batch = shapes, sizes, batches, per_batch
        #: A target that takes only the user's own sample size: one fit at a time, one draw per call.
        self.strict = False
        #: The full-rank reference's ELBO at its start (the user's solution, moment-matched).
        self.start_elbo: Optional[float] = None
        self._cache: dict = {}
        self.structure = tf.nest.map_structure(lambda _: 0, unconstrained)

    def _elbos(self, loc, raw, mask, seed, n):
        """Each fit's ELBO on n draws of its own: a vector over the fits."""
        import tensorflow as tf
        import tensorflow_probability as tfp

        fits, latent = int(loc.shape[0]), self.start["latent"]
        tril = self.fill.forward(raw) * mask
        eps = tf.random.stateless_normal([fits, n, latent], seed=seed, dtype=self.dtype)
        z = loc[:, None, :] + tf.einsum("fij,fnj->fni", tril, eps)
        logq = tfp.distributions.MultivariateNormalTriL(loc=loc[:, None, :], scale_tril=tril[:, None]).log_prob(z)
        return self.elbo_of(z, logq)

    def elbo_of(self, z, logq):
        """Each fit's ELBO from its draws `z` on the flat unconstrained space ([fits, n, latent]) and their
        log-density there (`logq`, [fits, n]): the draws unflattened, mapped by the model's bijector
        (its log-Jacobian added) and scored by the target. The flow reference (richer_flow.py) uses it too."""
        import tensorflow as tf

        fits, n, latent = int(z.shape[0]), int(z.shape[1]), self.start["latent"]
        parts = tf.split(tf.reshape(z, [fits * n, latent]), self.sizes, axis=-1)
        parts = [tf.cast(tf.reshape(p, [fits * n] + list(s)), self.user_dtype) for p, s in zip(parts, self.shapes)]
        u = tf.nest.pack_sequence_as(self.structure, parts)
        x = self.bijector.forward(u)
        logq = logq - tf.reshape(_per_sample(self.bijector.forward_log_det_jacobian(u), fits * n), [fits, n])
        logp = tf.reshape(_per_sample(call_target(self.target, x), fits * n), [fits, n])
        return tf.reduce_mean(logp - logq, axis=1)

    def _compiled(self, size: int):
        """Variables, the traced training loop and the traced estimator for a batch of `size` fits,
        built once and reused (one fit at a time, for a strict target, retraces nothing: measured, the
        six traces cost 3x the check's CPU on the weight-and-bias regression, x in [20, 21])."""
        import tensorflow as tf
        import tensorflow_probability as tfp

        if size in self._cache:
            return self._cache[size]
        latent, dtype, steps, b1, b2, epsilon = self.start["latent"], self.dtype, self.steps, 0.9, 0.999, 1e-8
        loc = tf.Variable(tf.zeros([size, latent], dtype))
        raw = tf.Variable(tf.zeros([size] + list(self.start["full"].shape), dtype))
        mask = tf.Variable(tf.zeros([size, latent, latent], dtype), trainable=False)
        variables = [loc, raw]
        moments = [tf.Variable(tf.zeros_like(v)) for v in variables for _ in range(2)]
        count = tf.Variable(0.0, dtype=dtype)

        @tf.function(autograph=False)
        def train(seed0, n):
            def body(i):
                seed = tf.stack([seed0, i])
                with tf.GradientTape() as tape:  # DRAWS_PER_STEP draws of the user's sample size
                    if self.strict:
                        draws = tfp.random.split_seed(seed, DRAWS_PER_STEP)
                        loss = -tf.reduce_sum(tf.add_n([self._elbos(loc, raw, mask, draws[k], self.size)
                                                        for k in range(DRAWS_PER_STEP)])) / DRAWS_PER_STEP
                    else:
                        loss = -tf.reduce_sum(self._elbos(loc, raw, mask, seed, DRAWS_PER_STEP * self.size))
                grads = tape.gradient(loss, variables)
                ops = [count.assign_add(1.0)]
                # the rate decays geometrically from LEARNING_RATE to FINAL_LEARNING_RATE over the step cap
                rate = LEARNING_RATE * tf.pow(tf.constant(FINAL_LEARNING_RATE / LEARNING_RATE, dtype),
                                              tf.minimum(count / float(steps), 1.0))
                with tf.control_dependencies(ops):
                    for k, (g, v) in enumerate(zip(grads, variables)):
                        g = tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))
                        m, s = moments[2 * k], moments[2 * k + 1]
                        m_new = m.assign(b1 * m + (1 - b1) * g)
                        s_new = s.assign(b2 * s + (1 - b2) * g * g)
                        m_hat = m_new / (1 - tf.pow(tf.constant(b1, dtype), count))
                        s_hat = s_new / (1 - tf.pow(tf.constant(b2, dtype), count))
                        ops.append(v.assign_sub(rate * m_hat / (tf.sqrt(s_hat) + epsilon)))
                with tf.control_dependencies(ops):
                    return (i + 1,)

            return tf.while_loop(lambda i: i < n, body, (tf.constant(0),))

        estimate = _estimator(lambda seed: self._elbos(loc, raw, mask, seed, self.per_batch), self.batches, dtype)
        self._cache[size] = (loc, raw, mask, moments, count, train, estimate)
        return self._cache[size]

    def fit(self, members, stop_at) -> tuple[dict, Optional[str]]:
        """{member: {"steps", "elbo", "se", "tril"}} and why it stopped early (None when it did not)."""
        import numpy as np
        import tensorflow as tf

        loc, raw, mask, moments, count, train, estimate = self._compiled(len(members))
        latent = self.start["latent"]
        full, diagonal = np.tril(np.ones([latent, latent])), np.eye(latent)
        loc.assign(np.stack([self.start["mean"]] * len(members)))
        raw.assign(np.stack([self.start["full" if kind == "full" else "diagonal"] for _, kind in members]))
        mask.assign(np.stack([full if kind == "full" else diagonal for _, kind in members]))
        count.assign(0.0)
        for m in moments:
            m.assign(tf.zeros_like(m))
        starts = estimate(1)  # every member at the moment-matched start: the full-rank one is the user's solution
        if self.start_elbo is None:
            self.start_elbo = next((elbo for (_, kind), (elbo, _) in zip(members, starts) if kind == "full"), None)
        seed0 = tf.constant((100 + members[0][0]) + 1000 * len(members) + (0 if members[0][1] == "full" else 500))
        done, stopped = 0, None
        while done < self.steps:
            n = min(CHUNK, self.steps - done)
            train(seed0, tf.constant(n))
            done += n
            if time.monotonic() > stop_at and done < self.steps:
                stopped = f"stopped after {done} of {self.steps} steps: the time budget is spent"
                break
        estimates = estimate(2 + members[0][0])
        trils, locs = (self.fill.forward(raw) * mask).numpy(), loc.numpy()
        return ({member: {"steps": done, "elbo": elbo, "se": se, "tril": trils[k], "loc": locs[k]}
                 for k, (member, (elbo, se)) in enumerate(zip(members, estimates))}, stopped)

"""In the child: what the user's fit is compared with — the final ELBO estimate of a surrogate (many
samples, the user's sample shape) and the reference fit (a default mean-field surrogate, and a
full-covariance one for small latents, on the same target, same steps) that ELB102 and ELB108 read."""

from __future__ import annotations

import math
import time
from typing import Optional

from elbolint.dynamic.child.failures import exception_text
from elbolint.dynamic.child.optimizers import default_optimizer


#: Batches of the user's `sample_size` samples averaged by a final estimate (about 256 samples).
ESTIMATE_SAMPLES = 256
ESTIMATE_MAX_BATCHES = 64


def _estimate_graph(target, surrogate, options, sample_size, samples: int = ESTIMATE_SAMPLES):
    """Builds (in a graph) a low-noise loss estimate: the mean of batches of the user's own
    `sample_size` samples (the target only ever sees the user's sample shape)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    size = int(sample_size)
    batches = max(1, min(ESTIMATE_MAX_BATCHES, -(-samples // max(size, 1))))

    def estimate():
        def body(i, total):
            loss = tfp.vi.monte_carlo_variational_loss(target, surrogate, sample_size=size,
                                                       seed=tf.stack([i, 5]), **(options or {}))
            return i + 1, total + tf.cast(tf.reduce_sum(loss), tf.float64)

        _, total = tf.while_loop(lambda i, _: i < batches, body,
                                 (tf.constant(0, tf.int32), tf.constant(0.0, tf.float64)))
        return total / batches

    return estimate


def _estimator(target, surrogate, options, sample_size, samples: int = ESTIMATE_SAMPLES):
    """A callable returning the estimate (compiled on its first call)."""
    import tensorflow as tf

    compiled = tf.function(_estimate_graph(target, surrogate, options, sample_size, samples), autograph=False)
    return lambda: float(compiled())


def final_estimate(target, surrogate, options=None, samples: int = ESTIMATE_SAMPLES,
                   sample_size=1) -> Optional[float]:
    """The loss with many samples (batches of the user's `sample_size`): a low-noise number to
    compare surrogates by; None when it cannot be computed (a check of ours, skipped)."""
    try:
        return _estimator(target, surrogate, options, sample_size, samples)()
    except Exception:
        return None


AFFINE_MAX_LATENT = 32  # a full-covariance reference costs O(d^2) parameters: only for small latents


def reference_fit(target, surrogate, steps, sample_size, user_fit: Optional[dict] = None,
                  thresholds: Optional[dict] = None) -> dict:
    """The same target fitted with default surrogates on the user's support and a clipped Adam:
    `build_factored_surrogate_posterior` (mean-field) always, and `build_affine_surrogate_posterior`
    (full covariance) when the latent size is at most AFFINE_MAX_LATENT. The factored one gives the
    reference initial loss (ELB102); the better final estimate of the two is the reference for ELB108.
    With the user's first-seed fit (`user_fit`) the affine fit is skipped when it cannot change ELB108:
    the user's loss turned NaN (no ELB108 then), or its final estimate is already above the factored
    reference's by ELB108's margin (a better reference only widens the gap)."""
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
        decided = _elb108_decided(user_fit, result.get("final_estimate"), thresholds)
        if decided:
            result["affine_skipped"] = decided
        if latent is not None and 1 < latent <= AFFINE_MAX_LATENT and not decided:
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


def _elb108_decided(user_fit: Optional[dict], factored_final, thresholds: Optional[dict]) -> Optional[str]:
    """Why the affine reference cannot change ELB108's verdict, or None."""
    if not user_fit:
        return None
    losses = user_fit.get("loss") or []
    if any(not math.isfinite(v) for v in losses):
        return "the fit's loss turned non-finite"
    mine = user_fit.get("final_estimate")
    if mine is None or factored_final is None or not math.isfinite(mine) or not math.isfinite(factored_final):
        return None
    t = {"elbo_gap_min": 10.0, "elbo_gap_ratio": 0.5}
    t.update(thresholds or {})
    if mine - factored_final > max(t["elbo_gap_min"], t["elbo_gap_ratio"] * abs(factored_final)):
        return "the fit is already far above the factored reference"
    return None


def _latent_size(surrogate) -> Optional[int]:
    import tensorflow as tf

    try:
        shapes = tf.nest.flatten(surrogate.event_shape_tensor())
        return int(sum(int(tf.reduce_prod(s)) for s in shapes))
    except Exception:
        return None


def _fit_reference(build, target, steps, sample_size) -> dict:
    """A default surrogate fitted by TFP's own `fit_surrogate_posterior` (the user's `sample_size`,
    so the target sees the user's sample shape), compiled once; then its final estimate."""
    from elbolint.dynamic.child.fitting import _Runner, seed_everything  # fitting imports this module

    seed_everything(1)
    reference = build()
    runner = _Runner(target, reference, default_optimizer(0.1),
                     {"sample_size": sample_size, "trainable_variables": reference.trainable_variables}, [],
                     estimate_options=({}, sample_size))
    estimate = _estimator(target, reference, {}, sample_size)
    notes: list[str] = []
    runs, _ = runner.run(int(steps), 1, estimate, notes)
    return {"loss": runs[0]["loss"], "final_estimate": runs[0]["final_estimate"]}

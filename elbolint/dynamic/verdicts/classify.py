"""The pathology classifier: one run's trace (plain JSON data) -> dynamic findings ELB100-ELB109.

Pure Python on purpose: it is the part with judgement in it (thresholds), so it must be unit-testable
without TensorFlow, and the worker stays a dumb recorder. Each finding is a dict
`{"code", "message", "anchor", "evidence"}`; `anchor` says where to report it ("fit", "surrogate",
"model", or "failure" for the line of an exception) and `evidence` holds the numbers behind the message.
A fit is judged by a table (`FIT_CHECKS`): one small documented function per dynamic code, each reading
the same `FitView` of the trace, so a code's judgement is in one place.

Thresholds (all configurable under `[tool.elbolint.dynamic]`, dashes for underscores):

- `huge_initial_loss_ratio` (100): ELB102 when `(initial - reference_initial) / max(|reference_initial|, 1)`
  exceeds it, i.e. the user's surrogate starts two orders of magnitude worse than a default one.
- `exploding_gradient_norm` (1e3): ELB107 when the global gradient norm exceeds it, or is NaN/Inf, at a
  step whose loss is still finite (a NaN loss makes every gradient NaN; that is ELB101's story).
- `diverging_rise` (0.5) and `diverging_min_rise` (10): ELB103 when the median loss of the last quarter of
  the budget is above the median of the first quarter by more than `max(diverging_min_rise,
  diverging_rise * |first-quarter median|)`.
- `elbo_gap_ratio` (0.5) and `elbo_gap_min` (10 nats): ELB108 when the user's final loss (a 256-sample
  estimate after the fit; else the median of the last 10% of steps) is above the reference's by more than `max(elbo_gap_min, elbo_gap_ratio * |reference final|)`.
- `kl_dominance_ratio` (10), `kl_dominance_min_kl` (10 nats), `kl_dominance_min_weight_n` (2) and
  `kl_dominance_data_floor` (1e-3): ELB109 on a Keras fit (drive_keras.py: per batch the loss, the KL
  term `sum(model.losses)` and the data term, loss - KL) when, over at least 5 batches, the median of
  `KL / max(|data|, kl_dominance_data_floor)` is at least `kl_dominance_ratio` and the median KL is at
  least `kl_dominance_min_kl`; and, when both the KL's weight per batch (the layers' added loss over
  their unweighted KL, or DenseVariational's `kl_weight`) and the dataset size N are known, only if
  `weight * N >= kl_dominance_min_weight_n` (a KL weighted 1/N is the per-example ELBO, however large
  it is next to the data term). Conservative on purpose: a scaled KL never reaches it.
- `restrictive_gap_min` (1 nat), `restrictive_gap_se` (6) and `restrictive_spread_min` (1.5): ELB111 when a
  full-rank Gaussian started from the user's fitted mean-field surrogate (trace["richer"], see
  richer_family.py, where the measurements behind these numbers are) raises the ELBO, median over its
  seeds, by more than `max(restrictive_gap_min, restrictive_gap_se x standard error)`, at least half of
  the seeds by more than `restrictive_gap_min`, and some latent's spread is `restrictive_spread_min`
  times wider under it than under the user's surrogate — or, whatever the spreads, the gain is at least
  `restrictive_gap_strong` (2.5 nats: many moderately correlated latents lose as much as two strongly
  correlated ones; restrictive.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any, Callable, Iterable, Optional

from elbolint.dynamic.verdicts.restrictive import decide as restrictive_family
from elbolint.dynamic.child.watch import describe

THRESHOLDS: dict[str, float] = {
    "huge_initial_loss_ratio": 100.0,
    "exploding_gradient_norm": 1000.0,
    "diverging_rise": 0.5,
    "diverging_min_rise": 10.0,
    "elbo_gap_ratio": 0.5,
    "elbo_gap_min": 10.0,
    "kl_dominance_ratio": 10.0,
    "kl_dominance_min_kl": 10.0,
    "kl_dominance_min_weight_n": 2.0,
    "kl_dominance_data_floor": 1e-3,
    # ELB111 (richer_family.py: measurements behind these defaults there)
    "restrictive_gap_min": 1.0,
    "restrictive_gap_se": 6.0,
    "restrictive_spread_min": 1.5,
    "restrictive_gap_strong": 2.5,
}

#: Fewer batches than this say nothing about a KL/data split (ELB109).
KL_DOMINANCE_MIN_BATCHES = 5

#: Failures that come from the sandbox, not from the model's own code: they never confirm a static
#: finding (a timeout says nothing about a lambda's arguments), they only mark findings "not-run".
SANDBOX_KINDS = ("timeout", "memory", "signal", "exit", "output", "internal")

_SPARK = "▁▂▃▄▅▆▇█"


def number(value: Any) -> Optional[float]:
    """A float from a trace value ("nan"/"inf" strings or None included); None when absent."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def finite(value: Any) -> bool:
    x = number(value)
    return x is not None and math.isfinite(x)


def fmt(value: Any) -> str:
    x = number(value)
    if x is None:
        return "?"
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf")
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.2g}"
    return f"{x:.4g}"


def sparkline(losses: list, width: int = 12) -> str:
    """A few block characters showing the loss trend (NaN steps are cut off)."""
    values = _finite_numbers(losses)
    if len(values) < 2:
        return ""

    def bounds(i: int) -> tuple[int, int]:
        start = int(i * len(values) / width)
        return start, max(int((i + 1) * len(values) / width), start + 1)

    buckets = [values[slice(*bounds(i))] for i in range(min(width, len(values)))]
    means = [sum(b) / len(b) for b in buckets if b]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(_SPARK[min(len(_SPARK) - 1, int((m - low) / span * (len(_SPARK) - 1)))] for m in means)


def _finite_numbers(values: Iterable[Any]) -> list[float]:
    """The finite numbers among trace values, in order (absent, NaN and Inf values left out)."""
    numbers = [number(v) for v in values]
    return [x for x in numbers if x is not None and math.isfinite(x)]


def classify(trace: dict, thresholds: Optional[dict] = None) -> list[dict]:
    """Dynamic findings for one file's trace (see the module docstring).

    A failed run is one ELB100; a run without a fit is what sampling its JointDistributions showed
    (ELB106); a fit is judged by every check of `FIT_CHECKS`, in the table's order (the order of the
    findings in a report).
    """
    t = dict(THRESHOLDS)
    t.update(thresholds or {})
    failure = trace.get("failure")
    if failure:
        return [_failure_finding(failure)]
    fit = trace.get("fit")
    if not fit:
        return _sampled_findings(trace.get("sampled") or [])
    view = FitView.of(trace, fit, t)
    findings: list[dict] = []
    for _code, check in FIT_CHECKS:
        findings.extend(check(view))
    return findings


@dataclass(frozen=True)
class FitView:
    """One fit's trace read once: the numbers every check of `FIT_CHECKS` looks at."""

    trace: dict
    fit: dict
    t: dict  # the thresholds, defaults updated with the user's
    losses: list[Optional[float]]  # per step; None where the trace holds no number
    grads: list[Optional[float]]  # the global gradient norm per step
    nan_step: Optional[int]  # the first step whose loss is absent, NaN or Inf
    finite_losses: list[float]
    reference: dict  # the default mean-field surrogate's fit on the same target (reference.py)
    ref_finite: list[float]  # its finite losses

    @classmethod
    def of(cls, trace: dict, fit: dict, t: dict) -> "FitView":
        losses = [number(v) for v in fit.get("loss", [])]
        reference = trace.get("reference") or {}
        return cls(
            trace=trace, fit=fit, t=t, losses=losses,
            grads=[number(v) for v in fit.get("grad_norm", [])],
            nan_step=next((i for i, v in enumerate(losses) if v is None or not math.isfinite(v)), None),
            finite_losses=[v for v in losses if v is not None and math.isfinite(v)],
            reference=reference,
            ref_finite=_finite_numbers(reference.get("loss", [])),
        )

    @property
    def steps(self) -> int:
        return len(self.losses)


def _log_prob_shape(view: FitView) -> list[dict]:
    """ELB106: the target's log-prob of one surrogate sample has more dimensions than the surrogate's
    batch (`expected_rank`): the observations are a batch of independent log-probs."""
    shape = view.fit.get("logprob_shape")
    expected = view.fit.get("expected_rank", 0)
    if shape is None or len(shape) <= (expected or 0):
        return []
    return [{
        "code": "ELB106", "anchor": "model",
        "message": (f"log_prob of one joint sample has shape {list(shape)}, not a scalar: the "
                    "observations are a batch of independent log-probs (wrap the likelihood in "
                    "tfd.Independent(..., reinterpreted_batch_ndims=1))"),
        "evidence": {"logprob_shape": list(shape)},
    }]


def _untrained_variables(view: FitView) -> list[dict]:
    """ELB105: variables that never train — a surrogate with no trainable variable at all, surrogate
    variables whose gradient is None or zero at every step, and module-level variables outside the
    surrogate's trainable variables that never moved (one finding for each of the three)."""
    fit, steps = view.fit, view.steps
    findings = []
    if fit.get("no_trainable"):
        findings.append({
            "code": "ELB105", "anchor": "surrogate",
            "message": "the surrogate posterior has no trainable variables: nothing is optimised",
            "evidence": {"variables": []},
        })
    untrained = list(fit.get("none_grad", [])) + list(fit.get("zero_grad", []))
    if untrained:
        findings.append({
            "code": "ELB105", "anchor": "surrogate",
            "message": (f"surrogate variable(s) {', '.join(untrained)} got a None or zero gradient at every "
                        f"step of {steps}: they never train"),
            "evidence": {"variables": untrained},
        })
    outside = list(fit.get("untracked", []))
    if outside:
        findings.append({
            "code": "ELB105", "anchor": "surrogate",
            "message": (f"module-level variable(s) {', '.join(outside)} are not among the surrogate's trainable "
                        f"variables and stayed at their initial value for {steps} steps (a transform such as "
                        "softplus applied once at construction cuts them off)"),
            "evidence": {"variables": outside},
        })
    return findings


def _parameter_leaves_support(view: FitView) -> list[dict]:
    """ELB104: a constrained parameter leaves its support: a positive-only one reaches <= 0, a
    `scale_tril`'s diagonal <= 0, a covariance's eigenvalue <= 0, a probability leaves [0, 1]. One
    finding per parameter, earliest first, carrying the identity of what was watched: each static
    finding is confirmed by its own parameter's evidence only (confirmation.py). A parameter kept
    positive by a transform (softplus, exp) or a probability counts only below 0, not at 0."""
    fit = view.fit
    nonpositive = []
    constrained = set(fit.get("constrained") or ())
    watched = fit.get("watched") or {}
    for name, mins in (fit.get("positive") or {}).items():
        for step, value in enumerate(mins):
            x = number(value)
            if x is not None and not math.isnan(x) and (x < 0 or (x == 0 and name not in constrained)):
                nonpositive.append((step, name, x))
                break
    findings = []
    for step, name, x in sorted(nonpositive, key=lambda item: item[0]):
        identity = watched.get(name) or {}
        evidence = {"parameter": name, "step": step, "value": x}
        if identity:
            evidence["identity"] = identity
        findings.append({
            "code": "ELB104", "anchor": "surrogate",
            "message": (f"{name}: {describe(identity, fmt(x))} at step {step}" if identity.get("kind", "minimum")
                        != "minimum" else f"{name} reached {fmt(x)} at step {step}"),
            "evidence": evidence,
        })
    return findings


def _nan_loss(view: FitView) -> list[dict]:
    """ELB101: the loss is absent, NaN or Inf from some step on (the first such step)."""
    step = view.nan_step
    if step is None:
        return []
    return [{
        "code": "ELB101", "anchor": "fit",
        "message": f"loss {fmt(view.losses[step])} from step {step}",
        "evidence": {"step": step, "value": str(view.losses[step])},
    }]


def _exploding_gradient(view: FitView) -> list[dict]:
    """ELB107: the global gradient norm is above `exploding_gradient_norm`, or NaN/Inf, at a step whose
    loss is still finite (the first such step; a NaN loss makes every gradient NaN, ELB101's story)."""
    limit = view.t["exploding_gradient_norm"]
    for step, (loss, norm) in enumerate(zip(view.losses, view.grads)):
        if loss is None or not math.isfinite(loss) or norm is None:
            continue
        if not math.isfinite(norm) or norm > limit:
            return [{
                "code": "ELB107", "anchor": "fit",
                "message": f"global gradient norm {fmt(norm)} at step {step} (threshold {fmt(limit)})",
                "evidence": {"step": step, "grad_norm": fmt(norm)},
            }]
    return []


def _huge_initial_loss(view: FitView) -> list[dict]:
    """ELB102: the initial loss is more than `huge_initial_loss_ratio` times (relative to
    max(|reference initial|, 1)) above the initial loss of a default mean-field surrogate."""
    first = view.losses[0] if view.losses else None
    if first is None or not math.isfinite(first) or not view.ref_finite:
        return []
    theirs = view.ref_finite[0]
    ratio = (first - theirs) / max(abs(theirs), 1.0)
    if ratio <= view.t["huge_initial_loss_ratio"]:
        return []
    return [{
        "code": "ELB102", "anchor": "surrogate",
        "message": (f"initial loss {fmt(first)} is {ratio:.0f}x the loss a default mean-field "
                    f"surrogate starts at ({fmt(theirs)}) on the same model; the variational "
                    "parameters start far from the posterior"),
        "evidence": {"initial_loss": first, "reference_initial_loss": theirs, "ratio": ratio},
    }]


def _diverging_loss(view: FitView) -> list[dict]:
    """ELB103: on a finite fit of at least 8 steps, the median loss of the last quarter is above the
    first quarter's by more than max(`diverging_min_rise`, `diverging_rise` x |first-quarter median|)."""
    steps, t = view.steps, view.t
    if view.nan_step is not None or steps < 8:
        return []
    quarter = max(steps // 4, 2)
    start, end = median(view.finite_losses[:quarter]), median(view.finite_losses[-quarter:])
    if end - start <= max(t["diverging_min_rise"], t["diverging_rise"] * abs(start)):
        return []
    return [{
        "code": "ELB103", "anchor": "fit",
        "message": (f"loss rose from {fmt(start)} to {fmt(end)} (medians of the first and last "
                    f"quarter of {steps} steps)"),
        "evidence": {"start": start, "end": end},
    }]


def _elbo_gap(view: FitView) -> list[dict]:
    """ELB108: after the same budget the user's final loss is above the reference's by more than
    max(`elbo_gap_min`, `elbo_gap_ratio` x |reference final|). The final losses are the 256-sample
    estimates after the fits when both have one, else the medians of the last 10% of steps."""
    t, finite_losses, ref_finite = view.t, view.finite_losses, view.ref_finite
    if view.nan_step is not None or len(finite_losses) < 4 or len(ref_finite) < 4:
        return []
    mine = median(finite_losses[-max(len(finite_losses) // 10, 2):])
    theirs = median(ref_finite[-max(len(ref_finite) // 10, 2):])
    mine_estimate = number(view.fit.get("final_estimate"))
    theirs_estimate = number(view.reference.get("final_estimate"))
    if (mine_estimate is not None and math.isfinite(mine_estimate)
            and theirs_estimate is not None and math.isfinite(theirs_estimate)):
        mine, theirs = mine_estimate, theirs_estimate
    gap = mine - theirs
    if gap <= max(t["elbo_gap_min"], t["elbo_gap_ratio"] * abs(theirs)):
        return []
    return [{
        "code": "ELB108", "anchor": "surrogate",
        "message": (f"after {view.steps} steps the loss is {fmt(mine)}, {fmt(gap)} above a default "
                    f"mean-field surrogate's {fmt(theirs)} with a clipped Adam: the family or its "
                    "initialisation holds the fit back"),
        "evidence": {"final_loss": mine, "reference_final_loss": theirs, "gap": gap},
    }]


def _restrictive_family(view: FitView) -> list[dict]:
    """ELB111: on a finite fit, a full-rank reference started from the user's fitted solution gains
    clearly (the decision is restrictive.decide's; the measurements are richer_family.py's)."""
    if view.nan_step is not None:
        return []
    finding = restrictive_family(view.trace.get("richer"), view.t)
    return [finding] if finding is not None else []


def _kl_dominates(view: FitView) -> list[dict]:
    """ELB109: the KL term outweighs the data term N-fold per batch (a Keras fit's split of the loss;
    `_kl_dominance` decides)."""
    finding = _kl_dominance(view.fit, view.t, view.trace.get("keras"))
    return [finding] if finding is not None else []


#: The checks a fit's trace goes through, code -> one function each, in the order of their findings
#: (ELB100, a failed run, and ELB106 of a model sampled without a fit come before: see `classify`).
FIT_CHECKS: tuple[tuple[str, Callable[[FitView], list[dict]]], ...] = (
    ("ELB106", _log_prob_shape),
    ("ELB105", _untrained_variables),
    ("ELB104", _parameter_leaves_support),
    ("ELB101", _nan_loss),
    ("ELB107", _exploding_gradient),
    ("ELB102", _huge_initial_loss),
    ("ELB103", _diverging_loss),
    ("ELB108", _elbo_gap),
    ("ELB111", _restrictive_family),
    ("ELB109", _kl_dominates),
)


def _kl_dominance(fit: dict, t: dict, keras: Optional[str] = None) -> Optional[dict]:
    """ELB109 from a trace's per-batch `kl` and `data` (see the module docstring), or None."""
    kls, datas = fit.get("kl") or [], fit.get("data") or []
    pairs = [(k, d) for k, d in ((number(k), number(d)) for k, d in zip(kls, datas))
             if k is not None and d is not None and math.isfinite(k) and math.isfinite(d)]
    if len(pairs) < KL_DOMINANCE_MIN_BATCHES:
        return None
    ratios = [k / max(abs(d), t["kl_dominance_data_floor"]) for k, d in pairs]
    ratio = median(ratios)
    kl, data = median(k for k, _ in pairs), median(d for _, d in pairs)
    if ratio < t["kl_dominance_ratio"] or kl < t["kl_dominance_min_kl"]:
        return None
    weight, size = number(fit.get("kl_weight")), number(fit.get("dataset_size"))
    if weight is not None and size and weight * size < t["kl_dominance_min_weight_n"]:
        return None
    batch = number(fit.get("batch_size"))
    message = (f"the KL term is {ratio:.0f}x the data term per batch (medians over {len(pairs)} batches: "
               f"KL {fmt(kl)} vs data {fmt(data)})")
    if weight is not None and size:
        message += (f"; the KL is weighted {fmt(weight)} in every batch of {fmt(batch)} while the data has "
                    f"N={int(size)} examples (a per-example ELBO weights it 1/N = {fmt(1 / size)})")
    elif size:
        message += f"; N={int(size)} examples" + (f" in batches of {fmt(batch)}" if batch else "")
    evidence: dict[str, Any] = {"ratio": ratio, "kl": kl, "data": data, "batches": len(pairs),
                                "kl_weight": weight, "dataset_size": int(size) if size else None,
                                "batch_size": int(batch) if batch else None}
    scale = fit.get("posterior_scale") or {}
    means = _finite_numbers(scale.get("mean") or [])
    prior = number(scale.get("prior"))
    if len(means) >= 2:
        evidence.update(posterior_scale_start=means[0], posterior_scale_end=means[-1], prior_scale=prior)
        toward = prior is not None and abs(means[-1] - prior) < abs(means[0] - prior)
        message += (f"; the posterior's mean stddev went from {fmt(means[0])} to {fmt(means[-1])}"
                    + (f", toward the prior's {fmt(prior)}" if toward else
                       (f" (prior {fmt(prior)})" if prior is not None else "")))
    if keras:
        evidence["keras"] = keras
    return {"code": "ELB109", "anchor": "fit",
            "message": message + ": the prior dominates the fit",
            "evidence": evidence}


def _failure_finding(failure: dict) -> dict:
    kind = failure.get("kind", "exception")
    finding = {
        "code": "ELB100", "anchor": "failure" if failure.get("line") else "fit",
        "message": failure.get("message") or "the model could not be executed",
        "evidence": {"kind": kind, "line": failure.get("line"),
                     "output_tail": failure.get("output_tail", "")[-2000:]},
    }
    if failure.get("confirm_only"):
        # elbolint's own use of the model failed (sampling it, pairing it), not the program: this
        # confirms a static finding that predicts it, and is never a row of its own
        finding["confirm_only"] = True
    return finding


def _sampled_findings(sampled: list) -> list[dict]:
    """ELB106 for JointDistributions sampled without a fit (drive_sample.py): a non-scalar log_prob of
    one joint sample, when the components' batch shapes differ (a model whose components all share one
    batch shape is batched on purpose)."""
    findings = []
    for record in sampled:
        shape, batches = record.get("logprob_shape"), record.get("batch_shapes") or []
        if not shape or any(b is None for b in batches) or len({tuple(b) for b in batches}) < 2:
            continue
        findings.append({
            "code": "ELB106", "anchor": "model", "line": record.get("line"),
            "message": (f"log_prob of one joint sample of {record.get('model', 'the model')} has shape "
                        f"{list(shape)}, not a scalar: its components' batch shapes differ "
                        f"({', '.join(str(list(b)) for b in batches)}), so the observations are a batch of "
                        "independent log-probs (wrap the likelihood in tfd.Independent(..., "
                        "reinterpreted_batch_ndims=1)); found by sampling the model, without a fit"),
            "evidence": {"logprob_shape": list(shape), "batch_shapes": [list(b) for b in batches]},
        })
    return findings


def trace_summary(trace: dict) -> dict:
    """A small JSON-safe digest of a run for reports: steps, seconds, first/last/min loss, sparkline."""
    fit = trace.get("fit") or {}
    losses = fit.get("loss", [])
    finite_losses = _finite_numbers(losses)
    summary = {
        "source": trace.get("source"),
        "steps": len(losses),
        "seconds": round(float(trace.get("seconds") or 0.0), 2),
        "initial_loss": fmt(losses[0]) if losses else None,
        "final_loss": fmt(losses[-1]) if losses else None,
        "min_loss": fmt(min(finite_losses)) if finite_losses else None,
        "sparkline": sparkline(losses),
    }
    if trace.get("sampled") is not None and not fit and not trace.get("failure"):
        summary["sampled"] = len(trace["sampled"])
    if trace.get("keras"):
        summary["keras"] = trace["keras"]
    reference = trace.get("reference") or {}
    if reference.get("loss"):
        summary["reference_initial_loss"] = fmt(reference["loss"][0])
        summary["reference_final_loss"] = fmt(reference["loss"][-1])
    elif reference.get("error"):
        summary["reference_error"] = reference["error"][:300]
    return summary

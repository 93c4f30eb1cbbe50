"""Several seeds per fit (issue 8): one seed under-samples a pathology that shows in some runs only
(the README's example turns NaN in most seeds, but not in every one), so each fit runs from the same
initial values once per seed (`seeds`, default 4; see fitting.seeded_fit) and this module classifies
each seed's run with the classifier (classify.classify, unchanged) and aggregates:

- a code observed in any seed is observed; its finding is the first seed's that showed it, and for
  the codes that follow the optimisation (`TRAJECTORY`) its message says in how many seeds and by
  which step ("loss NaN from step 230; in 3 of 4 seeds by step 260 (500 steps each)"), with the
  numbers in `evidence.seeds`;
- codes of seed-independent evidence (ELB105's untrained variables, ELB106's log-prob shape) are
  reported once, as the classifier words them.

One judgement of its own: a huge but finite gradient norm (ELB107) is dropped when the fit's optimizer
clips gradients (`trace["clipping"]`: `clipnorm`, `global_clipnorm` or `clipvalue` in its config),
since clipping is exactly what keeps such a step from throwing the parameters away (the classifier
measures the norm before the optimizer clips it). A non-finite norm is kept.

`coverage(trace)` words what a run covered, for `not-reproduced` ("4 seeds x 500 steps (the fit's own
num_steps)"). Pure Python, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Optional

from elbolint.dynamic.classify import classify

#: Codes whose evidence is a run's trajectory: they can differ from seed to seed.
TRAJECTORY = ("ELB101", "ELB102", "ELB103", "ELB104", "ELB107", "ELB108")


def seed_runs(trace: dict) -> list[dict]:
    """Each seed's trace: the trace with `fit` replaced by that seed's run."""
    runs = trace.get("seeds") or []
    if trace.get("failure") or not trace.get("fit") or len(runs) < 2:
        return [trace]
    shared = {k: v for k, v in trace["fit"].items()
              if k in ("logprob_shape", "expected_rank", "untracked", "no_trainable", "none_grad")}
    return [dict(trace, fit={**run, **shared}) for run in runs]


def _clipped(trace: dict, findings: list[dict]) -> list[dict]:
    if not trace.get("clipping"):
        return findings
    return [f for f in findings if not (f["code"] == "ELB107" and _finite_norm(f))]


def _finite_norm(finding: dict) -> bool:
    value = (finding.get("evidence") or {}).get("grad_norm")
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def classify_seeds(trace: dict, thresholds: Optional[dict] = None) -> list[dict]:
    """The classifier's findings over every seed of one fit's trace, aggregated (module docstring)."""
    runs = seed_runs(trace)
    if len(runs) == 1:
        return _clipped(trace, classify(trace, thresholds))
    per_seed = [_clipped(trace, classify(run, thresholds)) for run in runs]
    total = len(runs)
    budget = trace.get("budget")
    found: dict[str, dict] = {}
    order: list[str] = []
    for index, findings in enumerate(per_seed):
        for finding in findings:
            code = finding["code"]
            if code not in found:
                found[code] = {"finding": finding, "seeds": [], "steps": []}
                order.append(code)
            entry = found[code]
            if index not in entry["seeds"]:
                entry["seeds"].append(index)
                step = (finding.get("evidence") or {}).get("step")
                if isinstance(step, int):
                    entry["steps"].append(step)
    result = []
    for code in order:
        entry = found[code]
        finding = dict(entry["finding"])
        if code in TRAJECTORY:
            count = len(entry["seeds"])
            text = f"in {count} of {total} seeds"
            if entry["steps"]:
                text += f" by step {max(entry['steps'])}"
            if budget:
                text += f" ({budget} steps each)"
            finding["message"] = f"{finding['message']}; {text}"
            finding["evidence"] = dict(finding.get("evidence") or {}, seeds={
                "observed": count, "of": total, "which": entry["seeds"], "steps": entry["steps"]})
        result.append(finding)
    return result


def coverage(trace: dict) -> str:
    """What a fit's run covered: seeds, steps, and where the step budget came from."""
    fit = trace.get("fit") or {}
    runs = trace.get("seeds") or ([fit] if fit else [])
    steps = max((len(run.get("loss") or []) for run in runs), default=0)
    budget = trace.get("budget") or steps
    user = trace.get("user_num_steps")
    if user is not None and budget and user > budget:
        origin = f"the fit's own num_steps={user}, capped"
    elif user is not None:
        origin = "the fit's own num_steps"
    else:
        origin = "elbolint's step budget"
    seeds = len(runs) or 1
    text = f"{seeds} seed{'s' if seeds != 1 else ''} x {budget} steps ({origin})"
    shorter = [len(run.get("loss") or []) for run in runs if len(run.get("loss") or []) < budget]
    if shorter and len(shorter) == len(runs):
        text += f"; every seed stopped early (at most {steps} steps: converged or stopped)"
    return text

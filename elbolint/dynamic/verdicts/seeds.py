"""Several seeds per fit: one seed under-samples a pathology that shows in some runs only
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
measures the norm before the optimizer clips it). A non-finite norm is kept. Likewise when the
counterfactual below re-ran the seeds clipped and they did no better: the huge norm did no harm.

ELB110 (`_counterfactual`): when the fit's optimizer does not clip and its runs were unstable, the fit
driver re-runs the same seeds with the gradients clipped (fitting._Runner._clipped_runs); clipping
prevents the divergence when at most a quarter as many clipped seeds go non-finite, or, all finite,
the clipped runs end clearly lower. It is what confirms a missing-clipping finding: a NaN that clipping does not prevent
(a raw scale, a huge learning rate) is another finding's evidence, not this one's.

ELB112 (`_smaller_rate`): when the fit's optimizer has a constant learning rate of at least 0.1 and
its runs were unstable (a non-finite loss, a gradient norm above the threshold, or a rising loss:
what ELB009 claims a high rate does), the fit driver re-runs the same seeds with the same optimizer
at a 10x smaller rate (fitting._Runner._smaller_rate_runs); by the same criterion (`prevents`) it is
what confirms a high-learning-rate finding (ELB009): a NaN that a 10x smaller rate does not prevent
is another finding's evidence.

`coverage(trace)` words what a run covered, for `not-reproduced` ("4 seeds x 500 steps (the fit's own
num_steps)"). Pure Python, no TensorFlow.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Optional

from elbolint.dynamic.verdicts.classify import classify, finite, number
from elbolint.dynamic.verdicts.support import findings as support_findings

#: Codes whose evidence is a run's trajectory: they can differ from seed to seed.
TRAJECTORY = ("ELB101", "ELB102", "ELB103", "ELB104", "ELB107", "ELB108")


def seed_runs(trace: dict) -> list[dict]:
    """Each seed's trace: the trace with `fit` replaced by that seed's run."""
    runs = trace.get("seeds") or []
    if trace.get("failure") or not trace.get("fit") or len(runs) < 2:
        return [trace]
    shared = {k: v for k, v in trace["fit"].items()
              if k in ("logprob_shape", "expected_rank", "untracked", "no_trainable", "none_grad", "constrained",
                       "watched")}
    return [dict(trace, fit={**run, **shared}) for run in runs]


def _clipped(trace: dict, findings: list[dict]) -> list[dict]:
    if not trace.get("clipping"):
        return findings
    return [f for f in findings if not (f["code"] == "ELB107" and _finite_norm(f))]


def _finite_norm(finding: dict) -> bool:
    value = (finding.get("evidence") or {}).get("grad_norm")
    if value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def classify_seeds(trace: dict, thresholds: Optional[dict] = None) -> list[dict]:
    """The classifier's findings over every seed of one fit's trace, aggregated (module docstring),
    plus ELB110 when the clipped counterfactual shows clipping fixes what the seeds showed, and ELB112
    when the re-run at a 10x smaller learning rate does."""
    findings, confirmed_by_clipping = _aggregate(trace, thresholds) + support_findings(trace), _counterfactual(trace)
    confirmed_by_clipping += _smaller_rate(trace)
    counterfactual = (trace.get("fit") or {}).get("counterfactual")
    if counterfactual and counterfactual.get("runs") and not confirmed_by_clipping \
            and not too_few_seeds(trace, counterfactual["runs"]):
        # the same seeds clipped did no better: a huge but finite gradient norm did no harm here
        findings = [f for f in findings if not (f["code"] == "ELB107" and _finite_norm(f))]
    return findings + confirmed_by_clipping


#: ELB110 also when every run is finite but clipping ends clearly better: by this many nats at least,
#: and by this fraction of the clipped loss's magnitude.
CLIPPING_GAIN_MIN, CLIPPING_GAIN_RATIO = 10.0, 0.1


def _counterfactual(trace: dict) -> list[dict]:
    """ELB110 from the fit's counterfactual (fitting._Runner._clipped_runs: the same seeds re-run with
    each gradient clipped to norm 1, as clipnorm=1.0 does): clipping prevents the divergence when at most a
    quarter as many clipped seeds go non-finite as unclipped ones (none, unless all four did), or,
    all finite, the clipped runs end clearly lower."""
    fit = trace.get("fit") or {}
    counterfactual = fit.get("counterfactual")
    if not counterfactual or not counterfactual.get("runs"):
        return []
    clipnorm = counterfactual.get("clipnorm")
    verdict = prevents(trace, counterfactual["runs"])
    if verdict is None:
        return []
    evidence = {"clipnorm": clipnorm, "non_finite_unclipped": verdict["non_finite_before"],
                "non_finite_clipped": verdict["non_finite_after"], "of": verdict["of"],
                "of_unclipped": verdict["of_before"]}
    total = verdict["of"]
    if "final_after" not in verdict:
        message = (f"re-run with gradients clipped to norm {clipnorm:g}: the loss goes non-finite in "
                   f"{verdict['non_finite_after']} of {total} seeds (unclipped: {verdict['non_finite_before']} "
                   f"of {verdict['of_before']})")
    else:
        before, after = verdict["final_before"], verdict["final_after"]
        evidence.update(final_unclipped=before, final_clipped=after)
        message = (f"re-run with gradients clipped to norm {clipnorm:g}: the final loss is {after:.4g} "
                   f"instead of {before:.4g} ({_median_of(total)})")
    return [{"code": "ELB110", "message": message, "anchor": "fit", "evidence": evidence}]


def _median_of(total: int) -> str:
    return f"median of {total} seeds" if total != 1 else "1 seed"


def _smaller_rate(trace: dict) -> list[dict]:
    """ELB112 from the fit's smaller-rate counterfactual (fitting._Runner._smaller_rate_runs: the same
    seeds re-run with the same optimizer at a 10x smaller constant learning rate), by ELB110's
    criterion (`prevents`): at most a quarter as many seeds go non-finite, or, all finite, the
    re-runs end clearly lower. It is what confirms a high-learning-rate finding (ELB009)."""
    rerun = (trace.get("fit") or {}).get("smaller_rate")
    if not rerun or not rerun.get("runs"):
        return []
    verdict = prevents(trace, rerun["runs"])
    if verdict is None:
        return []
    rate, smaller = rerun.get("learning_rate"), rerun.get("smaller")
    evidence = {"learning_rate": rate, "smaller_learning_rate": smaller, **verdict}
    total = verdict["of"]
    head = f"re-run at learning rate {smaller:g} ({rerun.get('factor', 10):g}x smaller than {rate:g})"
    if "final_after" not in verdict:
        message = (f"{head}: the loss goes non-finite in {verdict['non_finite_after']} of {total} seeds "
                   f"(at {rate:g}: {verdict['non_finite_before']} of {verdict['of_before']})")
    else:
        message = (f"{head}: the final loss is {verdict['final_after']:.4g} instead of "
                   f"{verdict['final_before']:.4g} ({_median_of(total)})")
    return [{"code": "ELB112", "message": message, "anchor": "fit", "evidence": evidence}]


#: A re-run with the fix shows that it prevents a non-finite loss only over this many re-run seeds at
#: least: measured, a 10x smaller rate that still goes NaN in 5 of 10 seeds natively went NaN in 0 of 2
#: re-run seeds (a 1-in-4 chance), which read as "the smaller rate prevents it". Over 3 seeds that
#: chance is 1 in 8, over 4 1 in 16. The re-runs take this many seeds even when the fit's own runs had
#: fewer (the share of non-finite seeds is compared).
MIN_COUNTERFACTUAL_SEEDS = 3
#: A re-run that ends lower shows it only over this many seeds paired with the fit's own (a majority
#: of them lower, seed for seed): one pair says nothing about the seed-to-seed spread.
MIN_PAIRED_SEEDS = 2


def counterfactual_seeds(runs: list[dict], fixed_draws: bool = False) -> int:
    """How many seeds a counterfactual re-run of `runs` (the fit's own, {loss} each) needs to be able to
    show anything (`prevents`): MIN_COUNTERFACTUAL_SEEDS when some run went non-finite, else as many as
    the runs (their final losses are compared seed for seed); 0 when those are too few to pair. One
    when the program fixes its own random draws (`fixed_draws`, replays.py): every run of it is the
    same run, natively too, so one re-run shows all there is."""
    if fixed_draws:
        return 1
    if any(not finite_run(r.get("loss") or []) for r in runs):
        return max(len(runs), MIN_COUNTERFACTUAL_SEEDS)
    return len(runs) if len(runs) >= MIN_PAIRED_SEEDS else 0


def too_few_seeds(trace: dict, reruns: list[dict]) -> bool:
    """A counterfactual re-run over too few seeds to show anything (`counterfactual_seeds`): it neither
    confirms nor clears anything."""
    fit = trace.get("fit") or {}
    needed = counterfactual_seeds(trace.get("seeds") or [fit], bool((trace.get("replays") or {}).get("fixed_draws")))
    return needed == 0 or len(reruns) < needed


def prevents(trace: dict, reruns: list[dict]) -> Optional[dict]:
    """Whether a counterfactual re-run of the seeds (`reruns`: {finite, final} per seed) fixes what
    the fit's own runs showed (ELB110's and ELB112's shared criterion), over enough seeds
    (`counterfactual_seeds`): at most a quarter the share of re-run seeds go non-finite
    that went non-finite among the original runs (none, unless all four did), or, every run of both
    finite, the re-runs' median final loss lower by more than max(CLIPPING_GAIN_MIN, CLIPPING_GAIN_RATIO
    x |re-run final|) *and* lower seed for seed in a majority of the paired seeds (a median over a few
    seeds of an intermittent fit is carried by its bad seeds: measured, a fit bad in 2 of 4 seeds had a
    clipped median far lower while clipping made 4 of 5 seeds worse natively). The re-runs may cover
    more seeds than the original runs (a hand-written loop replayed twice is re-run over three seeds);
    the loss comparison pairs seed with seed. The numbers when it does, None when it does not."""
    fit = trace.get("fit") or {}
    runs = trace.get("seeds") or [fit]
    if too_few_seeds(trace, reruns):
        return None
    before_bad = sum(1 for r in runs if not finite_run(r.get("loss") or []))
    after_bad = sum(1 for c in reruns if not c.get("finite"))
    verdict = {"non_finite_before": before_bad, "non_finite_after": after_bad, "of": len(reruns),
               "of_before": len(runs)}
    # at most a quarter of the original share: after/len(reruns) <= (before/len(runs)) / 4, rounded down
    # as `before // 4` is when both have as many seeds
    if before_bad and after_bad <= (before_bad * len(reruns)) // (4 * len(runs)):
        return verdict
    if before_bad or after_bad:
        return None
    total = min(len(runs), len(reruns))
    maybe_finals = [final_loss(r.get("loss") or []) for r in runs[:total]]
    maybe_after = [c.get("final") for c in reruns[:total]]
    finals = [v for v in maybe_finals if v is not None]
    after_finals = [v for v in maybe_after if v is not None]
    if len(finals) < len(maybe_finals) or len(after_finals) < len(maybe_after):
        return None
    before, after = median(finals), median(after_finals)
    better = sum(1 for b, a in zip(finals, after_finals) if a < b)
    if before - after > max(_gain_min(trace), CLIPPING_GAIN_RATIO * abs(after)) and 2 * better > total:
        return dict(verdict, of=total, of_before=total, final_before=before, final_after=after,
                    better_seeds=better)
    return None


def _gain_min(trace: dict) -> float:
    """CLIPPING_GAIN_MIN nats of the whole ELBO, in the run's loss units: a Keras fit reports the loss
    per example (the mean over the batch plus the layers' KL, already divided by N), so the nats are
    divided by the examples it fits (measured: a BNN stuck at a per-example loss of 0.42 at rate 1.0
    ends at 0.014 at rate 0.1 — 100 nats over its 256 examples, invisible to a 10-nat floor)."""
    size = number((trace.get("fit") or {}).get("dataset_size")) if trace.get("source") == "keras" else None
    return CLIPPING_GAIN_MIN / size if size and size > 1 else CLIPPING_GAIN_MIN


def finite_run(losses) -> bool:
    """Every loss of a run is finite (trace values may be "nan" strings); shared with fitting.py."""
    return bool(losses) and all(finite(v) for v in losses)


def final_loss(losses) -> Optional[float]:
    """Where a run ended: the median of its last tenth of losses, None when not finite; the same
    number for a run and its clipped re-run (fitting._Runner._clipped_runs)."""
    last = losses[-max(1, len(losses) // 10):] if losses else []
    tail = [x for x in (number(v) for v in last) if x is not None and math.isfinite(x)]
    if not last or len(tail) < len(last):
        return None
    return median(tail)


def _aggregate(trace: dict, thresholds: Optional[dict]) -> list[dict]:
    runs = seed_runs(trace)
    if len(runs) == 1:
        return _clipped(trace, classify(trace, thresholds))
    per_seed = [_clipped(trace, classify(run, thresholds)) for run in runs]
    total = len(runs)
    budget = trace.get("budget")
    found: dict[tuple[str, str], dict] = {}  # (code, parameter) -> the finding, its seeds and steps
    order: list[tuple[str, str]] = []
    for index, findings in enumerate(per_seed):
        for finding in findings:
            code = (finding["code"], str((finding.get("evidence") or {}).get("parameter", "")))  # per parameter
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
    for key in order:
        entry = found[key]
        finding = dict(entry["finding"])
        if key[0] in TRAJECTORY:
            count = len(entry["seeds"])
            text = f"in {count} of {total} seeds"
            if entry["steps"]:
                text += f" by step {max(entry['steps'])}"
            if budget:  # "up to": a run that went NaN (or whose program stopped) recorded fewer
                short = any(len(run.get("loss") or []) < budget for run in runs)
                text += f" ({'up to ' if short else ''}{budget} steps each)"
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
    source = trace.get("source")
    if source in ("loop", "keras"):  # the program's own training, recorded as it ran (replays.py: re-runs)
        unit = "batches" if source == "keras" else "steps"
        count = len(runs) if trace.get("seeds") else 1
        runs_text = f"{count} runs of the program, seeds 0-{count - 1}" if count > 1 else "one run"
        skipped = (trace.get("replays") or {}).get("skipped") or []
        if any("fixes its own random draws" in note for note in skipped):
            runs_text = "one run: the program fixes its own random draws"
        elif count == 1 and any(note.startswith("seed ") and " not run:" in note for note in skipped):
            runs_text = "one run: no time was left for more seeds"
        cut = trace.get("time_cut") or {}
        if cut:
            runs_text += (f"; stopped by the time budget after {cut.get('steps')} {unit} "
                          f"({number(cut.get('seconds')) or 0:.0f} s)")
        return (f"the program's own training: {steps} {unit} recorded ({runs_text}; elbolint's budget is "
                f"{budget}{', reached' if steps >= budget else ''})")
    seeds = len(runs) or 1
    cut = trace.get("time_cut") or {}
    if cut:  # a slow fit: its first seed stopped at its share of the time, the later runs took as many steps
        text = (f"{seeds} seed{'s' if seeds != 1 else ''} x {cut.get('steps')} steps (of {budget}, {origin}: "
                f"stopped by the time budget after {number(cut.get('seconds')) or 0:.0f} s)")
        return text
    text = f"{seeds} seed{'s' if seeds != 1 else ''} x {budget} steps ({origin})"
    shorter = [len(run.get("loss") or []) for run in runs if len(run.get("loss") or []) < budget]
    if shorter and len(shorter) == len(runs):
        text += f"; every seed stopped early (at most {steps} steps: converged or stopped)"
    return text


# ------------------------------------------------------- when a counterfactual re-run is worth making
def unstable(runs, exploding: float) -> bool:
    """Some seed's loss went non-finite, or its gradient norm exceeded the threshold."""
    return any(not finite_run(r["loss"]) or any(not math.isfinite(g) or g > exploding for g in r["grad_norm"])
               for r in runs)


def rate_unstable(runs, exploding: float, rise: float, min_rise: float) -> bool:
    """What ELB009 claims a high rate does: a seed's loss went non-finite or its gradient norm
    exceeded the threshold (unstable), or its loss rose (ELB103's test: the median of the last
    quarter above the first quarter's by max(min_rise, rise x |start|))."""
    if unstable(runs, exploding):
        return True
    for run in runs:
        losses = run["loss"]
        if len(losses) >= 8:
            quarter = max(len(losses) // 4, 2)
            start, end = median(losses[:quarter]), median(losses[-quarter:])
            if end - start > max(min_rise, rise * abs(start)):
                return True
    return False

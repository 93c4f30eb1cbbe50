"""In the worker: the program's own training run again, several seeds and with the findings' fixes
(a counterfactual re-run for ELB003, clipped, and ELB009, at a smaller rate, in hand-written loops and
Keras fits too, and several seeds for every kind of run).

Why in the worker: a `fit_surrogate_posterior` fit is re-fitted in-process from its arguments
(fitting.py), but a hand-written loop or a Keras `fit` is the user's code: the honest re-run is the
whole program again in a fresh sandboxed child, as a *variant* (variants.py says what changes in it).
This module decides which replays a first run calls for and folds them into its trace in the shape
the fit driver's own seeds and counterfactuals have, so the verdicts (seeds.py, confirmation.py) judge
every kind of run by the same rules:

- `seeds`: the first trace's `fit` is seed 0; seeds 1..n-1 are replays with `{"seed": k}`. A replay
  whose losses repeat seed 0's exactly means the program fixes its own draws (stateless seeds): it is
  not counted as another seed (that would claim "in 4 of 4 seeds" of one run), and no more seeds run.
- `fit.counterfactual` (ELB110's input): when a finding of the file is ELB003, the run's optimizer does
  not clip and some seed was unstable (seeds.unstable), the same seeds again with `{"clip": 1.0}`.
- `fit.smaller_rate` (ELB112's input): when a finding is ELB009 and the run's optimizer has a constant
  rate of at least optimizers.RATE_COUNTERFACTUAL_FROM, the same seeds again with `{"rate_factor": 10}`
  (measured: a Keras BNN at rate 1.0 stays finite and flat, stuck 20x above where rate 0.1 ends; no
  instability test would have asked for the re-run).

A replay counts only when it recorded the same run (same driver, same training-site line) and, for a
counterfactual, when the variant really changed something (steps clipped; the rate set). Everything
stays inside the per-file timeout: a replay starts only when the time left covers what the first run
took without its reference fits (once a replay has run, what the longest replay took), runs with the
time left as its own limit, and what did not fit is listed in `replays.skipped`
(the verdict then rests on fewer seeds, and says so). Replays skip the reference fit (it judges the
first run only).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

#: The sources whose runs are the program's own training, re-run by replaying the program.
REPLAYED = ("loop", "keras")
#: The counterfactuals' fixes, as variants.py applies them (the fit driver's own numbers).
CLIP_NORM = 1.0
RATE_FACTOR = 10.0
#: A counterfactual of runs that broke runs at least this many steps (_counterfactual_steps).
MIN_COUNTERFACTUAL_STEPS = 50


def run_with_replays(job: dict, run: Callable[[dict, float], dict]) -> dict:
    """The first run of `job`, then its replays (module docstring). `run(job, timeout)` runs one job in
    a sandboxed child and returns its trace."""
    settings = job["settings"]
    timeout = float(settings["timeout"])
    started = time.monotonic()
    # a run for one of several flagged sites (site_runs.py) is judged within its share (`timeout`), but
    # killed only when the file's whole time is spent: a slow start must not turn into a timeout
    trace = run(job, max(timeout, float(settings.get("hard_timeout") or 0.0)))
    if not _replayable(trace):
        return trace
    first = trace["fit"]
    took = _own_seconds(trace, max(float(trace.get("seconds") or 0.0), time.monotonic() - started))
    session = _Session(job, run, started + timeout, took, trace)
    flagged = set(settings.get("flagged_codes") or [])
    rate = first.get("learning_rate")
    from elbolint.dynamic.child.optimizers import RATE_COUNTERFACTUAL_FROM
    from elbolint.dynamic.verdicts.seeds import MIN_PAIRED_SEEDS, counterfactual_seeds, unstable

    clip_wanted = "ELB003" in flagged and not first.get("clipping")
    rate_wanted = "ELB009" in flagged and isinstance(rate, (int, float)) and rate >= RATE_COUNTERFACTUAL_FROM
    # the seeds leave half the time to the counterfactuals a finding may need
    seeds_until = session.share(0.5 if clip_wanted or rate_wanted else 1.0)
    runs = [first]
    for seed in range(1, max(1, int(settings.get("seeds", 1)))):
        replay = session.replay({"seed": seed}, f"seed {seed}", until=seeds_until)
        if replay is None:
            continue
        if _same_steps(replay, first):
            session.note(f"seed {seed} repeated seed 0 exactly: the program fixes its own random draws, "
                         "so its runs are one seed")
            session.fixed_draws = True
            break
        runs.append(dict(replay, seed=seed))
    if len(runs) > 1:
        trace["seeds"] = [dict(first, seed=0)] + runs[1:]
    thresholds = settings.get("thresholds") or {}
    exploding = float(thresholds.get("exploding_gradient_norm", 1000.0))
    records = [_steps(r) for r in runs]
    steps = _counterfactual_steps(records, int(trace.get("budget") or settings["steps"]))
    cf_seeds = counterfactual_seeds(records, session.fixed_draws)  # (fewer would confirm nothing)
    clip_wanted = clip_wanted and unstable(records, exploding)
    for name, wanted in (("clipped", clip_wanted), ("smaller-rate", rate_wanted)):
        if wanted and not cf_seeds:
            session.note(f"{name} re-run not made: the program's own run ended finite in {len(runs)} seed only, "
                         f"and comparing where runs end needs {MIN_PAIRED_SEEDS} seeds")
    if clip_wanted:
        reruns = session.counterfactual({"clip": CLIP_NORM}, cf_seeds, "clipped", _clipped, steps)
        if reruns:
            first["counterfactual"] = {"clipnorm": CLIP_NORM, "runs": reruns}
    if rate_wanted:  # ELB009 is a finding of the file: a stuck fit is its symptom too, not only an unstable one
        reruns = session.counterfactual({"rate_factor": RATE_FACTOR}, cf_seeds, "smaller-rate", _slowed, steps)
        if reruns:
            first["smaller_rate"] = {"learning_rate": rate, "smaller": rate / RATE_FACTOR, "factor": RATE_FACTOR,
                                     "runs": reruns}
    trace["replays"] = session.summary()
    return trace


class _Session:
    """The replays of one file: the time left, what ran, what was skipped and why."""

    def __init__(self, job: dict, run, deadline: float, took: float, trace: dict):
        self.job, self.run, self.deadline, self.took = job, run, deadline, took
        self.source = trace.get("source")
        self.line = (trace.get("site") or {}).get("line", trace.get("line"))
        self.steps = len((trace.get("fit") or {}).get("loss") or [])
        self.ran = 0
        self.seconds = 0.0
        self.skipped: list[str] = []
        self.fixed_draws = False  # a seed's replay repeated the first run exactly
        # the longest whole replay so far: the first run also fitted the reference and may have been
        # slowed by a cold start, so once a replay has run, the next is expected to take what it took
        self.replay_took: Optional[float] = None

    def note(self, text: str) -> None:
        self.skipped.append(text)

    def share(self, fraction: float) -> float:
        """The moment `fraction` of the time left is spent."""
        now = time.monotonic()
        return now + fraction * max(0.0, self.deadline - now)

    def replay(self, variant: dict, name: str, until: Optional[float] = None,
               steps: Optional[int] = None) -> Optional[dict]:
        """The `fit` of one replay (at most `steps` steps), or None (out of time, failed, or another
        run recorded)."""
        now = time.monotonic()
        left = min(self.deadline, until or self.deadline) - now
        took, what = (self.replay_took, "a replay") if self.replay_took is not None else (self.took, "the first run")
        expected = took * (min(1.0, steps / self.steps) if steps and self.steps else 1.0)
        if left < expected * 1.2 + 1.0:
            self.note(f"{name} not run: the per-file timeout left {max(left, 0):.0f} s for it, {what} "
                      f"took {took:.0f} s")
            return None
        settings = dict(self.job["settings"], reference=False, timeout=self.deadline - now,  # its own time budget
                        replay=True)
        if steps:
            settings["steps"] = steps
        started = time.monotonic()
        trace = self.run(dict(self.job, settings=settings, variant=variant), self.deadline - now)
        self.seconds += time.monotonic() - started
        self.ran += 1
        if not steps or steps >= self.steps:  # a whole replay: what the next one will take (no reference fit)
            self.replay_took = max(self.replay_took or 0.0, time.monotonic() - started)
        site = (trace.get("site") or {}).get("line", trace.get("line"))
        if trace.get("failure") and not (trace.get("fit") or {}).get("loss"):
            self.note(f"{name}: the replay failed ({(trace['failure'].get('message') or '')[:120]})")
            return None
        if trace.get("source") != self.source or site != self.line or not (trace.get("fit") or {}).get("loss"):
            self.note(f"{name}: the replay recorded another run ({trace.get('source')} at line {site}); not used")
            return None
        fit = dict(trace["fit"])
        fit["variant"] = trace.get("variant") or {}
        return fit

    def counterfactual(self, change: dict, seeds: int, name: str, applied: Callable[[dict], Optional[str]],
                       steps: int) -> list:
        """The same seeds as the runs, each replayed with `change`: [{seed, finite, final,
        max_grad_norm}], the fit driver's counterfactual records; [] when any seed could not be
        replayed or the change did not take (a partial counterfactual would compare unequal sets)."""
        from elbolint.dynamic.verdicts.seeds import final_loss, finite_run

        reruns = []
        for seed in range(seeds):
            fit = self.replay(dict(change, seed=seed), f"{name} re-run of seed {seed}", steps=steps)
            if fit is None:
                return []
            problem = applied(fit.get("variant") or {})
            if problem:
                self.note(f"{name} re-run not used: {problem}")
                return []
            norms = [g for g in fit.get("grad_norm") or [] if isinstance(g, (int, float))]
            reruns.append({"seed": seed, "finite": finite_run(fit.get("loss") or []),
                           "final": final_loss(fit.get("loss") or []), "max_grad_norm": max(norms, default=None)})
        return reruns

    def summary(self) -> dict:
        summary = {"ran": self.ran, "seconds": round(self.seconds, 2), "skipped": self.skipped}
        return dict(summary, fixed_draws=True) if self.fixed_draws else summary


def _own_seconds(trace: dict, wall: float) -> float:
    """What a replay of the first run is expected to take: its wall time without the reference fits
    only the first run makes (the default surrogate's, the full-rank and flow references: measured, 10 s
    of a loop's 19 s first run, which left no time for a second seed), never less than its steps took."""
    def seconds(part) -> float:
        value = part.get("seconds") if isinstance(part, dict) else None
        return float(value) if isinstance(value, (int, float)) else 0.0

    richer = trace.get("richer")
    extras = seconds(trace.get("reference")) + seconds(richer) + seconds((richer or {}).get("flow"))
    return max(wall - extras, seconds(trace.get("fit")))


def _replayable(trace: dict) -> bool:
    fit = trace.get("fit") or {}
    return (trace.get("source") in REPLAYED and bool(fit.get("loss")) and not trace.get("failure")
            and not trace.get("seeds"))


def _steps(fit: dict) -> dict:
    """A run as seeds.unstable reads it (Keras may leave a batch's gradient norm unknown)."""
    from elbolint.dynamic.verdicts.classify import number

    def numbers(values) -> list:
        return [v for v in (number(x) for x in values or []) if v is not None]

    return {"loss": numbers(fit.get("loss")), "grad_norm": numbers(fit.get("grad_norm"))}


def _counterfactual_steps(records: list[dict], budget: int) -> int:
    """Steps a counterfactual replay needs: when some runs went non-finite, whether the fix keeps the
    run finite twice as long as the latest of them took to break (at least MIN_COUNTERFACTUAL_STEPS;
    seeds.prevents then counts non-finite runs only); when every run was finite, the whole budget
    (the final losses are compared)."""
    import math

    broke = []
    for record in records:
        bad = next((i for i, v in enumerate(record["loss"]) if not math.isfinite(v)), None)
        if bad is not None:
            broke.append(bad + 1)
    if not broke:
        return budget
    return min(budget, max(MIN_COUNTERFACTUAL_STEPS, 2 * max(broke)))


def _same_steps(replay: dict, first: dict) -> bool:
    """The replay repeated the first run step for step (NaN equal to NaN)."""
    def key(values) -> list:
        return [repr(v) for v in values or []]

    return key(replay.get("loss")) == key(first.get("loss")) and \
        key(replay.get("grad_norm")) == key(first.get("grad_norm"))


def _clipped(variant: dict) -> Optional[str]:
    return None if variant.get("clipped_steps") else "no step of the run went through the clipping"


def _slowed(variant: dict) -> Optional[str]:
    rates = variant.get("rates") or []
    errors = [r["error"] for r in rates if "error" in r]
    if errors:
        return errors[0]
    return None if rates else "the run's optimizer never applied a step"

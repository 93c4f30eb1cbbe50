"""The per-step series of dynamic runs, for the formats that show curves (the HTML report, html.py)
and the TensorBoard logs (elbolint/tensorboard_logs.py).

Why a side channel: a finding's `Diagnostic.dynamic` verdict carries only a digest of its run
(classify.trace_summary: first/last/min loss, a sparkline), while the curves need the whole trace the
child recorded (contract.Trace: every seed's loss, gradient norm and watched minima, the clipped and
smaller-rate re-runs, the reference fit, ELB111's richer family). dynamic mode hands each file's trace
over before judging it (`run_dynamic(..., on_trace=evidence.keep)`), and `Evidence.part_for(d)` finds
the run a verdict names (its digest is recomputed from each of the file's
runs with classify.trace_summary, the function that made it).

`runs(part)` is the one reading of a trace both outputs share: one `Series` group per seed and
variant (the user's run, its replays, the clipped and smaller-rate re-runs, the reference fit, the
richer family), values exactly as recorded (None where a step recorded nothing), so both the SVG and
the event files can be tested against the trace itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, TypeGuard

from elbolint.diagnostics import Diagnostic

#: The digest keys that identify a run (classify.trace_summary computes them from the run's trace).
_DIGEST_KEYS = ("source", "steps", "initial_loss", "final_loss", "min_loss", "sparkline")


def number(value: Any) -> Optional[float]:
    """A recorded number as a float (NaN and the infinities included; "nan"/"inf" strings too), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def finite(value: Optional[float]) -> TypeGuard[float]:
    """A number that can be drawn (not None, not NaN or infinite)."""
    return value is not None and math.isfinite(value)


@dataclass
class Run:
    """One run of a training site: `seed` (None for the reference), `variant` ("user", "replay",
    "clipped", "smaller-rate", "reference", "richer"), its per-step `series` (tag -> values, index =
    step; a watched minimum has one more value than the loss: its value before the first step) and its
    end-of-run `points` (tag -> value: a re-run that recorded only its final loss)."""

    seed: Optional[int]
    variant: str
    label: str
    series: dict[str, list[Optional[float]]] = field(default_factory=dict)
    points: dict[str, Optional[float]] = field(default_factory=dict)
    note: str = ""


def site_name(part: dict, locate=None) -> str:
    """"fit at line 22", "loop at line 29", "keras fit at cell 25:9": the run's site in a few words, in
    the coordinates the verdict's text uses (`locate`: a notebook's virtual line -> "cell 25:9")."""
    site = part.get("site") or {}
    kind = site.get("kind") or part.get("source") or "run"
    kind = {"fit_surrogate_posterior": "fit", "keras": "keras fit", "minimize": "tfp.math.minimize"}.get(kind, kind)
    line = site.get("line", part.get("line"))
    if isinstance(line, int) and locate is not None:
        try:
            return f"{kind} at {locate(line)}"
        except (IndexError, ValueError, AttributeError):
            pass
    return f"{kind} at line {line}" if isinstance(line, int) else str(kind)


def _series(values: Any) -> list[Optional[float]]:
    return [number(v) for v in values] if isinstance(values, list) else []


def _seed_runs(part: dict) -> list[Run]:
    fit = part.get("fit") or {}
    records = part.get("seeds") or ([fit] if fit else [])
    runs = []
    for index, record in enumerate(records):
        variant = record.get("variant") or {}
        seed = record.get("seed", variant.get("seed", index))
        kind = "user"
        details = []
        if variant.get("clip") is not None:
            kind = "clipped"
            details.append(f"clipnorm {variant['clip']:g}")
        if variant.get("rate_factor") is not None:
            kind = "smaller-rate" if kind == "user" else kind
            details.append(f"rate / {variant['rate_factor']:g}")
        if variant and kind == "user":
            kind = "replay"
        run = Run(seed, kind, f"seed {seed}" + (f" ({', '.join(details)})" if details else ""))
        for tag in ("loss", "grad_norm", "kl", "data"):
            if record.get(tag):
                run.series[tag] = _series(record[tag])
        for label, minima in (record.get("positive") or {}).items():
            run.series[f"min {label}"] = _series(minima)
        scale = record.get("posterior_scale") or {}
        for key in ("min", "mean"):
            if scale.get(key):
                run.series[f"posterior scale {key}"] = _series(scale[key])
        runs.append(run)
    return runs


def _rerun_runs(part: dict) -> list[Run]:
    """The clipped and smaller-rate re-runs of a fit (their final loss per seed; no per-step series)."""
    fit = part.get("fit") or {}
    runs = []
    clipped = fit.get("counterfactual") or {}
    smaller = fit.get("smaller_rate") or {}
    for variant, record, detail in (
            ("clipped", clipped, f"clipnorm {number(clipped.get('clipnorm')) or 0:g}"),
            ("smaller-rate", smaller, f"learning rate {number(smaller.get('smaller')) or 0:g}"
                                      f" (/{number(smaller.get('factor')) or 0:g})")):
        for rerun in record.get("runs") or []:
            seed = rerun.get("seed")
            run = Run(seed, variant, f"seed {seed} ({detail})", note=detail)
            run.points["final_loss"] = number(rerun.get("final")) if rerun.get("finite", True) else math.nan
            run.points["max_grad_norm"] = number(rerun.get("max_grad_norm"))
            runs.append(run)
    return runs


def _reference_runs(part: dict) -> list[Run]:
    runs = []
    reference = part.get("reference") or {}
    if reference.get("loss"):
        run = Run(None, "reference", f"reference fit ({reference.get('kind') or 'default surrogate'})")
        run.series["loss"] = _series(reference["loss"])
        runs.append(run)
    richer = part.get("richer") or {}
    for record in richer.get("reference") or []:
        seed = record.get("seed")
        run = Run(seed, "richer", f"seed {seed} (full-rank reference)")
        run.points["elbo"] = number(record.get("elbo"))
        run.points["elbo_se"] = number(record.get("se"))
        run.points["mean_field_elbo"] = number(record.get("mean_field_elbo"))
        runs.append(run)
    if richer.get("user_elbo") is not None:
        run = Run(None, "richer", "your solution (its ELBO)")
        run.points["elbo"] = number(richer.get("user_elbo"))
        run.points["elbo_se"] = number(richer.get("user_se"))
        runs.append(run)
    return runs


def runs(part: dict) -> list[Run]:
    """Every run of one training site's trace (contract.Trace, one part of `fits`)."""
    return _seed_runs(part) + _rerun_runs(part) + _reference_runs(part)


def parts(trace: dict) -> list[dict]:
    """One trace per training site (a file with several fits has `fits`), as report.py splits them."""
    fits = trace.get("fits")
    if not fits:
        return [trace] if (trace.get("fit") or trace.get("reference") or trace.get("richer")) else []
    return [dict(fit, seconds=float((fit.get("fit") or {}).get("seconds") or 0.0)
                 + float((fit.get("reference") or {}).get("seconds") or 0.0)) for fit in fits]


#: The codes whose evidence is a step of the loss (the loss chart is marked), of the gradient norm.
_LOSS_CODES = ("ELB101", "ELB102", "ELB103", "ELB108")


def failing_marks(d: Diagnostic) -> dict[str, dict[int, int]]:
    """Chart tag -> {seed index -> the step where the verdict's evidence says the run went wrong}: only
    the series the finding is about: a parameter's finding (evidence `parameter`) marks the chart of
    that parameter's watched minimum ("min <parameter>"), ELB107 the gradient norm, a loss finding
    (ELB101's NaN step, ...) the loss. Evidence without a step marks nothing."""
    marks: dict[str, dict[int, int]] = {}
    dynamic = d.dynamic or {}
    evidence = dynamic.get("evidence") or {}
    findings = evidence.get("findings")
    if findings is None:
        findings = [evidence] if dynamic.get("status") == "observed" and evidence.get("code") else []
    for finding in findings:
        data = finding.get("evidence") or {}
        code = finding.get("code") or ""
        if isinstance(data.get("parameter"), str):
            tag = f"min {data['parameter']}"
        elif code == "ELB107":
            tag = "grad_norm"
        elif code in _LOSS_CODES or code == "ELB104":
            tag = "loss"
        else:
            continue
        steps = marks.setdefault(tag, {})
        seeds = data.get("seeds") or {}
        which, at = seeds.get("which") or [], seeds.get("steps") or []
        if which and len(which) == len(at):
            for index, step in zip(which, at):
                if isinstance(step, int):
                    steps.setdefault(index, step)
        elif isinstance(data.get("step"), int):
            steps.setdefault(0, data["step"])
        if not steps:
            del marks[tag]
    return marks


def failing_steps(d: Diagnostic) -> dict[int, int]:
    """Seed index -> the first step any of the verdict's evidence marks (failing_marks, all charts)."""
    steps: dict[int, int] = {}
    for marks in failing_marks(d).values():
        for seed, step in marks.items():
            steps[seed] = min(step, steps.get(seed, step))
    return steps


def ended(values: list[Optional[float]]) -> Optional[float]:
    """Where a run ended, as the verdicts count it (seeds.final_loss: the median of its last tenth; None
    when one of those is not finite); shared with the re-runs' `final`."""
    from elbolint.dynamic.verdicts.seeds import final_loss

    return final_loss(values)


class Evidence:
    """The whole traces of a dynamic run, per file (empty for a static-only run)."""

    def __init__(self) -> None:
        self.traces: dict[str, dict] = {}
        self.locators: dict[str, Any] = {}

    def keep(self, result, trace) -> None:
        """`run_dynamic(..., on_trace=evidence.keep)`: each file's whole trace, as dynamic mode hands it
        over before judging it (and, for a notebook, its virtual line -> "cell 25:9", as the verdicts say)."""
        if isinstance(trace, dict):
            self.traces[str(result.path)] = trace
            notebook = getattr(result, "notebook", None)
            if notebook is not None and getattr(notebook, "spans", None):
                self.locators[str(result.path)] = lambda line, nb=notebook: "cell {}:{}".format(
                    nb.locate(line)[0].cell, nb.locate(line)[1])

    def locate(self, path) -> Any:
        """The file's line -> site words for charts (None: a plain file's lines are its own)."""
        return self.locators.get(str(path))

    def sites(self) -> Iterator[tuple[str, int, dict]]:
        """(file, index, part) for every training site of every file that ran."""
        for path in sorted(self.traces):
            for index, part in enumerate(parts(self.traces[path])):
                yield path, index, part

    def part_for(self, d: Diagnostic) -> Optional[dict]:
        """The run `d`'s verdict was judged on (None: static-only, not run, or no run recorded)."""
        digest = (d.dynamic or {}).get("trace") or {}
        trace = self.traces.get(str(d.path))
        if trace is None or not digest.get("steps") and not digest.get("source"):
            return None
        from elbolint.dynamic.verdicts.classify import trace_summary

        candidates = parts(trace)
        label = digest.get("fit") or ""  # "fit 2 of 3 (line 40)" when the file has several fits
        if label.startswith("fit ") and " of " in label:
            try:
                index = int(label.split()[1]) - 1
            except ValueError:
                index = -1
            if 0 <= index < len(candidates):
                return candidates[index]
        for part in candidates:
            summary = trace_summary(part)
            if all(summary.get(key) == digest.get(key) for key in _DIGEST_KEYS):
                return part
        return None

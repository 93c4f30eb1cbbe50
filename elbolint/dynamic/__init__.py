"""Dynamic mode: runs flagged models briefly in sandboxed child processes to confirm findings.

Layout (each module says why it exists):
- settings.py  `[tool.elbolint.dynamic]` + command line -> DynamicSettings (strict keys)
- harness.py   elbolint's side: `--jobs` worker processes, one file at a time, never a traceback
- worker.py    `python -m elbolint.dynamic.worker`: imports TF once, forks a child per file
- sandbox.py   the fork: memory cap, wall-clock limit, bounded output, every death -> a reason
- runner.py    in the child: probe / fit_surrogate_posterior recorder / import-and-pair, brief + reference fit
- loop.py      in the child: records a hand-written training loop's own steps (loss, gradients, minima)
- classify.py  trace -> ELB100-ELB108 (pure Python, thresholds documented there)
- report.py    dynamic findings -> static findings' `dynamic` status + dynamic-only Diagnostic rows
"""

from __future__ import annotations

import os
import re
import sys


def run_dynamic(results, config, settings, *, enabled, show_progress=True):
    """Run the models of `results` and return the dynamic-only diagnostics (see issue 4).

    Static diagnostics of the files that ran get their `dynamic` field set in place."""
    from elbolint.dynamic.harness import run_jobs
    from elbolint.dynamic.report import apply_results
    from elbolint.dynamic.settings import build_settings

    options = build_settings(config.dynamic or {}, settings)
    _notebooks_not_run(results)
    selected = [r for r in results if _wanted(r, options.scope)]
    if not selected:
        return []
    jobs = [{"path": str(r.path), "strategy": _strategy(r, options.probe), "settings": options.to_json()}
            for r in selected]
    workers = options.jobs or max(1, min(2, os.cpu_count() or 1, len(jobs)))
    progress = _progress(len(jobs)) if show_progress and sys.stderr.isatty() else None
    try:
        outcomes = run_jobs(jobs, options.python, workers,
                            on_done=(lambda result: progress.update(1)) if progress else (lambda result: None))
    finally:
        if progress is not None:
            progress.render_finish()
    return apply_results(selected, outcomes, options, enabled)


_TFP = re.compile(r"tensorflow_probability|\btfp\b")


def _notebooks_not_run(results) -> None:
    """Notebooks are linted statically only: their findings of confirmable rules are `not-run`."""
    from elbolint.registry import all_rules

    confirmable = {r.code for r in all_rules() if r.confirmed_by}
    for result in results:
        if getattr(result, "notebook", None) is None:
            continue
        for d in result.diagnostics:
            if d.code in confirmable:
                d.dynamic = {"status": "not-run", "summary": "notebooks are not run by dynamic mode",
                             "evidence": {"codes": [], "findings": []}, "trace": {}}


def _wanted(result, scope: str) -> bool:
    """`flagged`: files with a static finding of a rule; `all`: every parsed file that uses TFP
    (never a notebook)."""
    if getattr(result, "notebook", None) is not None:
        return False
    if not result.parsed or result.source is None or result.source.text is None:
        return False
    if scope == "all":
        return bool(_TFP.search(result.source.text))
    return any(not re.fullmatch(r"ELB(000|9[0-9][0-9])", d.code) for d in result.diagnostics)


def _strategy(result, probe: str) -> str:
    return strategy_for(result.source.text, probe)


#: A fit call, or the seams of a hand-written loop: the file is worth running as `__main__`.
_RUNS_A_FIT = re.compile(r"fit_surrogate_posterior|monte_carlo_variational_loss|"
                         r"\.apply_gradients\s*\(|\.minimize\s*\(")


def strategy_for(text: str, probe: str = "elbolint_probe") -> str:
    """Which way of finding the fit to use, from the source text (the child falls back by itself):
    "probe", "main" (run as `__main__`: a fit call or a training loop) or "import" (pair objects)."""
    if re.search(rf"^(async\s+)?def\s+{re.escape(probe)}\s*\(", text, re.M):
        return "probe"
    if _RUNS_A_FIT.search(text):
        return "main"
    return "import"


def _progress(total: int):
    import click

    bar = click.progressbar(length=total, label="elbolint --dynamic", file=sys.stderr,
                            show_pos=True, show_eta=False)
    bar.render_progress()
    return bar

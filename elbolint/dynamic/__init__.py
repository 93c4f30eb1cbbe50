"""Dynamic mode: runs flagged models briefly in sandboxed child processes to confirm findings.

Layout (each module says why it exists):
- settings.py  `[tool.elbolint.dynamic]` + command line -> DynamicSettings (strict keys)
- harness.py   elbolint's side: `--jobs` worker processes, one file at a time, never a traceback
- worker.py    `python -m elbolint.dynamic.worker`: imports TF once, forks a child per file
- sandbox.py   the fork: memory cap, wall-clock limit, bounded output, every death -> a reason
- runner.py    in the child: dispatches one file to the drivers, turns the file's own failure into a trace
- drivers.py   the driver interface, their order and the context they share (one run of the file)
- drive_*.py   one way of driving a model each: probe, fit, loop, pair, sample (see drivers.py)
- fitting.py   in the child: brief fit, reference fit, log-prob shape, parameter minima, error lines
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
    jobs = [{"path": str(r.path), "settings": options.to_json(), "keras": keras_flavour(r.source.text)}
            for r in selected]
    workers = options.jobs or max(1, min(2, os.cpu_count() or 1, len(jobs)))
    progress = _progress(len(jobs)) if show_progress and sys.stderr.isatty() else None
    if progress is not None:
        on_done = lambda result: progress.update(1)  # noqa: E731
    elif show_progress:
        on_done = _log_line(len(jobs))  # CI logs: one line per finished model, so a long run is never silent
    else:
        on_done = lambda result: None  # noqa: E731
    try:
        outcomes = run_jobs(jobs, options.python, workers, on_done=on_done)
    finally:
        if progress is not None:
            progress.render_finish()
    unavailable = [o for o in outcomes if (o.get("failure") or {}).get("kind") == "unavailable"]
    if unavailable:
        _explain_unavailable(unavailable[0]["failure"]["message"], options.python)
        ran = [(r, o) for r, o in zip(selected, outcomes) if o not in unavailable]
        _not_run([r for r, o in zip(selected, outcomes) if o in unavailable],
                 "dynamic mode could not start: TensorFlow Probability is not importable (see the hint above)")
        selected, outcomes = [r for r, _ in ran], [o for _, o in ran]
    return apply_results(selected, outcomes, options, enabled)


def _log_line(total: int):
    """`elbolint: dynamic 3/12 path (1.4 s)` on stderr for each finished model (not a terminal)."""
    done = [0]

    def line(result: dict) -> None:
        done[0] += 1
        failure = result.get("failure") or {}
        note = f": {failure.get('kind')}" if failure else ""
        sys.stderr.write(f"elbolint: dynamic {done[0]}/{total} {result.get('path')} "
                         f"({result.get('seconds', 0.0):.1f} s{note})\n")
        sys.stderr.flush()

    return line


def _explain_unavailable(message: str, python: str) -> None:
    """One install hint, once: not the import error under every finding."""
    sys.stderr.write(f"elbolint: dynamic mode needs TensorFlow Probability in {python}: install it with "
                     f"`pip install 'elbolint[dynamic]'` (or pass --python an interpreter that has it). "
                     f"({message.split(': ', 1)[-1]})\n")
    sys.stderr.flush()


def _not_run(results, summary: str) -> None:
    from elbolint.registry import all_rules

    confirmable = {r.code for r in all_rules() if r.confirmed_by}
    for result in results:
        for d in result.diagnostics:
            if d.code in confirmable:
                d.dynamic = {"status": "not-run", "summary": summary,
                             "evidence": {"codes": [], "findings": []}, "trace": {}}


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


#: Code written for TFP's Keras layers: under TF >= 2.16 it needs tf-keras as `tf.keras`
#: (TF_USE_LEGACY_KERAS=1 before TensorFlow is imported), the set-up TFP documents for `tfp.layers`.
_LEGACY_KERAS = re.compile(r"\btfp\.layers\b|tensorflow_probability\.(python\.)?layers\b|"
                           r"from\s+tensorflow_probability(\.python)?\s+import\s+[^\n]*\blayers\b|"
                           r"\btf_keras\b|TF_USE_LEGACY_KERAS")


def keras_flavour(text: str) -> str:
    """"tf-keras" for files that use `tfp.layers` or tf_keras (their worker runs with
    TF_USE_LEGACY_KERAS=1), else "default" (the user's environment decides, Keras 3 by default)."""
    return "tf-keras" if _LEGACY_KERAS.search(text or "") else "default"


def strategy_for(text: str, probe: str = "elbolint_probe") -> str:
    """Which driver will take the file, from its text: "probe", "main" (runs as `__main__`: a fit call
    or a training loop) or "import". Informative only (benchmarks/dynamic_bench.py prints it): the
    child decides by itself, from the same text, through the drivers (see drivers.py)."""
    from elbolint.dynamic.drivers import participating, runs_file

    drivers = participating(text, probe)
    if any(d.NAME == "probe" for d in drivers):
        return "probe"
    return "main" if runs_file(text, drivers) else "import"


def _progress(total: int):
    import click

    bar = click.progressbar(length=total, label="elbolint --dynamic", file=sys.stderr,
                            show_pos=True, show_eta=False)
    bar.render_progress()
    return bar

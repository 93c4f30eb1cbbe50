"""Dynamic mode: runs flagged models briefly in sandboxed child processes to confirm findings.

Layout: four subpackages, one per side of the process boundary (each module says why it exists).

parent/ (the elbolint process; never imports TensorFlow)
- this __init__  entry point: which files run, the job each gets (flagged spans, names, codes, ELB014 checks)
- settings.py    `[tool.elbolint.dynamic]` + command line -> DynamicSettings (strict keys)
- harness.py     `--jobs` worker processes, one file at a time, never a traceback
- attribution.py which run may judge a static finding, and each run's name
- report.py      verdicts -> static findings' `dynamic` status + dynamic-only Diagnostic rows
- owners.py      which fit of a file with several each static finding belongs to (from the source)

process/ (the plumbing; elbolint/sandbox.py, shared with static isolation, is the fork itself)
- worker.py      `python -m elbolint.dynamic.process.worker`: imports TF once, forks a child per file
- replays.py     a loop's or Keras fit's program run again (more seeds, clipped, a smaller rate)

child/ (inside the sandboxed child, with TensorFlow; its only output is a trace)
- execute.py     runs one file through the drivers, turns the file's own failure into a trace
- drivers.py     the driver interface, their order and the context they share (one run of the file)
- drive_*.py     one way of driving a model each: probe, fit, keras, loop, pair, sample
- keras_model.py what the Keras driver reads off a model and its fit call (VI layers, N, a step's KL)
- seams.py       every TF/TFP/Keras attribute replaced, declared once (and tested)
- loop.py        records a hand-written training loop's own steps (loss, gradients, minima)
- variants.py    what a replay changes (the seed, clipping, the learning rate)
- fitting.py     what a fit's trace holds: the user's own fit per seed (+ counterfactuals), log-prob shape
- fit_runner.py  the compiled per-seed fit itself (traced once, re-run per seed), parameter minima
- reference.py   final estimates and the reference fit; optimizers.py: the user's optimizer read and copied
- richer_family.py ELB111's full-rank reference started from the user's solution
- richer_flow.py ELB111's normalizing-flow reference started from the full-rank's solution
- surrogate_family.py which surrogates are mean-field (what ELB111 checks)
- richer_measure.py the hand-run measurements behind ELB111's thresholds (python -m ...richer_measure)
- targets.py     the user's target called on a sample, as fit_surrogate_posterior calls it
- support_draws.py ELB014's component measured; watch.py, sites.py, varnames.py, failures.py: helpers

verdicts/ (pure Python judgement, unit-tested without TensorFlow)
- contract.py    the trace and the verdict, declared (TypedDicts) and checked
- pathologies.py the dynamic codes; classify.py trace -> findings (thresholds documented there)
- seeds.py       several seeds and counterfactuals aggregated ("NaN in 2 of 4 seeds", ELB110, ELB112)
- confirmation.py what confirms each static finding; support.py ELB014's checks and ELB113
- restrictive.py ELB111's decision and message from the richer reference's ELBOs
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile


def run_dynamic(results, config, settings, *, enabled, show_progress=True, on_trace=None):
    """Run the models of `results` and return the dynamic-only diagnostics (the rows of pathologies
    observed that confirm no static finding).

    Static diagnostics of the files that ran get their `dynamic` field set in place. `on_trace(result,
    trace)`, when given, receives each file's whole trace (verdicts/contract.py's `Trace`: every run,
    seed and re-run step by step) before it is judged: what the HTML report and the TensorBoard logs
    draw (a verdict itself carries only a digest of its run)."""
    from elbolint.dynamic.parent.settings import build_settings

    options = build_settings(config.dynamic or {}, settings)
    _notebooks_not_run(results)
    selected = [r for r in results if _wanted(r, options.scope)]
    if not selected:
        return []
    scratch = tempfile.mkdtemp(prefix="elbolint-notebooks-") if any(_is_notebook(r) for r in selected) else None
    try:
        jobs = [_job(r, index, options, scratch) for index, r in enumerate(selected)]
        return _run_selected(selected, jobs, options, enabled, show_progress, on_trace)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def flagged_spans(result):
    """The lines of the training calls the file's findings flow into (attribution.py), as [first, last]
    spans of the module that runs (a notebook's virtual module), for the child: a run none of whose
    stack lines is in a span is nobody's (a Keras baseline, a MAP loop) and is cut short after a few
    steps (loop.py, BRIEF), so the budget reaches the flagged runs. None when it cannot be told for
    every finding of a confirmable rule (a rule the attribution does not cover, a finding whose object
    flows into no training call the source shows, `--dynamic=all` on a file without findings): then
    no run is cut short, as before."""
    from elbolint.dynamic.parent.attribution import CODES, Attribution
    from elbolint.dynamic.parent.report import _virtual_line
    from elbolint.registry import all_rules

    rules = {r.code: r for r in all_rules()}
    findings = [d for d in result.diagnostics if not re.fullmatch(r"ELB(000|9[0-9][0-9])", d.code)
                and getattr(rules.get(d.code), "confirmed_by", None)]
    if not findings or result.source is None or not result.source.text:
        return None
    attribution = Attribution(result.source.text)
    if attribution.tree is None:
        return None
    spans: list = []
    for d in findings:
        line = _virtual_line(result, d)
        if d.code not in CODES or line is None:
            return None
        uses = attribution.uses(d.code, line, d.message)
        if not any(u["kind"] not in (None, "compile") for u in uses):
            return None
        for use in uses:
            span = [use["first"], use["last"]]
            if (use["kind"] is not None or not use["first"] <= line <= use["last"]) and span not in spans:
                spans.append(span)
    return spans


def flagged_sites(result) -> list:
    """The training calls the file's findings flow into, as `[kind, first, last]` (kind: "fit",
    "keras", "loop", "minimize"): each gets a run of its own (process/site_runs.py). Empty when the
    attribution cannot tell (flagged_spans is None)."""
    from elbolint.dynamic.parent.attribution import CODES, Attribution
    from elbolint.dynamic.parent.report import _virtual_line

    attribution = Attribution(result.source.text)
    sites: list = []
    for d in result.diagnostics:
        line = _virtual_line(result, d)
        if line is None or d.code not in CODES:
            continue
        for use in attribution.uses(d.code, line, d.message):
            site = [use["kind"], use["first"], use["last"]]
            if use["kind"] not in (None, "compile") and site not in sites:
                sites.append(site)
    return sorted(sites, key=lambda s: (s[1], s[2]))


def flagged_names(result) -> list:
    """The names the flagged optimizers and Keras models are bound to, each with the lines while it
    holds the flagged object ([name, first, last], attribution.name_windows): a run whose optimizer or
    model has one of them, inside its window, is never cut short, wherever it is."""
    from elbolint.dynamic.parent.attribution import KERAS_MODEL, OPTIMIZER, Attribution
    from elbolint.dynamic.parent.report import _virtual_line

    attribution = Attribution(result.source.text)
    windows: list = []
    for d in result.diagnostics:
        line = _virtual_line(result, d)
        if d.code in OPTIMIZER + KERAS_MODEL and line is not None:
            for window in attribution.name_windows(d.code, line, d.message):
                if list(window) not in windows:
                    windows.append(list(window))
    return sorted(windows, key=lambda w: (w[0], w[1]))


def support_checks(result) -> list:
    """ELB014's findings as checks for the child (support.py): which surrogate component, which
    support, at the finding's line in the module that runs."""
    from elbolint.dynamic.parent.report import _virtual_line
    from elbolint.dynamic.verdicts.support import check_of

    checks = []
    for d in result.diagnostics:
        line = _virtual_line(result, d) if d.code == "ELB014" else None
        check = check_of(d.message, line) if line is not None else None
        if check is not None:
            checks.append(check)
    return checks


def raw_parameters(result) -> list:
    """The raw variables ELB001/ELB007/ELB008 findings are about, as the child can watch them: the
    parameter, its distribution, the `name=` component and the plain name of the variable passed (a
    `tfd.Bernoulli(probs=zero_prob)` built inside a loop's tape is no surrogate, so nothing else
    watches it; the variable *is* the parameter, so its own values are the parameter's)."""
    from elbolint.dynamic.parent.report import _subject

    source = result.source.text if result.source is not None else ""
    found = []
    for d in result.diagnostics:
        wanted = _subject(result, d, source) if d.code in ("ELB001", "ELB007", "ELB008") else None
        if wanted is not None and wanted.variable:
            found.append({"parameter": wanted.parameter, "distribution": wanted.distribution,
                          "component": wanted.component, "variable": wanted.variable})
    return found


def _is_notebook(result) -> bool:
    return getattr(result, "notebook", None) is not None


def _job(result, index: int, options, scratch) -> dict:
    """One worker job. A notebook runs as its virtual module (code cells in order, magics and shell
    escapes commented out, see notebook.py), written to a scratch `.py` file of elbolint's own temporary
    directory (never next to the user's files; named so it cannot shadow a package); the notebook's
    directory goes on `sys.path` as the kernel's working directory would be, for its local imports."""
    job = {"path": str(result.path), "settings": options.to_json(), "keras": keras_flavour(result.source.text)}
    job["settings"]["flagged_spans"] = flagged_spans(result)
    job["settings"]["flagged_names"] = flagged_names(result) if job["settings"]["flagged_spans"] else []
    job["settings"]["flagged_sites"] = flagged_sites(result) if job["settings"]["flagged_spans"] else []
    job["settings"]["flagged_codes"] = sorted({d.code for d in result.diagnostics})  # replays.py: which fixes to try
    job["settings"]["support_checks"] = support_checks(result)
    job["settings"]["raw_parameters"] = raw_parameters(result)
    if _is_notebook(result):
        module = os.path.join(scratch, f"elbolint_notebook_{index}.py")
        with open(module, "w", encoding="utf-8") as handle:
            handle.write(result.source.text)
        job["path"] = module
        job["directory"] = os.path.dirname(os.path.abspath(str(result.path)))
    return job


def _run_selected(selected, jobs, options, enabled, show_progress, on_trace=None):
    from elbolint.dynamic.parent.harness import run_jobs
    from elbolint.dynamic.parent.report import apply_results

    workers = options.jobs or max(1, min(2, os.cpu_count() or 1, len(jobs)))
    progress = _progress(len(jobs)) if show_progress and sys.stderr.isatty() else None
    if progress is not None:
        on_done = lambda result: progress.update(1)  # noqa: E731
    elif show_progress:
        # CI logs: one line per finished model, so a long run is never silent
        on_done = _log_line(len(jobs), {j["path"]: str(r.path) for r, j in zip(selected, jobs)})
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
    for outcome, result in zip(outcomes, selected):
        outcome["path"] = str(result.path)  # the notebook, not its scratch module
        if on_trace is not None:
            on_trace(result, outcome)
    plain = [(r, o) for r, o in zip(selected, outcomes) if not _is_notebook(r)]
    rows = apply_results([r for r, _ in plain], [o for _, o in plain], options, enabled)
    for result, outcome in zip(selected, outcomes):
        if _is_notebook(result):
            rows += _to_cells(result, apply_results([result], [outcome], options, enabled))
    return rows


def _to_cells(result, rows):
    """A notebook's dynamic results in cell coordinates: its static findings already are (the linter
    mapped them; their status is matched by code, not line), so only the line numbers inside their
    evidence move; dynamic-only rows (virtual lines, from the trace) become `cell N:line` rows."""
    notebook = result.notebook

    def evidence(findings):
        for finding in findings:
            inner = finding.get("evidence")
            if isinstance(inner, dict) and isinstance(inner.get("line"), int) and notebook.spans:
                span, line = notebook.locate(inner["line"])
                inner["line"], inner["cell"] = line, span.cell

    for d in result.diagnostics:
        if d.dynamic and d.dynamic.get("evidence"):
            evidence(d.dynamic["evidence"].get("findings") or [])
    for row in rows:
        if row.dynamic and isinstance(row.dynamic.get("evidence"), dict):
            evidence([row.dynamic["evidence"]])
    return notebook.to_cells(rows)


def _log_line(total: int, names=None):
    """`elbolint: dynamic 3/12 path (1.4 s)` on stderr for each finished model (not a terminal);
    `names` maps a job's path to the user's (a notebook's scratch module to the notebook)."""
    done = [0]
    names = names or {}

    def line(result: dict) -> None:
        done[0] += 1
        failure = result.get("failure") or {}
        note = f": {failure.get('kind')}" if failure else ""
        sys.stderr.write(f"elbolint: dynamic {done[0]}/{total} {names.get(result.get('path'), result.get('path'))} "
                         f"({result.get('seconds', 0.0):.1f} s{note})\n")
        sys.stderr.flush()

    return line


def _explain_unavailable(message: str, python: str) -> None:
    """One install hint, once: not the import error under every finding."""
    sys.stderr.write(f"elbolint: dynamic mode needs TensorFlow Probability in {python}: install it with "
                     f"`pip install -e '.[dynamic]'` in elbolint's checkout (elbolint is not on PyPI yet), or "
                     f"pass --python an interpreter that has it. "
                     f"({message.split(': ', 1)[-1]})\n")
    sys.stderr.flush()


def _not_run(results, summary: str) -> None:
    from elbolint.dynamic.parent.report import rules_by_code

    confirmable = {code for code, rule in rules_by_code().items() if rule.confirmed_by}
    for result in results:
        for d in result.diagnostics:
            if d.code in confirmable:
                d.dynamic = {"status": "not-run", "summary": summary,
                             "evidence": {"codes": [], "findings": []}, "trace": {}}


_TFP = re.compile(r"tensorflow_probability|\btfp\b")


def _notebooks_not_run(results) -> None:
    """Notebooks that cannot run as one program: a code cell that does not parse stops Jupyter's
    "Run All" there, so their findings of confirmable rules are `not-run` (with why)."""
    from elbolint.dynamic.parent.report import rules_by_code

    confirmable = {code for code, rule in rules_by_code().items() if rule.confirmed_by}
    for result in results:
        notebook = getattr(result, "notebook", None)
        if notebook is None or not notebook.syntax_errors():
            continue
        cells = ", ".join(str(span.cell) for span in notebook.spans if span.syntax_error)
        for d in result.diagnostics:
            if d.code in confirmable:
                d.dynamic = {"status": "not-run",
                             "summary": f"not run: code cell {cells} of the notebook does not parse",
                             "evidence": {"codes": [], "findings": []}, "trace": {}}


def _wanted(result, scope: str) -> bool:
    """`flagged`: files with a static finding of a rule; `all`: every parsed file that uses TFP.
    A notebook runs as its virtual module (see `_job`), unless one of its code cells does not parse."""
    notebook = getattr(result, "notebook", None)
    if notebook is not None and (not notebook.spans or notebook.syntax_errors()):
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
    from elbolint.dynamic.child.drivers import participating, runs_file

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

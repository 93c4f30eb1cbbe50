"""Driver 3, `loop`: a hand-written training loop (`monte_carlo_variational_loss` and
`apply_gradients`/`minimize`, no `fit_surrogate_posterior`). The file runs as `__main__` with the
loop's seams armed (see loop.py); the user's own steps are recorded and the script is stopped after
the budget (or two NaN losses in a row). A loop that stops the script itself after some steps (a NaN
check, `sys.exit`) is reported with what it recorded and what stopped it. The trace then adds what
needs the recorded target and surrogate: the log-prob shape, a final estimate, the reference fit."""

from __future__ import annotations

import re
import time
from typing import Optional

from elbolint.dynamic.child.failures import exception_text
from elbolint.dynamic.child.fitting import anchor_names, logprob_shape, untracked_variables
from elbolint.dynamic.child.reference import final_estimate, reference_fit
from elbolint.dynamic.child.richer_family import richer_reference
from elbolint.dynamic.child.support_draws import measure
from elbolint.dynamic.child.varnames import variable_labels

NAME = "loop"

#: The seams of a hand-written loop: the file is worth running as `__main__`.
_SEAMS = re.compile(r"monte_carlo_variational_loss|\.apply_gradients\s*\(|\.minimize\s*\(")


def applies(source: str, probe: str) -> bool:
    return True  # armed at import too: a sibling module's loop can run on the file's behalf


def runs_file(source: str) -> bool:
    return bool(_SEAMS.search(source))


def install(context) -> None:
    from elbolint.dynamic.child.loop import LoopRecorder

    def claim() -> None:
        if context.claimed is None:
            context.claimed = NAME

    loop = LoopRecorder(context.path, context.budget, context.Stop, on_first_step=claim,
                        flagged=context.settings.get("flagged_spans"),
                        timeout=float(context.settings.get("timeout", 60.0)),
                        flagged_names=context.settings.get("flagged_names"),
                        raw_parameters=context.settings.get("raw_parameters"),
                        done_sites=context.settings.get("done_sites"), replay=bool(context.settings.get("replay")))
    loop.install()
    context.store[NAME] = loop
    context.before_run(loop.arm)
    context.on_quiet(loop.disarm)


def saw_no_vi(context) -> bool:
    """This driver claimed the run for steps with no VI loss in them (a maximum-likelihood loop, a
    point-estimate Keras model trained before the variational fit), or for a brief run no finding
    points at (loop.py, BRIEF): a VI fit may take the run over (drive_fit.py, drive_keras.py), and this
    driver's record is then dropped."""
    loop = context.store.get(NAME)
    return context.claimed == NAME and loop is not None and (not getattr(loop, "first", None)
                                                              or getattr(loop, "brief", False))


def run(context) -> Optional[dict]:
    loop = context.store.get(NAME)
    context.execute()
    if loop is None:
        return None
    if not loop.steps or context.claimed != NAME or isinstance(context.error, MemoryError):
        loop.disarm()
        return None
    stopped_by = exception_text(context.error) if context.error is not None else None
    return finish(context, loop, stopped_by)


def finish(context, loop, stopped_by: Optional[str] = None) -> dict:
    """The trace of a recorded hand-written loop: its steps, plus what needs the recorded
    target and surrogate (log-prob shape, final estimate, reference fit)."""
    loop.disarm()
    first = loop.first or {}
    surrogate = loop.surrogate()
    namespace = loop.namespace
    fit = loop.record(lambda variables: variable_labels(variables, [loop.locals, namespace]))
    # ELB105's evidence leaves out what other runs of the program train (a MAP/MLE loop cut short before)
    fit["untracked"] = untracked_variables(namespace, list(loop.variables) + list(getattr(loop, "trained_before", ()))
                                           + list(context.store.get("trained", ())))
    anchors = anchor_names(namespace, surrogate, {}) if surrogate is not None else {}
    trace = {"source": "loop", "line": first.get("line") or loop.line, "budget": loop.budget,
             "anchors": anchors, "user_num_steps": None, "fit": fit}
    site = dict(getattr(loop, "site", None) or {"kind": "loop", "line": trace["line"]})
    site.setdefault("line", trace["line"])
    if first.get("stack"):  # the monte_carlo_variational_loss call is part of the loop
        site["stack"] = sorted(set(site.get("stack") or []) | set(first["stack"]))
    trace["site"] = site
    if getattr(loop, "cut", None):  # the brief runs cut short before this one (loop.py, BRIEF)
        trace["cut_short"] = list(loop.cut)
    if stopped_by:
        trace["stopped_by"] = stopped_by
    if getattr(loop, "time_cut", None) is not None:  # slow: fewer steps, not the sandbox's timeout
        trace["time_cut"] = {"steps": loop.steps, "seconds": round(loop.time_cut, 2)}
    checks = context.settings.get("support_checks") or []
    if checks and surrogate is not None:  # ELB014's component after the loop's steps (support.py)
        trace["support"] = {"end": measure(surrogate, checks)}
    target = first.get("target")
    if target is None:
        return trace
    sample_size = first.get("sample_size", 1)  # every call on the target in the loop's own shape
    try:
        fit["logprob_shape"], fit["expected_rank"] = logprob_shape(target, surrogate, sample_size)
    except (SystemExit, MemoryError):
        raise
    except Exception:
        pass
    fit["final_estimate"] = final_estimate(target, surrogate, first.get("options"), sample_size=sample_size)
    if context.settings.get("reference", True) and fit["loss"]:
        trace["reference"] = reference_fit(target, surrogate, len(fit["loss"]), sample_size, user_fit=fit,
                                           thresholds=context.settings.get("thresholds"))
        # ELB111: a full-rank reference from the loop's own solution, in the time the loop left
        timeout = float(context.settings.get("timeout", 60.0))
        trace["richer"] = richer_reference(target, surrogate, sample_size, fit, label=anchors.get("surrogate"),
                                           deadline=getattr(loop, "started", time.monotonic()) + 0.8 * timeout)
    return trace

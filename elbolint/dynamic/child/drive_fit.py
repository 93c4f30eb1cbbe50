"""Driver 2, `fit`: the file's own `tfp.vi.fit_surrogate_posterior(...)` calls. The file runs as
`__main__` with that function replaced by a recorder, so scripts that load their data in `main()`
work too.

Every call is checked, not just the first (a baseline and the real model, a sweep): each one is fitted
as the user called it (TFP's own function with the user's arguments, their `num_steps` up to the cap,
several seeds, see fitting.fit_trace), recorded as its own trace at its own line, and the recorder
returns what the user's call returns (the first seed's traced values, the surrogate left as that
fit left it), so the script goes on to its next fit. The script is stopped after `max_fits` fits,
when a fit fails on its own, or when half the per-file timeout is spent (a soft alarm also stops a
script that lingers after a recorded fit, before the sandbox's hard timeout would lose what was
recorded). What the script does after its last recorded fit is not the user's program as written
(elbolint shortened the fits), so a failure there never becomes an ELB100: it is noted
(`stopped_after`).

A hand-written loop that already recorded steps in the same run (see drive_loop.py) is the fit to
report; the recorder then only stops the script. An error of elbolint's own while fitting is never the
user's: the run becomes `not-run` with the reason (`nothing`).

A fit no static finding points at (sites.unflagged: a baseline next to the flagged model) is *brief*
(every flagged site gets its own budget): `loop.BRIEF` steps, one seed, no reference fits,
so the budget and the time go to the flagged fits; its site says so (`brief`)."""

from __future__ import annotations

import inspect
import re
import signal
import sys
import threading
import time
from typing import Optional

from elbolint.dynamic.child.drive_loop import saw_no_vi
from elbolint.dynamic.child.failures import caller_line, exception_text
from elbolint.dynamic.child.fitting import fit_trace
from elbolint.dynamic.child.seams import replace
from elbolint.dynamic.child.loop import BRIEF
from elbolint.dynamic.child.sites import identity, site, unflagged
from elbolint.dynamic.child.support_draws import measure

NAME = "fit"

_CALL = re.compile(r"fit_surrogate_posterior")
#: After a recorded fit, the script may go on for this share of the per-file timeout.
SOFT_SHARE = 0.6
#: The share of the per-file timeout the fits of one run may take in all (_fit_seconds): the rest is
#: the script before and after them and the sandbox's margin.
FIT_SPAN = 0.8


def applies(source: str, probe: str) -> bool:
    return True  # the seam costs nothing; a sibling module of the file may call it too


def runs_file(source: str) -> bool:
    return bool(_CALL.search(source))


def install(context) -> None:
    import tensorflow_probability as tfp
    from tensorflow_probability.python import vi as vi_package
    from tensorflow_probability.python.vi import optimization

    original = getattr(optimization.fit_surrogate_posterior, "__elbolint_original__",
                       optimization.fit_surrogate_posterior)
    signature = inspect.signature(original)
    state: dict = {"traces": [], "started": time.monotonic(), "harness": None, "skipped_fits": 0}
    context.store[NAME] = state
    settings = context.settings
    max_fits = int(settings.get("max_fits", 1))
    timeout = float(settings.get("timeout", 60.0))

    def fit_surrogate_posterior(*args, **kwargs):
        if context.claimed not in (None, NAME) and not saw_no_vi(context):
            raise context.Stop()  # another seam recorded the user's VI fit already
        try:
            arguments = dict(signature.bind(*args, **kwargs).arguments)
        except TypeError:  # the user's call is malformed: TFP says so, as natively
            return original(*args, **kwargs)
        line = caller_line(context.path)
        run_site = site(context.path, "fit", optimizer=arguments.get("optimizer"), line=line)
        if identity(run_site) in (settings.get("done_sites") or []):
            return _briefly(context, original, signature, args, kwargs)  # an earlier run recorded it
        context.claimed = NAME
        traces = state["traces"]
        if traces and time.monotonic() - state["started"] > timeout / 2:
            state["skipped_fits"] += 1
            raise context.Stop()  # the time budget is spent: the fits so far are the result
        _disarm_alarm()
        namespace = sys._getframe(1).f_globals
        target = arguments.pop("target_log_prob_fn")
        surrogate = arguments.pop("surrogate_posterior")
        optimizer = arguments.pop("optimizer", None)
        num_steps = arguments.pop("num_steps", None)
        arguments.pop("name", None)
        keep: dict = {}
        checks = settings.get("support_checks") or []
        start = measure(surrogate, checks)  # ELB014's component before the fit (support.py)
        brief = unflagged(run_site, settings.get("flagged_spans"), settings.get("flagged_names"),
                          settings.get("done_sites"))
        if brief:  # no finding points at this fit: a few steps, one seed, no references (BRIEF)
            context.settings = dict(settings, steps=BRIEF, max_steps=BRIEF, seeds=1, reference=False)
            run_site["brief"] = BRIEF
        elif _fit_seconds(settings, state, line, timeout) is not None:
            context.settings = dict(settings, fit_seconds=_fit_seconds(settings, state, line, timeout))
        try:
            trace = fit_trace(context, target, surrogate, optimizer, num_steps, arguments, line=line,
                              source="fit_surrogate_posterior", namespace=namespace, keep=keep)
        except (context.Stop, SystemExit, MemoryError):
            raise
        except Exception as error:  # elbolint's own failure, never the user's
            state["harness"] = exception_text(error)
            raise context.Stop() from None
        finally:
            context.settings = settings
        if start:
            trace["support"] = {"start": start, "end": measure(surrogate, checks)}
        try:  # a later run's ELB105 evidence leaves out what this fit trains
            context.store.setdefault("trained", []).extend(surrogate.trainable_variables)
        except Exception:
            pass
        trace["site"] = run_site
        trace["fit_index"] = len(traces)
        traces.append(trace)
        context.trace = combined(state) or trace
        if trace.get("failure") or len(traces) >= max_fits or keep.get("result") is None:
            raise context.Stop()
        _arm_alarm(context, state["started"] + SOFT_SHARE * timeout - time.monotonic())
        return keep["result"]

    setattr(fit_surrogate_posterior, "__elbolint_original__", original)
    for module in (tfp.vi, vi_package, optimization):
        if getattr(module, "fit_surrogate_posterior", None) is not fit_surrogate_posterior:
            replace(module, "fit_surrogate_posterior", fit_surrogate_posterior, NAME)


def _fit_seconds(settings: dict, state: dict, line: Optional[int], timeout: float) -> Optional[float]:
    """This fit's time when more flagged fits follow it: the flagged fits from here on
    (`flagged_sites` of kind "fit" that end at or after its line) share what is left of FIT_SPAN of
    the run's timeout, so that a slow first fit leaves time for the later ones (fitting.fit_trace
    cuts it: fewer steps, then fewer seeds). None for the last one: it has the timeout's usual shares."""
    ahead = [s for s in settings.get("flagged_sites") or []
             if s[0] == "fit" and (not isinstance(line, int) or s[2] >= line)]
    if len(ahead) < 2:
        return None
    left = FIT_SPAN * timeout - (time.monotonic() - state["started"])
    return max(left, 0.0) / len(ahead)


def _briefly(context, original, signature, args, kwargs):
    """The user's call as written but for `BRIEF` steps, unrecorded (the loop recorder would see its
    `tfp.math.minimize` steps): a fit an earlier run of the file recorded, passed on the way to a later
    flagged site (process/site_runs.py)."""
    import contextlib

    bound = signature.bind(*args, **kwargs)
    bound.arguments["num_steps"] = BRIEF
    loop = context.store.get("loop")
    with loop.untouched() if loop is not None else contextlib.nullcontext():
        return original(*bound.args, **bound.kwargs)


def combined(state: dict) -> Optional[dict]:
    """One trace for the file: the single fit's own, or `fits` (one trace per fit, in call order)."""
    traces = state["traces"]
    if not traces:
        return None
    if len(traces) == 1:
        return traces[0]
    return {"source": "fit_surrogate_posterior", "line": traces[0].get("line"),
            "anchors": traces[0].get("anchors") or {}, "fits": traces}


def run(context):
    context.execute()
    _disarm_alarm()
    state = context.store.get(NAME) or {}
    if context.claimed != NAME:
        return None
    trace = combined(state)
    if trace is None:
        if state.get("harness"):
            return {"nothing": f"not run: elbolint could not fit this file's fit_surrogate_posterior call "
                               f"({state['harness']})", "harness_error": state["harness"]}
        return None
    if state.get("harness"):
        trace["harness_error"] = state["harness"]
    if context.error is not None and not trace.get("failure"):
        trace["stopped_after"] = exception_text(context.error)
    if state.get("skipped_fits"):
        trace["fits_not_checked"] = "the script's further fits were not checked (time budget)"
    return trace


def _arm_alarm(context, seconds: float) -> None:
    """Stop a script that lingers after a recorded fit before the sandbox's hard timeout (which
    would lose every recorded fit). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(number, frame):
        raise context.Stop()

    try:
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.5))
    except (ValueError, OSError):
        pass


def _disarm_alarm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, 0)
    except (ValueError, OSError):
        pass

"""In the worker: every flagged training site of a file gets its own run and its own share of the time.

Why: one run of a file records one hand-written loop or one Keras fit (the drivers stop the script
once their budget is recorded: a user's loop cannot be left half-way any other way), so in a notebook
with two Bayesian networks, or two loops, the second network's findings had no run of their own
("not-run: no run reached the Keras fit of `big`"). The `fit_surrogate_posterior` driver records
several fits in one run already; this covers the rest.

The parent sends `flagged_sites`: the training calls the file's confirmable findings flow into
(`[kind, first, last]`, attribution.py's uses). After a run (with its replays: seeds, counterfactuals,
see replays.py), the sites none of its recorded runs covers (no line of a run's stack, call or compile
in the site's span) get another run of the file, told which sites are done (`done_sites`, identities
from child/sites.py): those pass briefly, as a baseline would (loop.BRIEF), and the next flagged run
is recorded with the whole step budget. Each run gets an equal share of the time left (the
`fit_surrogate_posterior` calls share one, since one run records them all): its drivers cut slow runs
and its replays by that share, but the sandbox kills it only when the file's whole time is spent
(`hard_timeout`: a slow start is no timeout). The runs' records are
joined as `fits` (one part per run, each naming its own site), which report.py judges part by part:
a finding is judged by its own run or, when its site was never reached, is `not-run` with the reason
(`site_runs.unreached` says why: the time left, a run that recorded nothing new).
"""

from __future__ import annotations

import time
from typing import Callable

#: Below this many seconds left, no further site is tried (a run of a TF program needs more).
MIN_SECONDS = 5.0
#: At most this many runs of one file (every site beyond them is listed as not reached).
MAX_RUNS = 4
#: Keys of a run's trace that describe the whole file, kept at the top of the joined trace.
_FILE_KEYS = ("keras", "missing_packages", "output_tail", "path")


def run_each_site(job: dict, run_one: Callable[[dict], dict]) -> dict:
    """`run_one(job)` (a run with its replays) once, then again for each flagged site not yet
    recorded, within the job's timeout; one trace (module docstring)."""
    settings = job["settings"]
    pending = [list(s) for s in settings.get("flagged_sites") or []]
    if len(pending) < 2:
        return run_one(job)
    deadline = time.monotonic() + float(settings["timeout"])
    traces: list[dict] = []
    done: list = []
    why = ""
    while pending:
        left = deadline - time.monotonic()
        if traces and left < MIN_SECONDS:
            why = f"the per-file timeout was spent on the {_runs(traces)} before it"
            break
        if len(traces) >= MAX_RUNS:
            why = f"elbolint runs a file at most {MAX_RUNS} times"
            break
        share = left / _shares(pending)
        trace = run_one(dict(job, settings=dict(settings, timeout=share, hard_timeout=left, done_sites=list(done))))
        recorded = [p for p in parts_of(trace) if _recorded(p) and identity(p) not in done]
        if traces and not recorded:
            why = _nothing_new(trace, share)
            break
        traces.append(trace)
        done += [identity(p) for p in recorded]
        pending = [s for s in pending if not any(_covers(s, p) for p in recorded)]
        if not recorded or trace.get("failure"):
            why = _nothing_new(trace) if trace.get("failure") and len(traces) > 1 else why
            break  # the program failed, or recorded nothing (a first run that did is the file's result)
    if len(traces) == 1 and not (why and pending):
        return traces[0]
    return _join(traces, pending, why)


def _runs(traces: list[dict]) -> str:
    return f"{len(traces)} run{'s' if len(traces) != 1 else ''} of the file"


def _nothing_new(trace: dict, share: float = 0.0) -> str:
    """Why a run of the file meant for a later site recorded nothing new."""
    failure = trace.get("failure") or {}
    if failure:
        return (f"the run of the file meant for it stopped first ({failure.get('kind')}: "
                f"{str(failure.get('message') or '')[:160]})")
    passed = len(trace.get("cut_short") or []) + (1 if (trace.get("site") or {}).get("brief") else 0)
    if passed:
        return (f"the run of the file meant for it passed {passed} earlier training run{'s' if passed != 1 else ''} "
                f"unrecorded in {float(trace.get('seconds') or 0.0):.0f} s (of the {share:.0f} s it had) and "
                "stopped before reaching it")
    return "the run of the file meant for it recorded no further training run (the script ended first)"


def parts_of(trace: dict) -> list[dict]:
    return list(trace.get("fits") or [trace])


def identity(part: dict) -> list:
    from elbolint.dynamic.child.sites import identity as site_identity

    return site_identity(part.get("site") or {})


def _recorded(part: dict) -> bool:
    site = part.get("site") or {}
    return bool((part.get("fit") or {}).get("loss")) and bool(site) and not site.get("brief")


def _covers(site: list, part: dict) -> bool:
    from elbolint.dynamic.child.sites import run_lines

    _, first, last = site
    return any(first <= at <= last for at in run_lines(part.get("site") or {}))


def _shares(pending: list) -> int:
    """How many runs the pending sites need at most: one each, the fits of one run together."""
    return sum(1 for s in pending if s[0] != "fit") + (1 if any(s[0] == "fit" for s in pending) else 0)


def _join(traces: list[dict], pending: list, why: str) -> dict:
    """The runs' traces as one: the first run's as it is, then each later run's newly recorded parts
    (its brief passes over the sites already recorded left out); `site_runs` says how many runs there
    were and which sites none reached, and why."""
    parts = [_part(p, traces[0]) for p in parts_of(traces[0])]
    seen = [identity(p) for p in parts if _recorded(p)]
    for trace in traces[1:]:
        for part in parts_of(trace):
            if _recorded(part) and identity(part) not in seen:
                seen.append(identity(part))
                parts.append(_part(part, trace))
    first = traces[0]
    joined: dict = {k: first[k] for k in _FILE_KEYS if k in first}
    joined.update({"source": first.get("source"), "line": first.get("line"),
                   "anchors": first.get("anchors") or {}, "fits": parts,
                   "seconds": sum(float(t.get("seconds") or 0.0) for t in traces)})
    joined["site_runs"] = {"runs": len(traces),
                           "unreached": [{"kind": k, "first": a, "last": b, "why": why} for k, a, b in pending]}
    return joined


def _part(part: dict, trace: dict) -> dict:
    """A part of the joined trace: one run's own record, with what its trace said about the file."""
    own = dict(part)
    for key in ("stopped_after", "fits_not_checked", "failure", "replays", "time_cut", "keras_model"):
        if key in trace and key not in own and part is not trace:
            own[key] = trace[key]
    own.pop("path", None)
    own.pop("output_tail", None)
    return own

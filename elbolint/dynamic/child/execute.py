"""Inside the sandboxed child: run one model file through the drivers and return a JSON-safe trace for
the classifier. Imports TensorFlow, so only the worker uses it.

The runner only dispatches: the drivers that apply to the file's text (drivers.py says how
and in which order) install their seams, the file runs once (as `__main__` when a driver sees a fit
or a loop in it, else imported), and the first driver that returns a trace wins. A file that fails
on its own before any driver recorded anything becomes the trace's `failure`, at the user's line.

Whose failure: ELB100 means "the program fails on its own", so only the user's own code
raising in the user's own form becomes a `failure` (message: "the program fails on its own at
file:line: exception"). What elbolint could not drive is `nothing` (not-run, with the reason): a
missing package (ModuleNotFoundError), a download in an offline sandbox, an unusable probe, an error of
elbolint's own code (the
deepest elbolint frame of the traceback is below the user's, see failures.blame).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from elbolint.dynamic.child.drivers import Context, ProbeError, Stop, nothing, participating, runs_file
from elbolint.dynamic.child.failures import (blame, exception_text, missing_imports, missing_package, needs_network,
                                       raised_by_elbolint, user_failure, user_line)
from elbolint.dynamic.child.fitting import seed_everything
from elbolint.dynamic.child.variants import Variant

#: Why nothing was run, when no driver returned a trace and the file did not fail.
NOTHING = ("no elbolint_probe, no fit_surrogate_posterior call reached, and no module-level surrogate "
           "(distribution with trainable variables) and JointDistribution model to pair")


def run_file(job: dict) -> dict:
    """The child's entry point: `job` has path and settings (DynamicSettings.to_json()), and for a
    notebook's virtual module `directory`, the notebook's own directory."""
    import tensorflow as tf

    started = time.monotonic()
    path = os.path.abspath(job["path"])
    settings = job["settings"]
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    variant = Variant(job.get("variant"), judged=lambda: _judged(context))
    seed_everything(variant.seed)
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    if job.get("directory"):  # a notebook's scratch module: the notebook's own directory, for local imports
        sys.path.insert(1, job["directory"])
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except (OSError, UnicodeDecodeError):
        source = ""
    absent = missing_imports(source)
    if absent:  # every missing package at once, before anything runs (not one per run)
        names = ", ".join(f"`{name}`" for name, _ in absent)
        many = len(absent) > 1
        where = ", ".join(str(line) for _, line in absent)
        missing = nothing(f"not run: the file imports {names}, which {'are' if many else 'is'} not installed in "
                          f"{sys.executable} (line{'s' if many else ''} {where})")
        missing["missing_packages"] = [name for name, _ in absent]
        missing["seconds"] = time.monotonic() - started
        return missing
    drivers = participating(source, settings["probe"])
    context = Context(path, source, settings,
                      run_name="__main__" if runs_file(source, drivers) else "__elbolint_import__")
    trace: Any = None
    variant.install()  # inside the drivers' seams: the loop recorder sees the gradients before clipping
    try:
        for driver in drivers:
            if hasattr(driver, "install"):
                driver.install(context)
        for driver in drivers:
            trace = driver.run(context)
            if trace is not None:
                break
        if trace is None:
            trace = failed_run(context.error, context) if context.error is not None else nothing(
                context.store.get("nothing") or NOTHING)
            if context.error is None and (context.run_name == "__main__" or "__main__" not in source):
                trace["ran_to_end"] = True  # the whole program ran and trained nothing
    except Stop:  # a seam stopped elbolint's own code (never the user's): keep what was recorded
        trace = context.trace or nothing(NOTHING)
    except ProbeError as error:  # the probe's contract, not the program: nothing to run
        trace = nothing(f"not run: {error}")
    except BaseException as error:
        if error is context.error or isinstance(error, (SystemExit, MemoryError)) or \
                blame(error, path) == "user":
            trace = failed_run(error, context)
        else:  # elbolint's own code failed while driving the file: not the program's failure
            trace = nothing(f"not run: elbolint could not drive this file ({exception_text(error)})")
            trace["harness_error"] = exception_text(error)
    if job.get("variant"):
        trace["variant"] = variant.record()
    trace["seconds"] = time.monotonic() - started
    return trace


def _judged(context) -> bool:
    """Whether an optimizer step belongs to the run being recorded (variants.py): the claimed Keras
    model's fit, or the loop recorder's run; not a run cut short as nobody's, not elbolint's own fits
    (the recorders are disarmed then)."""
    keras = context.store.get("keras")
    if keras is not None and context.claimed == "keras":  # the claimed model's own fit (drive_keras.py)
        return bool(keras.armed and keras.active)
    loop = context.store.get("loop")
    return loop is not None and loop.armed and not loop.brief and not loop.passing


def failed_run(error: BaseException, context: Context) -> dict:
    """The trace of a run that stopped before anything was recorded (or after a recorded fit)."""
    path, settings = context.path, context.settings
    if isinstance(error, SystemExit):
        trace = context.trace or {}
        if not (trace.get("fit") or trace.get("fits")):
            code = error.code if error.code is not None else 0
            trace = {"failure": {"kind": "exit", "message": f"the model called sys.exit({code!r}) before "
                                 "any fit could be recorded", "line": user_line(error, path)}}
        return trace
    if isinstance(error, MemoryError):
        return {"failure": {"kind": "memory",
                            "message": f"memory limit exceeded ({settings['memory_mib']} MiB per file)"}}
    if isinstance(error, ProbeError):
        return nothing(f"not run: {error}")
    package = missing_package(error)
    if package is not None:  # the environment, not the program
        line = user_line(error, path)
        return nothing(f"not run: the file imports `{package}`, which is not installed in {sys.executable}"
                       + (f" (line {line})" if line else ""))
    network = needs_network(error)
    if network is not None:  # no data here: the environment, not the program
        line = user_line(error, path)
        return nothing("not run: a download failed" + (f" at line {line}" if line else "") + f" ({network}); "
                       "dynamic mode needs the data offline: keep it next to the file and read it relative to "
                       "`__file__`, or hand elbolint the model with an `elbolint_probe`")
    if raised_by_elbolint(error):  # a seam of ours broke while the file ran: not the program's failure
        return nothing(f"not run: elbolint could not drive this file ({exception_text(error)})")
    # the user's own code raised while being executed: the program fails on its own
    return {"failure": user_failure(error, path)}

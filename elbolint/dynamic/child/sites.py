"""In the child: where in the user's file a run is (no verdict may come from another run).

Every run a driver records (a `fit_surrogate_posterior` call, a Keras `fit`, a hand-written loop, a
`tfp.math.minimize` loop) carries a `site`: its kind, the user's line of the call (or of the loop's
first step), every line of the user's file on the stack at that moment (`stack`: the call inside a
function and the line that called the function), and the names the user's frames bind to the run's
optimizer and Keras model. The parent (attribution.py) attaches a static finding to a run only when
the finding's own training site is among them. Pure bookkeeping: nothing here raises.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any, Optional

#: id(model) -> the user's line of its last `compile` call (drive_keras.py records it).
COMPILED: dict[int, int] = {}


def user_frames(path: str) -> list:
    """The frames of the user's file on the current stack, innermost first."""
    frames = []
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == path:
            frames.append(frame)
        frame = frame.f_back
    return frames


def names_of(value: Any, frames: list) -> list[str]:
    """The names the user's frames (locals, then their globals) bind to `value` (identity)."""
    if value is None:
        return []
    found: list[str] = []
    scopes = [f.f_locals for f in frames] + [frames[-1].f_globals] if frames else []
    for scope in scopes:
        try:
            items = list(scope.items())
        except Exception:
            continue
        for name, bound in items:
            if bound is value and not name.startswith("__") and name not in found:
                found.append(name)
    return found


def on_stack(kind: str, *names: str) -> Optional[Any]:
    """The innermost frame of the stack whose function is one of `names` in a module path containing
    `kind` (e.g. ("keras", "fit")), or None."""
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in names and kind in frame.f_code.co_filename.replace(os.sep, "/"):
            return frame
        frame = frame.f_back
    return None


def unflagged(record: dict, flagged: Optional[list], flagged_names, done: Optional[list] = None) -> bool:
    """No static finding points at this run (every flagged site gets its own budget): none of
    its lines (stack, call, compile) is in a `flagged` span the parent sent and none of the names bound
    to its optimizer or model is a flagged one. False when the parent could not tell (`flagged` is None)
    or the run is nowhere in the user's file.

    A run at a site in `done` (identities, `identity()`) is treated as nobody's too: an earlier run of
    this file already recorded it (process/site_runs.py), so this run passes it quickly on its way to
    the next flagged site."""
    if done and identity(record) in done:
        return True
    if flagged is None:
        return False
    lines = run_lines(record)
    if not lines:
        return False
    bound = set(record.get("optimizer_names") or []) | set(record.get("model_names") or [])
    for window in flagged_names or []:  # [name, first, last]: the lines while the name holds the flagged object
        name, first, last = (window, None, None) if isinstance(window, str) else window
        if name in bound and (first is None or any(first <= at and (last is None or at < last) for at in lines)):
            return False
    return not any(first <= at <= last for first, last in flagged for at in lines)


def run_lines(record: dict) -> set:
    """The user's lines a run is at: its stack, its training call and the model's compile call. A
    finding's span that holds one of them is that run's (flagged spans, sites already done)."""
    lines = set(record.get("stack") or []) | {record.get("line"), record.get("compile_line")}
    return {at for at in lines if isinstance(at, int)}


def identity(record: dict) -> list:
    """What tells one training site from another across runs of the same file: its kind and the
    user's lines on the stack when it started (the same loop reached from two calls differs); kept in
    the record as `identity` (a loop's recorded `stack` later gains its loss call's lines)."""
    return record.get("identity") or [record.get("kind"), sorted(record.get("stack") or [record.get("line")])]


def site(path: str, kind: str, *, optimizer=None, model=None, line: Optional[int] = None) -> dict:
    """The site of a run that is starting now (called from a seam, with the user's frames on the stack)."""
    try:
        frames = user_frames(path)
        record: dict = {"kind": kind, "line": line if line is not None else (frames[0].f_lineno if frames else None),
                        "stack": sorted({f.f_lineno for f in frames})}
        record["identity"] = identity(record)
        if len(frames) > 1 and frames[-1].f_lineno != record["line"]:
            record["caller"] = frames[-1].f_lineno  # the outermost user line: a helper's call site
        if optimizer is not None:
            record["optimizer_names"] = names_of(optimizer, frames)
        if model is not None:
            record["model_names"] = names_of(model, frames)
            if id(model) in COMPILED:
                record["compile_line"] = COMPILED[id(model)]
        return record
    except Exception:
        return {"kind": kind, "line": line}

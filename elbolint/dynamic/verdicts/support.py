"""ELB014's dynamic confirmation: how many of the surrogate's draws for the flagged component
fall outside its prior's support, at the start and at the end of the user's own fit, and the steps
whose loss is non-finite in the same run.

Why the finding travels with the job: the static rule knows which component of the surrogate stands
for which prior and where that prior has density ("component 'sigma' ... has density only on positive
values (0, inf)"); the child knows neither. So the parent turns each ELB014 finding into a *check*
(`checks`: the component's name or position, the numeric bounds of the prior's support, the
finding's line) and the child measures exactly that component (child/support_draws.py, `measure`): N seeded draws of the
surrogate, the share below the lower bound or above the upper one. The evidence is then the
component's own (never "a NaN somewhere"), and `findings` words it as ELB113 for the finding's line
only (report.py lets an ELB113 confirm only the static finding at its `for_line`).

What confirms: at least one draw in `DRAWS` outside the support, at the start or at the end of the fit
(a surrogate concentrated far from the boundary never leaves it: its mismatch stays latent and the
finding is `not-reproduced`, with the shares as the reason). Supports that are not intervals (the
simplex, positive-definite matrices) or whose bounds are other parameters (`Uniform(low, high)` with
variables) are not measured.
"""

from __future__ import annotations

import math
import re
from typing import Optional

#: Draws of the surrogate per measurement (the shares' resolution).
DRAWS = 1000
CODE = "ELB113"

_WHO = re.compile(r"component '(?P<name>[^']+)'|component at position (?P<position>\d+)|^(?P<whole>the surrogate)\b")
_WHERE = re.compile(r"has density only on (?:positive values |the unit interval )?"
                    r"\((?P<low>[^,()]+), (?P<high>[^()]+)\)")


def check_of(message: str, line: int) -> Optional[dict]:
    """The check for one ELB014 finding, from its message (rules/surrogate_support_mismatch.py words
    the component and the prior's support), or None when the support has no numeric bounds."""
    who, where = _WHO.search(message), _WHERE.search(message)
    if who is None or where is None:
        return None
    low, high = _bound(where.group("low")), _bound(where.group("high"))
    if low is None or high is None:
        return None
    return {"line": line, "name": who.group("name"),
            "position": int(who.group("position")) if who.group("position") else None,
            "whole": bool(who.group("whole")), "low": low, "high": high}


def _bound(text: str) -> Optional[float]:
    text = text.strip()
    if text in ("inf", "-inf"):
        return math.inf if text == "inf" else -math.inf
    try:
        return float(text)
    except ValueError:
        return None


def findings(trace: dict) -> list[dict]:
    """ELB113 per measured check with draws outside the support, for the finding at its line."""
    measured = trace.get("support") or {}
    out = []
    for line in _lines(measured):
        before, after = _at(measured, "start", line), _at(measured, "end", line)
        share = max((m or {}).get("share", 0.0) for m in (before, after))
        if share < 1.0 / DRAWS:
            continue
        parts = []
        if before is not None:
            parts.append(f"{_share(before['share'])} at the start of the fit")
        if after is not None:
            parts.append(f"{_share(after['share'])} at {'its end' if before is not None else 'the end of the run'}"
                         + (f" (NaN: {_share(after['nan'])})" if after.get("nan") else ""))
        name = (before or after or {}).get("component")
        text = (f"{name + ': ' if name else ''}surrogate draws of this component outside its prior's support "
                f"(of {DRAWS}): " + ", ".join(parts))
        losses = (trace.get("fit") or {}).get("loss") or []
        bad = [i for i, v in enumerate(losses) if not _finite(v)]
        if bad:
            text += f"; in the same run the loss is non-finite at {len(bad)} of {len(losses)} steps, from step {bad[0]}"
        out.append({"code": CODE, "message": text, "anchor": "surrogate",
                    "evidence": {"for_line": line, "start": before, "end": after,
                                 "non_finite_steps": len(bad), "steps": len(losses)}})
    return out


def not_reproduced(trace: dict, line: int) -> Optional[str]:
    """The measured shares of a check that stayed inside, for a `not-reproduced` verdict."""
    measured = trace.get("support") or {}
    found = [(when, m) for when in ("start", "end") for m in [_at(measured, when, line)] if m is not None]
    if not found:
        return None
    when = " and at its end" if len(found) == 2 else ("" if found[0][0] == "start" else " (its end)")
    lows = [m["min"] for _, m in found if m.get("min") is not None]
    low = min(lows) if lows else None
    text = (f"0 of {DRAWS} surrogate draws of this component fall outside its prior's support at the start "
            f"of the fit{when}")
    if found[0][0] == "end" and len(found) == 1:
        text = f"0 of {DRAWS} surrogate draws of this component fall outside its prior's support at the end of the run"
    return text + (f" (smallest draw {low:.4g})" if low is not None else "")


def _lines(measured: dict) -> list[int]:
    return list(dict.fromkeys(m["line"] for when in ("start", "end") for m in measured.get(when) or []))


def _at(measured: dict, when: str, line: int) -> Optional[dict]:
    return next((m for m in measured.get(when) or [] if m["line"] == line), None)


def _share(share: float) -> str:
    if share <= 0:
        return "none"
    return f"{100 * share:.1f} %" if share >= 0.01 else f"{round(share * DRAWS)} draws"


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False

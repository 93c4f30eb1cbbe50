"""ELB111's decision (pure Python, no TensorFlow): from a trace's `richer` part — the user's fitted
surrogate's ELBO and, per seed, a full-rank reference's and a mean-field control's, each with its Monte
Carlo standard error (written in the child by elbolint/dynamic/child/richer_family.py, whose docstring
holds the measurements behind these thresholds) — whether the user's mean-field family is clearly too
restrictive, and the message that says what the richer family revealed.

Why apart from the child module: the parent's classifier (classify.py) decides, and must not import the
child's TensorFlow code to do it.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Optional

#: Correlations at least this strong are named in the message.
STRONG_CORRELATION = 0.5

#: Decision thresholds (classify.THRESHOLDS holds the configurable copies).
GAP_MIN = 1.0
GAP_SE = 6.0
SPREAD_MIN = 1.5
#: A gain this large is reported whatever the spreads: many latents each moderately correlated lose
#: as much as two strongly correlated ones (measured on a 30-step Brownian smoothing model: 3.3 nats,
#: neighbours correlated +0.54-0.58, every spread 1.2-1.46x too narrow, so under SPREAD_MIN). 10x the
#: largest gain of a well-specified family measured (0.25 nats, richer_family.py).
GAP_STRONG = 2.5


# --------------------------------------------------------------------------------------------------
# The decision: pure Python.

def _num(value) -> Optional[float]:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def gains(part: dict) -> list[tuple[float, float]]:
    """(gain, standard error) of each seed's full-rank reference over the better of the user's fitted
    surrogate and that seed's mean-field control (the user's family fitted as long from the same
    start): what the richer family adds, not what more steps would add. A seed without its control
    (the time budget ran out) does not count."""
    user, user_se = _num(part.get("user_elbo")), _num(part.get("user_se"))
    if user is None or user_se is None:
        return []
    found = []
    for run in part.get("reference") or []:
        elbo, se = _num(run.get("elbo")), _num(run.get("se"))
        control, control_se = _num(run.get("mean_field_elbo")), _num(run.get("mean_field_se"))
        if elbo is None or se is None or control is None or control_se is None:
            continue
        base, base_se = (control, control_se) if control > user else (user, user_se)
        found.append((elbo - base, math.sqrt(se * se + base_se * base_se)))
    return found


def decide(part: Optional[dict], thresholds: Optional[dict] = None) -> Optional[dict]:
    """The ELB111 finding from a trace's `richer` part (see the module docstring), or None."""
    if not part or part.get("skipped") or part.get("error"):
        return None
    t = {"restrictive_gap_min": GAP_MIN, "restrictive_gap_se": GAP_SE, "restrictive_spread_min": SPREAD_MIN,
         "restrictive_gap_strong": GAP_STRONG}
    t.update({k: v for k, v in (thresholds or {}).items() if k in t})
    found = gains(part)
    if not found:
        return None
    gap = median(g for g, _ in found)
    se = median(s for _, s in found)
    threshold = max(t["restrictive_gap_min"], t["restrictive_gap_se"] * se)
    clear = sum(1 for g, _ in found if g > t["restrictive_gap_min"])
    ratios = [r for r in (_num(v) for v in (part.get("spread_ratio") or {}).values()) if r is not None]
    if gap <= threshold or 2 * clear < len(found) or not ratios:
        return None
    if max(ratios) < t["restrictive_spread_min"] and gap < max(threshold, t["restrictive_gap_strong"]):
        return None
    return {"code": "ELB111", "anchor": "surrogate", "message": _message(part, gap, se, found, clear),
            "evidence": {"gain": gap, "gain_se": se, "threshold": threshold, "gains": [g for g, _ in found],
                         "seeds_clear": clear, "user_elbo": part.get("user_elbo"), "user_se": part.get("user_se"),
                         "correlations": part.get("correlations") or [], "spread_ratio": part.get("spread_ratio") or {},
                         "latent": part.get("latent"), "steps": part.get("steps"), "step_cap": part.get("step_cap"),
                         "seeds_run": len(part.get("reference") or []), "seconds": part.get("seconds"),
                         "stopped": part.get("stopped")}}


def _g(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.4g}"


def _message(part: dict, gap: float, se: float, found: list, clear: int) -> str:
    runs = len(found)
    user = float(part["user_elbo"])
    elbos = [_num(r.get("mean_field_elbo")) for r in part.get("reference") or []]
    controls = [c for c in elbos if c is not None]
    text = (f"a full-rank Gaussian started from the fitted surrogate raises the ELBO by {_g(gap)} ± {_g(se)} nats "
            f"over the mean-field family (fitted surrogate's ELBO {_g(user)}; "
            f"median of {runs} seed{'s' if runs != 1 else ''}, "
            f"{clear} clearly above noise, up to {part.get('steps')} steps each")
    if controls and median(controls) - user > 1.0:
        text += (f"; the same mean-field family fitted as long from the same start reaches {_g(median(controls))}, "
                 "so the fit had not converged either")
    text += f"; {float(part.get('seconds') or 0):.1f} s)"
    strong = [c for c in part.get("correlations") or [] if abs(float(c[2])) >= STRONG_CORRELATION]
    if strong:
        pairs = "; ".join(f"`{a}` with `{b}`: {float(r):+.3f}" for a, b, r in strong[:2])
        text += f": under it the latents correlate ({pairs}), which a mean-field family cannot represent"
    else:
        text += ": the mean-field family misses dependence between the latents"
    ratios = part.get("spread_ratio") or {}
    if ratios:
        name, ratio = max(ratios.items(), key=lambda item: float(item[1]))
        if float(ratio) >= SPREAD_MIN:
            text += (f"; the fitted surrogate's spreads are too narrow (`{name}`'s standard deviation is "
                     f"{float(ratio):.3g}x "
                     "smaller than the full-rank fit's, on the unconstrained scale)")
        elif float(ratio) > 1.1:
            narrow = sum(1 for r in ratios.values() if float(r) > 1.1)
            text += (f"; the fitted surrogate's spreads are narrower than the full-rank fit's for {narrow} of "
                     f"{len(ratios)} latents (up to {float(ratio):.3g}x, `{name}`, on the unconstrained scale)")
    finals = [g for g, _ in found]
    if runs > 1 and max(finals) - min(finals) > max(1.0, 4 * se):
        text += (f"; the seeds end at different gains ({', '.join(_g(g) for g in finals)}): the posterior "
                 "may have several modes")
    text += (". Centre or rescale the inputs (the usual cause of such correlations), or use a full-rank surrogate, "
             "e.g. tfp.experimental.vi.build_affine_surrogate_posterior(event_shape, operators='tril', "
             "bijector=...)")
    return text

"""ELB111's decision (pure Python, no TensorFlow): from a trace's `richer` part — the user's fitted
surrogate's ELBO and, per seed, a full-rank reference's and a mean-field control's, each with its Monte
Carlo standard error (written in the child by elbolint/dynamic/child/richer_family.py, whose docstring
holds the measurements behind these thresholds) — whether the user's mean-field family is clearly too
restrictive, and the message that says what the richer family revealed. A second reference, a normalizing
flow started from the full-rank reference's solution (`richer.flow`, elbolint/dynamic/child/richer_flow.py,
with its measurements), goes through the same noise test against the same mean-field controls; its gain
over its own Gaussian control, when beyond noise too, says the posterior is not Gaussian (skewed,
heavy-tailed, curved), so the message names the flow and a flow surrogate instead of a full-rank one.

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
        found += _over_base(elbo, se, control, control_se, user, user_se)
    return found


def _over_base(elbo, se, control, control_se, user: float, user_se: float) -> list[tuple[float, float]]:
    """One seed's (gain, standard error) of a reference over the better of the user's fitted surrogate
    and that seed's mean-field control; none when a value is missing."""
    if elbo is None or se is None or control is None or control_se is None:
        return []
    base, base_se = (control, control_se) if control > user else (user, user_se)
    return [(elbo - base, math.sqrt(se * se + base_se * base_se))]


def flow_gains(part: dict) -> list[tuple[float, float]]:
    """(gain, standard error) of each seed's flow reference (richer_flow.py) over the better of the user's
    fitted surrogate and the same seed's mean-field control, like `gains`; a seed without its control
    does not count."""
    flow = part.get("flow") or {}
    user, user_se = _num(part.get("user_elbo")), _num(part.get("user_se"))
    if user is None or user_se is None or flow.get("skipped") or flow.get("error"):
        return []
    controls = {run.get("seed"): run for run in part.get("reference") or []}
    found = []
    for run in flow.get("reference") or []:
        elbo, se = _num(run.get("elbo")), _num(run.get("se"))
        mine = controls.get(run.get("seed")) or {}
        control, control_se = _num(mine.get("mean_field_elbo")), _num(mine.get("mean_field_se"))
        found += _over_base(elbo, se, control, control_se, user, user_se)
    return found


def beyond_gaussian(part: dict) -> list[tuple[float, float]]:
    """(gain, standard error) of each seed's flow over its Gaussian control (the full-rank reference fitted
    on as long from the same start): what the non-Gaussian shape adds."""
    flow = part.get("flow") or {}
    if flow.get("skipped") or flow.get("error"):
        return []
    found = []
    for run in flow.get("reference") or []:
        elbo, se = _num(run.get("elbo")), _num(run.get("se"))
        gauss, gauss_se = _num(run.get("gaussian_elbo")), _num(run.get("gaussian_se"))
        if None not in (elbo, se, gauss, gauss_se):
            found.append((elbo - gauss, math.sqrt(se * se + gauss_se * gauss_se)))  # type: ignore[operator]
    return found


def _beyond_noise(found: list[tuple[float, float]], t: dict) -> Optional[tuple[float, float, float, int]]:
    """(median gain, median standard error, threshold, seeds clear) when the median gain exceeds
    max(gap_min, gap_se x its standard error) and at least half of the seeds gain more than gap_min."""
    if not found:
        return None
    gap, se = median(g for g, _ in found), median(s for _, s in found)
    threshold = max(t["restrictive_gap_min"], t["restrictive_gap_se"] * se)
    clear = sum(1 for g, _ in found if g > t["restrictive_gap_min"])
    if gap <= threshold or 2 * clear < len(found):
        return None
    return gap, se, threshold, clear


def _reported(found: list, ratios_of: dict, t: dict) -> Optional[tuple[float, float, float, int]]:
    """The noise test, then: some latent's spread too narrow by restrictive_spread_min, or a strong gain."""
    clear = _beyond_noise(found, t)
    ratios = [r for r in (_num(v) for v in (ratios_of or {}).values()) if r is not None]
    if clear is None or not ratios:
        return None
    if max(ratios) < t["restrictive_spread_min"] and clear[0] < max(clear[2], t["restrictive_gap_strong"]):
        return None
    return clear


def decide(part: Optional[dict], thresholds: Optional[dict] = None) -> Optional[dict]:
    """The ELB111 finding from a trace's `richer` part (see the module docstring), or None. Two references
    may show the gap, the full-rank Gaussian and the flow (`richer.flow`); the larger clear gain is
    reported, and the flow's gain over its Gaussian control, when it is beyond noise too, says the
    posterior is not Gaussian."""
    if not part or part.get("skipped") or part.get("error"):
        return None
    t = {"restrictive_gap_min": GAP_MIN, "restrictive_gap_se": GAP_SE, "restrictive_spread_min": SPREAD_MIN,
         "restrictive_gap_strong": GAP_STRONG}
    t.update({k: v for k, v in (thresholds or {}).items() if k in t})
    flow = part.get("flow") or {}
    found, found_flow = gains(part), flow_gains(part)
    full = _reported(found, part.get("spread_ratio") or {}, t)
    by_flow = _reported(found_flow, flow.get("spread_ratio") or {}, t)
    # the posterior is not Gaussian when the flow's gain over its own Gaussian control is beyond noise *and*
    # its draws show a shape no Gaussian has: otherwise the flow's extra is the Gaussian's longer fit
    # (restrictive_family_far_inputs: +0.33 nats) or a flow that merely optimises an ill-conditioned Gaussian
    # faster (the affine 'diag' surrogate at x in [20, 21]: +1.08 to +1.22 nats, skewness 0.02, curvature -0.01)
    shape = _beyond_noise(beyond_gaussian(part), t) if _features(flow) else None
    use_flow = by_flow is not None and shape is not None and (full is None or by_flow[0] > full[0])
    if full is None and not use_flow:
        return None
    gap, se, threshold, clear = by_flow if use_flow else full  # type: ignore[misc]
    chosen = found_flow if use_flow else found
    evidence = {"reference": "flow" if use_flow else "full-rank", "gain": gap, "gain_se": se, "threshold": threshold,
                "gains": [g for g, _ in chosen], "seeds_clear": clear, "user_elbo": part.get("user_elbo"),
                "user_se": part.get("user_se"), "correlations": part.get("correlations") or [],
                "spread_ratio": (flow if use_flow else part).get("spread_ratio") or {},
                "latent": part.get("latent"), "steps": part.get("steps"), "step_cap": part.get("step_cap"),
                "seeds_run": len(part.get("reference") or []), "seconds": part.get("seconds"),
                "stopped": part.get("stopped")}
    if found_flow:
        evidence.update(flow_gains=[g for g, _ in found_flow], flow_steps=flow.get("steps"),
                        flow_seconds=flow.get("seconds"), flow_stopped=flow.get("stopped"),
                        beyond_gaussian=shape[0] if shape else None)
    message = (_flow_message(part, gap, se, found, found_flow, clear, shape) if use_flow
               else _message(part, gap, se, found, clear, shape))
    return {"code": "ELB111", "anchor": "surrogate", "message": message, "evidence": evidence}


def _g(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.4g}"


def _message(part: dict, gap: float, se: float, found: list, clear: int, shape=None) -> str:
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
    text += f"; {float(part.get('seconds') or 0):.1f} s"
    flow_seconds = _num((part.get("flow") or {}).get("seconds"))
    text += f", and {flow_seconds:.1f} s for a normalizing flow)" if flow_seconds is not None else ")"
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
    if shape is not None:
        text += (f"; a normalizing flow started from the full-rank fit adds {_g(shape[0])} ± {_g(shape[1])} nats "
                 "more: the posterior is not Gaussian either" + _shape_words(part.get("flow") or {}))
    text += (". Centre or rescale the inputs (the usual cause of such correlations), or use a full-rank surrogate, "
             "e.g. tfp.experimental.vi.build_affine_surrogate_posterior(event_shape, operators='tril', "
             "bijector=...)")
    if shape is not None:
        text += f", or a flow surrogate ({FLOW_SUGGESTION})"
    return text


#: What the message suggests when the gap is the flow's.
FLOW_SUGGESTION = ("e.g. tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [d]), "
                   "tfb.MaskedAutoregressiveFlow(tfb.AutoregressiveNetwork(params=2, hidden_units=[32, 32]))) "
                   "followed by the event-space bijector")
#: A flow's marginal counts as skewed, heavy-tailed, curved beyond these (0 for any Gaussian).
SKEWED = 0.5
HEAVY_TAILED = 1.0
CURVED = 0.3


def _shape_words(flow: dict) -> str:
    words = _features(flow)
    return (" (under the flow, on the unconstrained scale: " + "; ".join(words) + ")") if words else ""


def _features(flow: dict) -> list[str]:
    """What the best flow showed that no Gaussian has (richer_flow._revealed): the most skewed and the most
    heavy-tailed latent, the strongest curved dependence, each only beyond its bound."""
    words: list[str] = []
    skew = [(k, v) for k, v in ((k, _num(v)) for k, v in (flow.get("skewness") or {}).items()) if v is not None]
    if skew:
        name, value = max(skew, key=lambda item: abs(item[1]))
        if abs(value) >= SKEWED:
            words.append(f"`{name}` is skewed (skewness {value:+.2f})")
    kurt = [(k, v) for k, v in ((k, _num(v)) for k, v in (flow.get("kurtosis") or {}).items()) if v is not None]
    if kurt:
        name, value = max(kurt, key=lambda item: item[1])
        if value >= HEAVY_TAILED:
            words.append(f"`{name}` is heavy-tailed (excess kurtosis {value:.2f})")
    curved = [c for c in flow.get("curvature") or [] if len(c) == 3 and _num(c[2]) is not None]
    if curved and abs(float(curved[0][2])) >= CURVED:
        a, b, r = curved[0]
        words.append(f"`{a}` follows `{b}`'s magnitude, a curved dependence no Gaussian has "
                     f"(correlation with its square {float(r):+.2f})")
    return words


def _flow_message(part: dict, gap: float, se: float, found: list, found_flow: list, clear: int, shape) -> str:
    """The message when the flow shows the larger clear gap: how much, the full-rank Gaussian's share,
    what the flow revealed, and what to use instead."""
    flow = part.get("flow") or {}
    runs = len(found_flow)
    user = float(part["user_elbo"])
    text = (f"a normalizing flow ({flow.get('layers')} affine coupling layers of "
            f"{'x'.join(str(h) for h in flow.get('hidden') or [])} units) started from the fitted surrogate "
            f"raises the ELBO by {_g(gap)} ± {_g(se)} nats over the mean-field family (fitted surrogate's ELBO "
            f"{_g(user)}; median of {runs} seed{'s' if runs != 1 else ''}, {clear} clearly above noise, up to "
            f"{flow.get('steps')} steps each; {float(flow.get('seconds') or 0):.1f} s, after the full-rank "
            f"fit's {float(part.get('seconds') or 0):.1f} s)")
    if found:
        full = median(g for g, _ in found)
        text += f", a full-rank Gaussian only by {_g(full)} ± {_g(median(s for _, s in found))}"
    controls = [c for c in (_num(r.get("mean_field_elbo")) for r in part.get("reference") or []) if c is not None]
    if controls and median(controls) - user > 1.0:
        text += (f" (the same mean-field family fitted as long from the same start reaches {_g(median(controls))}, "
                 "so the fit had not converged either)")
    if shape is not None:
        text += (": the posterior is not Gaussian, so a full-rank Gaussian surrogate will not fix it"
                 + _shape_words(flow))
    ratios = flow.get("spread_ratio") or {}
    if ratios:
        name, ratio = max(ratios.items(), key=lambda item: float(item[1]))
        if float(ratio) >= SPREAD_MIN:
            text += (f"; the fitted surrogate's spreads are too narrow (`{name}`'s standard deviation is "
                     f"{float(ratio):.3g}x smaller than the flow's, on the unconstrained scale)")
    finals = [g for g, _ in found_flow]
    if runs > 1 and max(finals) - min(finals) > max(1.0, 4 * se):
        text += (f"; the seeds end at different gains ({', '.join(_g(g) for g in finals)}): the posterior "
                 "may have several modes")
    text += (f". Use a flow surrogate ({FLOW_SUGGESTION}), or reparameterise the model so its posterior is "
             "closer to Gaussian; for a Gaussian posterior tfp.experimental.vi.build_affine_surrogate_posterior"
             "(event_shape, operators='tril', bijector=...) is enough")
    return text

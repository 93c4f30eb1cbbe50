"""In the child: ELB014's component measured (the parent's side, the checks and the verdict, is
elbolint/dynamic/verdicts/support.py): `DRAWS` seeded draws of the surrogate, the share of the flagged
component's draws outside [low, high] of its prior's support, NaN draws told apart."""

from __future__ import annotations

from typing import Any

from elbolint.dynamic.verdicts.support import DRAWS


def measure(surrogate, checks: list[dict], seed: int = 0) -> list[dict]:
    """Each check's share of `DRAWS` surrogate draws outside [low, high] (NaN draws count as outside),
    with the component's smallest and largest draw; a check whose component cannot be found is
    left out. Never raises."""
    if not checks:
        return []
    try:
        import numpy as np
        import tensorflow as tf

        draws = surrogate.sample(DRAWS, seed=tf.constant([seed, 11], tf.int32))
    except Exception:
        return []
    out = []
    for check in checks:
        value = _component(surrogate, draws, check)
        if value is None:
            continue
        try:
            values = np.asarray(value, dtype=np.float64).reshape(DRAWS, -1)
        except Exception:
            continue
        finite = np.isfinite(values) | np.isinf(values)  # NaN draws (a fit gone NaN) are told apart
        outside = finite & ~((values > check["low"]) & (values < check["high"]))
        label = f"component '{check['name']}'" if check.get("name") else (
            f"component {check['position']}" if check.get("position") is not None else None)
        out.append({"line": check["line"], "component": label, "share": float(np.mean(np.any(outside, axis=1))),
                    "nan": float(np.mean(np.any(~finite, axis=1))),
                    "min": float(np.nanmin(values)) if np.isfinite(values).any() else None,
                    "max": float(np.nanmax(values)) if np.isfinite(values).any() else None})
    return out


def _component(surrogate, draws, check: dict) -> Any:
    """The flagged component's draws: the whole sample, a dict entry by name, or a list entry by
    position or by the joint distribution's own resolved names."""
    if check.get("whole") or not isinstance(draws, (dict, list, tuple)) and not hasattr(draws, "_asdict"):
        return draws if not isinstance(draws, (dict, list, tuple)) else None
    if hasattr(draws, "_asdict"):
        draws = draws._asdict()
    if isinstance(draws, dict):
        return draws.get(check.get("name")) if check.get("name") else None
    position = check.get("position")
    if position is None and check.get("name"):
        try:
            names = list(surrogate._flat_resolve_names())
        except Exception:
            names = []
        position = names.index(check["name"]) if check["name"] in names else None
    if position is None or not 0 <= position < len(draws):
        return None
    return draws[position]

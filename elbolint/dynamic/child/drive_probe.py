"""Driver 1, `probe`: a module-level function (default `elbolint_probe`, setting `probe`) returning a
mapping with `target_log_prob_fn`, `surrogate_posterior` and optionally `optimizer`, `num_steps`,
`sample_size`. The author says exactly what to fit, so when it exists no other driver is tried.
The file runs as `__elbolint_probe__` (not `__main__`), then the probe is called and fitted."""

from __future__ import annotations

import re

from elbolint.dynamic.child.drivers import ProbeError
from elbolint.dynamic.child.fitting import fit_trace

NAME = "probe"
EXCLUSIVE = True


def applies(source: str, probe: str) -> bool:
    return bool(re.search(rf"^(async\s+)?def\s+{re.escape(probe)}\s*\(", source, re.M))


def run(context) -> dict:
    probe = context.settings["probe"]
    namespace = context.execute("__elbolint_probe__")
    if context.error is not None:
        raise context.error
    function = (namespace or {}).get(probe)
    if not callable(function):
        raise ProbeError(f"{probe} is not a function")
    spec = function()
    if not hasattr(spec, "get") or "target_log_prob_fn" not in spec or "surrogate_posterior" not in spec:
        raise ProbeError(f"{probe}() must return a mapping with target_log_prob_fn and "
                         "surrogate_posterior (optionally optimizer, num_steps, sample_size)")
    return fit_trace(context, spec["target_log_prob_fn"], spec["surrogate_posterior"], spec.get("optimizer"),
                     spec.get("num_steps"), {"sample_size": spec.get("sample_size", 1)},
                     line=function.__code__.co_firstlineno, source="probe", namespace=namespace)

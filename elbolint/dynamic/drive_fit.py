"""Driver 2, `fit`: the file's own `tfp.vi.fit_surrogate_posterior(...)` calls. The file runs as
`__main__` with that function replaced by a recorder, so scripts that load their data in `main()`
work too; the first call is fitted for the budget (its own `num_steps` caps it; its `sample_size`,
`trainable_variables`, `discrepancy_fn` and `importance_sample_size` are kept) and the script is then
stopped: nothing after the fit matters here. A hand-written loop that already recorded steps in the
same run (see drive_loop.py) is the fit to report; the recorder then only stops the script."""

from __future__ import annotations

import re
import sys

from elbolint.dynamic.fitting import caller_line, fit_trace

NAME = "fit"

_CALL = re.compile(r"fit_surrogate_posterior")


def applies(source: str, probe: str) -> bool:
    return True  # the seam costs nothing; a sibling module of the file may call it too


def runs_file(source: str) -> bool:
    return bool(_CALL.search(source))


def install(context) -> None:
    import tensorflow_probability as tfp
    from tensorflow_probability.python import vi as vi_package
    from tensorflow_probability.python.vi import optimization

    def fit_surrogate_posterior(target_log_prob_fn, surrogate_posterior, optimizer=None,
                                num_steps=None, *args, **kwargs):
        if context.claimed not in (None, NAME):  # another seam recorded the user's fit already
            raise context.Stop()
        context.claimed = NAME
        line = caller_line(context.path)
        namespace = sys._getframe(1).f_globals
        context.trace = fit_trace(context, target_log_prob_fn, surrogate_posterior, optimizer, num_steps,
                                  kwargs, line=line, source="fit_surrogate_posterior", namespace=namespace)
        raise context.Stop()

    for module in (tfp.vi, vi_package, optimization):
        module.fit_surrogate_posterior = fit_surrogate_posterior


def run(context):
    context.execute()
    if context.claimed == NAME and context.trace is not None:
        return context.trace
    return None

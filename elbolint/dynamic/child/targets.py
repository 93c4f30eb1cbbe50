"""How a variational target is called on a surrogate's sample, as `tfp.vi.fit_surrogate_posterior`
calls it: a dict sample by keyword, a list or tuple by position, anything else as one argument.

Why a module of its own: the fit driver (fitting.py) and ELB111's richer reference (richer_family.py)
both call the user's target; one definition keeps them calling it the same way, and this leaf module
imports nothing, so neither needs the other.
"""

from __future__ import annotations


def call_target(target, sample):
    if isinstance(sample, dict):
        return target(**sample)
    if isinstance(sample, (list, tuple)):
        return target(*sample)
    return target(sample)

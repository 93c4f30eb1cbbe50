"""Every attribute of TensorFlow, TFP, Keras and the stdlib that dynamic mode replaces in the child, in
one place, with a test that each exists and is wrapped once for the pinned versions.

Why: the drivers record the user's own training through seams — wrappers around functions and
methods the user's program calls (`fit_surrogate_posterior`, `monte_carlo_variational_loss`,
`GradientTape.gradient`, the optimizers' `apply_gradients`, Keras `fit`/`compile`, the
JointDistribution constructors, the seeding functions). Those names move between TF/TFP/Keras
releases; a seam whose target moved silently records nothing, and a target wrapped twice by the same
seam records every step twice. So each seam is declared here (`TARGETS`: where, which attribute, who
wraps it and why), every replacement goes through `replace` (which marks the wrapper and refuses to
wrap a target a second time with the same seam), and tests/test_dynamic_seams.py checks, with the
pinned versions installed, that each target exists and that installing every driver wraps each
exactly once per declared seam. Nothing is restored: the forked child exits after the run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

#: The attribute a wrapper carries: the name of the seam that installed it.
MARK = "__elbolint_seam__"


@dataclass(frozen=True)
class Target:
    #: a module path ("tensorflow_probability.python.vi.optimization"), a module path and an attribute
    #: path ("tensorflow:GradientTape"), or a function returning classes
    #: ("elbolint.dynamic.child.loop:optimizer_classes()")
    owner: str
    attribute: str
    #: the seams (driver names, "variant") that wrap it, each exactly once
    seams: tuple[str, ...]
    why: str
    #: for class families: only the classes that define the attribute themselves are wrapped
    own: bool = True


TARGETS = (
    Target("tensorflow_probability.python.vi.optimization", "fit_surrogate_posterior", ("fit",),
           "the user's fits, re-run per seed with their own arguments (drive_fit.py)"),
    Target("tensorflow_probability.python.vi", "fit_surrogate_posterior", ("fit",), "the same, as `tfp.vi` exports it"),
    Target("tensorflow_probability.python.vi.csiszar_divergence", "monte_carlo_variational_loss", ("loop",),
           "a hand-written loop's loss, target and surrogate (loop.py)"),
    Target("tensorflow_probability.python.vi", "monte_carlo_variational_loss", ("loop",),
           "the same, as `tfp.vi` exports it"),
    Target("tensorflow:GradientTape", "gradient", ("loop", "keras"),
           "a hand-built loss (loop.py); a Keras step's loss and gradients (drive_keras.py)"),
    Target("elbolint.dynamic.child.loop:optimizer_classes()", "apply_gradients", ("variant", "loop"),
           "each optimizer step: a replay's clipping or smaller rate (variants.py), then the recording (loop.py)"),
    Target("elbolint.dynamic.child.drive_keras:model_classes()", "fit", ("keras",), "the claimed model's Keras fit"),
    Target("elbolint.dynamic.child.drive_keras:model_classes()", "train_on_batch", ("keras",),
           "the same, batch by batch"),
    Target("elbolint.dynamic.child.drive_keras:model_classes()", "make_train_function", ("keras",),
           "the train function whose logs carry the recorded values"),
    Target("elbolint.dynamic.child.drive_keras:compiling_classes()", "compile", ("keras",),
           "the user's line of each model's compile (sites.py)"),
    Target("elbolint.dynamic.child.drive_sample:_classes()", "__init__", ("sample",),
           "the JointDistributions the user's file builds (drive_sample.py)"),
    Target("tensorflow:random", "set_seed", ("variant",), "a replay's seed mixed into the program's own seeding"),
    Target("numpy:random", "seed", ("variant",), "the same for NumPy"),
    Target("random", "seed", ("variant",), "the same for the stdlib"),
)


def replace(owner: Any, attribute: str, wrapper: Callable, seam: str) -> None:
    """`owner.attribute = wrapper`, marked as `seam`'s; refuses to wrap what `seam` wrapped already."""
    current = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)
    if seam in seams_of(current):
        raise RuntimeError(f"{getattr(owner, '__name__', owner)}.{attribute} is wrapped by the {seam} seam already")
    try:
        setattr(wrapper, MARK, seam)
        if current is not None and not hasattr(wrapper, "__wrapped__"):
            setattr(wrapper, "__wrapped__", current)
    except (AttributeError, TypeError):
        pass
    setattr(owner, attribute, wrapper)


def seams_of(function: Any) -> list[str]:
    """The seams wrapped around `function`, outermost first (following `__wrapped__`)."""
    found, seen = [], set()
    while function is not None and id(function) not in seen:
        seen.add(id(function))
        seam = getattr(function, MARK, None)
        if seam:
            found.append(seam)
        function = getattr(function, "__wrapped__", None)
    return found


def resolve(target: Target) -> list[tuple[Any, str]]:
    """(owner object, attribute) pairs the target names in this environment; raises when the owner is
    gone (a moved module or class: the test reports it)."""
    module, _, path = target.owner.partition(":")
    owner: Any = importlib.import_module(module)
    if path.endswith("()"):
        classes = getattr(owner, path[:-2])()
        return [(cls, target.attribute) for cls in classes
                if not target.own or target.attribute in cls.__dict__]
    for part in filter(None, path.split(".")):
        owner = getattr(owner, part)
    return [(owner, target.attribute)]

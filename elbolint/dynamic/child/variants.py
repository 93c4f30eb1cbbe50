"""In the child: the program run again as a *variant* (several seeds and counterfactual re-runs for
the program's own training: hand-written loops and Keras fits, not only `fit_surrogate_posterior`).

A `fit_surrogate_posterior` call can be re-fitted in-process from its recorded arguments (fitting.py).
A hand-written loop or a Keras `fit` cannot: its steps are the user's code, so the only honest re-run
is the whole program again, in a fresh child, changed in exactly one respect (replays.py decides which
and merges the results). The job's `variant` says what:

- `seed` (k >= 1): elbolint's own seeding uses k, and the program's own calls to `tf.random.set_seed`,
  `np.random.seed` and `random.seed` get k mixed in, so a script that seeds itself still draws other
  numbers. Stateless seeds the program passes to its ops (`seed=[step, 0]`) stay as written: such a run
  repeats itself, and replays.py notices (identical losses) instead of counting it as another seed.
- `clip`: each gradient of the judged run is clipped to this norm before its optimizer applies it
  (what ELB003 asks for: `clipnorm=`), as the fit driver's clipped counterfactual does
  (optimizers.clip_each).
- `rate_factor`: the judged run's optimizer starts at a learning rate this many times smaller (what
  ELB009 asks for), only when its rate is a constant; otherwise nothing changes and the variant says
  why (`rate_error`), so no re-run is mistaken for the fix.

"The judged run" is the run the loop recorder records (loop.py): a run it cut short as nobody's
(`brief`), elbolint's own fits (the recorder is disarmed then) and the steps after the recording
stay untouched. The wrapper sits *inside* the recorder's (installed first), so the recorded gradient
norm is the norm before clipping, as in the fit driver's counterfactual.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable, Optional

from elbolint.dynamic.child.optimizers import clip_each
from elbolint.dynamic.child.seams import replace

#: The seam's name (seams.py).
SEAM = "variant"
#: A seed's offset for the program's own seeding calls (a prime, so offsets of different k never meet).
SEED_STRIDE = 7919


class Variant:
    """One variant of the program, installed in the child before the drivers' seams."""

    def __init__(self, spec: Optional[dict], judged: Callable[[], bool] = lambda: True):
        spec = spec or {}
        self.seed = int(spec.get("seed") or 0)
        self.clip = spec.get("clip")
        self.rate_factor = spec.get("rate_factor")
        self.judged = judged  # whether the current optimizer step belongs to the run being judged
        self.clipped_steps = 0
        self.rates: dict[int, dict] = {}  # id(optimizer) -> {"from", "to"} or {"error"}

    @property
    def changes_steps(self) -> bool:
        return bool(self.clip or self.rate_factor)

    def install(self) -> None:
        if self.seed:
            _offset_seeding(self.seed)
        if not self.changes_steps:
            return
        from elbolint.dynamic.child.loop import optimizer_classes

        for cls in optimizer_classes():
            if "apply_gradients" in cls.__dict__:
                replace(cls, "apply_gradients", self._wrap(cls.__dict__["apply_gradients"]), SEAM)

    def _wrap(self, original):
        variant = self

        @functools.wraps(original)
        def apply_gradients(optimizer, grads_and_vars, *args, **kwargs):
            try:
                judged = variant.judged()
            except Exception:
                judged = False
            if not judged:
                return original(optimizer, grads_and_vars, *args, **kwargs)
            pairs = list(grads_and_vars)
            if variant.rate_factor:
                variant._slow_down(optimizer, variant.rate_factor)
            if variant.clip:
                pairs = variant._clipped(pairs, variant.clip)
            return original(optimizer, pairs, *args, **kwargs)

        return apply_gradients

    def _clipped(self, pairs: list, clip: float) -> list:
        import tensorflow as tf

        present = [(i, g) for i, (g, _) in enumerate(pairs) if g is not None]
        if not present:
            return pairs
        clipped = clip_each([tf.convert_to_tensor(g) for _, g in present], float(clip))
        out = list(pairs)
        for (i, _), grad in zip(present, clipped):
            out[i] = (grad, pairs[i][1])
        self.clipped_steps += 1
        return out

    def _slow_down(self, optimizer, factor: float) -> None:
        """Once per optimizer: its constant learning rate divided by `rate_factor`, set eagerly."""
        key = id(optimizer)
        if key in self.rates:
            return
        import tensorflow as tf

        from elbolint.dynamic.child.optimizers import constant_learning_rate

        try:
            with tf.init_scope():  # inside a traced train step too: read and set once, eagerly
                rate = constant_learning_rate(optimizer)
                if rate is None:
                    self.rates[key] = {"error": "the optimizer's learning rate is not a constant"}
                    return
                smaller = rate / float(factor)
                optimizer.learning_rate = smaller
                now = constant_learning_rate(optimizer)
        except Exception as error:
            self.rates[key] = {"error": f"the learning rate could not be set ({type(error).__name__})"}
            return
        if now is None or abs(now - smaller) > 1e-6 * smaller:
            self.rates[key] = {"error": "the learning rate could not be set"}
            return
        self.rates[key] = {"from": rate, "to": smaller}

    def record(self) -> dict[str, Any]:
        """What this variant changed, for the trace (replays.py checks the change really happened)."""
        out: dict[str, Any] = {"seed": self.seed}
        if self.clip:
            out["clip"] = self.clip
            out["clipped_steps"] = self.clipped_steps
        if self.rate_factor:
            out["rate_factor"] = self.rate_factor
            out["rates"] = list(self.rates.values())
        return out


def _offset_seeding(k: int) -> None:
    """The program's own seeding calls draw seed k's numbers (module docstring)."""
    import numpy as np
    import tensorflow as tf

    def shifted(original):
        @functools.wraps(original)
        def seed(value=None, *args, **kwargs):
            if isinstance(value, int) and not isinstance(value, bool):
                value = (value + SEED_STRIDE * k) % (2 ** 31 - 1)
            return original(value, *args, **kwargs)

        return seed

    for module in {id(m): m for m in _tf_random_modules(tf)}.values():
        if hasattr(module, "set_seed"):
            replace(module, "set_seed", shifted(module.set_seed), SEAM)
    try:
        replace(tf.compat.v1, "set_random_seed", shifted(tf.compat.v1.set_random_seed), SEAM)
    except AttributeError:
        pass
    replace(np.random, "seed", shifted(np.random.seed), SEAM)
    replace(random, "seed", shifted(random.seed), SEAM)


def _tf_random_modules(tf) -> list:
    modules = [tf.random]
    for path in ("compat.v2.random", "compat.v1.random"):
        module = tf
        try:
            for part in path.split("."):
                module = getattr(module, part)
        except AttributeError:
            continue
        modules.append(module)
    return modules

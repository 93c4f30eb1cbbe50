"""The drivers: each way dynamic mode can drive a model is one module `drive_<name>.py` behind one
interface, so adding a way touches one file (plus its line in `ORDER`).

Why: a model file shows its fit in many forms (a probe, a `fit_surrogate_posterior` call, a
hand-written loop, a Keras `model.fit`, module-level objects to pair, a JointDistribution with no fit
at all). The runner (runner.py) only dispatches; the classifier (classify.py) only classifies.

The interface of a driver module:

- `NAME`: a short name (it becomes the trace's `source` unless the driver says otherwise);
- `applies(source: str, probe: str) -> bool`: from the file's text alone (no TensorFlow), whether the
  driver takes part for this file;
- `runs_file(source: str) -> bool` (optional): the file is worth running as `__main__` for this driver
  (a fit call or a training loop is visible); otherwise it is imported as `__elbolint_import__`;
- `EXCLUSIVE` (optional, default False): when it applies, no other driver takes part;
- `install(context) -> None` (optional): recording seams to put in place before the file runs (the
  file runs once, with every participating driver's seams in place);
- `run(context) -> dict | None`: after `context.execute()` (which a driver may call itself: it runs
  the file once), the run's trace for the classifier, or None to let the next driver try.

Order (`ORDER`), first trace wins:
1. `probe`   a module-level `elbolint_probe()` (configurable) returning target/surrogate/optimizer;
2. `fit`     the file's own `tfp.vi.fit_surrogate_posterior` calls, replaced by a recorder;
3. `keras`   a Keras model with `tfp.layers` (or the file's own) layers trained by the user's own
             `model.fit`/`train_on_batch`/custom `train_step`: per batch the loss, the KL term
             (`model.losses`), the data term, the gradient norm and the posterior scales, stopped
             after the budget (tf-keras as `tf.keras` for `tfp.layers` files, see harness.py);
4. `loop`    a hand-written loop's own steps (`monte_carlo_variational_loss` + `apply_gradients`);
             also a Keras fit of a model the `keras` driver does not claim (no TFP layer in it);
5. `pair`    module-level surrogate (trainable distribution) + JointDistribution model, fitted;
6. `sample`  every JointDistribution the file built (module level, or built by a function it called,
             or returned by a builder with no parameters): sampled, `log_prob` evaluated, no fit.

`keras` comes before `loop` because a Keras fit also goes through the optimizer's `apply_gradients`:
the `keras` driver claims the fit first (`context.claimed`) and turns the loop's seams off, and with
them the eager mode the loop armed, so the user's fit runs compiled, as Keras compiles it.

When no driver returns a trace, the run's own exception (if the file failed) is the trace's failure,
else the trace says that nothing could be run.
"""

from __future__ import annotations

import importlib
import runpy
from typing import Any, Callable, Optional

ORDER = ("probe", "fit", "keras", "loop", "pair", "sample")


class Stop(BaseException):
    """A seam stops the user's script once its recording is complete (BaseException: rarely caught)."""


class ProbeError(Exception):
    """The probe or the pairing found something unusable; its message becomes an ELB100 reason."""


def modules() -> list:
    return [importlib.import_module(f"elbolint.dynamic.child.drive_{name}") for name in ORDER]


def participating(source: str, probe: str) -> list:
    """The driver modules that take part for this file's text, in order."""
    found = [d for d in modules() if d.applies(source, probe)]
    exclusive = [d for d in found if getattr(d, "EXCLUSIVE", False)]
    return exclusive[:1] or found


def runs_file(source: str, drivers: list) -> bool:
    return any(getattr(d, "runs_file", lambda s: False)(source) for d in drivers)


class Context:
    """What the drivers share in one child: the file, the settings, and the one execution of the file."""

    Stop = Stop

    def __init__(self, path: str, source: str, settings: dict, run_name: str = "__elbolint_import__"):
        self.path = path
        self.source = source
        self.settings = settings
        self.budget = int(settings["steps"])
        self.run_name = run_name
        self.trace: Optional[dict] = None  # a trace a seam recorded while the file ran
        self.claimed: Optional[str] = None  # the driver whose seam is recording the user's own fit
        self.namespace: Optional[dict] = None  # the file's globals after a completed run
        self.error: Optional[BaseException] = None  # what stopped the file (not a Stop)
        self.stopped = False  # a seam stopped the file
        self.executed = False
        self.store: dict[str, Any] = {}  # per-driver state, keyed by driver name
        self._quiet: list[Callable[[], None]] = []
        self._before: list[Callable[[], None]] = []

    def on_quiet(self, callback: Callable[[], None]) -> None:
        """`callback` disarms a seam: called before any fit of elbolint's own (its steps are not the user's)."""
        self._quiet.append(callback)

    def before_run(self, callback: Callable[[], None]) -> None:
        """`callback` arms a seam just before the file runs."""
        self._before.append(callback)

    def quiet(self) -> None:
        for callback in self._quiet:
            callback()

    def execute(self, run_name: Optional[str] = None) -> Optional[dict]:
        """Run the file once (later calls return the first run's namespace). Records a seam's Stop, or
        the file's own exception, instead of raising it; MemoryError and SystemExit are recorded too."""
        if self.executed:
            return self.namespace
        self.executed = True
        for callback in self._before:
            callback()
        try:
            self.namespace = runpy.run_path(self.path, run_name=run_name or self.run_name)
        except Stop:
            self.stopped = True
        except BaseException as error:  # noqa: B036 - the user's failure is data here
            self.error = error
        return self.namespace


def nothing(reason: str) -> dict:
    return {"nothing": reason}

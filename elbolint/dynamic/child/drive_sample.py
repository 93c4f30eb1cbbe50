"""Driver 6, `sample`: models without a fit. Snippets, "simplified for brevity" examples and library
modules often build a `JointDistribution*` and never fit anything. Every JointDistribution the file
built (Sequential, Named, Coroutine and their AutoBatched variants) is sampled once (seeded) and its
`log_prob` evaluated on that sample, with no fit:

- TFP's own errors when the model is sampled ("Too few inputs provided to ...-th distribution maker",
  "Inconsistent names ...") are what ELB005 predicts; they become a `failure` of kind `model` that
  only *confirms* static findings (`confirm_only`): the program itself never samples the model and
  runs natively, so it never gets an ELB100 row of its own from this driver;
- a non-scalar `log_prob` of one joint sample, when the components' batch shapes differ (a scalar
  prior and a vector likelihood: the missing `tfd.Independent` ELB006 predicts), is ELB106. A model
  whose components all share one batch shape is batched on purpose and is left alone.

Which models: those constructed by the user's file while it ran (at module level, or inside a
function the file called: the constructors are watched), and those returned by a builder of the file
that was never called and takes no arguments (`def make_model(): return tfd.JointDistribution...`).
A builder that raises is skipped (it may need data the snippet does not have). At most MAX_MODELS.
"""

from __future__ import annotations

import ast
import re
import sys
from typing import Any, Optional

from elbolint.dynamic.child.failures import exception_text, user_line
from elbolint.dynamic.child.seams import replace

NAME = "sample"
MAX_MODELS = 8
_JOINT = re.compile(r"JointDistribution")
#: a builder whose body trains or runs things is not called by this driver
_BUSY = re.compile(r"fit_surrogate_posterior|monte_carlo_variational_loss|apply_gradients|minimize|"
                   r"\.fit\s*\(|\bwhile\b|input\s*\(|open\s*\(|subprocess|os\.system")


def applies(source: str, probe: str) -> bool:
    return bool(_JOINT.search(source))


def _classes():
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    public = [getattr(tfd, name) for name in (
        "JointDistributionSequential", "JointDistributionNamed", "JointDistributionCoroutine",
        "JointDistributionSequentialAutoBatched", "JointDistributionNamedAutoBatched",
        "JointDistributionCoroutineAutoBatched") if hasattr(tfd, name)]
    found = []
    for cls in public:
        for base in cls.__mro__:
            if issubclass(base, tfd.JointDistribution) and "__init__" in base.__dict__ and base not in found:
                found.append(base)
    return found


def install(context) -> None:
    """Watch the JointDistribution constructors: record each model the user's file builds directly."""
    built: list[dict] = []
    context.store[NAME] = built
    path = context.path

    def wrap(original):
        def __init__(self, *args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename == path and not any(b["model"] is self for b in built):
                built.append({"model": self, "line": caller.f_lineno, "code": caller.f_code})
            return original(self, *args, **kwargs)

        __init__.__wrapped__ = original
        return __init__

    for cls in _classes():
        replace(cls, "__init__", wrap(cls.__dict__["__init__"]), NAME)


def run(context) -> Optional[dict]:
    import tensorflow_probability as tfp

    namespace = context.execute()
    if namespace is None or context.error is not None:
        return None
    context.quiet()
    built = list(context.store.get(NAME) or [])
    built += _from_builders(context, namespace, {id(b["code"]) for b in built})
    names = {id(value): name for name, value in namespace.items()
             if not name.startswith("__") and isinstance(value, tfp.distributions.JointDistribution)}
    for value in namespace.values():  # module-level models built elsewhere (a sibling module)
        if isinstance(value, tfp.distributions.JointDistribution) and not any(b["model"] is value for b in built):
            built.append({"model": value, "line": None, "code": None})
    if not built:
        return None
    sampled: list[dict] = []
    for entry in built[:MAX_MODELS]:
        name = names.get(id(entry["model"]))
        kind = type(entry["model"]).__name__
        if name:
            label = f"`{name}`"
        elif entry.get("builder"):
            label = f"the {kind} returned by `{entry['builder']}()`"
        else:
            label = f"the {kind} of line {entry['line']}" if entry["line"] else kind
        try:
            record = _sample(entry["model"])
        except (SystemExit, MemoryError, context.Stop):
            raise
        except Exception as error:
            line = user_line(error, context.path) or entry["line"]
            return {"source": NAME, "line": entry["line"], "anchors": {"model": name} if name else {},
                    "sampled": sampled, "observable": ["ELB100", "ELB106"],
                    "failure": {"kind": "model", "confirm_only": True, "line": line,
                                "message": f"sampling {label} fails: {exception_text(error)}"}}
        sampled.append({"model": label, "name": name, "line": entry["line"], **record})
    anchors: dict[str, str] = {}
    for record in sampled:
        if record["name"]:
            anchors.setdefault("model", record["name"])
    return {"source": NAME, "line": sampled[0]["line"], "anchors": anchors, "sampled": sampled,
            "observable": ["ELB100", "ELB106"]}


def _sample(model) -> dict[str, Any]:
    import tensorflow as tf

    distributions, sample = model.sample_distributions(seed=(0, 1))
    log_prob = tf.convert_to_tensor(model.log_prob(sample))
    shapes = []
    for dist in tf.nest.flatten(distributions, expand_composites=False):
        try:
            shape = dist.batch_shape
            shapes.append([int(d) for d in shape] if shape.is_fully_defined() else None)
        except Exception:
            shapes.append(None)
    return {"logprob_shape": [int(d) if d is not None else -1 for d in log_prob.shape],
            "batch_shapes": shapes}


def _from_builders(context, namespace: dict, called: set) -> list[dict]:
    """Models returned by the file's own builders that the run never called (no parameters needed)."""
    import inspect

    import tensorflow_probability as tfp

    try:
        tree = ast.parse(context.source)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name == context.settings.get("probe"):
            continue
        function = namespace.get(node.name)
        code = getattr(function, "__code__", None)
        if function is None or code is None or code.co_filename != context.path or id(code) in called:
            continue
        text = ast.get_source_segment(context.source, node) or ""
        returns = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(node))
        if not returns or not _JOINT.search(text) or _BUSY.search(text):
            continue
        try:
            required = [p for p in inspect.signature(function).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                               p.KEYWORD_ONLY)]
        except (TypeError, ValueError):
            continue
        if required:
            continue
        try:
            value = function()
        except (SystemExit, MemoryError, context.Stop):
            raise
        except Exception:
            continue
        if isinstance(value, tfp.distributions.JointDistribution):
            found.append({"model": value, "line": node.lineno, "code": code, "builder": node.name})
    return found

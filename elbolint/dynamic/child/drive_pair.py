"""Driver 5, `pair`: no fit was reached, so pair the module-level objects of the completed run: the
surrogate (a distribution with trainable variables), the model (a non-trainable `JointDistribution*`)
and an optimizer. Model components the surrogate lacks are pinned to a seeded prior-predictive sample
(`model.experimental_pin`), and the pair is fitted briefly like a recorded fit. The pairing is
elbolint's guess, not the user's program: a pair that fails to fit only confirms static findings
(`confirm_only`), and a model that cannot be sampled is left to the `sample` driver."""

from __future__ import annotations

from typing import Optional

from elbolint.dynamic.child.fitting import fit_trace, pinned_target

NAME = "pair"


def applies(source: str, probe: str) -> bool:
    return True


def run(context) -> Optional[dict]:
    import tensorflow_probability as tfp

    namespace = context.execute()
    if namespace is None:
        return None
    tfd = tfp.distributions
    surrogate = model = optimizer = None
    names = {}
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if isinstance(value, tfd.Distribution):
            try:
                trainable = bool(value.trainable_variables)
            except Exception:
                trainable = False
            if trainable and surrogate is None:
                surrogate, names["surrogate"] = value, name
            elif not trainable and isinstance(value, tfd.JointDistribution) and model is None:
                model, names["model"] = value, name
        elif optimizer is None and hasattr(value, "apply_gradients") and hasattr(value, "get_config") \
                and not isinstance(value, type):
            optimizer = value
    if surrogate is None or model is None:
        context.store[NAME] = {"surrogate": surrogate is not None, "model": model is not None}
        return None
    try:
        target = pinned_target(model, surrogate)
    except (SystemExit, MemoryError, context.Stop):
        raise
    except Exception:  # the model cannot even be sampled: the sample driver says why
        return None
    trace = fit_trace(context, target, surrogate, optimizer, None, {}, line=None, source="pair",
                      namespace=namespace, anchors=names)
    if trace.get("failure"):  # the pairing is elbolint's guess, not the user's program
        trace["failure"]["confirm_only"] = True
    return trace

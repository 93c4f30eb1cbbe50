"""Which surrogates ELB111 `restrictive-family` is about: a product of independent scalar factors
(`mean_field`), the family whose correlations a full-rank reference can reveal.

Why a module of its own: reading a surrogate's structure is its own question, asked before any fit
(richer_family.richer_reference skips every other surrogate and says why), and it has its own
subtleties: TFP's builders return non-composite classes (`_TransformedDistribution`, `_Chain`), ASVI
returns an AutoBatched coroutine without `resolve_graph`, and a `DeferredModule` has to be built first.

Taken: Normal, LogNormal, ... with scalar events, `Independent`/`Sample` of those,
`MultivariateNormalDiag` (and a `MultivariateNormalLinearOperator` with a diagonal scale), elementwise
transforms of them (Softplus, Exp, Shift, Scale, ...), and joint distributions of such components
with no dependencies between them. Anything else (a `MultivariateNormalTriL`, an affine or flow
surrogate, a structured joint surrogate, a mixture) is left alone: it is not the family the finding
is about.
"""

from __future__ import annotations

from typing import Optional

_ELEMENTWISE_BIJECTORS = {
    "Identity", "Shift", "Scale", "Exp", "Log", "Softplus", "Sigmoid", "Tanh", "Square", "Power", "Reshape",
    "Restructure", "JointMap", "Chain", "Invert", "DefaultJointBijector", "ScaleMatvecDiag", "SinhArcsinh",
    "Softsign", "Expm1", "Log1p", "Ascending", "Reciprocal", "Cumsum", "DefaultJointBijectorAutoBatched",
}
_DIAGONAL_OPERATORS = {"LinearOperatorDiag", "LinearOperatorIdentity", "LinearOperatorScaledIdentity"}


def _bijector_elementwise(bijector) -> Optional[str]:
    """None when the bijector acts on each scalar separately, else why not. TFP's builders and
    AutoBatched joint distributions hand back non-composite classes (`_Chain`, measured) and a
    `_DefaultJointBijectorAutoBatched` wrapping the joint bijector: read by name, underscores aside."""
    import tensorflow as tf

    kind = type(bijector).__name__.lstrip("_")
    if kind in ("Ascending", "Cumsum"):
        return kind
    if kind == "ScaleMatvecLinearOperator" and type(bijector.scale).__name__ in _DIAGONAL_OPERATORS:
        return None
    if kind == "ScaleMatvecLinearOperatorBlock" and type(bijector.scale).__name__ == "LinearOperatorBlockDiag":
        operators = tf.nest.flatten(bijector.scale.operators)
        if all(type(o).__name__ in _DIAGONAL_OPERATORS for o in operators):
            return None  # build_affine_surrogate_posterior(..., operators='diag'): mean-field
    if kind not in _ELEMENTWISE_BIJECTORS:
        return f"a {kind} bijector"
    if kind in ("Chain", "JointMap", "DefaultJointBijector"):
        inner = tf.nest.flatten(getattr(bijector, "bijectors", []))
    elif kind == "DefaultJointBijectorAutoBatched":
        inner = [getattr(bijector, "_joint_bijector", None)]
    elif kind == "Invert":
        inner = [bijector.bijector]
    else:
        inner = []
    for b in inner:
        why = _bijector_elementwise(b) if b is not None else "a joint bijector whose parts cannot be read"
        if why:
            return why
    return None


def _components_depend(surrogate) -> Optional[bool]:
    """Whether a joint surrogate's components depend on each other: its graph where TFP gives one
    (`resolve_graph`), else — an AutoBatched coroutine, which ASVI's builder returns (measured: it has no
    `resolve_graph`) — by building its components from two different values: a component whose
    parameters change with the other values depends on them. None when neither can be read."""
    import numpy as np
    import tensorflow as tf

    if hasattr(surrogate, "resolve_graph"):
        try:
            return any(parents for _, parents in surrogate.resolve_graph())
        except Exception:
            return None
    try:
        values = [surrogate.sample(seed=(5, 6 + k)) for k in range(2)]
        built = [surrogate.sample_distributions(value=value, seed=(7, 8))[0] for value in values]
        for first, second in zip(tf.nest.flatten(built[0], expand_composites=False),
                                 tf.nest.flatten(built[1], expand_composites=False)):
            for name, parameter in first.parameters.items():
                other = second.parameters.get(name)
                if tf.is_tensor(parameter) or isinstance(parameter, (tf.Variable, np.ndarray, float)):
                    if not np.array_equal(np.asarray(tf.convert_to_tensor(parameter)),
                                          np.asarray(tf.convert_to_tensor(other))):
                        return True
        return False
    except Exception:
        return None


def mean_field(surrogate) -> Optional[str]:
    """None when the surrogate is a product of independent scalar factors, else what it is instead."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    if type(surrogate).__name__ == "DeferredModule":  # tfp.experimental.vi's builders: the distribution it builds
        try:
            surrogate = surrogate._build_module()
        except Exception:
            return "a DeferredModule whose distribution cannot be built"
    kind = type(surrogate).__name__
    if isinstance(surrogate, tfd.JointDistribution):
        depend = _components_depend(surrogate)
        if depend is None:
            return "a joint distribution whose structure cannot be read"
        if depend:
            return "a joint surrogate whose components depend on each other"
        try:
            components = surrogate._get_single_sample_distributions()
        except Exception:
            return "a joint distribution whose components cannot be read"
        import tensorflow as tf

        for component in tf.nest.flatten(components, expand_composites=False):
            why = mean_field(component)
            if why:
                return why
        return None
    if not isinstance(surrogate, tfd.Distribution):
        return f"a {kind}"
    if kind in ("MultivariateNormalDiag",):
        return None
    if isinstance(surrogate, tfd.MultivariateNormalLinearOperator):
        return None if type(surrogate.scale).__name__ in _DIAGONAL_OPERATORS else f"a {kind} (already correlated)"
    if isinstance(surrogate, (tfd.Independent, tfd.Sample)):
        return mean_field(surrogate.distribution)
    if isinstance(surrogate, _transformed_classes()):  # TFP's builders return the non-composite class
        why = _bijector_elementwise(surrogate.bijector)
        return f"a {kind} with {why}" if why else mean_field(surrogate.distribution)
    if isinstance(surrogate, (tfd.Mixture, tfd.MixtureSameFamily)):
        return f"a {kind}"
    try:
        if surrogate.event_shape.rank == 0:
            return None
    except Exception:
        pass
    return f"a {kind} with a multivariate event"


def _transformed_classes() -> tuple:
    """`tfd.TransformedDistribution` and the non-composite `_TransformedDistribution` it derives from,
    which `tfp.experimental.vi.build_factored_surrogate_posterior(..., bijector=...)` and the affine
    builders return (measured: not an instance of `tfd.TransformedDistribution`)."""
    import tensorflow_probability as tfp
    from tensorflow_probability.python.distributions import transformed_distribution

    base = getattr(transformed_distribution, "_TransformedDistribution", None)
    return (tfp.distributions.TransformedDistribution,) + ((base,) if isinstance(base, type) else ())

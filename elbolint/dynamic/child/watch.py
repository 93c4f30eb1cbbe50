"""What the child watches on a surrogate's constrained parameters, step by step (so that each
finding is judged by its own parameter).

Each watched parameter is a `Watch`: one scalar per step whose sign says whether the parameter is
inside its support (positive: inside; <= 0: outside), plus the identity of what it measured (the
parameter, the distribution that owns it, the joint component, the user's name for the variable),
so the parent can hand the observation to the static finding about *that* parameter and no other:

- a positive-only parameter (`scale`, `rate`, `concentration`, ...): its minimum;
- `scale_tril` (MultivariateNormalTriL) and VariationalGaussianProcess'
  `variational_inducing_observations_scale`: the minimum of the Cholesky factor's diagonal. TFP
  takes its absolute value in the log-determinant, so a diagonal that went through zero leaves the
  loss finite: only this watch shows it;
- `covariance_matrix` (MultivariateNormalFullCovariance): its smallest eigenvalue (the matrix is
  symmetrised first, as TFP's Cholesky reads only one triangle);
- `probs` (Bernoulli, Categorical, ...): `min(min(probs), 1 - max(probs))`, below 0 when a
  probability left [0, 1] (0 itself is a legal probability: only < 0 counts, see `strict`).

A parameter kept in its support by a transform (`TransformedVariable`, `DeferredTensor`) is
`constrained`: it can only reach the boundary by underflow while the fit diverges (ELB101/ELB107's
story), so only a value strictly outside counts for it.
"""

from __future__ import annotations

from typing import Any, Optional

#: Parameters whose Cholesky-factor diagonal must stay positive.
TRIL = frozenset({"scale_tril", "variational_inducing_observations_scale"})
#: Parameters that must be positive definite.
COVARIANCE = frozenset({"covariance_matrix"})
#: Parameters that must stay in [0, 1].
PROBS = frozenset({"probs"})


class Watch:
    """One watched parameter: `measure()` (a float64 scalar tensor, usable inside a tf.function) and
    the identity of what it measures (`identity()`, plain JSON for the trace)."""

    def __init__(self, label: str, value: Any, parameter: str, distribution: str, component: Optional[str],
                 variable: Optional[str], constrained: bool):
        self.label = label
        self.value = value
        self.parameter = parameter
        self.distribution = distribution
        self.component = component
        self.variable = variable
        self.constrained = constrained

    @property
    def kind(self) -> str:
        if self.parameter in TRIL:
            return "tril-diagonal"
        if self.parameter in COVARIANCE:
            return "eigenvalue"
        if self.parameter in PROBS:
            return "probs"
        return "minimum"

    @property
    def strict(self) -> bool:
        """Only a value strictly below 0 is outside the support (0 is a probability, or underflow)."""
        return self.constrained or self.parameter in PROBS

    def measure(self):
        import tensorflow as tf

        value = tf.cast(tf.convert_to_tensor(self.value), tf.float64)
        if self.parameter in TRIL:
            return tf.reduce_min(tf.linalg.diag_part(value))
        if self.parameter in COVARIANCE:
            symmetric = 0.5 * (value + tf.linalg.matrix_transpose(value))
            return tf.reduce_min(tf.linalg.eigvalsh(symmetric))
        if self.parameter in PROBS:
            return tf.minimum(tf.reduce_min(value), 1.0 - tf.reduce_max(value))
        return tf.reduce_min(value)

    def identity(self) -> dict:
        return {"parameter": self.parameter, "distribution": self.distribution, "component": self.component,
                "variable": self.variable, "kind": self.kind, "strict": self.strict}


def describe(identity: dict, value: str) -> str:
    """The observation in words: "`scale_tril` of MultivariateNormalTriL: its diagonal reached -0.3"."""
    kind = identity.get("kind")
    if kind == "tril-diagonal":
        return f"its diagonal reached {value}"
    if kind == "eigenvalue":
        return f"its smallest eigenvalue reached {value} (not positive definite)"
    if kind == "probs":
        return f"a probability left [0, 1] (by {value.lstrip('-')})"
    return f"reached {value}"


def raw_watches(raw_parameters, resolve, found) -> list:
    """(label, Watch) for each raw variable a static finding names as a constrained parameter
    (`raw_parameters`: the parent's job, elbolint.dynamic.raw_parameters), where `resolve(name)` gives
    the run's variable of that name (None when the run has none, or several): the variable *is* the
    parameter, so its own values are the parameter's, whatever distribution the run builds from it each
    step (a model's raw Bernoulli `probs` built inside a loop's tape, a likelihood's raw noise scale
    trained by `fit_surrogate_posterior` with the surrogate). `found` are the watches already made (on
    the surrogate): a variable already watched as that parameter is not watched twice."""
    seen = {(getattr(w, "parameter", None), getattr(w, "variable", None)) for _, w in found}
    watches = []
    for wanted in raw_parameters or []:
        name, parameter = wanted.get("variable"), wanted.get("parameter")
        if not name or not parameter or (parameter, name) in seen:
            continue
        variable = resolve(name)
        if variable is None:
            continue
        label = f"`{parameter}` of {wanted.get('distribution')}"
        if wanted.get("component"):
            label += f" '{wanted['component']}'"
        label += f" (`{name}`)"
        watches.append((label, Watch(label, variable, parameter, wanted.get("distribution"), wanted.get("component"),
                                     name, constrained=False)))
        seen.add((parameter, name))
    return watches

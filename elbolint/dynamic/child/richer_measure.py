"""The measurements behind ELB111's thresholds (richer_family.py's docstring quotes them), run by hand:
`python -m elbolint.dynamic.child.richer_measure [words of case names]` fits each case natively (1,000
steps of Adam(0.05)), then runs the check (`richer_reference`) and prints the gains (gain, standard
error) of its seeds, the strongest correlation, the largest spread ratio and whether ELB111 is reported;
then the normalizing-flow reference's line (richer_flow.py): its ELBO at step 0 against the full-rank
start, its gains over the mean-field family and over its Gaussian control, its cost, the shape its draws
show, and which reference ELB111 names (`flow` selects the banana-shaped case).

Why a module of its own: the cases are a measurement, not part of the check; they import TensorFlow,
TFP and tf_keras in this process, which the child's modules never do at import time. `sweep` selects
the false-alarm sweep: well-specified families on five more data sets each.
"""

from __future__ import annotations

import functools
import os
import sys

from elbolint.dynamic.child.richer_family import richer_reference
from elbolint.dynamic.verdicts.restrictive import beyond_gaussian, decide, flow_gains, gains


def regression(low, high, centred=False, data=0):  # pragma: no cover - a measurement, run by hand
    """A linear regression's weight and bias with x drawn in [low, high]: mean-field Normal factors."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    rng = np.random.RandomState(data)
    x = rng.uniform(low, high, 50).astype(np.float32)
    if centred:
        x = x - x.mean()
    y = (0.5 * x + 1.0 + rng.randn(50)).astype(np.float32)

    def target(weight, bias):
        prior = tfd.Normal(0.0, 10.0).log_prob(weight) + tfd.Normal(0.0, 10.0).log_prob(bias)
        likelihood = tfd.Normal(weight[..., None] * x + bias[..., None], 1.0)
        return prior + tf.reduce_sum(likelihood.log_prob(y), axis=-1)

    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="weight"),
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="bias")])
    return target, surrogate


def positive(data=0):  # pragma: no cover - a measurement, run by hand
    """A mean and a positive noise scale: a Normal and a log-normal factor."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    rng = np.random.RandomState(data)
    y = (2.0 + 0.7 * rng.randn(40)).astype(np.float32)

    def target(mu, sigma):
        prior = tfd.Normal(0.0, 5.0).log_prob(mu) + tfd.HalfNormal(2.0).log_prob(sigma)
        return prior + tf.reduce_sum(tfd.Normal(mu[..., None], sigma[..., None]).log_prob(y), axis=-1)

    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="mu"),
        tfd.LogNormal(tf.Variable(0.0), tfp.util.TransformedVariable(0.5, tfb.Softplus()), name="sigma")])
    return target, surrogate


def wide(d=6, n=100, data=0):  # pragma: no cover - a measurement, run by hand
    """A regression on d independent inputs with n rows: an Independent Normal over the weights."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    rng = np.random.RandomState(data)
    x = rng.randn(n, d).astype(np.float32)
    y = (x @ rng.randn(d) + rng.randn(n)).astype(np.float32)

    def target(w):
        prior = tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(w), axis=-1)
        return prior + tf.reduce_sum(tfd.Normal(tf.linalg.matvec(x, w), 1.0).log_prob(y), axis=-1)

    surrogate = tfd.Independent(tfd.Normal(tf.Variable(tf.zeros(d)),
                                           tfp.util.TransformedVariable(tf.ones(d), tfb.Softplus())), 1)
    return target, surrogate


def logistic(data=0):  # pragma: no cover - a measurement, run by hand
    """A logistic regression on 3 centred inputs."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    rng = np.random.RandomState(data)
    x = rng.randn(200, 3).astype(np.float32)
    labels = (rng.uniform(size=200) < 1 / (1 + np.exp(-(x @ np.array([1.0, -2.0, 0.5]))))).astype(np.float32)

    def target(w):
        prior = tf.reduce_sum(tfd.Normal(0.0, 2.0).log_prob(w), axis=-1)
        return prior + tf.reduce_sum(tfd.Bernoulli(logits=tf.linalg.matvec(x, w)).log_prob(labels), axis=-1)

    surrogate = tfd.Independent(tfd.Normal(tf.Variable(tf.zeros(3)),
                                           tfp.util.TransformedVariable(tf.ones(3), tfb.Softplus())), 1)
    return target, surrogate


def article(low, high):  # pragma: no cover - a measurement, run by hand
    """The regression of fixtures/seed/example2_restrictive_family.py: weight and bias components of shape [1]."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    rng = np.random.RandomState(0)
    x = rng.uniform(low, high, 50).astype(np.float32)
    y = (0.5 * x + 1.0 + rng.randn(50)).astype(np.float32)

    def target(weight, bias):
        prior = tfd.Normal(0.0, 10.0).log_prob(weight) + tfd.Normal(0.0, 10.0).log_prob(bias)
        return prior + tf.reduce_sum(tfd.Normal(weight * x + bias, 1.0).log_prob(y), axis=-1, keepdims=True)

    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable([0.0]), tfp.util.TransformedVariable([1.0], tfb.Softplus()), name="weight"),
        tfd.Normal(tf.Variable([0.0]), tfp.util.TransformedVariable([1.0], tfb.Softplus()), name="bias")])
    return target, surrogate


def affine_diag():  # pragma: no cover - a measurement, run by hand
    """The regression with x in [20, 21] under an affine surrogate with diagonal operators."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    target, _ = regression(20, 21)
    surrogate = tfp.experimental.vi.build_affine_surrogate_posterior(
        event_shape=[tf.TensorShape([]), tf.TensorShape([])], operators="diag")
    return target, surrogate


def schools():  # pragma: no cover - a measurement, run by hand
    """Eight schools, non-centred, mean-field over (mu, log tau, 8 thetas)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
    sds = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)

    def target(mu, tau, theta):
        prior = (tfd.Normal(0.0, 10.0).log_prob(mu) + tfd.HalfCauchy(0.0, 5.0).log_prob(tau)
                 + tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(theta), axis=-1))
        means = mu[..., None] + tau[..., None] * theta
        return prior + tf.reduce_sum(tfd.Normal(means, sds).log_prob(effects), axis=-1)

    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="mu"),
        tfd.LogNormal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="tau"),
        tfd.Independent(tfd.Normal(tf.Variable(tf.zeros(8)),
                                   tfp.util.TransformedVariable(tf.ones(8), tfb.Softplus())), 1, name="theta")])
    return target, surrogate


def banana(data=0):  # pragma: no cover - a measurement, run by hand
    """A posterior along a curve: only a + b**2 is observed (fixtures/dynamic/restrictive_family_banana.py)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    y = (-0.5 + 0.2 * np.random.RandomState(data).normal(size=100)).astype(np.float32)

    def target(a, b):
        prior = tfd.Normal(0.0, 1.0).log_prob(a) + tfd.Normal(0.0, 2.0).log_prob(b)
        return prior + tf.reduce_sum(tfd.Normal((a + b ** 2)[..., None], 0.2).log_prob(y), axis=-1)

    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="a"),
        tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfb.Softplus()), name="b")])
    return target, surrogate


def cases() -> list:
    """(name, build) of every case: the restrictive families, the well-specified ones, the sweep."""
    found = [("x in [20, 21]", lambda: regression(20, 21)), ("x in [5, 6]", lambda: regression(5, 6)),
             ("x in [2, 3]", lambda: regression(2, 3)), ("centred x", lambda: regression(20, 21, True)),
             ("log-normal scale", positive), ("6 independent inputs", wide),
             ("20 independent inputs, 40 rows", lambda: wide(20, 40)),
             ("20 independent inputs, 200 rows", lambda: wide(20, 200)),
             ("logistic, 3 centred inputs", logistic), ("article shapes, x in [20, 21]", lambda: article(20, 21)),
             ("article shapes, centred", lambda: article(-0.5, 0.5)), ("affine diag, x in [20, 21]", affine_diag),
             ("eight schools non-centred", schools), ("flow: banana", banana)]
    # the false-alarm sweep: well-specified families on 5 data sets each (`... richer_measure sweep`)
    for data in range(1, 6):
        found += [(f"sweep {data}: centred x", functools.partial(regression, 20, 21, True, data)),
                  (f"sweep {data}: log-normal scale", functools.partial(positive, data)),
                  (f"sweep {data}: logistic", functools.partial(logistic, data)),
                  (f"sweep {data}: 20 inputs, 200 rows", functools.partial(wide, 20, 200, data))]
    return found


def main(words: list[str]) -> None:  # pragma: no cover - a measurement, run by hand
    """Every case whose name contains one of `words` (all of them without words)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow_probability as tfp
    import tf_keras

    for name, build in cases():
        if words and not any(word in name for word in words):
            continue
        target, surrogate = build()
        tfp.vi.fit_surrogate_posterior(target, surrogate, tf_keras.optimizers.Adam(0.05), num_steps=1000,
                                       seed=(1, 2))
        part = richer_reference(target, surrogate, 1, None, label="w")
        found = gains(part)
        if part.get("user_elbo") is None:
            print(name, part)
            continue
        print(f"{name}: user ELBO {part.get('user_elbo'):.3f} ± {part.get('user_se'):.3f}; start "
              f"{part.get('start_elbo'):.3f}; gains {[(round(g, 3), round(s, 3)) for g, s in found]}; "
              f"corr {(part.get('correlations') or [[0, 0, 0]])[0][2]:+.3f}; "
              f"spread x{max((part.get('spread_ratio') or {'': 0}).values()):.3g}; {part.get('seconds')} s; "
              f"ELB111 {'yes' if decide(part) else 'no'}")
        flow = part.get("flow") or {}
        finding = decide(part)
        print(f"    flow: start {flow.get('start_elbo')} (full-rank best "
              f"{max((r['elbo'] for r in part.get('reference') or []), default=None)}); gains over mean-field "
              f"{[(round(g, 3), round(s, 3)) for g, s in flow_gains(part)]}; over its Gaussian control "
              f"{[(round(g, 3), round(s, 3)) for g, s in beyond_gaussian(part)]}; {flow.get('seconds')} s; "
              f"{flow.get('skipped') or flow.get('error') or ''}; skewness "
              f"{max((abs(v) for v in (flow.get('skewness') or {}).values()), default=None)}, excess kurtosis "
              f"{max((v for v in (flow.get('kurtosis') or {}).values()), default=None)}, curvature "
              f"{(flow.get('curvature') or [[0, 0, None]])[0][2]}; reference "
              f"{finding['evidence']['reference'] if finding else None}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

"""A Bayesian linear regression fitted with variational inference, written the way many TFP examples
write it: it trains, but its ELBO loss starts huge and can turn NaN. Run `elbolint` on it."""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

rng = np.random.RandomState(0)
x = np.linspace(-1.0, 1.0, 100).astype(np.float32)
y = (2.0 * x + 0.5 + 0.1 * rng.randn(100)).astype(np.float32)

model = tfd.JointDistributionSequential([
    tfd.Normal(loc=0.0, scale=1.0, name="weight"),
    tfd.Normal(loc=0.0, scale=1.0, name="bias"),
    lambda bias, weight: tfd.Independent(
        tfd.Normal(loc=weight * x + bias, scale=0.1), reinterpreted_batch_ndims=1
    ),
])

surrogate_posterior = tfd.JointDistributionSequential([
    tfd.Normal(loc=tf.Variable(100.0), scale=tf.Variable(1.0), name="weight"),
    tfd.Normal(loc=tf.Variable(100.0), scale=tf.Variable(1.0), name="bias"),
])

optimizer = tf.optimizers.Adam(learning_rate=0.05)

if __name__ == "__main__":
    losses = tfp.vi.fit_surrogate_posterior(
        lambda weight, bias: model.log_prob([weight, bias, y]),
        surrogate_posterior,
        optimizer=optimizer,
        num_steps=500,
    )
    print("final loss", float(losses[-1]))

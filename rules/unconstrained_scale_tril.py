"""ELB008 unconstrained-scale-tril: a raw trainable variable passed as a Cholesky factor or a
covariance, which the optimizer can make singular or not positive definite. The rule's documentation
is its class docstring."""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.rules._trained_parameter import RawParameterRule

#: Distribution -> (matrix parameter, its position).
_MATRIX_PARAMETER = {
    "MultivariateNormalTriL": ("scale_tril", 1),
    "MultivariateNormalFullCovariance": ("covariance_matrix", 1),
    # The Cholesky factor of the variational distribution over the inducing observations.
    "VariationalGaussianProcess": ("variational_inducing_observations_scale", 4),
}



class UnconstrainedScaleTril(RawParameterRule):
    """
    ## What it does
    Flags a raw `tf.Variable` (or a Keras layer's `self.add_weight(...)`) passed as `scale_tril` of
    `tfd.MultivariateNormalTriL` (by keyword or as the second positional argument), as `covariance_matrix` of
    `tfd.MultivariateNormalFullCovariance`, or as `variational_inducing_observations_scale` of
    `tfd.VariationalGaussianProcess` (by keyword or as the fifth positional argument), directly
    or through a name or `self.` attribute bound to one. Non-trainable variables and variables
    with a `constraint=` are not flagged.

    Values are followed as ELB001 follows them: elements of a raw variable, tuple elements,
    variables returned by a function of the file, and variables passed to a function of the file
    that uses its parameter as the matrix (reported at the argument).

    ## Why is this bad?
    A Cholesky factor needs a strictly positive diagonal (the variational inducing-observation
    scale of a `VariationalGaussianProcess` is one), and a covariance matrix must stay
    symmetric positive definite. The optimizer updates every entry of a raw variable freely: once
    a diagonal entry crosses zero the log-determinant is -inf or NaN (and a covariance stops being
    positive definite, so its Cholesky decomposition fails), and the ELBO loss is NaN.

    ## Example
    ```python
    surrogate = tfd.MultivariateNormalTriL(
        loc=tf.Variable(tf.zeros(3)),
        scale_tril=tf.Variable(tf.eye(3)),
    )
    ```

    ## Use instead
    Optimise an unconstrained vector mapped to a valid Cholesky factor:
    ```python
    surrogate = tfd.MultivariateNormalTriL(
        loc=tf.Variable(tf.zeros(3)),
        scale_tril=tfp.util.TransformedVariable(tf.eye(3), tfb.FillScaleTriL()),
    )
    ```
    The same holds for a variational Gaussian process:
    ```python
    gp = tfd.VariationalGaussianProcess(
        ...,
        variational_inducing_observations_scale=tfp.util.TransformedVariable(
            np.eye(m), tfb.FillScaleTriL(diag_shift=1e-5)),
    )
    ```
    For a full covariance, parameterise its Cholesky factor the same way, or use
    `tfp.util.TransformedVariable(cov, tfb.Chain([tfb.CholeskyOuterProduct(), tfb.FillScaleTriL()]))`.
    """

    code = "ELB008"
    name = "unconstrained-scale-tril"
    severity = Severity.ERROR
    confirmed_by = ("ELB101", "ELB104")

    def checked_arguments(self, node: cst.Call, distribution: str):
        if distribution not in _MATRIX_PARAMETER:
            return []
        parameter, position = _MATRIX_PARAMETER[distribution]
        arg = self.get_arg(node, parameter, position)
        return [] if arg is None else [(parameter, arg)]

    def consequence(self, parameter: str, distribution: str, variable) -> str:
        if parameter == "covariance_matrix":
            risk = "the optimizer can make it indefinite, and its Cholesky decomposition fails (NaN log_prob)"
        else:  # a triangular scale: TFP takes log|diagonal|, so the danger is a diagonal entry crossing 0
            risk = ("the optimizer can move a diagonal entry through 0: the scale is singular there (infinite "
                    "log-determinant, NaN gradients) and a negative diagonal is no longer a Cholesky factor")
        return f"{risk}. Use {self._advice(parameter)}"

    def _advice(self, parameter: str) -> str:
        """In the names the file has (`tfb.FillScaleTriL`, or `tfp.bijectors.FillScaleTriL`)."""
        variable = self.tfp_name("util.TransformedVariable")
        fill = f"{self.tfp_name('bijectors.FillScaleTriL')}()"
        if parameter != "covariance_matrix":
            return f"{variable}(init, {fill})"
        chain, outer = self.tfp_name("bijectors.Chain"), self.tfp_name("bijectors.CholeskyOuterProduct")
        return (f"MultivariateNormalTriL with scale_tril={variable}(init, {fill}), "
                f"or {variable}(cov, {chain}([{outer}(), {fill}]))")

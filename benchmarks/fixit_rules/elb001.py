"""ELB001 written as a Fixit 2 LintRule, for benchmarks/compare.py.

It flags what elbolint's `rules/unconstrained_scale.py` flags: a raw trainable `tf.Variable` passed
as a positive-only parameter of a TFP distribution, directly, positionally, or through a name or
`self.` attribute bound to one, under every import form (`tfp.distributions.Normal`,
`tfd = tfp.distributions`, `from tensorflow_probability import distributions as tfd`, ...).
Like elbolint, it follows the aliases itself (one pass, no ScopeProvider): Fixit's own cost is
the parse plus the PositionProvider every Fixit rule depends on.

Run it alone (from the benchmarks/ folder, so the local rule resolves):
    fixit --rules .fixit_rules.elb001 lint PATH...
    fixit test .fixit_rules.elb001
"""

from __future__ import annotations

from typing import Dict, List, Optional

import libcst as cst
from fixit import Invalid, LintRule, Valid

DISTRIBUTIONS = "tensorflow_probability.distributions"
VARIABLES = {"tensorflow.Variable", "tensorflow.compat.v1.Variable"}
POSITIVE = {
    "scale", "scale_diag", "scale_identity_multiplier", "concentration", "concentration0",
    "concentration1", "rate", "df", "temperature", "variance", "tailweight",
}
POSITIONAL = {
    "Normal": ("loc", "scale"), "LogNormal": ("loc", "scale"), "Laplace": ("loc", "scale"),
    "Cauchy": ("loc", "scale"), "Gumbel": ("loc", "scale"), "Logistic": ("loc", "scale"),
    "HalfNormal": ("scale",), "HalfCauchy": ("loc", "scale"), "TruncatedNormal": ("loc", "scale"),
    "StudentT": ("df", "loc", "scale"), "HalfStudentT": ("df", "loc", "scale"),
    "Gamma": ("concentration", "rate"), "InverseGamma": ("concentration", "scale"),
    "Exponential": ("rate",), "Poisson": ("rate",), "Beta": ("concentration1", "concentration0"),
    "Dirichlet": ("concentration",), "Chi2": ("df",), "Weibull": ("concentration", "scale"),
    "MultivariateNormalDiag": ("loc", "scale_diag"), "VonMises": ("loc", "concentration"),
}


def dotted(node: cst.BaseExpression) -> Optional[str]:
    """`a.b.c` for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def canonical(name: str) -> str:
    """Fold TFP's internal module paths onto the public ones."""
    for internal in ("tensorflow_probability.python.distributions", "tensorflow_probability.substrates.numpy.distributions"):
        if name.startswith(internal + "."):
            member = name.rsplit(".", 1)[-1]
            return f"{DISTRIBUTIONS}.{member}"
    return name.replace("tensorflow.keras.", "keras.")


class UnconstrainedScale(LintRule):
    """A raw tf.Variable as a positive-only parameter of a TFP distribution (elbolint's ELB001)."""

    MESSAGE = "ELB001 a positive-only parameter is a raw tf.Variable; use tfp.util.TransformedVariable(init, tfb.Softplus())"

    VALID = [
        Valid("import tensorflow_probability as tfp\ntfd = tfp.distributions\nq = tfd.Normal(0.0, 1.0)"),
        Valid("import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
              "q = tfd.Normal(tf.Variable(0.0), tf.Variable(1.0, trainable=False))"),
        Valid("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
              "s = tf.Variable(1.0)\ndef f(loc, s):\n    return tfp.distributions.Normal(loc, s)"),
        Valid("import tensorflow as tf\nfrom statistics import NormalDist as Normal\nq = Normal(0.0, tf.Variable(1.0))"),
    ]
    INVALID = [
        Invalid("import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
                "q = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))"),
        Invalid("import tensorflow as tf\nfrom tensorflow_probability import distributions as d\n"
                "s = tf.Variable(0.5)\nq = d.Gamma(2.0, s)"),
        Invalid("import tensorflow as tf\nfrom tensorflow_probability.python.distributions import Normal\n"
                "q = Normal(0.0, tf.Variable(1.0))"),
        Invalid("import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
                "class S:\n    def __init__(self):\n        self.scale = tf.Variable(1.0)\n"
                "    def q(self):\n        return tfd.Normal(0.0, self.scale)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.aliases: Dict[str, str] = {}
        self.scopes: List[Dict[str, Optional[cst.Call]]] = [{}]
        self.attributes: Dict[str, Optional[cst.Call]] = {}

    # --- names -------------------------------------------------------------------------------
    def qualified(self, node: cst.BaseExpression) -> Optional[str]:
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head) + (f".{rest}" if rest else "")
        return canonical(full)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted(alias.name) or ""
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = module
            else:
                head = module.split(".")[0]
                self.aliases[head] = head

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = dotted(node.module)
        for alias in node.names:
            member = dotted(alias.name)
            local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else member
            if module and member and local:
                self.aliases[local] = f"{module}.{member}"

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        params = node.params
        every = [*params.posonly_params, *params.params, *params.kwonly_params]
        self.scopes.append({p.name.value: None for p in every})

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scopes.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        variable = value if self.is_variable(value) else None
        for target in node.targets:
            target = target.target
            if isinstance(target, cst.Name):
                self.scopes[-1][target.value] = variable
                module = self.qualified(value)
                if variable is None and module and module.startswith("tensorflow"):
                    self.aliases[target.value] = module   # tfd = tfp.distributions
            elif isinstance(target, cst.Attribute) and dotted(target.value) == "self":
                self.attributes[target.attr.value] = variable

    # --- the check ---------------------------------------------------------------------------
    def is_variable(self, node: cst.BaseExpression) -> bool:
        if not isinstance(node, cst.Call) or self.qualified(node.func) not in VARIABLES:
            return False
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "constraint":
                return False
            if arg.keyword is not None and arg.keyword.value == "trainable":
                return not (isinstance(arg.value, cst.Name) and arg.value.value == "False")
        return True

    def bound_variable(self, node: cst.BaseExpression) -> bool:
        if self.is_variable(node):
            return True
        if isinstance(node, cst.Name):
            for scope in reversed(self.scopes):
                if node.value in scope:
                    return scope[node.value] is not None
            return False
        if isinstance(node, cst.Attribute) and dotted(node.value) == "self":
            return self.attributes.get(node.attr.value) is not None
        return False

    def visit_Call(self, node: cst.Call) -> None:
        name = self.qualified(node.func)
        if not name or not name.startswith(DISTRIBUTIONS + "."):
            return
        distribution = name.rsplit(".", 1)[-1]
        positional = POSITIONAL.get(distribution, ())
        position = 0
        for arg in node.args:
            if arg.star:
                break
            if arg.keyword is not None:
                parameter = arg.keyword.value
            else:
                parameter = positional[position] if position < len(positional) else ""
                position += 1
            if parameter in POSITIVE and self.bound_variable(arg.value):
                self.report(arg.value)

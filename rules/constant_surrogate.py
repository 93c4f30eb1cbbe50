"""ELB011 constant-surrogate: a surrogate posterior built only from constants, so
`fit_surrogate_posterior` has nothing to train. The rule's documentation is its class docstring."""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFB, TFD, TFP_VI, TFPL, names_in
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._tfp import OPTIMIZERS, DEFERRED_TENSOR, TRANSFORMED_VARIABLE, VARIABLE, VI_FUNCTIONS

_FIT = names_in(TFP_VI, "fit_surrogate_posterior")
_LOSS = names_in(TFP_VI, "monte_carlo_variational_loss")
_TAPE = frozenset({f"{TF}.GradientTape"})

#: Calls that create (or may hold) trainable state somewhere in the file.
_STATEFUL_PREFIXES = ("keras.layers.", "keras.Model", "keras.Sequential", "keras.models.", f"{TFPL}.")
_VARIABLE_MAKERS = VARIABLE | TRANSFORMED_VARIABLE | DEFERRED_TENSOR | frozenset({
    f"{TF}.compat.v1.get_variable", f"{TF}.Module",
})


class ConstantSurrogate(Rule):
    """
    ## What it does
    Flags a surrogate posterior passed to `tfp.vi.fit_surrogate_posterior` (second positional
    argument or `surrogate_posterior=`) or `tfp.vi.monte_carlo_variational_loss`, directly or
    through a name, that is built only from constants: a TFP distribution or joint distribution
    whose every parameter, recursively through its components, is a literal, `tf.constant`,
    `tf.zeros`/`tf.ones` or a NumPy array, in a file that creates no variables at all.

    The surrogate is followed into the functions of the file that build it
    (`surrogate = build_surrogate(3)`, `q, opt = build()`), with the call's arguments.

    ## Why is this bad?
    A surrogate without `tf.Variable`s has nothing to optimise. The loss is a noisy constant that
    never goes down; the "posterior" you read afterwards is the initial guess. With Keras 3
    optimizers, `fit_surrogate_posterior` does not even run: `apply_gradients` receives an empty
    list of (gradient, variable) pairs and fails with
    `ValueError: not enough values to unpack (expected 2, got 0)`.

    ## Example
    ```python
    surrogate = tfd.Normal(loc=0.0, scale=1.0)
    losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, num_steps=200)
    ```

    ## Use instead
    Make the parameters trainable:
    ```python
    surrogate = tfd.Normal(
        loc=tf.Variable(0.0),
        scale=tfp.util.TransformedVariable(1.0, tfb.Softplus()),
    )
    ```
    or let TFP build one: `tfp.experimental.vi.build_factored_surrogate_posterior(event_shape=...)`.
    Surrogates that use any name or call elbolint cannot see into, fits that pass
    `trainable_variables=`, and files that create variables elsewhere (the model may own the
    parameters being fitted) are not flagged.
    """

    code = "ELB011"
    name = "constant-surrogate"
    severity = Severity.WARNING
    confirmed_by = ("ELB105",)
    #: Triage: the surrogate of a fit or a VI loss.
    starts_from = (last_parts(_FIT | _LOSS),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._candidates: list[tuple[cst.CSTNode, str, bool]] = []
        self._stateful = False
        self._optimises = False  # an optimizer or a gradient tape: the file trains something

    def visit_Call(self, node: cst.Call) -> None:
        names = self.call_names(node)
        if not names.isdisjoint(_VARIABLE_MAKERS) or any(n.startswith(_STATEFUL_PREFIXES) for n in names):
            self._stateful = True
        if not names.isdisjoint(VI_FUNCTIONS) and names.isdisjoint(_FIT | _LOSS):
            # The surrogate builders of tfp.experimental.vi create variables.
            if any(".experimental.vi.build_" in n for n in names):
                self._stateful = True
        if not names.isdisjoint(OPTIMIZERS | _TAPE) or names & _FIT:
            self._optimises = True
        if names.isdisjoint(_FIT | _LOSS):
            return
        if any(a.star for a in node.args):
            return
        if self.get_arg(node, "trainable_variables") is not None:
            return
        surrogate = self.get_arg(node, "surrogate_posterior", 1)
        if surrogate is None:
            return
        flow = self.resolver.follow(surrogate.value)  # also through a builder of the file
        value = flow.node
        if flow.subscripts or not isinstance(value, cst.Call):
            return
        with self.resolver.within(flow):  # the builder's scopes, where `value` is written
            if self._is_distribution(value) and self._constant(value, frozenset()):
                self._candidates.append((surrogate.value, self.source(node.func), bool(names & _FIT)))

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._stateful:
            return
        for node, spelled, fits in self._candidates:
            if not fits and not self._optimises:
                continue  # a loss evaluated for a fixed distribution, not trained
            self.report(
                node,
                f"the surrogate passed to {spelled} is built only from constants: there is nothing to "
                "train, the loss stays flat (Keras 3 optimizers fail with \"not enough values to "
                "unpack\"). Give it tf.Variable / tfp.util.TransformedVariable parameters",
            )

    # --------------------------------------------------------------- constants
    def _is_distribution(self, call: cst.Call) -> bool:
        return any(n.startswith(f"{TFD}.") for n in self.call_names(call))

    def _constant(self, node: cst.BaseExpression, hidden: frozenset[str], depth: int = 0) -> bool:
        """True when `node` visibly holds no trainable state; False when unsure."""
        if depth > 12:
            return False
        if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString)):
            return True
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None") or node.value in hidden:
                return True
            if self.qualified_names(node):
                return self._is_dtype(node)
            flow = self.resolver.follow(node)  # a name, or a parameter bound to a constant argument
            if flow.node is node or flow.subscripts or flow.parameter is not None:
                return False
            with self.resolver.within(flow) as resolved:
                return self._constant(resolved, hidden, depth + 1)
        if isinstance(node, cst.Attribute):
            return self._is_dtype(node)
        if isinstance(node, cst.UnaryOperation):
            return self._constant(node.expression, hidden, depth + 1)
        if isinstance(node, cst.BinaryOperation):
            return self._constant(node.left, hidden, depth + 1) and self._constant(node.right, hidden, depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            return all(
                not isinstance(e, cst.StarredElement) and self._constant(e.value, hidden, depth + 1)
                for e in node.elements
            )
        if isinstance(node, cst.Dict):
            return all(
                isinstance(e, cst.DictElement) and self._constant(e.key, hidden, depth + 1)
                and self._constant(e.value, hidden, depth + 1)
                for e in node.elements
            )
        if isinstance(node, cst.Lambda):
            params = node.params
            inner = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
            if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None:
                return False
            return self._constant(node.body, hidden | inner, depth + 1)
        if isinstance(node, cst.Call):
            return self._constant_call(node, hidden, depth)
        return False

    def _constant_call(self, node: cst.Call, hidden: frozenset[str], depth: int) -> bool:
        if any(a.star for a in node.args):
            return False
        names = self.call_names(node)
        if isinstance(node.func, cst.Name) and node.func.value == "dict" and not names \
                and self.value_of(node.func) is node.func:
            pass  # the builtin dict(...)
        elif not names:
            return False
        elif not names.isdisjoint(_VARIABLE_MAKERS):
            return False
        elif not any(n.startswith((f"{TFD}.", f"{TFB}.", f"{TF}.", "numpy.")) for n in names):
            return False
        elif any("ariable" in n or n.startswith(f"{TF}.keras") for n in names):
            return False
        # `tf.float32` and friends are fine as arguments; everything else must be constant too.
        return all(self._constant(a.value, hidden, depth + 1) for a in node.args)

    def _is_dtype(self, node: cst.BaseExpression) -> bool:
        for qualified in self.qualified_names(node):
            package, _, member = qualified.rpartition(".")
            if package in (TF, "numpy") and member.startswith(("float", "int", "bool", "complex")):
                return True
        return False

"""ELB010 unscaled-kl-divergence."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFPL, member_of
from elbolint.rule import Rule

#: Layer -> position of `kernel_divergence_fn` (None: the layer takes `kl_weight` instead).
_KERNEL_DIVERGENCE_POSITION = {
    "DenseFlipout": 7, "DenseReparameterization": 7, "DenseLocalReparameterization": 7,
    **{f"Convolution{d}D{kind}": 11 for d in (1, 2, 3) for kind in ("Flipout", "Reparameterization")},
}
_KL_WEIGHT_POSITION = 3  # DenseVariational(units, make_posterior_fn, make_prior_fn, kl_weight)

#: Keywords that only a Keras `Model.fit` takes (scikit-learn's `fit(X, y)` takes none of them).
_KERAS_FIT_KEYWORDS = ("batch_size", "epochs", "steps_per_epoch", "validation_data", "validation_split", "callbacks")

#: Attributes of a model that only show it (`model.summary()`) or build it up; they do not train it.
_DISPLAY_ATTRIBUTES = frozenset({
    "summary", "count_params", "get_config", "to_json", "layers", "weights", "trainable_weights",
    "trainable_variables", "variables", "name", "add", "build", "input_shape", "output_shape",
})

#: Calls that scale a value as well as `/` and `*` do.
_SCALING_CALLS = frozenset({
    f"{TF}.math.divide", f"{TF}.divide", f"{TF}.truediv", f"{TF}.math.truediv",
    f"{TF}.math.multiply", f"{TF}.multiply", f"{TF}.math.divide_no_nan",
})


class UnscaledKlDivergence(Rule):
    """
    ## What it does
    Flags a `tfp.layers` variational layer (`DenseFlipout`, `DenseReparameterization`,
    `DenseLocalReparameterization`, `Convolution{1,2,3}D{Flipout,Reparameterization}`) built
    without a `kernel_divergence_fn` that scales the KL divergence (divides or multiplies it), and
    a `DenseVariational` built without `kl_weight`, in a file that trains on mini-batches: it
    calls Keras `Model.fit` (recognised by `batch_size=`, `epochs=`, ... or a `.compile(` call in
    the file; its default batch size is 32) or batches a dataset with `.batch(n)`. Files that show
    no batched training are not flagged (a full-batch loop with a summed likelihood needs the
    unscaled KL), nor are divergence functions that cannot be read (imported, built by a call),
    nor the layers of a model that is only shown and never used (`model = Sequential([...])`
    followed by nothing but `model.summary()` before `model` is rebound).

    ## Why is this bad?
    These layers add their whole KL divergence to the loss of every batch, while the likelihood
    term is the mean over the examples of that batch. The ELBO per example needs KL / N; unscaled,
    the KL is weighted N times too much. With thousands of examples the prior dominates: the loss
    is huge, the posterior collapses onto the prior and the network predicts a constant (the loss
    is "stuck").

    ## Example
    ```python
    model = tf.keras.Sequential([
        tfp.layers.DenseFlipout(64, activation="relu"),
        tfp.layers.DenseFlipout(1),
    ])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x_train, y_train, batch_size=128, epochs=10)
    ```

    ## Use instead
    ```python
    kl = lambda q, p, _: tfd.kl_divergence(q, p) / x_train.shape[0]
    model = tf.keras.Sequential([
        tfp.layers.DenseFlipout(64, activation="relu", kernel_divergence_fn=kl),
        tfp.layers.DenseFlipout(1, kernel_divergence_fn=kl),
    ])
    ```
    For `tfp.layers.DenseVariational`, pass `kl_weight=1 / num_examples`.
    """

    code = "ELB010"
    name = "unscaled-kl-divergence"
    severity = Severity.WARNING
    confirmed_by = ("ELB102",)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._unscaled: list[tuple[cst.Call, str]] = []
        self._functions: dict[str, cst.FunctionDef] = {}
        self._pending: list[tuple[cst.Call, str, str]] = []  # divergence fn referred to by def name
        self._batches = False  # `.batch(n)` on a dataset, or a Keras-only `.fit(...)` keyword
        self._fits = False  # some `.fit(...)` call: Keras only if the file also compiles a model
        self._compiles = False
        # Where each unscaled layer's model goes: its name and the order of the events below.
        self._owners: list[tuple[int, str]] = []  # enclosing `name = ...` / `name.add(...)`
        self._owner_of: dict[int, tuple[str, int]] = {}  # layer call -> (model name, tick)
        self._assignments: list[tuple[str, int]] = []
        self._uses: list[tuple[str, int, bool]] = []  # (name, tick, inside a function)
        self._skip: set[int] = set()  # Name nodes that are not uses (targets, `m.summary`)
        self._tick = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions[node.name.value] = node

    def visit_Assign(self, node: cst.Assign) -> None:
        self._tick += 1
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._skip.add(id(target.target))
                self._assignments.append((target.target.value, self._tick))
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self._owners.append((id(node), node.targets[0].target.value))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        if self._owners and self._owners[-1][0] == id(original_node):
            self._owners.pop()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if isinstance(node.value, cst.Name) and node.attr.value in _DISPLAY_ATTRIBUTES:
            self._skip.add(id(node.value))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self._skip:
            self._tick += 1
            self._uses.append((node.value, self._tick, self.resolver.in_function))

    def leave_Call(self, original_node: cst.Call) -> None:
        if self._owners and self._owners[-1][0] == id(original_node):
            self._owners.pop()

    def visit_Call(self, node: cst.Call) -> None:
        self._tick += 1
        if isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if method == "add" and isinstance(node.func.value, cst.Name):
                self._owners.append((id(node), node.func.value.value))
            if method == "batch" and node.args:
                self._batches = True
            elif method == "fit":
                self._fits = True
                if self.has_keyword(node, _KERAS_FIT_KEYWORDS):
                    self._batches = True
            elif method == "compile":
                self._compiles = True
        layer = self._layer(node)
        if layer is None or any(arg.star for arg in node.args):
            return
        if self._owners:
            self._owner_of[id(node)] = (self._owners[-1][1], self._tick)
        if layer == "DenseVariational":
            weight = self.get_arg(node, "kl_weight", _KL_WEIGHT_POSITION)
            if weight is None or _is_none(weight.value):
                self._unscaled.append((node, "DenseVariational without kl_weight"))
            return
        position = _KERNEL_DIVERGENCE_POSITION[layer]
        positional = sum(1 for arg in node.args if arg.keyword is None)
        if positional > position:
            return  # passed positionally; too unusual to read reliably
        divergence = self.get_arg(node, "kernel_divergence_fn")
        if divergence is None:
            self._unscaled.append((node, f"{layer} with the default kernel_divergence_fn"))
            return
        if _is_none(divergence.value):
            return  # no KL term at all
        function = self.value_of(divergence.value)
        if isinstance(function, cst.Lambda):
            if not self._scales(function.body):
                self._unscaled.append((node, f"{layer} whose kernel_divergence_fn does not scale the KL"))
        elif isinstance(function, cst.Name):
            self._pending.append((node, layer, function.value))

    def leave_Module(self, original_node: cst.Module) -> None:
        if not (self._batches or (self._fits and self._compiles)):
            return
        for call, layer, name in self._pending:
            definition = self._functions.get(name)
            if definition is not None and not self._scales(definition.body):
                self._unscaled.append((call, f"{layer} whose kernel_divergence_fn does not scale the KL"))
        for call, what in self._unscaled:
            if self._never_used(call):
                continue
            self.report(
                call,
                f"{what}: the KL is added whole to every batch's mean loss (N times too heavy); "
                "divide it by the number of training examples, e.g. kernel_divergence_fn=lambda q, p, _: "
                "tfd.kl_divergence(q, p) / num_examples (DenseVariational: kl_weight=1 / num_examples)",
            )

    def _never_used(self, layer: cst.Call) -> bool:
        """The layer's model is bound to a name that nothing uses (but `.summary()` and the like)
        before it is bound again, and no function refers to that name."""
        owner = self._owner_of.get(id(layer))
        if owner is None:
            return False
        name, tick = owner
        rebound = min((t for n, t in self._assignments if n == name and t > tick), default=float("inf"))
        return not any(
            n == name and (in_function or tick < t < rebound) for n, t, in_function in self._uses
        )

    def _layer(self, node: cst.Call) -> Optional[str]:
        for qualified in self.call_names(node):
            member = member_of(qualified, TFPL)
            if member == "DenseVariational" or member in _KERNEL_DIVERGENCE_POSITION:
                return member
        return None

    def _scales(self, body: cst.CSTNode) -> bool:
        """True if `body` divides or multiplies anything (we do not try to prove it is the KL)."""
        finder = _ScalingFinder(self)
        body.visit(finder)
        return finder.found


class _ScalingFinder(cst.CSTVisitor):
    def __init__(self, rule: UnscaledKlDivergence) -> None:
        self.rule = rule
        self.found = False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Divide, cst.Multiply, cst.FloorDivide)):
            self.found = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, (cst.DivideAssign, cst.MultiplyAssign)):
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("divide", "truediv", "multiply"):
            self.found = True
        elif not self.rule.call_names(node).isdisjoint(_SCALING_CALLS):
            self.found = True


def _is_none(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"

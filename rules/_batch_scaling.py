"""How a file trains on batches, and how a loss reduces a batch: the shared reasoning of ELB010's checks.

Why this module exists: whether a KL divergence is scaled right depends on the same few facts for
every one of ELB010's checks (unscaled_kl_divergence.py). Does the file train on mini-batches (a
`.batch(n)` data set, a Keras `fit(batch_size=...)`)? Which batch sizes does it name? Does a loss
average over the batch's examples (MEAN: Keras' string losses, `tf.keras.losses` objects,
`tf.reduce_mean(...)`) or sum over it (SUM: `tf.reduce_sum(...)` with no per-example axis,
`reduction="sum"`)? Is a weight batch_size / N, where 1 / N is meant? Those answers live here, once,
so the checks cannot drift apart:

- `BatchScaling.note_call` records the file's batching and Keras training calls as the traversal
  meets them (`.batch(n)`, `fit`, `compile`, `train_on_batch`) and how each compiled loss reduces
  the batch (`loss_kind`; a loss function of the file is resolved at the end, `resolved_loss_kinds`).
- `BatchScaling.factors` / `batch_fraction` read a product or quotient through names and casts
  (`kl * tf.cast(batch_size, tf.float32) / N`) and say whether it weighs by batch_size / N; a batch
  size that is visibly the whole data set (`batch_size = len(x)`) is full-batch training, never a
  finding.
- The module-level functions read one call without the resolver: its reduction axis, the size a
  `len(X)` / `X.shape[0]` measures, a `tf.keras.losses` object's reduction.

Nothing here reports: the checks decide.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Union

import libcst as cst

from elbolint.names import TF
from elbolint.rule import Rule
from elbolint.rules._tfp import literal_values
from elbolint.walk import visit

#: How a loss reduces the batch. A compiled loss that is a function of the file is ("def", name)
#: until the end of the file (`BatchScaling.resolved_loss_kinds`).
MEAN, SUM, UNKNOWN = "mean", "sum", "unknown"
LossKind = Union[str, tuple[str, str]]
#: ("name", batch-size node, denominator factors) or ("literal", batch size, denominator factors).
Fraction = tuple[str, Any, list[cst.BaseExpression]]

#: Keywords that only a Keras `Model.fit` takes (scikit-learn's `fit(X, y)` takes none of them).
KERAS_FIT_KEYWORDS = ("batch_size", "epochs", "steps_per_epoch", "validation_data", "validation_split", "callbacks")

#: Calls that scale a value as well as `/` and `*` do.
SCALING_CALLS = frozenset({
    f"{TF}.math.divide", f"{TF}.divide", f"{TF}.truediv", f"{TF}.math.truediv",
    f"{TF}.math.multiply", f"{TF}.multiply", f"{TF}.math.divide_no_nan",
})
DIVIDE_CALLS = frozenset({f"{TF}.math.divide", f"{TF}.divide", f"{TF}.truediv", f"{TF}.math.truediv",
                          f"{TF}.math.divide_no_nan"})
MULTIPLY_CALLS = frozenset({f"{TF}.math.multiply", f"{TF}.multiply"})


def _tf_names(*members: str) -> frozenset[str]:
    return frozenset(f"{prefix}.{m}" for m in members
                     for prefix in (TF, f"{TF}.math", f"{TF}.compat.v1", f"{TF}.compat.v1.math"))


MEAN_CALLS = _tf_names("reduce_mean") | {"keras.backend.mean"}
SUM_CALLS = _tf_names("reduce_sum") | {"keras.backend.sum"}
ADD_N_CALLS = _tf_names("add_n")
#: Value-preserving wrappers around a number (`tf.cast(batch_size, tf.float32)`, `float(n)`).
_CASTS = _tf_names("cast", "constant", "convert_to_tensor", "to_float") | {
    "numpy.float32", "numpy.float64", "numpy.array", "numpy.asarray"}
#: Names of a mini-batch size (`batch_size`, `BATCH_SIZE`, `train_batch_size`, `bs`); not
#: `num_batches`, which is the number of batches.
_BATCH_NAME = re.compile(r"^(?:\w*_)?(?:mini_?)?batch_?size$|^bs$", re.I)
#: Sum-like reductions: a loss that contains one may sum over the batch (not a per-example mean).
SUMMING_NAMES = frozenset({"reduce_sum", "sum", "reduce_logsumexp", "add_n", "variational_loss"})


class BatchScaling:
    """The file's batching facts and the batch-size / reduction reasoning that reads them.

    `functions` is the rule's own map of the file's defs by name (filled as the traversal meets
    them), used to resolve a compiled loss that is a function of the file."""

    def __init__(self, rule: Rule, functions: dict[str, cst.FunctionDef]) -> None:
        self.rule = rule
        self.functions = functions
        self.batches = False  # `.batch(n)` on a dataset, or a Keras-only `.fit(...)` keyword
        self.batch_call: Optional[cst.Call] = None  # the first `.batch(n)` of a data set
        self.keras_training: Optional[cst.Call] = None  # the first Keras compile / fit / train_on_batch
        self.compile_losses: dict[int, LossKind] = {}  # compile call -> how its loss reduces the batch
        self.loss_kinds: list[LossKind] = []  # how each compiled / hand-written loss reduces the batch
        self.batch_sizes: set[float] = set()  # literal batch sizes (`.batch(64)`, `batch_size=64`)
        self.minibatches = False  # `.batch(n)` with n not visibly the whole data set

    # ------------------------------------------------------------ the file's training calls
    def note_call(self, node: cst.Call) -> None:
        """`.batch(n)`, Keras `fit` / `fit_generator` / `train_on_batch` / `compile`."""
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        method = func.attr.value
        if method == "batch" and node.args:
            self.batches = True
            self._note_batch_size(node.args[0].value, dataset=True)
            if self.batch_call is None:
                self.batch_call = node
        elif method == "fit":
            if self.rule.has_keyword(node, KERAS_FIT_KEYWORDS):
                self.batches = True
                self.keras_training = self.keras_training or node
            size = self.rule.get_arg(node, "batch_size")
            if size is not None:
                self._note_batch_size(size.value, dataset=False)
        elif method in ("fit_generator", "train_on_batch"):
            self.keras_training = self.keras_training or node
        elif method == "compile" and self._keras_compile(node):
            self.keras_training = self.keras_training or node
            loss = self.rule.get_arg(node, "loss", 1)
            kind = self.loss_kind(loss.value) if loss is not None else UNKNOWN
            self.loss_kinds.append(kind)
            self.compile_losses[id(node)] = kind

    def _keras_compile(self, call: cst.Call) -> bool:
        """`model.compile(...)`, not `re.compile(...)`."""
        names = self.rule.call_names(call)
        return not names or any("keras" in n or n.endswith(("Model.compile", "Sequential.compile")) for n in names)

    def _note_batch_size(self, node: cst.BaseExpression, dataset: bool) -> None:
        value = self.uncast(self.rule.value_of(node))
        size = self.number(value)
        if size is not None:
            self.batch_sizes.add(size)
        if dataset and size_of(value) is None:
            self.minibatches = True

    # ------------------------------------------------------------ products and batch sizes
    def uncast(self, node: cst.BaseExpression) -> cst.BaseExpression:
        for _ in range(4):
            if not isinstance(node, cst.Call) or not node.args or node.args[0].keyword is not None:
                return node
            names = self.rule.call_names(node)
            builtin = isinstance(node.func, cst.Name) and node.func.value in ("float", "int") and not names
            if not (builtin or names & _CASTS):
                return node
            node = node.args[0].value
        return node

    def factors(self, node: cst.BaseExpression,
                depth: int = 0) -> tuple[list[cst.BaseExpression], list[cst.BaseExpression]]:
        """Numerator and denominator factors of a product / quotient, through names bound to one."""
        node = strip_sign(node)
        if depth > 8:
            return [node], []
        if (isinstance(node, cst.BinaryOperation)
                and isinstance(node.operator, (cst.Multiply, cst.Divide, cst.FloorDivide))):
            left_num, left_den = self.factors(node.left, depth + 1)
            right_num, right_den = self.factors(node.right, depth + 1)
            if isinstance(node.operator, cst.Multiply):
                return left_num + right_num, left_den + right_den
            return left_num + right_den, left_den + right_num
        if isinstance(node, cst.Call) and len(node.args) >= 2 and not any(a.star for a in node.args):
            names = self.rule.call_names(node)
            if names & (DIVIDE_CALLS | MULTIPLY_CALLS):
                left_num, left_den = self.factors(node.args[0].value, depth + 1)
                right_num, right_den = self.factors(node.args[1].value, depth + 1)
                if names & MULTIPLY_CALLS:
                    return left_num + right_num, left_den + right_den
                return left_num + right_den, left_den + right_num
        unwrapped = self.uncast(node)
        if unwrapped is not node:
            return self.factors(unwrapped, depth + 1)
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.uncast(self.rule.value_of(node))
            if isinstance(value, cst.BinaryOperation) and isinstance(
                    value.operator, (cst.Multiply, cst.Divide, cst.FloorDivide)):
                return self.factors(value, depth + 1)
        return [node], []

    def batch_fraction(self, node: cst.BaseExpression,
                       kl_factor: Optional[Callable[[cst.BaseExpression], Optional[cst.CSTNode]]] = None,
                       ) -> Optional[Fraction]:
        """("name", batch factor, denominator factors) when `node` weighs by batch_size / N (a
        batch size over something that is not visibly the same size); ("literal", value,
        denominator factors) for `128 / 60000`, decided against the file's batch sizes; else None.
        With `kl_factor` (what a KL term is), `node` must be one KL times that weight."""
        numerator, denominator = self.factors(node)
        if kl_factor is not None:
            kl = [f for f in numerator if kl_factor(f) is not None]
            if len(kl) != 1 or any(kl_factor(f) is not None for f in denominator):
                return None
            numerator = [f for f in numerator if f is not kl[0]]
        if not denominator:
            return None
        batch = [f for f in numerator if self._is_batch(f)]
        rest = [f for f in numerator if not self._is_batch(f)]
        if any(self._is_batch(f) for f in denominator):
            return None
        numbers = [self.number(f) for f in rest]
        if any(n is None for n in numbers):
            return None  # another factor we cannot read (an annealing weight, a temperature)
        if len(batch) == 1 and all(n == 1.0 for n in numbers):
            if self._same_size(batch[0], denominator):
                return None
            return "name", batch[0], denominator
        if not batch and len(numbers) == 1 and numbers[0] is not None and numbers[0] > 1:
            if self._same_size(rest[0], denominator):
                return None
            return "literal", numbers[0], denominator
        return None

    def literal_is_batch(self, fraction: Fraction) -> bool:
        """A named batch size, or a literal that is one of the file's batch sizes."""
        return fraction[0] == "name" or fraction[1] in self.batch_sizes

    def number(self, node: cst.BaseExpression) -> Optional[float]:
        values = literal_values(self.uncast(self.rule.value_of(node)), self.rule.resolver)
        return values[0] if values and len(values) == 1 else None

    def _is_batch(self, node: cst.BaseExpression) -> bool:
        node = self.uncast(node)
        name = last_name(node)
        if name is not None and _BATCH_NAME.match(name):
            return True
        data = size_of(node)
        if data is not None:
            base = last_name(data)
            return base is not None and "batch" in base.lower()
        return False

    def _same_size(self, batch: cst.BaseExpression, denominator: list[cst.BaseExpression]) -> bool:
        """The batch is visibly the whole data set (full-batch training): `batch_size = len(x)`, the
        same expression as the denominator, or a literal at least as large."""
        value = self.uncast(self.rule.value_of(batch))
        data = size_of(value)
        if data is not None:
            base = last_name(data)
            if base is None or "batch" not in base.lower():
                return True
        source = self.rule.source(value)
        size = self.number(value)
        for factor in denominator:
            other = self.uncast(self.rule.value_of(factor))
            if self.rule.source(other) == source:
                return True
            other_size = self.number(other)
            if size is not None and other_size is not None and size >= other_size:
                return True
        return False

    # ------------------------------------------------------------------ the loss's reduction
    def loss_kind(self, node: cst.BaseExpression, depth: int = 0) -> LossKind:
        """How a compiled Keras loss reduces the batch: MEAN (strings, `tf.keras.losses` objects,
        per-example functions), SUM (a function that sums over the batch, `reduction="sum"`),
        UNKNOWN; or ("def", name) for a function of the file, read in leave_Module."""
        if depth > 4:
            return UNKNOWN
        value = self.rule.value_of(node)
        if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
            return MEAN
        if isinstance(value, (cst.List, cst.Tuple, cst.Dict)):
            elements = [e.value for e in value.elements] if not isinstance(value, cst.Dict) else \
                [e.value for e in value.elements if isinstance(e, cst.DictElement)]
            kinds = {self.loss_kind(e, depth + 1) for e in elements}
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        if isinstance(value, cst.Lambda):
            return body_reduction(value.body)
        names = self.rule.qualified_names(value) if isinstance(value, (cst.Name, cst.Attribute)) else frozenset()
        if any(n.startswith("keras.losses.") for n in names):
            return MEAN  # `tf.keras.losses.mse`: per example, averaged by Keras
        if isinstance(value, cst.Call):
            if any(n.startswith("keras.losses.") for n in self.rule.call_names(value)):
                return keras_reduction(value)
            return UNKNOWN
        if isinstance(value, cst.Name) and not names:
            return ("def", value.value)
        return UNKNOWN

    def resolved_loss_kinds(self, kinds: Optional[list[LossKind]] = None) -> set[str]:
        """MEAN / SUM / UNKNOWN of `kinds` (default: every loss of the file), functions of the file read."""
        resolved = set()
        for kind in self.loss_kinds if kinds is None else kinds:
            if isinstance(kind, tuple):
                definition = self.functions.get(kind[1])
                kind = body_reduction(definition.body) if definition is not None else UNKNOWN
            resolved.add(kind)
        return resolved

    def keras_kind(self, call: Optional[cst.Call]) -> str:
        """How the loss Keras trains with reduces the batch: the loss of this compile call, or (a
        `fit` / `train_on_batch`) the one reduction all of the file's compile calls share."""
        if call is None:
            return UNKNOWN
        kind = self.compile_losses.get(id(call))
        if kind is None:  # `fit` / `train_on_batch`, or the file's compile calls
            kinds = self.resolved_loss_kinds(list(self.compile_losses.values()))
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        return self.resolved_loss_kinds([kind]).pop()


# ---------------------------------------------------------------------------- one call, read alone
def is_none(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def strip_sign(node: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        node = node.expression
    return node


def axis(call: cst.Call) -> Optional[cst.BaseExpression]:
    """The axis a reduction is over (`axis=`, `reduction_indices=` or the second positional
    argument); None when it reduces everything."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in ("axis", "reduction_indices"):
            return None if is_none(arg.value) else arg.value
    positional = [a for a in call.args if a.keyword is None]
    if len(positional) > 1 and not is_none(positional[1].value):
        return positional[1].value
    return None


def last_name(node: cst.BaseExpression) -> Optional[str]:
    """`batch_size`, `cfg.batch_size`, `params["batch_size"]` -> "batch_size"."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            value = index.value.evaluated_value
            return value if isinstance(value, str) else None
    return None


def size_of(node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """X for `len(X)`, `X.shape[0]`, `tf.shape(X)[0]`, `X.get_shape()[0]`: the size of a data set
    (or of a batch, if X is one)."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len" and node.args:
        return node.args[0].value
    if isinstance(node, cst.Subscript):
        base = node.value
        if isinstance(base, cst.Attribute) and base.attr.value == "shape":
            return base.value
        if isinstance(base, cst.Call) and base.args:
            func = base.func
            if isinstance(func, cst.Attribute) and func.attr.value == "shape":
                return base.args[0].value  # tf.shape(x)[0]
            if isinstance(func, cst.Attribute) and func.attr.value == "get_shape":
                return func.value
    return None


def keras_reduction(call: cst.Call) -> str:
    """MEAN for a `tf.keras.losses` object with the default reduction, SUM for `reduction="sum"` /
    `Reduction.SUM`, UNKNOWN for `"none"` and the like."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "reduction":
            value = arg.value
            text = value.evaluated_value if isinstance(value, cst.SimpleString) else \
                value.attr.value if isinstance(value, cst.Attribute) else None
            if not isinstance(text, str):
                return UNKNOWN
            text = text.lower()
            if text in ("sum_over_batch_size", "auto", "mean"):
                return MEAN
            return SUM if text == "sum" else UNKNOWN
        if arg.star == "**":
            return UNKNOWN
    return MEAN


def body_reduction(body: cst.CSTNode) -> str:
    """A Keras loss function's body: SUM if it sums over the batch (`tf.reduce_sum(...)` with no
    per-example axis, `rv.variational_loss(...)`), else MEAN (Keras averages its per-example
    values)."""
    finder = _BatchSumFinder()
    visit(body, finder)
    return SUM if finder.found else MEAN


class _BatchSumFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last == "variational_loss":
            self.found = True
        elif last in ("reduce_sum", "sum", "reduce_logsumexp", "add_n"):
            reduced = axis(node)
            per_example = reduced is not None and (
                isinstance(reduced, cst.Integer) and reduced.evaluated_value >= 1
                or isinstance(reduced, cst.UnaryOperation) and isinstance(reduced.operator, cst.Minus)
            )
            if not per_example:
                self.found = True

"""ELB010 unscaled-kl-divergence."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFD, TFPL, member_of
from elbolint.rule import Rule
from elbolint.rules._tfp import DEFERRED_TENSOR, TRANSFORMED_VARIABLE, VARIABLE, VI_FUNCTIONS, distribution_name, literal_values

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
_DIVIDE_CALLS = frozenset({f"{TF}.math.divide", f"{TF}.divide", f"{TF}.truediv", f"{TF}.math.truediv",
                           f"{TF}.math.divide_no_nan"})
_MULTIPLY_CALLS = frozenset({f"{TF}.math.multiply", f"{TF}.multiply"})


def _tf_names(*members: str) -> frozenset[str]:
    return frozenset(f"{prefix}.{m}" for m in members
                     for prefix in (TF, f"{TF}.math", f"{TF}.compat.v1", f"{TF}.compat.v1.math"))


_MEAN_CALLS = _tf_names("reduce_mean") | {"keras.backend.mean"}
_SUM_CALLS = _tf_names("reduce_sum") | {"keras.backend.sum"}
_ADD_N_CALLS = _tf_names("add_n")
#: Value-preserving wrappers around a number (`tf.cast(batch_size, tf.float32)`, `float(n)`).
_CASTS = _tf_names("cast", "constant", "convert_to_tensor", "to_float") | {
    "numpy.float32", "numpy.float64", "numpy.array", "numpy.asarray"}
_KL_FUNCTIONS = frozenset({f"{TFD}.kl_divergence"})
#: Names of a mini-batch size (`batch_size`, `BATCH_SIZE`, `train_batch_size`, `bs`); not
#: `num_batches`, which is the number of batches.
_BATCH_NAME = re.compile(r"^(?:\w*_)?(?:mini_?)?batch_?size$|^bs$", re.I)
#: Sum-like reductions: a loss that contains one may sum over the batch (not a per-example mean).
_SUMMING_NAMES = frozenset({"reduce_sum", "sum", "reduce_logsumexp", "add_n", "variational_loss"})
#: Weight posteriors of the tfp.layers layers.
_POSTERIOR_ATTRIBUTES = frozenset({"kernel_posterior", "bias_posterior"})

MEAN, SUM, UNKNOWN = "mean", "sum", "unknown"


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

    It also checks the weight's value. A `kl_weight` (or a `kernel_divergence_fn` /
    `bias_divergence_fn` factor) of batch_size / N (`batch_size / num_train`, `BATCH_SIZE /
    len(x_train)`, `kl * tf.cast(batch_size, tf.float32) / N`, `128 / 60000` with a batch size of
    128 in sight) is flagged when the file's Keras losses average over the batch (string losses,
    `tf.keras.losses` objects, per-example functions such as `lambda y, rv: -rv.log_prob(y)`);
    batch_size / N is right only for a loss that sums over the batch, which stays clean, as do
    `1 / N`, full-batch training (the batch size is `len(x)` or the same value as N) and weights
    with factors that cannot be read. In a hand-written loss, a whole KL
    (`tf.reduce_sum(tfd.kl_divergence(q, p))`, `q.kl_divergence(p)`, through names) of a
    posterior over global weights (a distribution built from `tf.Variable`s,
    `TransformedVariable`s or `add_weight`, a `tfp.experimental.vi` surrogate, a layer's
    `kernel_posterior`) added to a batch-mean likelihood (`tf.reduce_mean(...)` with no sum inside,
    a `tf.keras.losses` object) is flagged, as is a KL weighted batch_size / N there, and a whole
    KL added to a likelihood summed over a batch (`tf.reduce_sum(....log_prob(y))`) in a file that
    batches a dataset with `.batch(n)`. A VAE's per-example KL (of an encoder's output), a KL
    divided by N, MAP and MCMC code are not flagged; `reduce_mean(nll) + sum(model.losses)`
    makes unscaled layers count as trained on batches.

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
    For `tfp.layers.DenseVariational`, pass `kl_weight=1 / num_examples` (not
    `batch_size / num_examples`: Keras averages the likelihood over the batch). In a hand-written
    loss, `-tf.reduce_mean(log_likelihood) + kl / num_examples`, or
    `-tf.reduce_sum(log_likelihood) + kl * batch_size / num_examples`.
    """

    code = "ELB010"
    name = "unscaled-kl-divergence"
    severity = Severity.WARNING
    confirmed_by = ("ELB102", "ELB109")

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
        # --- the value of the KL weight (batch_size / N where 1 / N is meant)
        # layer call -> (what, the function or weight that scales its KL): decided in leave_Module
        self._weighted: list[tuple[cst.Call, str, object]] = []
        self._batch_weights: dict[int, tuple] = {}  # def / lambda node -> fraction found in it
        self._loss_kinds: list[object] = []  # how each compiled / hand-written loss reduces the batch
        self._batch_sizes: set[float] = set()  # literal batch sizes (`.batch(64)`, `batch_size=64`)
        self._minibatches = False  # `.batch(n)` with n not visibly the whole data set
        self._mean_layer_losses = False  # `reduce_mean(nll) + sum(model.losses)` in a hand-written loss
        self._chains: set[int] = set()  # inner nodes of `+` / `-` chains already read
        self._reported_kl: set[int] = set()
        self._sum_candidates: list[tuple[cst.CSTNode, str]] = []  # whole KL + summed batch likelihood
        self._literal_weights: list[tuple[cst.CSTNode, str, float, str]] = []
        self._loops = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions[node.name.value] = node

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1

    def leave_For(self, original_node: cst.For) -> None:
        self._loops -= 1

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
                self._note_batch_size(node.args[0].value, dataset=True)
            elif method == "fit":
                self._fits = True
                if self.has_keyword(node, _KERAS_FIT_KEYWORDS):
                    self._batches = True
                size = self.get_arg(node, "batch_size")
                if size is not None:
                    self._note_batch_size(size.value, dataset=False)
            elif method == "compile":
                self._compiles = True
                loss = self.get_arg(node, "loss", 1)
                self._loss_kinds.append(self._loss_kind(loss.value) if loss is not None else UNKNOWN)
        layer = self._layer(node)
        if layer is None or any(arg.star for arg in node.args):
            return
        if self._owners:
            self._owner_of[id(node)] = (self._owners[-1][1], self._tick)
        if layer == "DenseVariational":
            weight = self.get_arg(node, "kl_weight", _KL_WEIGHT_POSITION)
            if weight is None or _is_none(weight.value):
                self._unscaled.append((node, "DenseVariational without kl_weight"))
            else:
                fraction = self._batch_fraction(weight.value, with_kl=False)
                if fraction is not None:
                    self._weighted.append((node, f"kl_weight={self.source(weight.value)}", fraction))
            return
        position = _KERNEL_DIVERGENCE_POSITION[layer]
        positional = sum(1 for arg in node.args if arg.keyword is None)
        if positional > position:
            return  # passed positionally; too unusual to read reliably
        for keyword in ("kernel_divergence_fn", "bias_divergence_fn"):
            divergence = self.get_arg(node, keyword)
            if divergence is not None and not _is_none(divergence.value):
                function = self.value_of(divergence.value)
                if isinstance(function, (cst.Lambda, cst.Name)):
                    self._weighted.append((node, f"{keyword}={self.source(divergence.value)}", function))
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

    # ------------------------------------------------------------ the KL weight's value
    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Multiply, cst.Divide)):
            scope = self.resolver.scope_node
            if isinstance(scope, (cst.Lambda, cst.FunctionDef)) and id(scope) not in self._batch_weights:
                fraction = self._batch_fraction(node, with_kl=True)
                if fraction is not None:
                    self._batch_weights[id(scope)] = fraction
        elif isinstance(node.operator, (cst.Add, cst.Subtract)) and id(node) not in self._chains:
            self._read_loss(node)

    def _read_loss(self, node: cst.BinaryOperation) -> None:
        """A hand-written loss `likelihood +/- KL`: how the likelihood reduces the batch, and
        whether the KL next to it is whole, weighted batch_size / N, or the layers' losses."""
        terms: list[cst.BaseExpression] = []
        self._flatten_chain(node, terms)
        kinds = [(term, self._term(term)) for term in terms]
        likelihoods = {kind for _, (kind, _) in kinds if kind in (MEAN, SUM)}
        if len(likelihoods) != 1:
            return
        likelihood = likelihoods.pop()
        for term, (kind, info) in kinds:
            if kind == "losses":
                self._loss_kinds.append(likelihood)
                if likelihood == MEAN:
                    self._mean_layer_losses = True
            elif kind == "scaled":
                self._loss_kinds.append(likelihood)
                fraction, kl = info
                if likelihood == MEAN and fraction is not None and self._literal_is_batch(fraction) \
                        and id(kl) not in self._reported_kl:
                    self._reported_kl.add(id(kl))
                    self._report_fraction(term, f"`{self.source(term)}`", fraction, in_loss=True)
            elif kind == "kl":
                if id(info) in self._reported_kl:
                    continue
                if likelihood == MEAN:
                    self._reported_kl.add(id(info))
                    self.report(
                        term,
                        f"the whole KL (`{self.source(term)}`) is added to a likelihood averaged over the batch: "
                        "it weighs N (the number of training examples) times too much and drowns the data; "
                        "divide it by the number of training examples (kl / num_examples)",
                    )
                elif self.resolver.in_function or self._loops:
                    self._reported_kl.add(id(info))
                    self._sum_candidates.append((term, self.source(term)))

    def _flatten_chain(self, node: cst.BaseExpression, terms: list) -> None:
        """The terms of `a + b - (c + d)` (signs do not matter here)."""
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
            self._chains.add(id(node))
            self._flatten_chain(node.left, terms)
            self._flatten_chain(node.right, terms)
        else:
            terms.append(node)

    def _term(self, node: cst.BaseExpression, depth: int = 0) -> tuple[str, object]:
        """(kind, info) of one term of a loss: MEAN / SUM (a batch likelihood), "kl" (a whole
        KL of a global posterior; info: its kl_divergence call), "losses" (`sum(model.losses)`),
        "scaled" (a KL times a weight; info: (batch fraction or None, kl node)), or ("", None)."""
        if depth > 4:
            return "", None
        node = _strip_sign(node)
        if isinstance(node, (cst.Name, cst.Attribute)) and not _is_losses(node):
            value = self.value_of(node)
            if value is not node:
                return self._term(value, depth + 1)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide)):
            numerator, denominator = self._factors(node)
            kl = [f for f in numerator if self._kl_factor(f) is not None]
            if len(kl) == 1 and not any(self._kl_factor(f) is not None for f in denominator):
                return "scaled", (self._batch_fraction(node, with_kl=True), self._kl_factor(kl[0]))
            return "", None
        if _is_losses(node) or self._layer_losses(node):
            return "losses", node
        whole = self._whole_kl(node)
        if whole is not None:
            calls, posteriors = whole
            if posteriors and all(self._global_posterior(q) for q in posteriors):
                return "kl", calls[0]
            return "", None
        if isinstance(node, cst.Call):
            return self._likelihood(node), node
        return "", None

    def _likelihood(self, call: cst.Call) -> str:
        names = self.call_names(call)
        if names & (_MEAN_CALLS | _SUM_CALLS):
            if _axis(call) is not None or not call.args:
                return ""
            inner = call.args[0].value
            if not names.isdisjoint(_MEAN_CALLS):
                return "" if self._mentions(inner, _SUMMING_NAMES | {"kl_divergence", "losses"}) else MEAN
            return SUM if self._mentions(inner, {"log_prob", "log_likelihood"}) and \
                not self._mentions(inner, {"kl_divergence", "losses"}) else ""
        # `loss_fn(y, logits)` with `loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()`
        made = self.value_of(call.func)
        if isinstance(made, cst.Call) and any(n.startswith("keras.losses.") for n in self.call_names(made)):
            return _keras_reduction(made)
        return ""

    def _mentions(self, node: cst.BaseExpression, words: frozenset) -> bool:
        """True if `node` (or the value of the name it is) calls or reads any of `words`."""
        node = self.value_of(node)
        finder = _WordFinder(words)
        node.visit(finder)
        return finder.found

    def _factors(self, node: cst.BaseExpression, depth: int = 0) -> tuple[list, list]:
        """Numerator and denominator factors of a product / quotient, through names bound to one."""
        node = _strip_sign(node)
        if depth > 8:
            return [node], []
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide, cst.FloorDivide)):
            left_num, left_den = self._factors(node.left, depth + 1)
            right_num, right_den = self._factors(node.right, depth + 1)
            if isinstance(node.operator, cst.Multiply):
                return left_num + right_num, left_den + right_den
            return left_num + right_den, left_den + right_num
        if isinstance(node, cst.Call) and len(node.args) >= 2 and not any(a.star for a in node.args):
            names = self.call_names(node)
            if names & (_DIVIDE_CALLS | _MULTIPLY_CALLS):
                left_num, left_den = self._factors(node.args[0].value, depth + 1)
                right_num, right_den = self._factors(node.args[1].value, depth + 1)
                if names & _MULTIPLY_CALLS:
                    return left_num + right_num, left_den + right_den
                return left_num + right_den, left_den + right_num
        unwrapped = self._uncast(node)
        if unwrapped is not node:
            return self._factors(unwrapped, depth + 1)
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self._uncast(self.value_of(node))
            if isinstance(value, cst.BinaryOperation) and isinstance(
                    value.operator, (cst.Multiply, cst.Divide, cst.FloorDivide)):
                return self._factors(value, depth + 1)
        return [node], []

    def _uncast(self, node: cst.BaseExpression) -> cst.BaseExpression:
        for _ in range(4):
            if not isinstance(node, cst.Call) or not node.args or node.args[0].keyword is not None:
                return node
            names = self.call_names(node)
            builtin = isinstance(node.func, cst.Name) and node.func.value in ("float", "int") and not names
            if not (builtin or names & _CASTS):
                return node
            node = node.args[0].value
        return node

    def _batch_fraction(self, node: cst.BaseExpression, with_kl: bool) -> Optional[tuple]:
        """("name", batch factor, denominator factors) when `node` weighs by batch_size / N (a
        batch size over something that is not visibly the same size); ("literal", value,
        denominator factors) for `128 / 60000`, decided against the file's batch sizes; else None."""
        numerator, denominator = self._factors(node)
        if with_kl:
            kl = [f for f in numerator if self._kl_factor(f) is not None]
            if len(kl) != 1 or any(self._kl_factor(f) is not None for f in denominator):
                return None
            numerator = [f for f in numerator if f is not kl[0]]
        if not denominator:
            return None
        batch = [f for f in numerator if self._is_batch(f)]
        rest = [f for f in numerator if not self._is_batch(f)]
        if any(self._is_batch(f) for f in denominator):
            return None
        numbers = [self._number(f) for f in rest]
        if any(n is None for n in numbers):
            return None  # another factor we cannot read (an annealing weight, a temperature)
        if len(batch) == 1 and all(n == 1.0 for n in numbers):
            if self._same_size(batch[0], denominator):
                return None
            return "name", batch[0], denominator
        if not batch and len(numbers) == 1 and numbers[0] > 1:
            if self._same_size(rest[0], denominator):
                return None
            return "literal", numbers[0], denominator
        return None

    def _number(self, node: cst.BaseExpression) -> Optional[float]:
        values = literal_values(self._uncast(self.value_of(node)), self.resolver)
        return values[0] if values and len(values) == 1 else None

    def _is_batch(self, node: cst.BaseExpression) -> bool:
        node = self._uncast(node)
        name = _last_name(node)
        if name is not None and _BATCH_NAME.match(name):
            return True
        data = _size_of(node)
        if data is not None:
            base = _last_name(data)
            return base is not None and "batch" in base.lower()
        return False

    def _same_size(self, batch: cst.BaseExpression, denominator: list) -> bool:
        """The batch is visibly the whole data set (full-batch training): `batch_size = len(x)`, the
        same expression as the denominator, or a literal at least as large."""
        value = self._uncast(self.value_of(batch))
        data = _size_of(value)
        if data is not None:
            base = _last_name(data)
            if base is None or "batch" not in base.lower():
                return True
        source = self.source(value)
        size = self._number(value)
        for factor in denominator:
            other = self._uncast(self.value_of(factor))
            if self.source(other) == source:
                return True
            other_size = self._number(other)
            if size is not None and other_size is not None and size >= other_size:
                return True
        return False

    def _note_batch_size(self, node: cst.BaseExpression, dataset: bool) -> None:
        value = self._uncast(self.value_of(node))
        size = self._number(value)
        if size is not None:
            self._batch_sizes.add(size)
        if dataset and _size_of(value) is None:
            self._minibatches = True

    # --------------------------------------------------------------- what a KL term is
    def _kl_factor(self, node: cst.BaseExpression, depth: int = 0) -> Optional[cst.CSTNode]:
        """The KL a factor is: a kl_divergence call (or sum of them), or the layers' losses."""
        if depth > 4:
            return None
        node = self._uncast(_strip_sign(node))
        if _is_losses(node) or self._layer_losses(node):
            return node
        whole = self._whole_kl(node)
        if whole is not None:
            return whole[0][0]
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.value_of(node)
            if value is not node:
                return self._kl_factor(value, depth + 1)
        return None

    def _whole_kl(self, node: cst.BaseExpression, depth: int = 0) -> Optional[tuple[list, list]]:
        """(kl_divergence calls, their posteriors) when `node` is a whole KL: `tfd.kl_divergence(q,
        p)`, `q.kl_divergence(p)`, their `tf.reduce_sum`, `tf.add_n` / `sum` / `+` of several."""
        if depth > 5:
            return None
        node = _strip_sign(node)
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.value_of(node)
            return None if value is node else self._whole_kl(value, depth + 1)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            left, right = self._whole_kl(node.left, depth + 1), self._whole_kl(node.right, depth + 1)
            if left is None or right is None:
                return None
            return left[0] + right[0], left[1] + right[1]
        if isinstance(node, (cst.List, cst.Tuple)) and node.elements:
            calls, posteriors = [], []
            for element in node.elements:
                inner = self._whole_kl(element.value, depth + 1)
                if inner is None:
                    return None
                calls += inner[0]
                posteriors += inner[1]
            return calls, posteriors
        if not isinstance(node, cst.Call) or not node.args or any(a.star for a in node.args):
            return None
        names = self.call_names(node)
        if names & _KL_FUNCTIONS:
            first = self.get_arg(node, "distribution_a", 0)
            return ([node], [first.value]) if first is not None else None
        if not names and isinstance(node.func, cst.Attribute) and node.func.attr.value == "kl_divergence":
            return [node], [node.func.value]
        builtin_sum = isinstance(node.func, cst.Name) and node.func.value == "sum" and not names
        if (names & (_SUM_CALLS | _ADD_N_CALLS) or builtin_sum) and _axis(node) is None:
            return self._whole_kl(node.args[0].value, depth + 1)
        return None

    def _layer_losses(self, node: cst.BaseExpression) -> bool:
        """`sum(model.losses)`, `tf.add_n(model.losses)`, `tf.reduce_sum(model.losses)`."""
        if not isinstance(node, cst.Call) or not node.args:
            return False
        names = self.call_names(node)
        builtin_sum = isinstance(node.func, cst.Name) and node.func.value == "sum" and not names
        if not (builtin_sum or names & (_SUM_CALLS | _ADD_N_CALLS)):
            return False
        inner = node.args[0].value
        return _is_losses(inner) or _is_losses(self.value_of(inner))

    def _global_posterior(self, node: cst.BaseExpression) -> bool:
        """A posterior over global parameters (weights): a distribution built from trainable
        variables, a `tfp.experimental.vi` surrogate, a layer's `kernel_posterior`. An encoder's
        output (a VAE's per-example latent) or anything unreadable is not."""
        value = self.value_of(node)
        if isinstance(value, cst.Attribute) and value.attr.value in _POSTERIOR_ATTRIBUTES:
            return True
        if not isinstance(value, cst.Call):
            return False
        if not self.call_names(value).isdisjoint(VI_FUNCTIONS):
            return True
        return distribution_name(self.resolver, value) is not None and self._has_variable(value)

    def _has_variable(self, node: cst.CSTNode, depth: int = 0) -> bool:
        if depth > 3:
            return False
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, cst.Call):
                names = self.call_names(current)
                if names & (VARIABLE | TRANSFORMED_VARIABLE | DEFERRED_TENSOR):
                    return True
                if isinstance(current.func, cst.Attribute) and current.func.attr.value in ("add_weight", "add_variable"):
                    return True
            if isinstance(current, (cst.Name, cst.Attribute)):
                value = self.value_of(current)
                if value is not current and self._has_variable(value, depth + 1):
                    return True
                if isinstance(current, cst.Name):
                    continue
            if isinstance(current, cst.Lambda):
                continue
            stack.extend(current.children)
        return False

    # ------------------------------------------------------------------ the loss's reduction
    def _loss_kind(self, node: cst.BaseExpression, depth: int = 0) -> object:
        """How a compiled Keras loss reduces the batch: MEAN (strings, `tf.keras.losses` objects,
        per-example functions), SUM (a function that sums over the batch, `reduction="sum"`),
        UNKNOWN; or ("def", name) for a function of the file, read in leave_Module."""
        if depth > 4:
            return UNKNOWN
        value = self.value_of(node)
        if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
            return MEAN
        if isinstance(value, (cst.List, cst.Tuple, cst.Dict)):
            elements = [e.value for e in value.elements] if not isinstance(value, cst.Dict) else \
                [e.value for e in value.elements if isinstance(e, cst.DictElement)]
            kinds = {self._loss_kind(e, depth + 1) for e in elements}
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        if isinstance(value, cst.Lambda):
            return _body_reduction(value.body)
        names = self.qualified_names(value) if isinstance(value, (cst.Name, cst.Attribute)) else frozenset()
        if any(n.startswith("keras.losses.") for n in names):
            return MEAN  # `tf.keras.losses.mse`: per example, averaged by Keras
        if isinstance(value, cst.Call):
            if any(n.startswith("keras.losses.") for n in self.call_names(value)):
                return _keras_reduction(value)
            return UNKNOWN
        if isinstance(value, cst.Name) and not names:
            return ("def", value.value)
        return UNKNOWN

    def _resolved_loss_kinds(self) -> set:
        kinds = set()
        for kind in self._loss_kinds:
            if isinstance(kind, tuple):
                definition = self._functions.get(kind[1])
                kind = _body_reduction(definition.body) if definition is not None else UNKNOWN
            kinds.add(kind)
        return kinds

    # ------------------------------------------------------------------------- decisions
    def _report_fraction(self, node: cst.CSTNode, what: str, fraction: tuple, in_loss: bool) -> None:
        kind, batch, denominator = fraction
        batch_text = self.source(batch) if kind == "name" else f"{batch:g}"
        n_text = " * ".join(self.source(d) for d in denominator)
        if len(denominator) > 1:
            n_text = f"({n_text})"
        if in_loss:
            right = f"the KL / {n_text}"
            where = "the likelihood is averaged over the batch"
        else:
            right = (f"kl_weight=1 / {n_text}" if what.startswith("kl_weight") else
                     f"lambda q, p, _: tfd.kl_divergence(q, p) / {n_text}")
            where = "Keras averages the loss over the batch"
        self.report(
            node,
            f"{what} weighs the KL by batch_size / N ({batch_text} / {n_text}), but {where}: the KL is "
            f"{batch_text} times too heavy (per example it needs 1 / N); use {right}",
        )

    def _fraction_for(self, weighted: object) -> Optional[tuple]:
        if isinstance(weighted, tuple):
            return weighted
        if isinstance(weighted, cst.Lambda):
            return self._batch_weights.get(id(weighted))
        if isinstance(weighted, cst.Name):
            definition = self._functions.get(weighted.value)
            return self._batch_weights.get(id(definition)) if definition is not None else None
        return None

    def _literal_is_batch(self, fraction: tuple) -> bool:
        return fraction[0] == "name" or fraction[1] in self._batch_sizes

    def leave_Module(self, original_node: cst.Module) -> None:
        kinds = self._resolved_loss_kinds()
        if kinds == {MEAN}:
            for call, what, weighted in self._weighted:
                fraction = self._fraction_for(weighted)
                if fraction is not None and self._literal_is_batch(fraction) and not self._never_used(call):
                    self._report_fraction(call, what, fraction, in_loss=False)
        if self._minibatches:
            for term, source in self._sum_candidates:
                self.report(
                    term,
                    f"the whole KL (`{source}`) is added to a likelihood summed over one batch of a "
                    "`.batch(...)` data set: it weighs N / batch_size times too much; scale it by "
                    "batch_size / num_examples (or average the likelihood and divide the KL by num_examples)",
                )
        if not (self._batches or (self._fits and self._compiles) or self._mean_layer_losses):
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


class _WordFinder(cst.CSTVisitor):
    """Finds a call or attribute named one of `words` (`tf.reduce_sum(...)`, `x.sum()`, `.log_prob`)."""

    def __init__(self, words: frozenset) -> None:
        self.words = words
        self.found = False

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in self.words:
            self.found = True

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in self.words:
            self.found = True


def _strip_sign(node: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        node = node.expression
    return node


def _is_losses(node: cst.BaseExpression) -> bool:
    """`model.losses`, `self.losses`, `layer.losses`."""
    return isinstance(node, cst.Attribute) and node.attr.value == "losses"


def _axis(call: cst.Call) -> Optional[cst.BaseExpression]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in ("axis", "reduction_indices"):
            return None if _is_none(arg.value) else arg.value
    positional = [a for a in call.args if a.keyword is None]
    if len(positional) > 1 and not _is_none(positional[1].value):
        return positional[1].value
    return None


def _last_name(node: cst.BaseExpression) -> Optional[str]:
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


def _size_of(node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
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


def _keras_reduction(call: cst.Call) -> str:
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


def _body_reduction(body: cst.CSTNode) -> str:
    """A Keras loss function's body: SUM if it sums over the batch (`tf.reduce_sum(...)` with no
    per-example axis, `rv.variational_loss(...)`), else MEAN (Keras averages its per-example
    values)."""
    finder = _BatchSumFinder()
    body.visit(finder)
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
            axis = _axis(node)
            per_example = axis is not None and (
                isinstance(axis, cst.Integer) and axis.evaluated_value >= 1
                or isinstance(axis, cst.UnaryOperation) and isinstance(axis.operator, cst.Minus)
            )
            if not per_example:
                self.found = True

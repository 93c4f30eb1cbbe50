"""ELB010 unscaled-kl-divergence."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFD, TFPL, member_of
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._tfp import (
    DEFERRED_TENSOR, TRANSFORMED_VARIABLE, VARIABLE, VI_FUNCTIONS, distribution_name, literal_values,
)

#: Layer -> position of `kernel_divergence_fn` (None: the layer takes `kl_weight` instead).
_KERNEL_DIVERGENCE_POSITION = {
    "DenseFlipout": 7, "DenseReparameterization": 7, "DenseLocalReparameterization": 7,
    **{f"Convolution{d}D{kind}": 11 for d in (1, 2, 3) for kind in ("Flipout", "Reparameterization")},
}
_KL_WEIGHT_POSITION = 3  # DenseVariational(units, make_posterior_fn, make_prior_fn, kl_weight)

#: Keywords that only a Keras `Model.fit` takes (scikit-learn's `fit(X, y)` takes none of them).
_KERAS_FIT_KEYWORDS = ("batch_size", "epochs", "steps_per_epoch", "validation_data", "validation_split", "callbacks")

#: Methods of a Keras model that train it (each adds the layers' losses to every batch's loss).
_TRAIN_METHODS = frozenset({"compile", "fit", "fit_generator", "train_on_batch"})
#: Methods that put a layer into a model or a list (`model.add(layer)`, `layers.append(layer)`).
_BUILD_METHODS = frozenset({"add", "append", "extend", "insert"})
#: Builtins that only look at a model (`print(model)`).
_INERT_BUILTINS = frozenset({"print", "len", "isinstance", "type", "repr", "str", "id", "hasattr"})
#: Densities: `target.log_prob(z)`, `target_log_prob_fn(z)`, `log_joint(z)`.
_DENSITY_METHODS = frozenset({"log_prob", "unnormalized_log_prob", "log_prob_parts"})
_DENSITY_NAME = re.compile(r"log_?prob|log_?joint|log_?density|log_?posterior|log_?target|^logp$", re.I)
#: Draws from a distribution (`q.sample(64)`, `q.experimental_sample_and_log_prob(64)`).
_SAMPLE_METHODS = frozenset({"sample", "experimental_sample_and_log_prob"})

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

    Where a layer's KL goes is followed model by model, where the code lets it be followed: into the
    model the layer is put in (`model = Sequential([...])`, `model.add(layer)`,
    `layers.append(layer)` then `Sequential(layers)`, `outputs = DenseFlipout(1)(h)` then
    `Model(inputs, outputs)`, `net = model`). That model is flagged when Keras trains it: a
    `.compile(` of it is enough, so a builder module that compiles and leaves `fit` to another
    module is flagged. It is flagged when a hand-written loss adds its `model.losses` whole
    (`sum(model.losses)`, `tf.add_n(model.losses)`) to a likelihood averaged over the batch, or to a
    likelihood summed over the batch in a file that batches a dataset with `.batch(n)`. It is not
    flagged when its losses are visibly scaled where the loss is assembled (`sum(model.losses) /
    num_examples`, `tf.reduce_sum(model.losses) / N`, `kl_weight * sum(model.losses)`, `kl =
    tf.add_n(model.losses)` then `nll + kl / n_train`, `kl /= N`): the KL is already per example
    there, and dividing it again in the layer would be wrong. That holds for a model compiled only
    for Keras metrics; a Keras `fit` of the same model is still flagged, because `fit` adds the
    losses whole. Nor is it flagged when nothing trains it (it is only called, for instance in a
    gradient check, or only shown). A model that cannot be followed (a subclassed model's
    `self.dense = DenseFlipout(...)`, a model returned by a builder or passed to a function,
    `model.layers`) is judged by the file as a whole, as described above. It is flagged if the file
    compiles or fits with Keras, adds layer losses whole to a batch-mean likelihood, or batches a
    dataset. It is not flagged if every `.losses` read that no followed model owns is scaled, for
    example a custom `train_step` that divides `self.losses`. Each message names the layer and its
    model and says what the KL is added to (Keras' averaged or summed loss, or the hand-written
    likelihood). The fix it gives matches that context: 1 / N next to an average, batch_size / N
    next to a batch sum. Where the losses are already scaled, it never asks for another division.

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
    divided by N, MAP and MCMC code are not flagged. A mean over draws of q is not a likelihood
    of a batch either: ADVI against a known target with no data term (`z = q.sample(256)`, then
    `tfd.kl_divergence(q, prior) - tf.reduce_mean(target.log_prob(z))`, or `log_joint(z)`) needs
    the whole KL and is not flagged.

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
    `-tf.reduce_sum(log_likelihood) + kl * batch_size / num_examples`. A hand-written loop can
    also keep the layers' default and divide once where it assembles the loss,
    `nll + sum(model.losses) / num_examples`. Do one or the other, never both. Keras `fit` always
    adds the layers' losses whole, so a model trained by Keras needs the fix in its layers.
    """

    code = "ELB010"
    name = "unscaled-kl-divergence"
    severity = Severity.WARNING
    confirmed_by = ("ELB102", "ELB109")
    #: Triage: a variational layer, or a whole KL (`kl_divergence`) added to a loss.
    starts_from = (("DenseVariational", *_KERNEL_DIVERGENCE_POSITION, *last_parts(_KL_FUNCTIONS)),)

    def _kl_name(self) -> str:
        """`tfd.kl_divergence` as this file spells it (`tfp.distributions.kl_divergence` without `tfd`)."""
        return self.resolver.local_name_for(f"{TFD}.kl_divergence") or "tfp.distributions.kl_divergence"

    def __init__(self, context) -> None:
        super().__init__(context)
        # unscaled layers: (layer call, layer name, how its KL is left whole, divergence fn source)
        self._unscaled: list[tuple[cst.Call, str, str, str]] = []
        self._functions: dict[str, cst.FunctionDef] = {}
        self._pending: list[tuple[cst.Call, str, str]] = []  # divergence fn referred to by def name
        self._batches = False  # `.batch(n)` on a dataset, or a Keras-only `.fit(...)` keyword
        self._batch_call: Optional[cst.Call] = None  # the first `.batch(n)` of a data set
        self._keras_training: Optional[cst.Call] = None  # the first Keras compile / fit / train_on_batch
        # --- where each layer's model goes (see `_fate`)
        self._scopes: list[int] = []  # enclosing defs and lambdas
        self._scope_tuple: tuple = ()
        self._owners: list[tuple[int, str]] = []  # enclosing `name = ...` / `name.add(...)` / `name.append(...)`
        self._owner_of: dict[int, tuple[str, int, tuple]] = {}  # layer call -> (name, tick, scopes)
        self._assignments: list[tuple[str, int, tuple]] = []
        self._uses: list[tuple[str, int, tuple, Optional[tuple]]] = []  # (name, tick, scopes, context)
        self._context: dict[int, tuple] = {}  # Name node -> how its parent uses it (set before it is visited)
        self._skip: set[int] = set()  # Name nodes that are bindings, not uses
        self._tick = 0
        self._draws: dict[tuple, bool] = {}  # (scopes, name) -> its last value is a draw of a distribution
        # --- the layers' losses read by hand: `.losses` attribute -> what happens to it
        self._reads: dict[int, dict] = {}  # {"scaled": node or None, "unscaled": [(likelihood, term, its node)]}
        self._attributed: Optional[set] = None  # reads of the models the layers went into (leave_Module)
        self._reached: dict[tuple, list] = {}  # owner -> its model's uses (`_reach`)
        self._assigned: Optional[set] = None  # (name, scopes) bound anywhere
        self._uses_by_name: dict[str, list] = {}
        self._compile_losses: dict[int, object] = {}  # compile call -> how its loss reduces the batch
        # --- the value of the KL weight (batch_size / N where 1 / N is meant)
        # layer call -> (what, the function or weight that scales its KL): decided in leave_Module
        self._weighted: list[tuple[cst.Call, str, object]] = []
        self._batch_weights: dict[int, tuple] = {}  # def / lambda node -> fraction found in it
        self._loss_kinds: list[object] = []  # how each compiled / hand-written loss reduces the batch
        self._batch_sizes: set[float] = set()  # literal batch sizes (`.batch(64)`, `batch_size=64`)
        self._minibatches = False  # `.batch(n)` with n not visibly the whole data set
        self._chains: set[int] = set()  # inner nodes of `+` / `-` chains already read
        self._reported_kl: set[int] = set()
        self._sum_candidates: list[tuple[cst.CSTNode, str, str]] = []  # whole KL + summed batch likelihood
        self._loops = 0

    # ------------------------------------------------------------------ scopes and bindings
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions[node.name.value] = node
        self._enter(node, node.params)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        self._scope_tuple = tuple(self._scopes)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._enter(node, node.params)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._scopes.pop()
        self._scope_tuple = tuple(self._scopes)

    def _enter(self, node: cst.CSTNode, params: cst.Parameters) -> None:
        self._scopes.append(id(node))
        scopes = self._scope_tuple = tuple(self._scopes)
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            self._bind(param.name, scopes)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self._bind(star.name, scopes)

    def _bind(self, target: cst.BaseExpression, scopes: Optional[tuple] = None) -> None:
        """Record a (re)binding of the names in `target`; they are not uses."""
        if isinstance(target, cst.Name):
            self._skip.add(id(target))
            self._assignments.append((target.value, self._tick, scopes if scopes is not None else self._scope_tuple))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value.value if isinstance(element.value, cst.StarredElement) else element.value,
                           scopes)

    def _note_draws(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """Which names hold draws of a distribution: `z = q.sample(64)`, `z, log_q =
        q.experimental_sample_and_log_prob(64)` (the first element)."""
        scopes = self._scope_tuple
        draw = isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
            value.func.attr.value in _SAMPLE_METHODS
        if isinstance(target, cst.Name):
            self._draws[(scopes, target.value)] = draw and value.func.attr.value == "sample"
        elif isinstance(target, (cst.Tuple, cst.List)):
            for index, element in enumerate(target.elements):
                if isinstance(element.value, cst.Name):
                    self._draws[(scopes, element.value.value)] = draw and index == 0

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1
        self._bind(node.target)

    def leave_For(self, original_node: cst.For) -> None:
        self._loops -= 1

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._tick += 1
        for target in node.targets:
            self._bind(target.target)
            self._note_draws(target.target, node.value)
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            name = node.targets[0].target.value
            self._owners.append((id(node), name))
            # `net = model`, `layers = [hidden, output]`: the value goes on under another name
            value = node.value
            elements = [e.value for e in value.elements] if isinstance(value, (cst.List, cst.Tuple)) else [value]
            for element in elements:
                if isinstance(element, cst.Name):
                    self._context[id(element)] = ("alias", name)

    def leave_Assign(self, original_node: cst.Assign) -> None:
        if self._owners and self._owners[-1][0] == id(original_node):
            self._owners.pop()

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._tick += 1
        if isinstance(node.target, cst.Name):
            self._context[id(node.target)] = ("build",)  # `layers += [...]`, `kl /= n`
            self._owners.append((id(node), node.target.value))
            if isinstance(node.operator, (cst.DivideAssign, cst.MultiplyAssign)) and self._reads:
                self._mark_scaled(node.target, node)

    def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
        if self._owners and self._owners[-1][0] == id(original_node):
            self._owners.pop()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        base = node.value
        if node.attr.value == "losses":
            if self.qualified_names(node):
                self._reads.pop(id(node), None)  # `tf.keras.losses`: a module, not a model's losses
            else:
                self._reads.setdefault(id(node), {"scaled": None, "unscaled": []})
        if isinstance(base, cst.Name) and id(base) not in self._context:
            self._context[id(base)] = ("attr", node.attr.value, node)

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self._skip:
            return
        self._tick += 1
        context = self._context.get(id(node))
        if context is not None and context[0] == "arg":  # where `Sequential(layers)` goes
            context = (*context, self._owners[-1][1] if self._owners else None)
        self._uses.append((node.value, self._tick, self._scope_tuple, context))

    def _use_kind(self, context: Optional[tuple]) -> tuple[str, object]:
        """What a use of a name does to the model it may name (read from the use's `context`, only
        for the names of models): "train" (Keras compile / fit), "losses" (reads its KL terms),
        "inert" (calls it, shows it, builds it up), "forward" (it goes on under another name:
        info), "escape" (anything else)."""
        if context is None:
            return "escape", None
        if context[0] == "method":
            return ("train", context[2]) if context[1] in _TRAIN_METHODS else ("inert", None)
        if context[0] == "attr":
            if context[1] == "layers":
                return "escape", None  # `for layer in model.layers: ... layer.losses`
            return ("losses", id(context[2])) if context[1] == "losses" else ("inert", None)
        if context[0] in ("called", "build"):
            return "inert", None
        if context[0] == "alias":
            return "forward", context[1]
        if context[0] == "arg":
            call, owner = context[1], context[2]
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _BUILD_METHODS \
                    and isinstance(func.value, cst.Name):
                return "forward", func.value.value  # `model.add(layer)`, `layers.append(block)`
            if isinstance(func, cst.Name) and func.value in _INERT_BUILTINS:
                return "inert", None
            if owner is not None and self._keras_constructor(call):
                return "forward", owner  # `model = Sequential(layers)`, `y = Layer(...)(x)`
        return "escape", None

    def _keras_constructor(self, call: cst.Call) -> bool:
        """A Keras model or layer built from its argument (`Sequential(layers)`, `Model(inputs,
        outputs)`), or a layer applied to it (`DenseFlipout(10)(h)`)."""
        if isinstance(call.func, cst.Call):
            return True
        names = self.call_names(call)
        if any(n.startswith(("keras.", TFPL + ".")) for n in names):
            return True
        last = call.func.attr.value if isinstance(call.func, cst.Attribute) else \
            call.func.value if isinstance(call.func, cst.Name) else ""
        return not names and last in ("Sequential", "Model", "Functional")

    def _keras_compile(self, call: cst.Call) -> bool:
        """`model.compile(...)`, not `re.compile(...)`."""
        names = self.call_names(call)
        return not names or any("keras" in n or n.endswith(("Model.compile", "Sequential.compile")) for n in names)

    def leave_Call(self, original_node: cst.Call) -> None:
        if self._owners and self._owners[-1][0] == id(original_node):
            self._owners.pop()
        if self._reads and self.call_names(original_node) & (_DIVIDE_CALLS | _MULTIPLY_CALLS):
            self._mark_scaled(original_node, original_node)

    def visit_Call(self, node: cst.Call) -> None:
        self._tick += 1
        func = node.func
        if isinstance(func, cst.Name):
            self._context[id(func)] = ("called",)
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            self._context[id(func.value)] = ("method", func.attr.value, node)
        for arg in node.args:
            values = [e.value for e in arg.value.elements] if isinstance(arg.value, (cst.List, cst.Tuple)) \
                else [arg.value]
            for value in values:
                if isinstance(value, cst.Name):
                    self._context[id(value)] = ("arg", node)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in _BUILD_METHODS and isinstance(func.value, cst.Name):
                self._owners.append((id(node), func.value.value))
            if method == "batch" and node.args:
                self._batches = True
                self._note_batch_size(node.args[0].value, dataset=True)
                if self._batch_call is None:
                    self._batch_call = node
            elif method == "fit":
                if self.has_keyword(node, _KERAS_FIT_KEYWORDS):
                    self._batches = True
                    self._keras_training = self._keras_training or node
                size = self.get_arg(node, "batch_size")
                if size is not None:
                    self._note_batch_size(size.value, dataset=False)
            elif method in ("fit_generator", "train_on_batch"):
                self._keras_training = self._keras_training or node
            elif method == "compile" and self._keras_compile(node):
                self._keras_training = self._keras_training or node
                loss = self.get_arg(node, "loss", 1)
                kind = self._loss_kind(loss.value) if loss is not None else UNKNOWN
                self._loss_kinds.append(kind)
                self._compile_losses[id(node)] = kind
        layer = self._layer(node)
        if layer is None or any(arg.star for arg in node.args):
            return
        if self._owners:
            self._owner_of[id(node)] = (self._owners[-1][1], self._tick, self._scope_tuple)
        if layer == "DenseVariational":
            weight = self.get_arg(node, "kl_weight", _KL_WEIGHT_POSITION)
            if weight is None or _is_none(weight.value):
                self._unscaled.append((node, layer, "no-weight", ""))
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
            self._unscaled.append((node, layer, "default", ""))
            return
        if _is_none(divergence.value):
            return  # no KL term at all
        function = self.value_of(divergence.value)
        if isinstance(function, cst.Lambda):
            if not self._scales(function.body):
                self._unscaled.append((node, layer, "lambda", self.source(divergence.value)))
        elif isinstance(function, cst.Name):
            self._pending.append((node, layer, function.value))

    # ------------------------------------------------------ the layers' losses, read by hand
    def _losses_in(self, node: cst.CSTNode) -> list[int]:
        """The `.losses` attributes in `node` (`sum(model.losses)`, `hidden.losses + out.losses`)."""
        finder = _LossesFinder()
        node.visit(finder)
        return finder.found

    def _mark_scaled(self, node: cst.BaseExpression, scaling: cst.CSTNode) -> None:
        """`sum(model.losses) / n`, `kl_weight * tf.reduce_sum(model.losses)`, `kl /= n` (through
        names): those layers' KL is scaled where the loss is assembled."""
        factors = [node] if isinstance(scaling, cst.AugAssign) else self._factors(node)[0]
        for factor in factors:
            kl = self._kl_factor(factor)
            if kl is None:
                continue
            for read in self._losses_in(kl):
                entry = self._reads.setdefault(read, {"scaled": None, "unscaled": []})
                if entry["scaled"] is None:
                    entry["scaled"] = scaling

    def _mark_unscaled(self, losses: cst.CSTNode, term: cst.BaseExpression, likelihood: Optional[str],
                       likelihood_term: Optional[cst.CSTNode]) -> None:
        """The loss term `term` adds these layer losses (`losses`, its value) whole to a likelihood
        (MEAN, SUM, or None when it cannot be read)."""
        for read in self._losses_in(losses):
            entry = self._reads.setdefault(read, {"scaled": None, "unscaled": []})
            entry["unscaled"].append((likelihood, term, likelihood_term))

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

    def leave_BinaryOperation(self, original_node: cst.BinaryOperation) -> None:
        if self._reads and isinstance(original_node.operator, (cst.Multiply, cst.Divide)):
            self._mark_scaled(original_node, original_node)

    def _read_loss(self, node: cst.BinaryOperation) -> None:
        """A hand-written loss `likelihood +/- KL`: how the likelihood reduces the batch, and
        whether the KL next to it is whole, weighted batch_size / N, or the layers' losses."""
        terms: list[cst.BaseExpression] = []
        self._flatten_chain(node, terms)
        kinds = [(term, self._term(term)) for term in terms]
        likelihood_terms = [(term, kind) for term, (kind, _) in kinds if kind in (MEAN, SUM)]
        likelihoods = {kind for _, kind in likelihood_terms}
        likelihood = likelihoods.pop() if len(likelihoods) == 1 else None
        likelihood_term = likelihood_terms[0][0] if likelihood is not None else None
        for term, (kind, info) in kinds:
            if kind == "losses":
                self._mark_unscaled(info, term, likelihood, likelihood_term)
                if likelihood is not None:
                    self._loss_kinds.append(likelihood)
        if likelihood is None:
            return
        for term, (kind, info) in kinds:
            if kind == "scaled":
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
                    source = self._kl_source(term)
                    self.report(
                        term,
                        f"the whole KL (`{source}`) is added to `{self._short(likelihood_term, 50)}`, a likelihood "
                        "averaged over the batch: per example the KL weighs N (the number of training examples) "
                        f"times too much and drowns the data; divide it by the number of training examples "
                        f"(`{source} / num_examples`)",
                    )
                elif self.resolver.in_function or self._loops:
                    self._reported_kl.add(id(info))
                    self._sum_candidates.append((term, self._kl_source(term), self._short(likelihood_term, 50)))

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
            if self._density_at_samples(inner):
                return ""  # a Monte Carlo average over draws of q (ADVI against a known target), not data
            if not names.isdisjoint(_MEAN_CALLS):
                return "" if self._mentions(inner, _SUMMING_NAMES | {"kl_divergence", "losses"}) else MEAN
            return SUM if self._mentions(inner, {"log_prob", "log_likelihood"}) and \
                not self._mentions(inner, {"kl_divergence", "losses"}) else ""
        # `loss_fn(y, logits)` with `loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()`
        made = self.value_of(call.func)
        if isinstance(made, cst.Call) and any(n.startswith("keras.losses.") for n in self.call_names(made)):
            return _keras_reduction(made)
        return ""

    def _density_at_samples(self, node: cst.BaseExpression) -> bool:
        """True if every density `node` evaluates (`target.log_prob(z)`, `log_joint(z)`, through
        names) is evaluated at draws of a distribution (`z = q.sample(64)`): an average over the
        samples of q, with no data term (a likelihood of data is `dist.log_prob(y)`)."""
        calls: list[cst.Call] = []
        stack, seen = [node], set()
        while stack and len(seen) < 24:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            finder = _DensityFinder()
            current.visit(finder)
            calls += finder.found
            stack += [v for v in (self.value_of(n) for n in finder.names) if not isinstance(v, cst.Name)]
        return bool(calls) and all(
            c.args and c.args[0].keyword is None and self._is_sample(c.args[0].value) for c in calls)

    def _is_sample(self, node: cst.BaseExpression) -> bool:
        for _ in range(3):
            while isinstance(node, cst.Subscript):
                node = node.value
            if isinstance(node, cst.Name):
                scopes = self._scope_tuple
                for depth in range(len(scopes), -1, -1):
                    if (scopes[:depth], node.value) in self._draws:
                        if self._draws[(scopes[:depth], node.value)]:
                            return True
                        break
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value in _SAMPLE_METHODS:
                return True
            flow = self.resolver.follow(node)
            if flow.node is node:
                return False
            node = flow.node
        return False

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
        if (isinstance(node, cst.BinaryOperation)
                and isinstance(node.operator, (cst.Multiply, cst.Divide, cst.FloorDivide))):
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
        return _losses_expression(inner) or _losses_expression(self.value_of(inner))

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
                if (isinstance(current.func, cst.Attribute)
                        and current.func.attr.value in ("add_weight", "add_variable")):
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

    def _resolved_loss_kinds(self, kinds: Optional[list] = None) -> set:
        resolved = set()
        for kind in self._loss_kinds if kinds is None else kinds:
            if isinstance(kind, tuple):
                definition = self._functions.get(kind[1])
                kind = _body_reduction(definition.body) if definition is not None else UNKNOWN
            resolved.add(kind)
        return resolved

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
                     f"lambda q, p, _: {self._kl_name()}(q, p) / {n_text}")
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
                if fraction is not None and self._literal_is_batch(fraction) and self._fate(call)[0] != "quiet":
                    self._report_fraction(call, what, fraction, in_loss=False)
        if self._minibatches:
            for term, source, likelihood in self._sum_candidates:
                self.report(
                    term,
                    f"the whole KL (`{source}`) is added to `{likelihood}`, a likelihood summed over one batch of a "
                    f"`.batch(...)` data set: it weighs num_examples / batch_size times too much; scale it by "
                    "batch_size / num_examples (or average the likelihood and divide the KL by num_examples)",
                )
        for call, layer, name in self._pending:
            definition = self._functions.get(name)
            if definition is not None and not self._scales(definition.body):
                self._unscaled.append((call, layer, "def", name))
        for call, layer, how, function in self._unscaled:
            verdict, detail = self._fate(call)
            if verdict != "quiet":
                self.report(call, self._message(call, layer, how, function, verdict, detail))

    # ------------------------------------------------------------ where a layer's KL goes
    def _reach(self, owner: tuple[str, int, tuple]) -> list:
        """The uses of the model a layer was put in, following it through `Sequential(layers)`,
        `model.add(layer)`, `outputs = Layer(...)(h)`, `net = model`: [(kind, info, name)]. A use
        counts in the scope the name was bound in, between that binding and the next, and in any
        function nested there that does not bind the name itself."""
        cached = self._reached.get(owner)
        if cached is not None:
            return cached
        if self._assigned is None:
            self._assigned = {(n, s) for n, _, s in self._assignments}
            for use in self._uses:
                self._uses_by_name.setdefault(use[0], []).append(use)
        found, seen = [], set()
        queue = [owner]
        while queue and len(seen) < 32:
            name, tick, scopes = queue.pop()
            if (name, tick, scopes) in seen:
                continue
            seen.add((name, tick, scopes))
            rebound = min((t for n, t, s in self._assignments if n == name and s == scopes and t > tick),
                          default=float("inf"))
            for _, use_tick, use_scopes, context in self._uses_by_name.get(name, ()):
                if use_scopes == scopes:
                    if not tick < use_tick < rebound:
                        continue
                elif use_scopes[:len(scopes)] != scopes or any((name, use_scopes[:k]) in self._assigned
                                                               for k in range(len(scopes) + 1, len(use_scopes) + 1)):
                    continue  # another scope, or a nested one with a variable of its own by that name
                kind, info = self._use_kind(context)
                found.append((kind, info, name))
                if kind == "forward":
                    queue.append((info, use_tick, use_scopes))
        self._reached[owner] = found
        return found

    def _attributed_reads(self) -> set:
        """The `.losses` reads of the models the layers were followed into."""
        if self._attributed is None:
            self._attributed = set()
            for owner in set(self._owner_of.values()):
                self._attributed |= {info for kind, info, _ in self._reach(owner) if kind == "losses"}
        return self._attributed

    def _fate(self, layer: cst.Call) -> tuple[str, dict]:
        """Where this layer's KL ends up: "keras" (a Keras compile / fit of its model), "mean" /
        "sum" (a hand-written loss adds its model's losses whole to a batch-mean / batch-summed
        likelihood), "keras-file" / "mean-file" / "batch-file" (its model cannot be followed, or
        goes where we cannot see; the file trains with Keras / adds layer losses whole to a
        batch-mean likelihood / batches a data set), or "quiet" (its model's losses are scaled
        where the loss is assembled, the model is never trained, or nothing batches)."""
        owner = self._owner_of.get(id(layer))
        if owner is None:
            return self._file_fate(None, [])
        uses = self._reach(owner)
        model = next((name for kind, _, name in reversed(uses) if kind in ("train", "losses")), owner[0])
        trains = [info for kind, info, _ in uses if kind == "train"]
        reads = [self._reads[info] for kind, info, _ in uses if kind == "losses" and info in self._reads]
        scaled = next((r["scaled"] for r in reads if r["scaled"] is not None), None)
        fits = [c for c in trains if not (isinstance(c.func, cst.Attribute) and c.func.attr.value == "compile")]
        if trains and (fits or scaled is None):
            # compiled only, next to a hand-written loss that scales the KL: the loop trains it
            call = next((c for c in trains if c not in fits), trains[0])
            return "keras", {"model": model, "call": call, "fit": fits[0] if fits else call, "scaled": scaled}
        for wanted in (MEAN, SUM):
            for read in reads:
                for likelihood, term, likelihood_term in read["unscaled"]:
                    if likelihood == wanted and (wanted == MEAN or self._minibatches):
                        return wanted, {"model": model, "term": term, "likelihood": likelihood_term}
        unread = any(r["scaled"] is None and all(u[0] is None for u in r["unscaled"]) for r in reads)
        if unread or any(kind == "escape" for kind, _, _ in uses):
            return self._file_fate(owner, reads)
        return "quiet", {}

    def _file_fate(self, owner: Optional[tuple], reads: list) -> tuple[str, dict]:
        attributed = self._attributed_reads()
        own = {id(r) for r in reads}
        relevant = reads + [r for key, r in self._reads.items() if key not in attributed and id(r) not in own]
        if relevant and all(r["scaled"] is not None for r in relevant):
            return "quiet", {}
        detail = {"model": owner[0] if owner is not None else None}
        if self._keras_training is not None:
            return "keras-file", {**detail, "call": self._keras_training}
        for read in relevant:
            for likelihood, term, likelihood_term in read["unscaled"]:
                if likelihood == MEAN:
                    return "mean-file", {**detail, "term": term, "likelihood": likelihood_term}
        if self._batches and self._batch_call is not None:
            return "batch-file", {**detail, "call": self._batch_call}
        return "quiet", {}

    # ----------------------------------------------------------------------- messages
    def _short(self, node: cst.CSTNode, limit: int = 60) -> str:
        text = " ".join(self.source(node).split())
        return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."

    def _describe(self, call: cst.Call, layer: str) -> str:
        """`DenseFlipout(256, ...)`: the layer as a reader finds it."""
        positional = [a for a in call.args if a.keyword is None]
        first = self._short(positional[0].value, 24) if positional else ""
        more = ", ..." if len(call.args) > len(positional[:1]) else ""
        return f"`{layer}({first}{more})`" if first else f"`{layer}({'...' if call.args else ''})`"

    def _message(self, call: cst.Call, layer: str, how: str, function: str, verdict: str, detail: dict) -> str:
        """Name the layer, say what its whole KL is added to, and give the fix that is right there
        (1 / N next to an averaged likelihood, batch_size / N next to a batch sum)."""
        model = detail.get("model")
        what = {
            "default": "keeps the default kernel_divergence_fn (the whole KL divergence)",
            "lambda": "has a kernel_divergence_fn that returns the whole KL divergence "
                      f"(`{self._short_text(function)}`)",
            "def": f"has kernel_divergence_fn={function}, which returns the whole KL divergence",
            "no-weight": "has no kl_weight (the whole KL divergence)",
        }[how]
        head = f"{self._describe(call, layer)}{f' in `{model}`' if model else ''} {what}"
        summed = verdict == "sum" or (verdict in ("keras", "keras-file") and self._keras_kind(detail) == SUM)
        factor = "* batch_size / num_examples" if summed else "/ num_examples"
        if how == "no-weight":
            fix = f"pass kl_weight={'batch_size' if summed else '1'} / num_examples"
        elif how == "def":
            fix = f"make `{function}` return {self._kl_name()}(q, p) {factor}"
        else:
            fix = f"pass kernel_divergence_fn=lambda q, p, _: {self._kl_name()}(q, p) {factor}"
        per_example = "per example the KL weighs N (the number of training examples) times too much"
        per_batch = "the KL weighs num_examples / batch_size times too much"
        if verdict in ("keras", "keras-file"):
            trainer = f"`{self._short(detail.get('fit', detail['call']).func)}(...)`"
            call = detail["call"]
            compiles = isinstance(call.func, cst.Attribute) and call.func.attr.value == "compile"
            loss = self.get_arg(call, "loss", 1) if compiles else None
            loss_text = f"`loss={self._short(loss.value, 40)}`" if loss is not None else "the compiled loss"
            kind = self._keras_kind(detail)
            if kind == SUM:
                against = f"{loss_text} summed over the batch: {per_batch}"
            elif kind == MEAN:
                against = f"{loss_text} averaged over the batch's examples: {per_example}"
            else:
                against = (f"{loss_text}; next to a per-example loss, which Keras averages over the batch, "
                           f"{per_example}")
            trained = f"and `{model}` is trained with Keras ({trainer})" if verdict == "keras" else \
                f"in a file that trains with Keras ({trainer})"
            message = f"{head}, {trained}, which adds that KL unscaled to every batch's loss, {against}; {fix}"
            if detail.get("scaled") is not None:
                message += (f"; the scaling in `{self._short(detail['scaled'])}` reaches only the hand-written loss, "
                            "not what Keras minimises: once the layer divides, drop it there, or that loss divides "
                            "the KL twice")
            return message
        if verdict in ("mean", "mean-file", "sum"):
            term = self._short(detail["term"], 40)
            likelihood = self._short(detail["likelihood"], 50) if detail.get("likelihood") is not None else "?"
            if verdict == "mean-file":
                return (f"{head}, in a file that adds layer losses unscaled (`{term}`) to `{likelihood}`, a likelihood "
                        f"averaged over the batch: {per_example}; divide them once: where the loss is assembled "
                        f"(`{term} / num_examples`) or in the layer ({fix})")
            if verdict == "sum":
                return (f"{head}, and `{term}` adds that KL unscaled to `{likelihood}`, a likelihood summed over one "
                        f"batch of a `.batch(...)` data set: {per_batch}; scale it once: where the loss is assembled "
                        f"(`{term} * batch_size / num_examples`) or in the layer ({fix})")
            return (f"{head}, and `{term}` adds that KL unscaled to `{likelihood}`, a likelihood averaged over the "
                    f"batch: {per_example}; divide it once: where the loss is assembled (`{term} / num_examples`) "
                    f"or in the layer ({fix})")
        batch = detail["call"]
        batch_text = f".batch({self._short_text(', '.join(self.source(a) for a in batch.args), 30)})"
        return (f"{head}, in a file that trains on mini-batches (`{batch_text}`) with no scaling "
                f"of this KL in sight: every batch's loss carries the whole KL, so next to a batch-averaged likelihood "
                f"{per_example} (num_examples / batch_size times next to a batch sum); {fix}, or scale the "
                "layers' losses once where the loss is assembled")

    def _kl_source(self, term: cst.BaseExpression) -> str:
        """`kl` -> "kl` (`tf.reduce_sum(tfd.kl_divergence(q, prior))`": a name with what it holds."""
        value = self.value_of(_strip_sign(term))
        if value is term or not isinstance(_strip_sign(term), cst.Name):
            return self._short(term)
        return f"{self._short(term)}` = `{self._short(value)}"

    def _short_text(self, text: str, limit: int = 60) -> str:
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."

    def _keras_kind(self, detail: dict) -> object:
        call = detail.get("call")
        if call is None:
            return UNKNOWN
        kind = self._compile_losses.get(id(call))
        if kind is None:  # `fit` / `train_on_batch`, or the file's compile calls
            kinds = self._resolved_loss_kinds(list(self._compile_losses.values()))
            return kinds.pop() if len(kinds) == 1 else UNKNOWN
        return self._resolved_loss_kinds([kind]).pop()

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


class _LossesFinder(cst.CSTVisitor):
    """The `.losses` attributes in a subtree (not inside lambdas)."""

    def __init__(self) -> None:
        self.found: list[int] = []

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "losses":
            self.found.append(id(node))

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


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


def _losses_expression(node: cst.BaseExpression) -> bool:
    """`model.losses`, or a concatenation `hidden.losses + output.losses`."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        return _losses_expression(node.left) and _losses_expression(node.right)
    return _is_losses(node)


class _DensityFinder(cst.CSTVisitor):
    """Calls of densities in an expression: `.log_prob(...)`, `target_log_prob_fn(...)`."""

    def __init__(self) -> None:
        self.found: list[cst.Call] = []
        self.names: list[cst.Name] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.names.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last in _DENSITY_METHODS or (last and _DENSITY_NAME.search(last)):
            self.found.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


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

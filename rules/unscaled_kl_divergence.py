"""ELB010 unscaled-kl-divergence: the rule, its documentation and the dispatch of its three checks.

Why this module is small: ELB010 is one code with three checks, each in its own private module, all
fed by the one traversal this rule receives:

- _kl_layers.py: a `tfp.layers` variational layer that leaves its KL whole (the default
  `kernel_divergence_fn`, a divergence function that does not scale, a `DenseVariational` without
  `kl_weight`), reported where its KL reaches a batch loss; the model it is put in is followed by
  _kl_model_flow.py;
- _kl_weight.py: a `kl_weight` (or a divergence function's factor) of batch_size / N next to Keras'
  averaged losses;
- _kl_batch_loss.py: a whole KL of the global weights' posterior in a hand-written batch loss.

What a KL term is lives in _kl_terms.py; the batch-size, data-set-size and loss-reduction reasoning
the checks share lives in _batch_scaling.py. This module keeps the code, the name and the docstring
the documentation is generated from, and calls the checks in the order the traversal needs: every
visitor callback below only routes a node to the modules that read it.
"""

from __future__ import annotations

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.rule import Rule, RuleContext
from elbolint.triage import last_parts
from elbolint.rules._batch_scaling import BatchScaling
from elbolint.rules._kl_batch_loss import BatchLossCheck
from elbolint.rules._kl_layers import KERNEL_DIVERGENCE_POSITION, LayerCheck
from elbolint.rules._kl_model_flow import ModelFlow
from elbolint.rules._kl_terms import KL_FUNCTIONS, KlTerms
from elbolint.rules._kl_weight import KlWeightCheck


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
    starts_from = (("DenseVariational", *KERNEL_DIVERGENCE_POSITION, *last_parts(KL_FUNCTIONS)),)

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self._functions: dict[str, cst.FunctionDef] = {}  # the file's defs by name
        self._flow = ModelFlow(self)
        self._scaling = BatchScaling(self, self._functions)
        self._terms = KlTerms(self, self._scaling)
        self._weights = KlWeightCheck(self, self._scaling, self._terms, self._functions)
        self._loss = BatchLossCheck(self, self._flow, self._scaling, self._terms, self._weights)
        self._layers = LayerCheck(self, self._flow, self._scaling, self._loss, self._functions)

    # ------------------------------------------------------------------ scopes and bindings
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions[node.name.value] = node
        self._flow.enter(node, node.params)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._flow.leave()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._flow.enter(node, node.params)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._flow.leave()

    def visit_For(self, node: cst.For) -> None:
        self._flow.loops += 1
        self._flow.bind(node.target)

    def leave_For(self, original_node: cst.For) -> None:
        self._flow.loops -= 1

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._flow.bind(node.asname.name)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._flow.visit_assign(node)
        for target in node.targets:
            self._loss.note_draws(target.target, node.value)

    def leave_Assign(self, original_node: cst.Assign) -> None:
        self._flow.leave_owner(original_node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._flow.visit_aug_assign(node)
        if isinstance(node.target, cst.Name) and isinstance(node.operator, (cst.DivideAssign, cst.MultiplyAssign)) \
                and self._loss.reads:
            self._loss.mark_scaled(node.target, node)  # `kl /= n`

    def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
        self._flow.leave_owner(original_node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._loss.note_losses_attribute(node)
        self._flow.visit_attribute(node)

    def visit_Name(self, node: cst.Name) -> None:
        self._flow.visit_name(node)

    # ------------------------------------------------------------------------- calls
    def visit_Call(self, node: cst.Call) -> None:
        self._flow.visit_call(node)
        self._scaling.note_call(node)
        layer = self._layers.layer(node)
        if layer is None or any(arg.star for arg in node.args):
            return
        self._flow.note_layer(node)
        self._weights.visit_layer(node, layer)
        self._layers.visit_layer(node, layer)

    def leave_Call(self, original_node: cst.Call) -> None:
        self._flow.leave_owner(original_node)
        if self._loss.reads and self._loss.scaling_call(original_node):
            self._loss.mark_scaled(original_node, original_node)

    # ----------------------------------------------------------- products, quotients, sums
    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Multiply, cst.Divide)):
            self._weights.visit_scaling(node)
        elif isinstance(node.operator, (cst.Add, cst.Subtract)) and not self._loss.in_chain(node):
            self._loss.read_loss(node)

    def leave_BinaryOperation(self, original_node: cst.BinaryOperation) -> None:
        if self._loss.reads and isinstance(original_node.operator, (cst.Multiply, cst.Divide)):
            self._loss.mark_scaled(original_node, original_node)

    # ------------------------------------------------------------------------- decisions
    def leave_Module(self, original_node: cst.Module) -> None:
        self._weights.finish(self._layers.fate)
        self._loss.finish()
        self._layers.finish()

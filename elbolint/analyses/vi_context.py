"""What counts as doing variational inference: one shared notion for every VI-gated rule.

Why: the optimizer rules (ELB003 missing clipping, ELB009 high learning rate) only speak about
optimizers that drive VI, since a plain network's unclipped Adam is none of elbolint's business.
Which code "does VI" used to be decided by the shapes of our fixtures (a `tfp.vi` fit, a
`tfp.layers` variational layer); real VI is written in many more ways, and each rule deciding
for itself drifted apart. VIContext is the one place that decides, from one file's text:

**File level** (`VIContext.does_vi`, with `evidence` naming the first sign of each kind):

- `fit`: a `tfp.vi` fit or loss (`fit_surrogate_posterior`, `monte_carlo_variational_loss`, ...)
  or a `tfp.experimental.vi` surrogate builder;
- `construct`: a construct that only exists for VI (`tfp.sts` variational builders,
  `VariationalGaussianProcess`, Csiszar divergences);
- `layers`: a `tfp.layers` variational layer (`DenseFlipout`, `DenseVariational`, ...) or a
  `tfp.experimental.nn` one (`AffineVariationalReparameterization`, `ConvolutionVariationalFlipout`,
  ...: their KL is the network's `extra_loss`);
- `kl-layer`: a VAE's `tfpl.KLDivergenceRegularizer` / `tfpl.KLDivergenceAddLoss`;
- `kl-objective`: a hand-written ELBO's KL term: `tfd.kl_divergence(q, p)` / `q.kl_divergence(p)`
  inside a `GradientTape` block, an `add_loss(...)`, a lambda (a divergence function), or a def
  whose name says it computes a loss or a step (`loss`, `elbo`, `objective`, `train`, `step`,
  `call`, `kl`, `divergence`, `fit`), or assigned to a name that says it is a loss (TF1 graph mode:
  `loss = tfd.kl_divergence(q, p) - log_likelihood`), or one a minimised loss tensor is computed
  from (`kl = tfd.kl_divergence(q, p)`, `opt.minimize(nll + kl)`); or a variational GP's own ELBO
  terms (`surrogate_posterior_kl_divergence_prior()`, `variational_loss()`). A KL printed once at
  module level is not an objective;
- `own-samples`: a sample `z = q.sample()` scored by its own distribution (`q.log_prob(z)`) and also
  fed to something else (the model's `log_prob(z)` or `log_prob([z, data])`, a likelihood, a layer),
  where `q`'s parameters are trainable variables (or its name says it is the approximate posterior:
  `q_dist = q()`) (`tf.Variable`, `TransformedVariable`, `DeferredTensor`, `add_weight`, also through
  `self.` attributes and transforms such as `softplus(self.rho)`), all in the same class or function:
  Bayes-by-backprop layers, hand-written Monte Carlo ELBOs. Likewise a draw reparameterised by hand,
  `w = mu + tf.nn.softplus(rho) * eps` (standard normal noise times a trainable scale, no network
  output in it), scored by a distribution (`q.log_prob(w) - prior.log_prob(w)`) or passed on inside
  an `add_loss(...)` (`self.add_loss(self.kl_loss(w, self.mu, sigma))`): Bayes by backprop written
  by hand. A policy whose parameters come from a network's outputs (reinforcement learning samples
  and scores too) does not count, nor a flow fitted by maximum likelihood that scores its own
  samples for monitoring only, nor noisy weights that nothing scores (NoisyNet), nor a Langevin
  step (its noise is scaled by the step size, not by a trainable scale);
- `elbo-named`: a value or a def whose name says it is the ELBO (`elbo = log_likelihood - kl`,
  `def negative_elbo(...)`): a word only variational inference uses;
- `named-surrogate`: a distribution with trainable-variable parameters bound to a name that says
  it is an approximate posterior (`surrogate`, `posterior`, `variational`, `guide`, `q`, `q_z`,
  `qz`): the "simplified for brevity" examples with no fit in sight.

A maximum-likelihood fit of a distribution's trainable parameters to data, MCMC, or a plain
network trained next to a distribution is none of these.

**Training-site level** (`drives_vi_at`): an optimizer applied (`apply_gradients`, `minimize`) in
a training loop or function drives VI only when that site reaches a sign of VI (see there): one
notebook often holds a maximum-likelihood fit, a MAP estimate and a VI fit side by side. A
`minimize` is judged by the loss it is given (`loss_site`): a def, a lambda, or a TF1 loss tensor
followed back to what it is computed from, so a graph-mode MAP cell (`map_loss = -joint.log_prob(...)`)
is not VI because the next cell minimises an ELBO.

**Class level** (`is_vi_class`): a class with a sign of VI in its body, or whose methods reach one
(a `tf.keras.Model` subclass whose `__init__` creates a Bayes-by-backprop layer of the file). A
training site that builds or calls such a class's instance does VI, and so does a model built
from it.

**Model level** (`VIContext.models`, see `ModelKinds` in model_kinds.py): each name bound to a Keras model, layer
or functional-API tensor is plain, variational or unknown. Variational: built from `tfp.layers`
(or `tfp.experimental.nn`, through `tfn.Sequential`) variational layers or KL layers, from a
class of the file that does VI (`is_vi_class`, also when given `**kwargs`), or by a call that
passes a variational layer's knobs (`kl_weight=`, `kernel_divergence_fn=`, `make_posterior_fn=`,
`posterior=`...) to a helper this file cannot read. `variational_models` is true when the file
builds any such model; an optimizer compiled into a model that cannot be read then counts as
driving VI.

Fed during the traversal by OptimizerRoles (a file analysis, elbolint/analysis.py); ask after the module.
Part of the OptimizerRoles analysis (elbolint/analyses/optimizer_roles.py). The TFP names and name
patterns that count as signs are in vi_signs.py; what is trainable (variables, distributions,
draws reparameterised by hand) in trainable_values.py.
"""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from elbolint.analyses.model_kinds import PLAIN, UNKNOWN, VARIATIONAL, ModelKinds, combine_kinds
from elbolint.analyses.trainable_values import SURROGATE_NAME, TrainableValues
from elbolint.analyses.vi_signs import (
    KL_LAYERS, VI_MODEL_LAYERS, any_call, is_kl, says_elbo, tfn_variational, vi_keywords,
)
from elbolint.cst_helpers import dotted_name
from elbolint.resolver import Resolver
from elbolint.rules._tfp import VI_FUNCTIONS, VI_MARKERS
from elbolint.walk import visit

#: Re-exported: optimizer_roles.py imports the model kinds from here, tests/test_vi_context.py `_says_elbo`.
__all__ = ["PLAIN", "UNKNOWN", "VARIATIONAL", "VIContext", "combine_kinds"]
_says_elbo = says_elbo

#: How many calls deep `drives_vi_at` looks from a training site for a sign of VI.
_CALL_DEPTH = 4

_TAPES = frozenset({"tensorflow.GradientTape", "tensorflow.compat.v1.GradientTape"})
_LOSS_NAME = re.compile(r"loss|elbo|objective", re.IGNORECASE)  # a name a KL is assigned to, to be trained
_OBJECTIVE_DEF = re.compile(r"loss|elbo|objective|train|step|call|kl|divergence|fit", re.IGNORECASE)
#: A sample name that is a draw reparameterised by hand (`TrainableValues.hand_draw`), not a sample of a q.
_HAND_DRAWN = object()
_SCORING_METHODS = frozenset({"log_prob", "prob", "kl_divergence", "cross_entropy"})
#: Methods that only a variational GP has: calling one is computing its ELBO.
_VI_METHODS = frozenset({
    "surrogate_posterior_kl_divergence_prior", "surrogate_posterior_expected_log_likelihood", "variational_loss",
})


class VIContext:
    """Whether one file does variational inference, and which of its Keras models are variational
    (see the module docstring for every sign that counts)."""

    def __init__(self, resolver: Resolver, return_kinds: dict[str, str], project_vi=None) -> None:
        self.resolver = resolver
        self._values = TrainableValues(resolver)  # what is trainable, hand-drawn, posterior-named
        self._vi_classes: set[str] = set()  # classes with a sign of VI in their body
        self.models = ModelKinds(resolver, return_kinds, self.is_vi_class, project_vi or (lambda module: False))
        self.evidence: dict[str, cst.CSTNode] = {}  # kind -> first node showing it
        self._variational_models = False
        self._tapes: list[int] = []  # the `with tf.GradientTape()` blocks the traversal is inside
        self._add_loss = 0  # `add_loss(...)` arguments the traversal is inside
        self._owners: list[cst.CSTNode] = []  # enclosing classes and defs
        self._samples: dict[tuple, object] = {}  # (owner key, name) -> its distribution, or _HAND_DRAWN
        self._scored_own: set[tuple] = set()  # samples scored by their own distribution
        self._used_elsewhere: set[tuple] = set()  # samples passed to anything else
        self._vi_samples: set[tuple] = set()  # samples that showed VI (scored by their own q and used elsewhere)
        # Training sites (see `drives_vi_at`): the innermost def, else a module-level loop, else the module.
        self._sites: list[tuple] = [("module",)]
        self._site_evidence: set[tuple] = set()
        self._site_calls: dict[tuple, set[str]] = {}  # site -> names it calls (defs, classes, methods)
        self._def_sites: dict[str, list[tuple]] = {}  # def name -> its sites
        self._site_class: dict[tuple, str] = {}  # a method's site -> its class's name
        self._class_sites: dict[str, list[tuple]] = {}  # class name -> its methods' sites
        self._surrogates: set[str] = set()  # names bound to a named surrogate: sites using them do VI

    @property
    def variational_models(self) -> bool:
        """The file builds Keras models from `tfp.layers` variational or KL layers (or passes their
        knobs to a helper). Its own layer classes that do VI count only where a model visibly uses
        them (`ModelKinds`): a notebook with one such class often trains plain models elsewhere."""
        return self._variational_models

    @property
    def does_vi(self) -> bool:
        return bool(self.evidence)

    def site(self) -> tuple:
        """Where the traversal is, as a training site: the innermost def, else the module-level
        loop, else the module."""
        return self._sites[-1]

    def drives_vi_at(self, sites) -> bool:
        """Whether an optimizer used (`apply_gradients`, `minimize`) at these sites drives VI.

        The answer is per training site, because one file often holds VI and non-VI training: a
        notebook fits a distribution by maximum likelihood in one cell, a MAP point estimate in
        the next and `fit_surrogate_posterior` in a third. A site drives VI when a sign of VI is
        in it, in a def or class it calls or hands a function to (a few calls deep, by name:
        `loss = elbo(x)`, `BayesianLayer(8)`, `self.kl()`, `opt.minimize(loss_fn)`; a class
        through its methods: `BayesianNN()` whose `__init__` creates a `BayesianLayer`), when it
        calls or passes a variational Keras model, or when it is a method of a class with a sign
        of VI. A `minimize` is judged by its loss (`loss_site`).
        An optimizer never visibly used has no site: the file-level answer.
        """
        if not self.evidence:
            return False
        sites = list(sites)
        return not sites or any(self._site_does_vi(s, 0, set()) for s in sites)

    def _site_does_vi(self, site: tuple, depth: int, seen: set) -> bool:
        if site[0] == "call":  # a def given as the loss: any def of that name
            return any(self._site_does_vi(inner, depth, seen) for inner in self._def_sites.get(site[1], ()))
        if site in seen or depth > _CALL_DEPTH:
            return False
        seen.add(site)
        if site in self._site_evidence or self._site_class.get(site) in self._vi_classes:
            return True
        for name in self._site_calls.get(site, ()):
            if name in self._vi_classes:
                return True
            inner_sites = (*self._def_sites.get(name, ()), *self._class_sites.get(name, ()))
            if any(self._site_does_vi(inner, depth + 1, seen) for inner in inner_sites):
                return True
        return False

    def is_vi_class(self, name: str) -> bool:
        """A class of the file that does VI: a sign of VI in its body, or a method that reaches
        one (a `tf.keras.Model` subclass whose `__init__` creates a Bayes-by-backprop layer of the
        file, a trainer whose `train_step` calls an ELBO def)."""
        return name in self._vi_classes or any(
            self._site_does_vi(site, 1, set()) for site in self._class_sites.get(name, ()))

    def _note(self, kind: str, node: cst.CSTNode) -> None:
        self.evidence.setdefault(kind, node)
        self._site_evidence.add(self.site())
        for owner in reversed(self._owners):
            if isinstance(owner, cst.ClassDef):
                self._vi_classes.add(owner.name.value)
                break

    # ------------------------------------------------------------------ feeding
    def visit_owner(self, node: cst.CSTNode) -> None:
        """A class or def starts: samples and scores are matched per innermost class (a layer's
        `build` and `call` share its attributes), else per def, else per module."""
        if isinstance(node, cst.FunctionDef):
            site = ("def", id(node))
            self._def_sites.setdefault(node.name.value, []).append(site)
            if self._owners and isinstance(self._owners[-1], cst.ClassDef):
                self._site_class[site] = self._owners[-1].name.value
                self._class_sites.setdefault(self._owners[-1].name.value, []).append(site)
            self._sites.append(site)
            if says_elbo(node.name.value):
                self._note("elbo-named", node)  # `def negative_elbo(...)`
        self._owners.append(node)

    def leave_owner(self, node: cst.CSTNode) -> None:
        if self._owners and self._owners[-1] is node:
            self._owners.pop()
        if isinstance(node, cst.FunctionDef) and self._sites[-1] == ("def", id(node)):
            self._sites.pop()

    def visit_loop(self, node: cst.CSTNode) -> None:
        """A `for` / `while`: a module-level training loop is a site of its own."""
        if len(self._sites) == 1:
            self._sites.append(("loop", id(node)))

    def leave_loop(self, node: cst.CSTNode) -> None:
        if self._sites[-1] == ("loop", id(node)):
            self._sites.pop()

    def visit_with(self, node: cst.With) -> None:
        if any(isinstance(item.item, cst.Call) and not self.resolver.call_names(item.item).isdisjoint(_TAPES)
               for item in node.items):
            self._tapes.append(id(node))

    def leave_with(self, node: cst.With) -> None:
        if self._tapes and self._tapes[-1] == id(node):
            self._tapes.pop()

    def leave_call(self, node: cst.Call) -> None:
        if self._is_add_loss(node):
            self._add_loss -= 1

    def visit_assign_target(self, name: str, value: cst.BaseExpression) -> None:
        self._remember_sample(name, value)
        if _LOSS_NAME.search(name) and any_call(value, lambda call: is_kl(self.resolver, call)):
            self._note("kl-objective", value)  # TF1 graph mode: `loss = tfd.kl_divergence(q, p) - ...`
        if says_elbo(name):
            self._note("elbo-named", value)  # `elbo = log_likelihood - kl`; `train_op = opt.minimize(-elbo)`
        if SURROGATE_NAME.search(name) and self._values.trainable_distribution(value):
            self._note("named-surrogate", value)
            self._surrogates.add(name)

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        self._remember_callee(node, names)
        if self._surrogates and self._uses_surrogate(node):
            self._site_evidence.add(self.site())
        if self._is_add_loss(node):
            self._add_loss += 1
        if not names.isdisjoint(VI_FUNCTIONS):
            self._note("fit", node)
        if not names.isdisjoint(VI_MARKERS):
            self._note("construct", node)
        if not names.isdisjoint(VI_MODEL_LAYERS) or tfn_variational(names):
            self._note("layers", node)
            self._variational_models = True
        if not names.isdisjoint(KL_LAYERS):
            self._note("kl-layer", node)
            self._variational_models = True
        if vi_keywords(node):
            self._variational_models = True
        method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        if method in _VI_METHODS and not names:
            self._note("kl-objective", node)  # `vgp.surrogate_posterior_kl_divergence_prior()`
        if is_kl(self.resolver, node):
            if self._in_objective():
                self._note("kl-objective", node)
        if self._samples:
            self._own_samples(node, method if not names else None)

    def loss_site(self, loss: Optional[cst.BaseExpression]) -> Optional[tuple]:
        """The training site of a `minimize`: the loss it is given, when that is a def of the file
        (`opt.minimize(neg_elbo, ...)`), a lambda (`tfp.math.minimize(lambda: -log_joint(w, z))`:
        a MAP fit next to a VI fit in the same notebook cell is judged by its own loss), or a loss
        tensor whose computation can be read (TF1 graph mode: `opt.minimize(map_loss)` of
        `map_loss = -joint.log_prob(...)` is MAP even in a notebook whose next cell minimises an
        ELBO; `opt.minimize(-elbo)`, `opt.minimize(loss)` of `loss = nll + kl` with `kl` a KL, a
        variational model's `losses` or the ELBO's own samples are VI): the names it is computed
        from are followed a few assignments back. None (the current site) for a tensor that cannot
        be read (a parameter, `loss += kl`, a value unpacked from a call)."""
        if isinstance(loss, cst.Name) and loss.value in self._def_sites:
            return ("call", loss.value)
        if isinstance(loss, cst.Lambda):
            return self._expression_site(("lambda", id(loss)), loss.body, follow=False)
        if loss is None or isinstance(loss, (cst.Name, cst.Attribute)) and self.resolver.value_of(loss) is loss:
            return None
        return self._expression_site(("loss", id(loss)), loss, follow=True)

    def _expression_site(self, site: tuple, expression: cst.BaseExpression, follow: bool) -> tuple:
        finder = _LossFinder(self, follow)
        visit(expression, finder)
        self._site_calls[site] = finder.names
        if finder.vi:
            self._site_evidence.add(site)
        if finder.kl is not None:
            self.evidence.setdefault("kl-objective", finder.kl)  # `kl = tfd.kl_divergence(q, p)`, minimised
        return site

    def _remember_callee(self, node: cst.Call, names: frozenset) -> None:
        """The names a site calls: `elbo(x)`, `BayesianLayer(8)`, `model(x)` of `model = VAE()`, `self.kl()`."""
        calls = self._site_calls.setdefault(self.site(), set())
        for arg in node.args:  # `opt.minimize(loss_fn, ...)`, `train(model, x)`
            if isinstance(arg.value, cst.Name):
                calls.add(arg.value.value)
                if self.models.scopes.lookup(arg.value.value) == VARIATIONAL:
                    self._note("variational-model", node)
        if names:
            return
        func = node.func
        if isinstance(func, cst.Name) and self.models.scopes.lookup(func.value) == VARIATIONAL:
            self._note("variational-model", node)  # `model(x)` of a Bayesian network
        if isinstance(func, cst.Name):
            calls.add(func.value)
            built = self.resolver.value_of(func)
            if isinstance(built, cst.Call) and isinstance(built.func, cst.Name):
                calls.add(built.func.value)
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            calls.add(func.attr.value)

    def _uses_surrogate(self, node: cst.Call) -> bool:
        """`surrogate.log_prob(x)`, `loss_fn(surrogate)`: this site trains or scores a named surrogate."""
        receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
        values = [receiver, *(arg.value for arg in node.args)]
        return any(isinstance(v, cst.Name) and v.value in self._surrogates for v in values)

    # ------------------------------------------------------------------ signs
    def _is_add_loss(self, node: cst.Call) -> bool:
        return isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_loss"

    def _in_objective(self) -> bool:
        if self._tapes or self._add_loss or self.resolver.in_lambda:
            return True
        defs = [o for o in self._owners if isinstance(o, cst.FunctionDef)]
        return any(_OBJECTIVE_DEF.search(d.name.value) for d in defs)

    def _owner_key(self) -> tuple:
        for owner in reversed(self._owners):
            if isinstance(owner, cst.ClassDef):
                return ("class", id(owner))
        for owner in reversed(self._owners):
            return ("def", id(owner))
        return ("module",)

    def _remember_sample(self, name: str, value: cst.BaseExpression) -> None:
        """`z = q.sample(8)` of a trainable (or posterior-named) distribution: watch how `z` is used.
        So with a draw reparameterised by hand, `w = mu + tf.nn.softplus(rho) * eps`."""
        if self._values.hand_draw(value):
            self._samples[(self._owner_key(), name)] = _HAND_DRAWN
            return
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "sample"):
            return
        receiver = value.func.value
        key = dotted_name(receiver)
        values = self._values
        if key is not None and (values.trainable_distribution(receiver) or values.named_surrogate(receiver)):
            self._samples[(self._owner_key(), name)] = key

    def _own_samples(self, node: cst.Call, method: Optional[str]) -> None:
        """An MC ELBO: a sample `z` of the surrogate scored by the surrogate itself (`q.log_prob(z)`)
        and also used by something else (the model's `log_prob(z)` or `log_prob([z, data])`, a
        likelihood `Normal(x @ z, 1.)`, a layer's matmul). A flow that scores its own samples only
        for monitoring feeds them nowhere else."""
        owner = self._owner_key()
        receiver = dotted_name(node.func.value) if method is not None and isinstance(node.func, cst.Attribute) else None
        for arg in node.args:
            if not isinstance(arg.value, cst.Name):
                for name in _names_outside_calls(arg.value):  # `joint.log_prob([z, data])`
                    sample = (owner, name)
                    if sample in self._samples and self._samples[sample] is not _HAND_DRAWN:
                        self._used_elsewhere.add(sample)
                        if sample in self._scored_own:
                            self._vi_samples.add(sample)
                            self._note("own-samples", node)
                continue
            if (owner, arg.value.value) not in self._samples:
                continue
            sample = (owner, arg.value.value)
            if self._samples[sample] is _HAND_DRAWN:
                if method in _SCORING_METHODS or self._add_loss:
                    self._vi_samples.add(sample)  # `q.log_prob(w) - prior.log_prob(w)`, `add_loss(self.kl(w, ...))`
                    self._note("own-samples", node)
                continue
            if method in _SCORING_METHODS and receiver == self._samples[sample]:
                self._scored_own.add(sample)
            else:
                self._used_elsewhere.add(sample)
            if sample in self._scored_own and sample in self._used_elsewhere:
                self._vi_samples.add(sample)
                self._note("own-samples", node)


class _LossFinder(cst.CSTVisitor):
    """What a loss given to `minimize` reads: the names it calls or mentions, and direct signs of
    VI (a KL, a `tfp.vi` loss, a named surrogate or ELBO; for a loss tensor also a variational
    layer or model, and a sample that showed VI). With `follow`, the names of a loss tensor are
    followed to the values last bound to them (`loss = nll + kl`, `kl = sum(model.losses) / n`),
    a few assignments deep."""

    _DEPTH = 4
    _BUDGET = 60  # values followed per loss

    def __init__(self, context: VIContext, follow: bool = False) -> None:
        super().__init__()
        self.context = context
        self.names: set[str] = set()
        self.vi = False
        self.kl: Optional[cst.Call] = None  # a KL or `tfp.vi` loss the loss is computed from
        self._follow = follow
        self._depth = 0
        self._seen: set[int] = set()
        self._not_values: set[int] = set()  # attribute names and keywords: not values to follow

    def visit_Name(self, node: cst.Name) -> None:
        context = self.context
        self.names.add(node.value)
        if node.value in context._surrogates or says_elbo(node.value):
            self.vi = True
        if not self._follow or id(node) in self._not_values:
            return
        if (context.models.scopes.lookup(node.value) == VARIATIONAL
                or (context._owner_key(), node.value) in context._vi_samples):
            self.vi = True  # `sum(model.losses)` of a Bayesian network, a sample of q scored by q
        self._go_to(context.resolver.value_of(node), node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._not_values.add(id(node.attr))
        if self._follow and isinstance(node.value, cst.Name) and node.value.value == "self":
            self._go_to(self.context.resolver.value_of(node), node)  # `self.loss`

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._not_values.add(id(node.keyword))

    def _go_to(self, value: cst.BaseExpression, node: cst.BaseExpression) -> None:
        if value is node or id(value) in self._seen or self._depth >= self._DEPTH or len(self._seen) >= self._BUDGET:
            return
        self._seen.add(id(value))
        self._depth += 1
        visit(value, self)
        self._depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        names = self.context.resolver.call_names(node)
        method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        if not names.isdisjoint(VI_FUNCTIONS) or method in _VI_METHODS or is_kl(self.context.resolver, node):
            self.vi = True
            self.kl = self.kl or node
        if self._follow and (not names.isdisjoint(VI_MODEL_LAYERS | KL_LAYERS) or tfn_variational(names)):
            self.vi = True  # TF1 functional layers: `tfp.layers.DenseFlipout(10)(images)`


def _names_outside_calls(node: cst.BaseExpression) -> list[str]:
    """The names an expression reads directly: in lists, tuples, operators, subscripts, not inside
    a call (each call is looked at on its own) or a lambda, not an attribute's name."""
    found: list[str] = []

    class _Names(cst.CSTVisitor):
        def visit_Call(self, _node: cst.Call) -> bool:
            return False

        def visit_Lambda(self, _node: cst.Lambda) -> bool:
            return False

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            visit(attribute.value, self)
            return False

        def visit_Name(self, name: cst.Name) -> None:
            found.append(name.value)

    visit(node, _Names())
    return found

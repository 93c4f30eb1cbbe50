"""OptimizerRoles: which optimizers of a file drive variational inference and which apply
gradients clipped by hand — shared by ELB003 (missing clipping) and ELB009 (high learning rate),
with VIOptimizerRule, their base class, feeding it once per file.

Why one shared analysis: both rules ask the same two questions of the same optimizers, and the
answers need the whole file (an optimizer built in a helper, compiled in a branch, applied in a
loop). Whether the file or a model does VI at all is VIContext's answer (`elbolint/analyses/vi_context.py`).
Not a rule module (no Rule subclass with a code), so the registry skips it.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.analyses.project import KNOWN_PACKAGES, project_module_does_vi
from elbolint.analysis import FileAnalysis
from elbolint.names import TF
from elbolint.resolver import Resolver
from elbolint.rule import Rule
from elbolint.rules._tfp import (
    ANY_OPTIMIZER, CLIPPING_KEYWORDS, OPTIMIZER_WORDS, STRING_OPTIMIZERS, VI_FUNCTIONS, BranchScopes,
)
from elbolint.analyses.vi_context import PLAIN, UNKNOWN, VARIATIONAL, VIContext, combine_kinds

#: Manual clipping: counts only when applied to gradients (see OptimizerRoles).
GRADIENT_CLIPPING = frozenset({
    f"{TF}.{prefix}{name}"
    for prefix in ("", "math.", "compat.v1.", "compat.v1.math.", "compat.v1.compat.v1.")
    for name in ("clip_by_global_norm", "clip_by_norm", "clip_by_value", "clip_by_average_norm")
})
#: Functions that return gradients (besides the methods `tape.gradient` / `opt.compute_gradients`).
_GRADIENT_FUNCTIONS = frozenset({
    f"{TF}.gradients", f"{TF}.compat.v1.gradients", f"{TF}.compat.v1.compat.v1.gradients",
    "tensorflow_probability.math.value_and_gradient",
})
_GRADIENT_METHODS = frozenset({"gradient", "compute_gradients"})
_CLIPPING_OR_GRADIENT_NAMES = frozenset(
    {name.rsplit(".", 1)[-1] for name in GRADIENT_CLIPPING | _GRADIENT_FUNCTIONS} | _GRADIENT_METHODS
)
#: Fits that run an optimizer without letting the caller touch the gradients.
_MINIMIZERS = frozenset({"tensorflow_probability.math.minimize", "tensorflow_probability.math.minimize_stateless"})
#: `tfp.experimental.nn.util.make_fit_op(loss_fn, optimizer, trainable_variables)`: one such fit
#: step, judged by its loss as `tfp.math.minimize` is (a notebook fits a Bayesian and a plain tfn net).
_FIT_OPS = frozenset({"tensorflow_probability.experimental.nn.util.make_fit_op",
                      "tensorflow_probability.experimental.nn.util.utils.make_fit_op"})

#: Gradient flow, as bits: a value computed from gradients (`tape.gradient`, `compute_gradients`,
#: `tf.gradients`), from clipped gradients, or from a parameter of the enclosing function or lambda
#: (which may be gradients: `def clip(grads): return [tf.clip_by_norm(g, 1.) for g in grads]`).
GRADIENTS, CLIPPED, PARAMETER = 1, 2, 4

#: How an optimizer is used. FITTED: passed to a `tfp.vi` fit. MINIMIZED: `.minimize(...)` or
#: `tfp.math.minimize` (no room for clipping). APPLIED / APPLIED_CLIPPED: `apply_gradients` of
#: gradients that were / were not clipped on the way.
FITTED, MINIMIZED, APPLIED, APPLIED_CLIPPED = "fitted", "minimized", "applied", "applied-clipped"
#: `opt.clipnorm = 1.0` (or `global_clipnorm`, `clipvalue`) set on the optimizer after construction.
CLIPPED_LATER = "clipped-later"
#: Handed to a function of another package (`other_lib.fit(model, optimizer=opt)`): whether it
#: clips, and what it trains, is that package's business, not visible here.
HANDED_OFF = "handed-off"
#: Handed to a function or class of a module of the same project whose source shows VI (the
#: VAE whose KL lives in `models.py`): it drives VI there.
HANDED_TO_VI = "handed-to-vi"
_UNCLIPPED_USES = frozenset({FITTED, MINIMIZED, APPLIED})


class OptimizerRoles(FileAnalysis):
    """Which optimizers of one file drive variational inference, and which are clipped by hand
    (shared by ELB003 and ELB009).

    **Which optimizer.** An optimizer is where it is constructed: a Keras 2/3 optimizer, a TF1
    `tf.compat.v1.train.*Optimizer`, or a Keras string (`compile(optimizer="adam")`). Uses are
    traced back to constructions through names (per `if` branch: a name bound to `Adam()` in one
    branch and to `SGD()` in the other is both), `self.` attributes, functions of the file that
    return an optimizer (`def make_opt(): return tf.optimizers.Adam(0.01)`; `opt = make_opt()`),
    and functions that take one as a parameter (`train(model, optimizer=Adam())`).

    **Drives VI.** An optimizer drives VI when it is passed to a `tfp.vi` fit, or compiled into a
    Keras model built from `tfp.layers` variational layers. An optimizer compiled into a visibly
    plain model (every layer a Keras or non-variational `tfp.layers` layer: a baseline network, a
    `DistributionLambda` regression, MC dropout) is a plain Keras optimizer, even if the file does
    VI elsewhere; models are followed through `if` branches (Bayesian in one branch is Bayesian)
    and through functions of the file that build and return them. An optimizer compiled into a
    model that cannot be read counts when the file uses variational layers. Any other optimizer
    counts when the file does VI at all.

    **Clipped by hand.** Clipping counts only on gradients: `tf.clip_by_global_norm` /
    `clip_by_norm` / `clip_by_value` applied to what `tape.gradient`, `compute_gradients` or
    `tf.gradients` returned (directly, in a comprehension, through names, or in a function of the
    file that clips its argument), which then reaches `apply_gradients`; and it counts only for
    the optimizer whose `apply_gradients` receives them. A `tf.clip_by_value` on a loss or on a
    prior's scale clips no gradient. When the optimizer applying clipped gradients cannot be
    traced (`self.optimizer` in a Keras `train_step`, an imported helper's parameter), every
    optimizer of the file that is not visibly used unclipped (fitted, minimized, or applying
    unclipped gradients) counts as clipped.

    A file analysis (elbolint/analysis.py): the engine visits it in the rules' traversal; ask at
    `leave_Module`. Its VIContext (`.vi`) is fed from the same callbacks.
    """

    _FIT_OPTIMIZER_POSITION = 2  # fit_surrogate_posterior(target, surrogate, optimizer, num_steps)

    def __init__(self, resolver: Resolver, analyses=None, path=None) -> None:
        super().__init__(resolver, analyses or {}, path)
        self._return_kinds: dict[str, str] = {}
        self.vi = VIContext(resolver, self._return_kinds, lambda module: project_module_does_vi(self.path, module))
        self._models = self.vi.models
        self._optimizers = BranchScopes(frozenset.union, frozenset())  # name -> optimizer references
        self._gradients = BranchScopes(int.__or__, 0)  # name -> gradient-flow bits
        self._functions: list[tuple[str, list[str]]] = []  # enclosing defs: (name, parameters)
        self._parameter_positions: dict[str, list[str]] = {}
        self._returns: dict[str, frozenset] = {}  # def -> optimizer references it returns
        self._return_gradients: dict[str, int] = {}  # def -> gradient-flow bits of what it returns
        self._strings: dict[int, tuple[cst.BaseExpression, str]] = {}  # id -> (string node, Keras class)
        self._uses: dict[object, set[str]] = {}  # optimizer reference -> uses
        self._compiled: dict[object, str] = {}  # optimizer reference -> kind of the model it is compiled into
        self._parameter_uses: dict[tuple[str, str], set[str]] = {}  # (def, parameter) -> uses
        self._compiled_parameters: dict[tuple[str, str], str] = {}  # (def, parameter) -> model kind
        self._call_sites: list[tuple[str, list[tuple[object, frozenset]]]] = []  # (def, [(keyword or index, refs)])
        self._clipped_untraced = False
        self._bound_to: dict[int, str] = {}  # id(optimizer call) -> the one name or attribute it is bound to
        # name or attribute -> its bindings and reads in source order, as (ordinal, kind, what):
        # ("w", id of the value, in a def) or ("r", the outermost def it is read in, or None); see `never_used`
        self._mentions: dict[str, list[tuple[int, str, object, object]]] = {}
        self._calls_by_name: dict[str, list[int]] = {}  # def name -> ordinals of the calls `name(...)`
        self._blocks: list[int] = []  # ids of the enclosing blocks (an `if` branch is a block of its own)
        self._ordinal = 0
        self._not_reads: set[int] = set()  # Name/Attribute nodes that bind or name a keyword
        self._resolved: Optional[tuple[dict[int, set[str]], dict[int, str]]] = None

    # ------------------------------------------------------------------ feeding
    def visit_function_def(self, node: cst.FunctionDef) -> None:
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        self._parameter_positions.setdefault(node.name.value, params)
        every = params + [p.name.value for p in node.params.kwonly_params]
        self._functions.append((node.name.value, every))
        self._return_kinds.pop(node.name.value, None)  # a redefinition (a notebook's later cell) replaces the def
        self.vi.visit_owner(node)
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.push()
        for name in every:
            self._models.unbind(name)
            self._optimizers.bind(name, frozenset())
            self._gradients.bind(name, PARAMETER)

    def leave_function_def(self, node: cst.FunctionDef) -> None:
        self._functions.pop()
        self.vi.leave_owner(node)
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.pop()
        self._models.unbind(node.name.value)  # the name now holds a function
        self._optimizers.bind(node.name.value, frozenset())
        self._gradients.bind(node.name.value, 0)

    def visit_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.enter_child(node)  # an `elif` is a branch of the enclosing `if`
            scopes.enter_if(node)

    def leave_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.leave_if(node)
            scopes.leave_child(node)

    def visit_block(self, node: cst.CSTNode) -> None:
        """An IndentedBlock, SimpleStatementSuite or Else: maybe a branch of the innermost `if`."""
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.enter_child(node)

    def leave_block(self, node: cst.CSTNode) -> None:
        for scopes in (self._models.scopes, self._optimizers, self._gradients):
            scopes.leave_child(node)

    def visit_assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            key = _binding_key(target.target)
            if key is not None:
                self._not_reads.add(id(target.target))
                where = (bool(self._functions), self._blocks[-1] if self._blocks else 0)
                self._mention(key, "w", id(node.value), where)
                if len(node.targets) == 1 and isinstance(node.value, cst.Call):
                    self._bound_to[id(node.value)] = key
        for target in node.targets:
            if (isinstance(target.target, cst.Attribute) and target.target.attr.value in CLIPPING_KEYWORDS
                    and not (isinstance(node.value, cst.Name) and node.value.value == "None")):
                self._use(target.target.value, CLIPPED_LATER)  # `opt.clipnorm = 1.0` after construction
            self._bind(target.target, node.value)
            for name in _target_names(target.target):
                self.vi.visit_assign_target(name, node.value)

    def visit_ann_assign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_aug_assign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self._gradients.update(node.target.value, self._flow(node.value))

    def visit_for(self, node: cst.For) -> None:
        """`for model in (bnn, baseline)`, `for g, v in grads_and_vars`: targets take the iterable's."""
        self._bind(node.target, node.iter)

    def visit_return(self, node: cst.Return) -> None:
        if not self._functions or node.value is None:
            return
        function = self._functions[-1][0]
        kind = self._models.kind(node.value)
        self._return_kinds[function] = combine_kinds([kind, self._return_kinds.get(function, kind)])
        self._returns[function] = self._returns.get(function, frozenset()) | self._references(node.value)
        self._return_gradients[function] = self._return_gradients.get(function, 0) | self._flow(node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        flow = self._flow(value)
        if isinstance(target, cst.Name):
            self._models.bind(target.value, value)
            self._optimizers.bind(target.value, self._references(value))
            self._gradients.bind(target.value, flow)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                inner = element.value.value if isinstance(element.value, cst.StarredElement) else element.value
                if isinstance(inner, cst.Name):
                    self._models.unbind(inner.value)
                    self._optimizers.bind(inner.value, frozenset())
                    self._gradients.bind(inner.value, flow)  # `grads, norm = tf.clip_by_global_norm(...)`
                else:
                    self._bind(inner, value)
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            self._gradients.update(target.value.value, flow)  # `grads[i] = tf.clip_by_norm(g, 1.)`

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        self.vi.visit_call(node)
        if not names.isdisjoint(VI_FUNCTIONS):
            self._use(self._argument(node, "optimizer", self._FIT_OPTIMIZER_POSITION), FITTED)
        if not names.isdisjoint(_MINIMIZERS):
            loss = self.vi.loss_site(self._argument(node, "loss_fn", 0))
            self._use(self._argument(node, "optimizer", 2), MINIMIZED, loss)
        if not names.isdisjoint(_FIT_OPS):
            loss = self.vi.loss_site(self._argument(node, "loss_fn", 0))
            self._use(self._argument(node, "optimizer", 1), MINIMIZED, loss)
        if isinstance(node.func, cst.Name):
            self._remember_call_site(node)
        self._hand_off(node, names)
        if not isinstance(node.func, cst.Attribute):
            return
        method, receiver = node.func.attr.value, node.func.value
        if method == "add" and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._models.extend(receiver.value, node.args[0].value)
        elif method in ("append", "extend") and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._gradients.update(receiver.value, self._flow(node.args[0].value))
        elif method == "minimize" and not names:
            self._use(receiver, MINIMIZED, self.vi.loss_site(self._argument(node, "loss", 0)))
        elif method == "apply_gradients":
            gradients = self._argument(node, "grads_and_vars", 0)
            clipped = gradients is not None and bool(self._flow(gradients) & CLIPPED)
            self._use(receiver, APPLIED_CLIPPED if clipped else APPLIED)
        elif method == "compile":
            self._compile(node, receiver)

    def _hand_off(self, node: cst.Call, names: frozenset[str]) -> None:
        """An optimizer passed to a function imported from another package is handed off; one
        passed to a function or class of a module of this project whose source shows VI is handed
        to VI (see HANDED_OFF, HANDED_TO_VI)."""
        if not names or any(name.split(".")[0] in KNOWN_PACKAGES for name in names):
            return
        use = HANDED_TO_VI if project_module_does_vi(self.path, next(iter(names))) else HANDED_OFF
        for arg in node.args:
            if not arg.star:
                self._use(arg.value, use)

    def _compile(self, node: cst.Call, receiver: cst.BaseExpression) -> None:
        kind = self._models.kind(receiver)
        optimizer = self._argument(node, "optimizer", 0)
        if optimizer is None:
            return
        parameter = self._parameter(optimizer)
        if parameter is not None:
            self._compiled_parameters[parameter] = combine_kinds([kind, self._compiled_parameters.get(parameter, kind)])
        for reference in self._references(optimizer):
            self._compiled[reference] = combine_kinds([kind, self._compiled.get(reference, kind)])

    # ------------------------------------------------------------- following values
    def _references(self, node: cst.BaseExpression, depth: int = 0) -> frozenset:
        """The optimizer constructions `node` may be: ids of optimizer calls and string literals,
        and ("returned by", def) for calls to a function of the file (expanded at the end)."""
        if depth > 8:
            return frozenset()
        if isinstance(node, cst.Name):
            if self._optimizers.knows(node.value):
                return self._optimizers.lookup(node.value)
            value = self.resolver.value_of(node)
            return frozenset() if value is node else self._references(value, depth + 1)
        if isinstance(node, cst.Attribute):
            value = self.resolver.value_of(node)  # `self.optimizer`
            return frozenset() if value is node else self._references(value, depth + 1)
        if isinstance(node, cst.IfExp):
            return self._references(node.body, depth + 1) | self._references(node.orelse, depth + 1)
        if isinstance(node, cst.BooleanOperation):  # `optimizer or tf.optimizers.Adam(0.01)`
            return self._references(node.left, depth + 1) | self._references(node.right, depth + 1)
        if isinstance(node, (cst.List, cst.Tuple)):
            found = frozenset()
            for element in node.elements:
                found |= self._references(element.value, depth + 1)
            return found
        if isinstance(node, cst.SimpleString):
            name = _string_optimizer(node)
            if name is None:
                return frozenset()
            self._strings[id(node)] = (node, name)
            return frozenset({id(node)})
        if isinstance(node, cst.Call):
            names = self.resolver.call_names(node)
            if not names.isdisjoint(ANY_OPTIMIZER):
                return frozenset({id(node)})
            if not names and isinstance(node.func, cst.Name):
                return frozenset({("returned by", node.func.value)})
            if not names and isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name) \
                    and node.func.value.value == "self":
                return frozenset({("returned by", node.func.attr.value)})  # `self._make_optimizer()`
        return frozenset()

    def _flow(self, node: Optional[cst.CSTNode], local: Optional[dict[str, int]] = None, depth: int = 0) -> int:
        """Gradient-flow bits of an expression (GRADIENTS, CLIPPED, PARAMETER)."""
        if depth > 40 or node is None:
            return 0
        if isinstance(node, cst.Name):
            if local and node.value in local:
                return local[node.value]
            return self._gradients.lookup(node.value)
        if isinstance(node, cst.Call):
            return self._call_flow(node, local, depth)
        if isinstance(node, (cst.Attribute, cst.Subscript, cst.StarredElement)):
            return self._flow(node.value, local, depth + 1)  # `self.grads`, `gvs[0]`, `*grads`
        if isinstance(node, cst.Await):  # `await compute()`: an Await holds an `expression`, not a `value`
            return self._flow(node.expression, local, depth + 1)
        if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            bits = 0
            for element in node.elements:
                bits |= self._flow(element.value, local, depth + 1)
            return bits
        if isinstance(node, cst.BinaryOperation):
            return self._flow(node.left, local, depth + 1) | self._flow(node.right, local, depth + 1)
        if isinstance(node, cst.BooleanOperation):
            return self._flow(node.left, local, depth + 1) | self._flow(node.right, local, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self._flow(node.expression, local, depth + 1)
        if isinstance(node, cst.IfExp):
            return self._flow(node.body, local, depth + 1) | self._flow(node.orelse, local, depth + 1)
        if isinstance(node, cst.Lambda):
            params = {p.name.value: PARAMETER for p in (*node.params.posonly_params, *node.params.params)}
            return self._flow(node.body, {**(local or {}), **params}, depth + 1)
        if isinstance(node, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            scope = dict(local or {})
            clause = node.for_in
            while clause is not None:
                bits = self._flow(clause.iter, scope, depth + 1)
                for name in _target_names(clause.target):
                    scope[name] = bits
                clause = clause.inner_for_in
            if isinstance(node, cst.DictComp):
                return self._flow(node.key, scope, depth + 1) | self._flow(node.value, scope, depth + 1)
            return self._flow(node.elt, scope, depth + 1)
        return 0  # literals, comparisons, f-strings, ...

    def _call_flow(self, node: cst.Call, local: Optional[dict[str, int]], depth: int) -> int:
        arguments = 0
        for arg in node.args:
            arguments |= self._flow(arg.value, local, depth + 1)
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last in _CLIPPING_OR_GRADIENT_NAMES:  # resolve only calls that may matter (cheap pre-check)
            names = self.resolver.call_names(node)
            if not names.isdisjoint(GRADIENT_CLIPPING):
                return CLIPPED if arguments & (GRADIENTS | CLIPPED | PARAMETER) else 0
            if not names.isdisjoint(_GRADIENT_FUNCTIONS):
                return GRADIENTS
            if isinstance(func, cst.Attribute) and last in _GRADIENT_METHODS and not names:
                return GRADIENTS  # `tape.gradient(...)`, `optimizer.compute_gradients(...)`
        if isinstance(func, cst.Name) and last in self._return_gradients and not self.resolver.call_names(node):
            summary = self._return_gradients[last]  # a function of the file
            bits = summary & (GRADIENTS | CLIPPED)
            if summary & PARAMETER:
                bits |= arguments & (GRADIENTS | CLIPPED)
            if summary & CLIPPED and arguments & GRADIENTS:
                bits |= CLIPPED
            return bits
        if arguments & PARAMETER and arguments & (GRADIENTS | CLIPPED) and self._clips_a_parameter(node):
            return CLIPPED  # `tf.nest.map_structure(lambda g: tf.clip_by_norm(g, 1.), grads)`
        return arguments  # zip(...), list(...), and calls we cannot read pass their arguments through

    def _clips_a_parameter(self, node: cst.Call) -> bool:
        for arg in node.args:
            if isinstance(arg.value, cst.Lambda) and self._flow(arg.value) & CLIPPED:
                return True
        return False

    # ----------------------------------------------------------------- recording
    def _use(self, node: Optional[cst.BaseExpression], use: str, site: Optional[tuple] = None) -> None:
        if node is None:
            return
        references = self._references(node)
        marks = {use} if use in (FITTED, CLIPPED_LATER, HANDED_OFF, HANDED_TO_VI) else {
            use, ("site", site or self.vi.site())}
        for reference in references:
            self._uses.setdefault(reference, set()).update(marks)
        parameter = self._parameter(node)
        if parameter is not None:
            self._parameter_uses.setdefault(parameter, set()).update(marks)
        elif not references and use == APPLIED_CLIPPED:
            self._clipped_untraced = True

    def _parameter(self, node: cst.BaseExpression) -> Optional[tuple[str, str]]:
        """(def, parameter) when `node` names a parameter of the innermost function."""
        if isinstance(node, cst.Name) and self._functions and node.value in self._functions[-1][1]:
            if self._optimizers.lookup(node.value) == frozenset():
                return self._functions[-1][0], node.value
        return None

    @staticmethod
    def _argument(call: cst.Call, keyword: str, position: int) -> Optional[cst.BaseExpression]:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                return arg.value
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > position and not any(a.star for a in positional[: position + 1]):
            return positional[position].value
        return None

    def _remember_call_site(self, call: cst.Call) -> None:
        arguments: list[tuple[object, frozenset]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            key = arg.keyword.value if arg.keyword is not None else index
            arguments.append((key, self._references(arg.value)))
        self._call_sites.append((call.func.value, arguments))

    # ------------------------------------------------------------------- answers
    def _expand(self, reference, seen: Optional[set] = None) -> set[int]:
        if isinstance(reference, int):
            return {reference}
        seen = set() if seen is None else seen
        if reference in seen:
            return set()
        seen.add(reference)
        found: set[int] = set()
        for inner in self._returns.get(reference[1], ()):
            found |= self._expand(inner, seen)
        return found

    def _resolve(self) -> tuple[dict[int, set[str]], dict[int, str]]:
        if self._resolved is not None:
            return self._resolved
        uses: dict[int, set[str]] = {}
        compiled: dict[int, str] = {}

        def add(reference, use_set=(), kind=None):
            for target in self._expand(reference):
                uses.setdefault(target, set()).update(use_set)
                if kind is not None:
                    compiled[target] = combine_kinds([kind, compiled.get(target, kind)])

        for reference, use_set in self._uses.items():
            add(reference, use_set)
        for reference, kind in self._compiled.items():
            add(reference, kind=kind)
        traced_parameters = set()
        for function, arguments in self._call_sites:
            positions = self._parameter_positions.get(function, [])
            for key, references in arguments:
                parameter = (function, positions[key] if isinstance(key, int) and key < len(positions) else key)
                use_set = self._parameter_uses.get(parameter, ())
                kind = self._compiled_parameters.get(parameter)
                for reference in references:
                    add(reference, use_set, kind)
                    traced_parameters.add(parameter)
        if any(APPLIED_CLIPPED in use_set and parameter not in traced_parameters
               for parameter, use_set in self._parameter_uses.items()):
            self._clipped_untraced = True
        self._resolved = (uses, compiled)
        return self._resolved

    def never_used(self, optimizer: cst.CSTNode) -> bool:
        """A leftover: an optimizer bound to a name (or `self.` attribute) that the file never
        mentions again, in a file whose training visibly uses another optimizer (a notebook cell's
        leftover next to the real fit). An optimizer passed straight into a call, returned, or read
        anywhere is used; so is the only optimizer of a sketch that leaves its loop out (Example 1
        of the article "What causes extremely large loss values when using TFP and the ELBO loss": a
        surrogate and an optimizer, "training loop omitted")."""
        key = self._bound_to.get(id(optimizer))
        if key is None or self._read_after(key, id(optimizer)):
            return False
        uses, compiled = self._resolve()
        return any(reference != id(optimizer) and (uses.get(reference) or reference in compiled)
                   for reference in set(uses) | set(compiled))

    def _mention(self, key: str, kind: str, what, extra) -> None:
        self._ordinal += 1
        self._mentions.setdefault(key, []).append((self._ordinal, kind, what, extra))

    def _read_after(self, key: str, value: int) -> bool:
        """Whether the binding of `key` to `value` is read while it holds: after it and before the
        next module-level binding of the same name in the same block (a notebook reuses
        `optimizer` cell after cell), or inside a def that is defined or called in that stretch."""
        mentions = self._mentions.get(key, [])
        binding = next(
            ((ordinal, where) for ordinal, kind, what, where in mentions if kind == "w" and what == value), None
        )
        if binding is None:
            return True
        start, (_, block) = binding
        # The next binding of the same name in the same block ends it (a binding in another
        # branch of an `if` does not: `if fast: opt = SGD(2.) else: opt = SGD(.01)`, then used).
        end = next((ordinal for ordinal, kind, _, where in mentions
                    if kind == "w" and ordinal > start and where == (False, block)), float("inf"))
        for ordinal, kind, _, function in mentions:
            if kind != "r":
                continue
            if start < ordinal < end:
                return True
            if function is not None and any(start < call < end for call in self._calls_by_name.get(function, ())):
                return True
        return False

    def drives_vi(self, optimizer: cst.CSTNode) -> bool:
        if self.never_used(optimizer):
            return False
        uses, compiled = self._resolve()
        mine = uses.get(id(optimizer), set())
        if FITTED in mine or HANDED_TO_VI in mine:
            return True
        if mine == {HANDED_OFF} and id(optimizer) not in compiled:
            return False  # another package's fit: whether it clips cannot be seen from here
        kind = compiled.get(id(optimizer))
        if kind == PLAIN:
            return False
        if kind == VARIATIONAL:
            return True
        if kind == UNKNOWN:
            return self.vi.variational_models
        sites = [mark[1] for mark in uses.get(id(optimizer), ()) if isinstance(mark, tuple)]
        return self.vi.drives_vi_at(sites)

    def clipped_by_hand(self, optimizer: cst.CSTNode) -> bool:
        """True when this optimizer applies gradients that were clipped on the way (or, when the
        optimizer applying clipped gradients cannot be traced, this one is never visibly used
        unclipped)."""
        uses, _ = self._resolve()
        mine = uses.get(id(optimizer), set())
        if APPLIED_CLIPPED in mine or CLIPPED_LATER in mine:
            return True
        return self._clipped_untraced and mine.isdisjoint(_UNCLIPPED_USES)

    def string_optimizers(self) -> list[tuple[cst.BaseExpression, str]]:
        """(string node, Keras class name) of every optimizer given as a string to `compile`
        (directly, through a name, or through a function of the file that compiles its parameter)."""
        _, compiled = self._resolve()
        return [value for key, value in self._strings.items() if key in compiled]

    # ---------------------------------------------------- LibCST callbacks (the engine's traversal)
    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self._not_reads:
            self._mention(node.value, "r", None, self._functions[0][0] if self._functions else None)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._not_reads.add(id(node.attr))  # `x.opt` reads `.opt`, not a name `opt`
        if id(node) not in self._not_reads:
            self._mention("." + node.attr.value, "r", None, self._functions[0][0] if self._functions else None)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:  # `optimizer=` names a parameter, not the variable
            self._not_reads.add(id(node.keyword))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.visit_function_def(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.leave_function_def(original_node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self.visit_assign(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.visit_ann_assign(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.visit_aug_assign(node)

    def visit_For(self, node: cst.For) -> None:
        self.visit_for(node)
        self.vi.visit_loop(node)

    def leave_For(self, original_node: cst.For) -> None:
        self.vi.leave_loop(original_node)

    def visit_While(self, node: cst.While) -> None:
        self.vi.visit_loop(node)

    def leave_While(self, original_node: cst.While) -> None:
        self.vi.leave_loop(original_node)

    def visit_Return(self, node: cst.Return) -> None:
        self.visit_return(node)

    def visit_If(self, node: cst.If) -> None:
        self.visit_if(node)

    def leave_If(self, original_node: cst.If) -> None:
        self.leave_if(original_node)

    # Branches are found from the blocks themselves, not with attribute callbacks (`visit_If_body`),
    # which would keep the engine off its fast read-only walk (elbolint/walk.py).
    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._blocks.append(id(node))
        self.visit_block(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self._blocks.pop()
        self.leave_block(original_node)

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        self._blocks.append(id(node))
        self.visit_block(node)

    def leave_SimpleStatementSuite(self, original_node: cst.SimpleStatementSuite) -> None:
        self._blocks.pop()
        self.leave_block(original_node)

    def visit_Else(self, node: cst.Else) -> None:
        self.visit_block(node)

    def leave_Else(self, original_node: cst.Else) -> None:
        self.leave_block(original_node)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name):
            self._ordinal += 1
            self._calls_by_name.setdefault(node.func.value, []).append(self._ordinal)
        self.visit_call(node)

    def leave_Call(self, original_node: cst.Call) -> None:
        self.vi.leave_call(original_node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.vi.visit_owner(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.vi.leave_owner(original_node)

    def visit_With(self, node: cst.With) -> None:
        self.vi.visit_with(node)

    def leave_With(self, original_node: cst.With) -> None:
        self.vi.leave_with(original_node)


def _binding_key(target: cst.BaseExpression) -> Optional[str]:
    """How `never_used` counts a target: a name by itself, an attribute by its last part (`.opt`)."""
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute):
        return "." + target.attr.value
    return None


def _string_optimizer(node: cst.SimpleString) -> Optional[str]:
    try:
        value = node.evaluated_value
    except Exception:  # pragma: no cover - malformed literal
        return None
    return STRING_OPTIMIZERS.get(value.lower()) if isinstance(value, str) else None


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        names: list[str] = []
        for element in target.elements:
            names += _target_names(element.value)
        return names
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []


class VIOptimizerRule(Rule):
    """Base of the rules about optimizers that drive VI (ELB003, ELB009): `self.roles` is this
    file's OptimizerRoles analysis (asked in `leave_Module`, when every visit is done)."""

    analyses = (OptimizerRoles,)
    #: Triage: every finding is an optimizer construction or a Keras optimizer string.
    starts_from = (OPTIMIZER_WORDS,)

    def __init__(self, context) -> None:
        super().__init__(context)
        self.roles: OptimizerRoles = self.analysis(OptimizerRoles)

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

from elbolint.analyses.gradient_flow import CLIPPED, PARAMETER, GradientFlow
from elbolint.analyses.mentions import Mentions
from elbolint.analyses.project import KNOWN_PACKAGES, ProjectModules
from elbolint.analyses.vi_context import PLAIN, UNKNOWN, VARIATIONAL, VIContext, combine_kinds
from elbolint.analysis import FileAnalysis
from elbolint.cst_helpers import argument, positional_names, target_names
from elbolint.resolver import Resolver
from elbolint.rule import Rule
from elbolint.rules._tfp import (
    ANY_OPTIMIZER, CLIPPING_KEYWORDS, OPTIMIZER_WORDS, STRING_OPTIMIZERS, VI_FUNCTIONS, BranchScopes,
)

#: Fits that run an optimizer without letting the caller touch the gradients.
_MINIMIZERS = frozenset({"tensorflow_probability.math.minimize", "tensorflow_probability.math.minimize_stateless"})
#: `tfp.experimental.nn.util.make_fit_op(loss_fn, optimizer, trainable_variables)`: one such fit
#: step, judged by its loss as `tfp.math.minimize` is (a notebook fits a Bayesian and a plain tfn net).
_FIT_OPS = frozenset({"tensorflow_probability.experimental.nn.util.make_fit_op",
                      "tensorflow_probability.experimental.nn.util.utils.make_fit_op"})

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
#: How many names, conditionals and containers `_references` follows to an optimizer construction.
_REFERENCE_DEPTH = 8


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
        self._project = ProjectModules(self.path)  # (what the file's folders hold, asked once)
        self.vi = VIContext(resolver, self._return_kinds, self._project.does_vi)
        self._models = self.vi.models
        self._optimizers = BranchScopes(frozenset.union, frozenset())  # name -> optimizer references
        self.gradients = GradientFlow(resolver)  # names' and returns' gradient-flow bits
        self._functions: list[tuple[str, list[str]]] = []  # enclosing defs: (name, parameters)
        self._parameter_positions: dict[str, list[str]] = {}
        self._returns: dict[str, frozenset] = {}  # def -> optimizer references it returns
        self._strings: dict[int, tuple[cst.BaseExpression, str]] = {}  # id -> (string node, Keras class)
        self._uses: dict[object, set[object]] = {}  # optimizer reference -> uses (a use, or ("site", site))
        self._compiled: dict[object, str] = {}  # optimizer reference -> kind of the model it is compiled into
        self._parameter_uses: dict[tuple, set[object]] = {}  # (def, parameter) -> uses
        self._compiled_parameters: dict[tuple, str] = {}  # (def, parameter) -> model kind
        self._call_sites: list[tuple[str, list[tuple[object, frozenset]]]] = []  # (def, [(keyword or index, refs)])
        self._clipped_untraced = False
        self._mentions = Mentions()  # bindings and reads in source order: see `never_used`
        self._resolved: Optional[tuple[dict[int, set[object]], dict[int, str]]] = None

    # ------------------------------------------------------------------ feeding
    def visit_function_def(self, node: cst.FunctionDef) -> None:
        params = positional_names(node.params)
        self._parameter_positions.setdefault(node.name.value, params)
        every = params + [p.name.value for p in node.params.kwonly_params]
        self._functions.append((node.name.value, every))
        self._return_kinds.pop(node.name.value, None)  # a redefinition (a notebook's later cell) replaces the def
        self.vi.visit_owner(node)
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.push()
        for name in every:
            self._models.unbind(name)
            self._optimizers.bind(name, frozenset())
            self.gradients.scopes.bind(name, PARAMETER)

    def leave_function_def(self, node: cst.FunctionDef) -> None:
        self._functions.pop()
        self.vi.leave_owner(node)
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.pop()
        self._models.unbind(node.name.value)  # the name now holds a function
        self._optimizers.bind(node.name.value, frozenset())
        self.gradients.scopes.bind(node.name.value, 0)

    def visit_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.enter_child(node)  # an `elif` is a branch of the enclosing `if`
            scopes.enter_if(node)

    def leave_if(self, node: cst.If) -> None:
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.leave_if(node)
            scopes.leave_child(node)

    def visit_block(self, node: cst.CSTNode) -> None:
        """An IndentedBlock, SimpleStatementSuite or Else: maybe a branch of the innermost `if`."""
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.enter_child(node)

    def leave_block(self, node: cst.CSTNode) -> None:
        for scopes in (self._models.scopes, self._optimizers, self.gradients.scopes):
            scopes.leave_child(node)

    def visit_assign(self, node: cst.Assign) -> None:
        self._mentions.assign(node, bool(self._functions))
        for target in node.targets:
            if (isinstance(target.target, cst.Attribute) and target.target.attr.value in CLIPPING_KEYWORDS
                    and not (isinstance(node.value, cst.Name) and node.value.value == "None")):
                self._use(target.target.value, CLIPPED_LATER)  # `opt.clipnorm = 1.0` after construction
            self._bind(target.target, node.value)
            for name in target_names(target.target):
                self.vi.visit_assign_target(name, node.value)

    def visit_ann_assign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_aug_assign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.gradients.scopes.update(node.target.value, self.gradients.of(node.value))

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
        self.gradients.returns[function] = self.gradients.returns.get(function, 0) | self.gradients.of(node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        flow = self.gradients.of(value)
        if isinstance(target, cst.Name):
            self._models.bind(target.value, value)
            self._optimizers.bind(target.value, self._references(value))
            self.gradients.scopes.bind(target.value, flow)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                inner = element.value.value if isinstance(element.value, cst.StarredElement) else element.value
                if isinstance(inner, cst.Name):
                    self._models.unbind(inner.value)
                    self._optimizers.bind(inner.value, frozenset())
                    self.gradients.scopes.bind(inner.value, flow)  # `grads, norm = tf.clip_by_global_norm(...)`
                else:
                    self._bind(inner, value)
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            self.gradients.scopes.update(target.value.value, flow)  # `grads[i] = tf.clip_by_norm(g, 1.)`

    def visit_call(self, node: cst.Call) -> None:
        names = self.resolver.call_names(node)
        self.vi.visit_call(node)
        if not names.isdisjoint(VI_FUNCTIONS):
            self._use(argument(node, "optimizer", self._FIT_OPTIMIZER_POSITION), FITTED)
        if not names.isdisjoint(_MINIMIZERS):
            loss = self.vi.loss_site(argument(node, "loss_fn", 0))
            self._use(argument(node, "optimizer", 2), MINIMIZED, loss)
        if not names.isdisjoint(_FIT_OPS):
            loss = self.vi.loss_site(argument(node, "loss_fn", 0))
            self._use(argument(node, "optimizer", 1), MINIMIZED, loss)
        if isinstance(node.func, cst.Name):
            self._remember_call_site(node, node.func.value)
        self._hand_off(node, names)
        if not isinstance(node.func, cst.Attribute):
            return
        method, receiver = node.func.attr.value, node.func.value
        if method == "add" and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self._models.extend(receiver.value, node.args[0].value)
        elif method in ("append", "extend") and isinstance(receiver, cst.Name) and len(node.args) == 1:
            self.gradients.scopes.update(receiver.value, self.gradients.of(node.args[0].value))
        elif method == "minimize" and not names:
            self._use(receiver, MINIMIZED, self.vi.loss_site(argument(node, "loss", 0)))
        elif method == "apply_gradients":
            gradients = argument(node, "grads_and_vars", 0)
            clipped = gradients is not None and bool(self.gradients.of(gradients) & CLIPPED)
            self._use(receiver, APPLIED_CLIPPED if clipped else APPLIED)
        elif method == "compile":
            self._compile(node, receiver)

    def _hand_off(self, node: cst.Call, names: frozenset[str]) -> None:
        """An optimizer passed to a function imported from another package is handed off; one
        passed to a function or class of a module of this project whose source shows VI is handed
        to VI (see HANDED_OFF, HANDED_TO_VI)."""
        if not names or any(name.split(".")[0] in KNOWN_PACKAGES for name in names):
            return
        use = HANDED_TO_VI if self._project.does_vi(next(iter(names))) else HANDED_OFF
        for arg in node.args:
            if not arg.star:
                self._use(arg.value, use)

    def _compile(self, node: cst.Call, receiver: cst.BaseExpression) -> None:
        kind = self._models.kind(receiver)
        optimizer = argument(node, "optimizer", 0)
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
        if depth > _REFERENCE_DEPTH:
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
            found: frozenset = frozenset()
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

    # ----------------------------------------------------------------- recording
    def _use(self, node: Optional[cst.BaseExpression], use: str, site: Optional[tuple] = None) -> None:
        if node is None:
            return
        references = self._references(node)
        marks: set[object] = {use} if use in (FITTED, CLIPPED_LATER, HANDED_OFF, HANDED_TO_VI) else {
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

    def _remember_call_site(self, call: cst.Call, function: str) -> None:
        arguments: list[tuple[object, frozenset]] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            key = arg.keyword.value if arg.keyword is not None else index
            arguments.append((key, self._references(arg.value)))
        self._call_sites.append((function, arguments))

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

    def _resolve(self) -> tuple[dict[int, set[object]], dict[int, str]]:
        if self._resolved is not None:
            return self._resolved
        uses: dict[int, set[object]] = {}
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
                use_set = self._parameter_uses.get(parameter, set())
                model_kind = self._compiled_parameters.get(parameter)
                for reference in references:
                    add(reference, use_set, model_kind)
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
        anywhere is used; so is the only optimizer of a sketch that leaves its loop out (a surrogate
        and an optimizer, "training loop omitted")."""
        key = self._mentions.bound_to.get(id(optimizer))
        if key is None or self._mentions.read_after(key, id(optimizer)):
            return False
        uses, compiled = self._resolve()
        return any(reference != id(optimizer) and (uses.get(reference) or reference in compiled)
                   for reference in set(uses) | set(compiled))

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
        self._mentions.name(node, self._functions[0][0] if self._functions else None)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._mentions.attribute(node, self._functions[0][0] if self._functions else None)

    def visit_Arg(self, node: cst.Arg) -> None:
        self._mentions.arg(node)

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
        self._mentions.blocks.append(id(node))
        self.visit_block(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self._mentions.blocks.pop()
        self.leave_block(original_node)

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        self._mentions.blocks.append(id(node))
        self.visit_block(node)

    def leave_SimpleStatementSuite(self, original_node: cst.SimpleStatementSuite) -> None:
        self._mentions.blocks.pop()
        self.leave_block(original_node)

    def visit_Else(self, node: cst.Else) -> None:
        self.visit_block(node)

    def leave_Else(self, original_node: cst.Else) -> None:
        self.leave_block(original_node)

    def visit_Call(self, node: cst.Call) -> None:
        self._mentions.call(node)
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


def _string_optimizer(node: cst.SimpleString) -> Optional[str]:
    try:
        value = node.evaluated_value
    except Exception:  # pragma: no cover - malformed literal
        return None
    return STRING_OPTIMIZERS.get(value.lower()) if isinstance(value, str) else None


class VIOptimizerRule(Rule):
    """Base of the rules about optimizers that drive VI (ELB003, ELB009): `self.roles` is this
    file's OptimizerRoles analysis (asked in `leave_Module`, when every visit is done)."""

    analyses = (OptimizerRoles,)
    #: Triage: every finding is an optimizer construction or a Keras optimizer string.
    starts_from = (OPTIMIZER_WORDS,)

    def __init__(self, context) -> None:
        super().__init__(context)
        self.roles: OptimizerRoles = self.analysis(OptimizerRoles)

"""ELB004 eager-parameter-transform: a softplus / exp of a trainable variable computed once, then trained.

Why this module exists: it is the rule (its code, its documentation, the traversal's callbacks) and
the reading of the code it needs: which transform calls read a trainable variable, where each runs
(once at module level, once in `__init__` / `build`, once per call of a def, every step), and which
distributions hold the result. Whether such a distribution is then trained is decided at the end of
the file against the name-flow graph and the records kept in _name_flow.py, and, for a class whose
training may live in another module, by the shared Training analysis.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.analyses.training import Training
from elbolint.diagnostics import Severity
from elbolint.names import TF, TFP, TFP_VI
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._name_flow import (
    BUILDERS, Candidate, Captured, Factory, Method, NameFlow, Origin, holding_names, method_trains, subtree, within,
)
from elbolint.rules._tfp import (
    GRAPH_MODE, RAW_VARIABLE_WORDS, VARIABLE, VI_FUNCTIONS, distribution_arguments, distribution_name, is_keras_weight,
    is_non_trainable,
)

#: Element-wise maps people apply to an unconstrained variable to make a parameter positive.
_TRANSFORMS = frozenset({
    f"{TF}.nn.softplus", f"{TF}.math.softplus", f"{TF}.exp", f"{TF}.math.exp", f"{TF}.square",
    f"{TF}.math.square", f"{TF}.abs", f"{TF}.math.abs",
})
_TAPE = frozenset({f"{TF}.GradientTape"})
_SURROGATE_TAKERS = frozenset({f"{TFP_VI}.fit_surrogate_posterior", f"{TFP_VI}.monte_carlo_variational_loss"})
_FIT = frozenset({f"{TFP_VI}.fit_surrogate_posterior"})
_MINIMIZE = frozenset({"tensorflow_probability.math.minimize"})


class EagerParameterTransform(Rule):
    """
    ## What it does
    Flags `tf.nn.softplus(v)`, `tf.exp(v)`, `tf.square(v)` or `tf.abs(v)` of a trainable
    `tf.Variable` or Keras `self.add_weight(...)` (inline, or through a name or `self.` attribute
    bound to one) passed as a
    parameter of a TFP distribution that is built once — at module level, or in `__init__` /
    `build` of a class — and then trained: passed to `tfp.vi.fit_surrogate_posterior`, used in a
    `tf.GradientTape` block, or used by the loss.

    The same inside a factory function of the file (`def make_surrogate(): return
    tfd.Normal(loc, tf.nn.softplus(raw))`) whose result is built once and trained: the call is
    made at module level or in `__init__` / `build` and its result trained as above, or it is the
    surrogate given to `fit_surrogate_posterior` (directly or through a name). The variable may be
    created in the factory, visible from it, or passed to it (`make_q(tf.Variable(0.))`).

    Also a transform computed once *outside* the code that builds the distribution, read through a
    name or attribute:
    - `self.scale = tf.exp(self.log_scale)` in `__init__` / `build`, read by a distribution built in
      another method (`call`, `log_prob`, `surrogate()`): flagged where training can reach the
      object (the shared Training analysis: a class whose training may live in another module is
      at risk, test code that trains nothing is not); not when another method reassigns the
      attribute;
    - a module-level `scale = tf.nn.softplus(tf.Variable(...))` read inside a
      `JointDistributionCoroutine` model, a `JointDistributionSequential`/`Named` lambda, or a def
      that builds the distribution, when training uses it (the joint distribution is fitted, the
      def is called by the loss); not when the name is rebound in a loop, a tape or through
      `global`;
    - the same computed in a builder before the coroutine (or lambda, or loss function) nested in
      it is defined, when the builder's result is built once and trained (as for a factory) or the
      builder runs the training itself.

    ## Why is this bad?
    TensorFlow runs eagerly: `tf.nn.softplus(v)` is computed once, when the distribution is
    constructed, and the distribution keeps the resulting constant tensor. The optimizer's tape
    never sees `v` being read, so `v` gets no gradient (Keras warns "Gradients do not exist for
    variables"), the surrogate never moves, and the ELBO loss stays flat at its initial value.

    ## Example
    ```python
    raw_scale = tf.Variable(0.0)
    surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.nn.softplus(raw_scale))
    ```

    ## Use instead
    Defer the transform so it runs every time the parameter is read:
    ```python
    raw_scale = tf.Variable(0.0)
    surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.DeferredTensor(raw_scale, tf.nn.softplus))
    # or: scale=tfp.util.TransformedVariable(1.0, tfb.Softplus())
    ```
    Transforms inside a lambda (JointDistributionSequential components), inside a coroutine body,
    inside a function that builds the distribution each step, or inside a training loop are fine
    and not flagged; so is
    TF1 graph-mode code (a `tf.compat.v1.Session`, `InteractiveSession`, `placeholder` or
    `disable_eager_execution()` in the file), where the transform is a node of the graph that
    every `session.run` evaluates again.
    """

    code = "ELB004"
    name = "eager-parameter-transform"
    severity = Severity.ERROR
    confirmed_by = ("ELB105",)
    #: Triage: a transform (`_TRANSFORMS`) of a raw trainable variable.
    starts_from = (RAW_VARIABLE_WORDS, last_parts(_TRANSFORMS))
    analyses = (Training,)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._candidates: list[Candidate] = []
        self._scopes: list[object] = []  # cst.ClassDef | Method
        self._loops = 0
        self._tapes = 0
        self._surrogate_args = 0
        self._graph_mode = False
        self._surrogate_values: set[int] = set()
        self._assign_targets: list[tuple[frozenset[str], frozenset[str]]] = []  # (names, self attrs)
        self._flow = NameFlow()  # which names training code reaches
        self._methods: list[Method] = []
        self._factories: list[Factory] = []
        self._factory_calls: dict[int, Candidate] = {}  # id(call of a function of the file) -> context
        self._fitted_calls: set[int] = set()  # calls whose result is the surrogate of a fit
        self._origins: dict[int, Origin] = {}  # id(transform call) -> where it runs
        self._captured: list[Captured] = []
        self._class_captured: list[Captured] = []  # decided in finalize, by the Training analysis
        self._step_bound: set[str] = set()  # module names (re)bound in a loop, a tape or through `global`
        self._attribute_writers: dict[tuple[int, str], set[str]] = {}  # (id(class), attr) -> methods assigning it

    # ----------------------------------------------------------- bookkeeping
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        cls = self._scopes[-1] if self._scopes and isinstance(self._scopes[-1], cst.ClassDef) else None
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        method = Method(node.name.value, params[0] if cls is not None and params else None, cls, node=node)
        self._scopes.append(method)
        self._methods.append(method)
        self._flow.open_def(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        self._flow.close_def(original_node)

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1
        if not self._scopes:  # `for q in (q1, q2): fit(..., q)`: the loop variable holds what it iterates
            iterated = {n.value for n in subtree(node.iter) if isinstance(n, cst.Name)}
            for target in subtree(node.target):
                if isinstance(target, cst.Name):
                    self._flow.link(target.value, iterated)

    def leave_For(self, original_node: cst.For) -> None:
        self._loops -= 1

    def visit_While(self, node: cst.While) -> None:
        self._loops += 1

    def leave_While(self, original_node: cst.While) -> None:
        self._loops -= 1

    def visit_With(self, node: cst.With) -> None:
        if any(self._is_tape(item.item) for item in node.items):
            self._tapes += 1
            self._mark_training()
            self._flow.open_training(node)

    def leave_With(self, original_node: cst.With) -> None:
        if self._flow.close(original_node) is not None:
            self._tapes -= 1

    def visit_Assign(self, node: cst.Assign) -> None:
        names, attributes = set(), set()
        method = self._method()
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                names.add(target.target.value)
            elif isinstance(target.target, (cst.Tuple, cst.List)):  # `q, opt = build()`
                names.update(e.value.value for e in target.target.elements if isinstance(e.value, cst.Name))
            elif (isinstance(target.target, cst.Attribute) and isinstance(target.target.value, cst.Name)
                  and method is not None and target.target.value.value == method.self_name):
                attributes.add(target.target.attr.value)
        self._assign_targets.append((frozenset(names), frozenset(attributes)))
        self._note_binding(names, attributes)
        if not self._scopes and names:
            self._flow.open_binding(node)

    def leave_Assign(self, original_node: cst.Assign) -> None:
        names, _ = self._assign_targets.pop()
        collected = self._flow.close(original_node)
        if collected is not None:
            for name in names:
                self._flow.link(name, collected)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        method = self._method()
        target = node.target
        if isinstance(target, cst.Name):
            self._note_binding({target.value}, set())
        elif (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and method is not None
              and target.value.value == method.self_name):
            self._note_binding(set(), {target.attr.value})

    def visit_Global(self, node: cst.Global) -> None:
        self._step_bound.update(item.name.value for item in node.names)  # rebound by a def, when it runs

    def _note_binding(self, names, attributes) -> None:
        """Bindings that may recompute a transform computed once: a module name bound in a loop or
        a tape, a `self.` attribute assigned by a method other than `__init__`/`build`."""
        if not self._scopes and not self.resolver.in_function and (self._loops or self._tapes):
            self._step_bound.update(names)
        method = self._method()
        if method is not None and method.cls is not None and method.name not in BUILDERS:
            for attribute in attributes:
                self._attribute_writers.setdefault((id(method.cls), attribute), set()).add(method.name)

    def visit_Name(self, node: cst.Name) -> None:
        self._flow.read(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        method = self._method()
        if method is not None and isinstance(node.value, cst.Name) and node.value.value == method.self_name:
            method.attributes.add(node.attr.value)

    def visit_Arg(self, node: cst.Arg) -> None:
        if id(node.value) in self._surrogate_values:
            self._surrogate_args += 1

    def leave_Arg(self, original_node: cst.Arg) -> None:
        if id(original_node.value) in self._surrogate_values:
            self._surrogate_args -= 1

    # ------------------------------------------------------------------ checks
    def visit_Call(self, node: cst.Call) -> None:
        names = self.call_names(node)
        if not names.isdisjoint(GRAPH_MODE):
            self._graph_mode = True
        training_call = not names.isdisjoint(VI_FUNCTIONS | _MINIMIZE) or (
            isinstance(node.func, cst.Attribute) and node.func.attr.value in ("minimize", "apply_gradients")
        )
        if training_call:
            self._mark_training()
            self._flow.open_training(node)
            if not names.isdisjoint(_SURROGATE_TAKERS):
                surrogate = self.get_arg(node, "surrogate_posterior", 1)
                if surrogate is not None:
                    self._surrogate_values.add(id(surrogate.value))
                    if not names.isdisjoint(_FIT):
                        built = self.value_of(surrogate.value)  # `q = make_q()` ... fit(..., q)
                        if isinstance(built, cst.Call):
                            self._fitted_calls.add(id(built))
        if self.resolver.function_of(node) is not None:
            self._note_factory_call(node)
        if not names.isdisjoint(_TRANSFORMS):
            self._origins[id(node)] = self._origin()
        distribution = distribution_name(self.resolver, node)
        if distribution is not None:
            self._check_distribution(node, distribution)

    def _origin(self) -> Origin:
        """Where the transform call being visited runs (see Origin)."""
        names, attributes = self._bound_targets()
        scope = self.resolver.scope_node
        if self._loops or self._tapes or self.resolver.in_lambda or self._in_training_code():
            return Origin("step", scope)
        if not self._scopes:
            return Origin("step" if self.resolver.in_function else "module", scope, names=names)
        method = self._method()
        if method is None:
            return Origin("step", scope)  # a class body: not followed
        context = self._built_once()
        return Origin("builder" if context == "method" else "function", scope, method, names, attributes)

    def _bound_targets(self) -> tuple[frozenset[str], frozenset[str]]:
        """The names and `self.` attributes bound by the enclosing assignments."""
        names: frozenset[str] = frozenset()
        attributes: frozenset[str] = frozenset()
        for target_names, target_attributes in self._assign_targets:
            names |= target_names
            attributes |= target_attributes
        return names, attributes

    def _inside(self, scope: object) -> bool:
        """Whether the code being visited is inside this class or def (`Method`)."""
        return any(enclosing is scope for enclosing in self._scopes)

    def _in_training_code(self) -> bool:
        """Inside a GradientTape block or the arguments of a training call."""
        return self._flow.in_training_code()

    def _note_factory_call(self, node: cst.Call) -> None:
        """Where a call of a function of the file is made: trained as a surrogate, or built once."""
        if self._surrogate_args:
            self._fitted_calls.add(id(node))
            return
        context = self._built_once()
        if context is None:
            return
        names, attributes = self._bound_targets()
        if context == "module":
            self._factory_calls[id(node)] = Candidate(node, "", targets=names)
        else:
            method = self._method()
            assert method is not None  # `_built_once` said: in `__init__` / `build`
            self._factory_calls[id(node)] = Candidate(
                node, "", cls=method.cls, method=method.name, attributes=attributes,
            )

    def leave_Call(self, original_node: cst.Call) -> None:
        self._flow.close(original_node)

    def _check_distribution(self, node: cst.Call, distribution: str) -> None:
        for parameter, arg in distribution_arguments(node, distribution):
            found = self._eager_transform(arg.value)
            if found is None:
                continue
            transform, variable, parameter_flow = found
            origin = self._origins.get(id(transform))
            if origin is not None and origin.scope is not self.resolver.scope_node:
                if parameter_flow is None:
                    self._check_captured(node, parameter, arg, transform, variable, origin)
                continue
            if self.resolver.in_lambda:
                continue
            message = (
                f"`{parameter}` of {self.source(node.func)} is {self.source(transform)} computed once, when "
                f"the distribution is built: it holds a constant tensor, `{self.source(variable)}` never "
                f"gets a gradient and the surrogate never trains. {self._advice(variable, transform)}"
            )
            if self._surrogate_args and parameter_flow is None:
                self.report_once(arg.value, message)
                continue
            context = self._built_once()
            if context is None or parameter_flow is not None:
                self._note_factory(node, arg.value, message, parameter_flow)
                continue
            names, attributes = self._bound_targets()
            if context == "module":
                self._candidates.append(Candidate(arg.value, message, targets=names))
            else:
                method = self._method()
                assert method is not None  # `_built_once` said: in `__init__` / `build`
                self._candidates.append(Candidate(
                    arg.value, message, cls=method.cls, method=method.name, attributes=attributes,
                ))

    def _advice(self, variable: cst.BaseExpression, transform: cst.Call) -> str:
        """The remedy, spelled with the names this file imports (`tfb.Softplus`, else `tfp.bijectors.Softplus`)."""
        def spelled(member: str) -> str:
            return self.resolver.local_name_for(f"{TFP}.{member}") or f"tfp.{member}"

        return (f"Use {spelled('util.DeferredTensor')}({self.source(variable)}, {self.source(transform.func)}) or "
                f"{spelled('util.TransformedVariable')}(init, {spelled('bijectors.Softplus')}())")

    def _check_captured(self, node: cst.Call, parameter: str, arg: cst.Arg, transform: cst.Call,
                        variable: cst.BaseExpression, origin: Origin) -> None:
        """A distribution built in a def, lambda or coroutine that reads a transform computed once
        elsewhere: at module level, in `__init__`/`build`, or in the def that defines this one."""
        if origin.kind == "step":
            return
        defined_in = origin.method  # the def the transform runs in: set for "builder" and "function"
        where = "at module level" if origin.kind == "module" or defined_in is None else f"in `{defined_in.name}`"
        read = self.source(arg.value)
        what = self.source(transform)
        if read != what:
            what = f"`{read}`, that is {what}" if len(read) <= 40 else f"`{what}`"
        message = (
            f"`{parameter}` of {self.source(node.func)} is {what} computed once {where}, "
            f"not each time the distribution is built: it holds a constant tensor, `{self.source(variable)}` "
            f"gets no gradient through it and never trains. {self._advice(variable, transform)}"
        )
        outermost = next((scope for scope in self._scopes if isinstance(scope, Method)), None)
        direct = self._in_training_code()
        if origin.kind == "module":
            holders: frozenset[str]
            if outermost is None:  # a lambda of a module-level statement: `q = tfd.JointDistributionSequential([...])`
                holders = frozenset().union(*(names for names, _ in self._assign_targets))
            else:
                holders = frozenset({outermost.name})
            self._captured.append(Captured(arg.value, message, node, origin, direct, holders, outermost))
            return
        if origin.kind == "builder":
            method = self._method()
            if defined_in is None or defined_in.cls is None or not self._inside(defined_in.cls):
                return
            if self._inside(defined_in):  # a lambda or def inside `__init__`/`build` itself
                attributes: frozenset[str] = frozenset().union(*(a for _, a in self._assign_targets))
                self._candidates.append(Candidate(
                    arg.value, message, cls=defined_in.cls, method=defined_in.name, attributes=attributes,
                ))
                return
            if not origin.attributes or method is None or method.cls is not defined_in.cls:
                return
            self._class_captured.append(Captured(arg.value, message, node, origin, direct, origin.attributes, method))
            return
        # "function": the transform runs once per call of the def this distribution is nested in.
        if defined_in is None or defined_in.node is None or not self._inside(defined_in):
            return
        index = next(i for i, scope in enumerate(self._scopes) if scope is defined_in)
        nested = self._scopes[index + 1:]
        holder: cst.CSTNode = node
        holders = frozenset()
        inner = next((scope for scope in nested if isinstance(scope, Method)), None)
        if inner is not None and inner.node is not None:  # a nested def (a coroutine, a loss function)
            holder, holders = inner.node, frozenset({inner.name})
        else:  # a lambda of a statement of the def
            holders = frozenset().union(*(names for names, _ in self._assign_targets))
        self._captured.append(Captured(arg.value, message, node, origin, direct, holders, defined_in))
        self._factories.append(Factory(
            arg.value, message, defined_in.node, holder if inner is not None else node,
            holding_names(defined_in.node, holders),
        ))

    def _note_factory(self, distribution: cst.Call, node: cst.CSTNode, message: str, parameter_flow) -> None:
        """A transform in a function (not a lambda, loop or tape): decided at its calls."""
        method = self._method()
        if method is None or method.node is None or self._loops or self._tapes:
            return
        if method.cls is not None and method.name in ("call", "__call__"):
            return  # run every step by Keras / tf.Module
        names, _ = self._bound_targets()
        self._factories.append(Factory(node, message, method.node, distribution, names, parameter_flow))

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._graph_mode:
            return
        trained = self._flow.trained()
        for captured in self._captured:
            if self._captured_trained(captured, trained):
                self.report_once(captured.node, captured.message)
        for candidate in self._candidates:
            if candidate.cls is None:
                if candidate.targets & trained:
                    self.report_once(candidate.node, candidate.message)
            elif self._class_trains(candidate):
                self.report_once(candidate.node, candidate.message)
        for factory in self._factories:
            if not self._returns(factory):
                continue
            calls = [site.call for site in self.resolver.call_sites(factory.function)]
            if factory.parameter is not None:
                passing = {id(call) for _, _, call in self._variable_arguments(factory.parameter)}
                calls = [call for call in calls if id(call) in passing]
            for call in calls:
                if self._trained_once(call, trained):
                    self.report_once(factory.node, factory.message)
                    break

    def _captured_trained(self, captured: Captured, trained: set[str]) -> bool:
        """Whether training uses a distribution that reads a transform computed once outside it."""
        method = captured.method
        if captured.origin.kind == "function":  # trained inside the def that computed the transform
            return method is not None and method.trains and (captured.direct or bool(captured.holders & trained))
        if captured.origin.names & self._step_bound:
            return False  # the module name is bound again in a loop or a tape (or through `global`)
        if captured.direct:
            return True
        if method is not None and method.cls is not None:  # a method reading a module-level transform
            return method_trains(method) or method.name in trained
        return bool(captured.holders & trained)

    def finalize(self) -> None:
        """A method's distribution reading `self.<attr>` that `__init__`/`build` computed once: the
        object holds the constant, so the Training analysis decides (a class whose training may
        live elsewhere is at risk; one in test code that trains nothing is not)."""
        if self._graph_mode:
            return
        training: Training = self.analysis(Training)
        for captured in self._class_captured:
            builder = captured.origin.method
            cls = builder.cls if builder is not None else None
            if any(self._attribute_writers.get((id(cls), attribute)) for attribute in captured.holders):
                continue  # recomputed by another method (`update()`, `call`)
            if training.at_risk(captured.distribution, captured.node):
                self.report_once(captured.node, captured.message)

    def _variable_arguments(self, flow) -> list[tuple[object, cst.BaseExpression, cst.Call]]:
        """(flow, argument, call) for the direct calls passing a trainable tf.Variable for the
        parameter `flow` stopped at."""
        found: list[tuple[object, cst.BaseExpression, cst.Call]] = []
        function, name = flow.parameter
        for site in self.resolver.call_sites(function):
            for inner, argument in self.resolver.argument_flows(flow, depth=1):
                if not within(argument, site.call):
                    continue
                if self.resolver.read(inner, self._is_trainable_variable):
                    found.append((inner, argument, site.call))
        return found

    def _is_trainable_variable(self, node: cst.BaseExpression) -> bool:
        """A trainable `tf.Variable`, or a Keras layer's `self.add_weight(...)`."""
        if not isinstance(node, cst.Call) or is_non_trainable(node):
            return False
        return not self.call_names(node).isdisjoint(VARIABLE) or is_keras_weight(node)

    def _trained_once(self, call: cst.Call, trained: set[str]) -> bool:
        if id(call) in self._fitted_calls:
            return True
        context = self._factory_calls.get(id(call))
        if context is None:
            return False
        if context.cls is None:
            return bool(context.targets & trained)
        return self._class_trains(context)

    def _returns(self, factory: Factory) -> bool:
        """Whether the distribution is (part of) what the function returns: inside a returned
        expression, or bound to a local name that a returned expression uses."""
        for value in self.resolver.returned_values(factory.function):
            for node in subtree(value):
                if node is factory.distribution:
                    return True
                if isinstance(node, cst.Name) and node.value in factory.targets:
                    return True
        return False

    # ----------------------------------------------------------------- helpers
    def _eager_transform(self, node: cst.BaseExpression, depth: int = 0):
        """(transform call, variable, parameter flow) when `node` is a transform of a variable,
        possibly shifted or scaled by constants (`1e-5 + tf.nn.softplus(v)`) or reached through a
        name. The parameter flow is set when the variable is a parameter of the enclosing function
        (known only at its calls)."""
        if depth > 5:
            return None
        if isinstance(node, cst.BinaryOperation):
            return self._eager_transform(node.left, depth + 1) or self._eager_transform(node.right, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self._eager_transform(node.expression, depth + 1)
        if isinstance(node, (cst.Name, cst.Attribute)):
            resolved = self.value_of(node)
            if resolved is node:
                return None
            return self._eager_transform(resolved, depth + 1)
        if isinstance(node, cst.Call) and not self.call_names(node).isdisjoint(_TRANSFORMS):
            if not node.args or node.args[0].keyword is not None or node.args[0].star:
                return None
            found = self._variable_in(node.args[0].value)
            if found is not None:
                return (node, *found)
        return None

    def _variable_in(self, node: cst.BaseExpression, depth: int = 0):
        """(the expression naming the trainable tf.Variable `node` reads, parameter flow or None),
        followed with the resolver's value flow (names, elements `v[0]`, tuple elements, values
        returned by functions of the file); None when no variable is visible."""
        if depth > 4:
            return None
        if isinstance(node, cst.BinaryOperation):
            return self._variable_in(node.left, depth + 1) or self._variable_in(node.right, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            return self._variable_in(node.expression, depth + 1)
        flow = self.resolver.follow(node)
        if self.resolver.read(flow, self._is_trainable_variable):
            return node, None
        if flow.parameter is not None and isinstance(node, (cst.Name, cst.Subscript)) \
                and not self.resolver.in_lambda:
            return node, flow
        return None

    def _built_once(self) -> Optional[str]:
        """"module" or "method" when the code being visited runs once; None otherwise."""
        if self._loops or self._tapes:
            return None
        if not self._scopes:
            return None if self.resolver.in_function else "module"
        innermost = self._scopes[-1]
        if isinstance(innermost, Method) and innermost.cls is not None and innermost.name in BUILDERS:
            if len(self._scopes) >= 2 and self._scopes[-2] is innermost.cls:
                return "method"
        return None

    def _method(self) -> Optional[Method]:
        innermost = self._scopes[-1] if self._scopes else None
        return innermost if isinstance(innermost, Method) else None

    def _is_tape(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and not self.call_names(node).isdisjoint(_TAPE)

    def _mark_training(self) -> None:
        for scope in self._scopes:
            if isinstance(scope, Method):
                scope.trains = True

    def _class_trains(self, candidate: Candidate) -> bool:
        if not candidate.attributes:
            return False
        for method in self._methods:
            if method.cls is not candidate.cls or method.name in BUILDERS:
                continue
            if not method.attributes & candidate.attributes:
                continue
            if method_trains(method):
                return True
        return False

"""ELB004 eager-parameter-transform."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TF, TFP_VI
from elbolint.rule import Rule
from elbolint.rules._tfp import VARIABLE, VI_FUNCTIONS, distribution_arguments, distribution_name, is_non_trainable

#: Element-wise maps people apply to an unconstrained variable to make a parameter positive.
_TRANSFORMS = frozenset({
    f"{TF}.nn.softplus", f"{TF}.math.softplus", f"{TF}.exp", f"{TF}.math.exp", f"{TF}.square",
    f"{TF}.math.square", f"{TF}.abs", f"{TF}.math.abs",
})
_TAPE = frozenset({f"{TF}.GradientTape"})
#: Calls that only graph-mode TF1 code makes: there, a transform is re-run by every `session.run`.
_GRAPH_MODE = frozenset(
    f"{prefix}.{name}" for prefix in (TF, f"{TF}.compat.v1", f"{TF}.compat.v1.compat.v1")
    for name in ("Session", "InteractiveSession", "placeholder", "disable_eager_execution", "disable_v2_behavior")
)
_SURROGATE_TAKERS = frozenset({f"{TFP_VI}.fit_surrogate_posterior", f"{TFP_VI}.monte_carlo_variational_loss"})
_FIT = frozenset({f"{TFP_VI}.fit_surrogate_posterior"})
_MINIMIZE = frozenset({"tensorflow_probability.math.minimize"})
#: Methods built once per object.
_BUILDERS = ("__init__", "build")
#: Methods whose use of an attribute means it takes part in training.
_TRAINING_WORDS = ("loss", "elbo", "log_prob", "train", "step", "fit", "kl", "divergence")


@dataclass
class _Candidate:
    node: cst.CSTNode
    message: str
    targets: frozenset[str] = frozenset()  # module-level names bound to the distribution
    cls: Optional[cst.ClassDef] = None
    method: Optional[str] = None
    attributes: frozenset[str] = frozenset()  # `self.<attr>` bound to the distribution in __init__/build


@dataclass
class _Method:
    name: str
    self_name: Optional[str]
    cls: Optional[cst.ClassDef]
    attributes: set[str] = field(default_factory=set)
    trains: bool = False
    node: Optional[cst.FunctionDef] = None


@dataclass
class _Factory:
    """An eager transform inside a function whose result may be built once and trained."""
    node: cst.CSTNode  # the parameter, reported
    message: str
    function: cst.FunctionDef
    distribution: cst.Call
    targets: frozenset[str]  # local names the distribution is bound to
    parameter: Optional[object] = None  # Flow: the variable is this parameter of the function


class EagerParameterTransform(Rule):
    """
    ## What it does
    Flags `tf.nn.softplus(v)`, `tf.exp(v)`, `tf.square(v)` or `tf.abs(v)` of a trainable
    `tf.Variable` (inline, or through a name or `self.` attribute bound to one) passed as a
    parameter of a TFP distribution that is built once — at module level, or in `__init__` /
    `build` of a class — and then trained: passed to `tfp.vi.fit_surrogate_posterior`, used in a
    `tf.GradientTape` block, or used by the loss.

    The same inside a factory function of the file (`def make_surrogate(): return
    tfd.Normal(loc, tf.nn.softplus(raw))`) whose result is built once and trained: the call is
    made at module level or in `__init__` / `build` and its result trained as above, or it is the
    surrogate given to `fit_surrogate_posterior` (directly or through a name). The variable may be
    created in the factory, visible from it, or passed to it (`make_q(tf.Variable(0.))`).

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
    Transforms inside a lambda (JointDistributionSequential components), inside a function that
    builds the distribution each step, or inside a training loop are fine and not flagged; so is
    TF1 graph-mode code (a `tf.compat.v1.Session`, `InteractiveSession`, `placeholder` or
    `disable_eager_execution()` in the file), where the transform is a node of the graph that
    every `session.run` evaluates again.
    """

    code = "ELB004"
    name = "eager-parameter-transform"
    severity = Severity.ERROR
    confirmed_by = ("ELB105",)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._candidates: list[_Candidate] = []
        self._scopes: list[object] = []  # cst.ClassDef | _Method
        self._loops = 0
        self._tapes = 0
        self._surrogate_args = 0
        self._graph_mode = False
        self._surrogate_values: set[int] = set()
        self._assign_targets: list[tuple[frozenset[str], frozenset[str]]] = []  # (names, self attrs)
        # Name-flow graph: name -> names its value or body uses; names used by training code.
        self._edges: dict[str, set[str]] = {}
        self._roots: set[str] = set()
        self._collectors: list[tuple[cst.CSTNode, set[str]]] = []
        self._methods: list[_Method] = []
        self._factories: list[_Factory] = []
        self._factory_calls: dict[int, _Candidate] = {}  # id(call of a function of the file) -> context
        self._fitted_calls: set[int] = set()  # calls whose result is the surrogate of a fit

    # ----------------------------------------------------------- bookkeeping
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        cls = self._scopes[-1] if self._scopes and isinstance(self._scopes[-1], cst.ClassDef) else None
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        method = _Method(node.name.value, params[0] if cls is not None and params else None, cls, node=node)
        self._scopes.append(method)
        self._methods.append(method)
        body: set[str] = set()
        self._edges.setdefault(node.name.value, set())
        self._collectors.append((node, body))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        _, body = self._collectors.pop()
        self._edges[original_node.name.value] |= body

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1

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
            self._collectors.append((node, self._roots))

    def leave_With(self, original_node: cst.With) -> None:
        if self._collectors and self._collectors[-1][0] is original_node:
            self._collectors.pop()
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
        if not self._scopes and names:
            collected: set[str] = set()
            self._collectors.append((node, collected))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        names, _ = self._assign_targets.pop()
        if self._collectors and self._collectors[-1][0] is original_node:
            _, collected = self._collectors.pop()
            for name in names:
                self._edges.setdefault(name, set()).update(collected)

    def visit_Name(self, node: cst.Name) -> None:
        for _, collected in self._collectors:
            collected.add(node.value)

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
        if not names.isdisjoint(_GRAPH_MODE):
            self._graph_mode = True
        training_call = not names.isdisjoint(VI_FUNCTIONS | _MINIMIZE) or (
            isinstance(node.func, cst.Attribute) and node.func.attr.value in ("minimize", "apply_gradients")
        )
        if training_call:
            self._mark_training()
            self._collectors.append((node, self._roots))
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
        distribution = distribution_name(self.resolver, node)
        if distribution is not None:
            self._check_distribution(node, distribution)

    def _note_factory_call(self, node: cst.Call) -> None:
        """Where a call of a function of the file is made: trained as a surrogate, or built once."""
        if self._surrogate_args:
            self._fitted_calls.add(id(node))
            return
        context = self._built_once()
        if context is None:
            return
        names, attributes = frozenset(), frozenset()
        for target_names, target_attributes in self._assign_targets:
            names |= target_names
            attributes |= target_attributes
        if context == "module":
            self._factory_calls[id(node)] = _Candidate(node, "", targets=names)
        else:
            method = self._method()
            self._factory_calls[id(node)] = _Candidate(
                node, "", cls=method.cls, method=method.name, attributes=attributes,
            )

    def leave_Call(self, original_node: cst.Call) -> None:
        if self._collectors and self._collectors[-1][0] is original_node:
            self._collectors.pop()

    def _check_distribution(self, node: cst.Call, distribution: str) -> None:
        if self.resolver.in_lambda:
            return
        for parameter, arg in distribution_arguments(node, distribution):
            found = self._eager_transform(arg.value)
            if found is None:
                continue
            transform, variable, parameter_flow = found
            message = (
                f"`{parameter}` of {self.source(node.func)} is {self.source(transform)} computed once, when "
                f"the distribution is built: it holds a constant tensor, `{self.source(variable)}` never "
                "gets a gradient and the surrogate never trains. Use "
                f"tfp.util.DeferredTensor({self.source(variable)}, {self.source(transform.func)}) or "
                "tfp.util.TransformedVariable(init, tfb.Softplus())"
            )
            if self._surrogate_args and parameter_flow is None:
                self.report_once(arg.value, message)
                continue
            context = self._built_once()
            if context is None or parameter_flow is not None:
                self._note_factory(node, arg.value, message, parameter_flow)
                continue
            names, attributes = frozenset(), frozenset()
            for target_names, target_attributes in self._assign_targets:
                names |= target_names
                attributes |= target_attributes
            if context == "module":
                self._candidates.append(_Candidate(arg.value, message, targets=names))
            else:
                method = self._method()
                self._candidates.append(_Candidate(
                    arg.value, message, cls=method.cls, method=method.name, attributes=attributes,
                ))

    def _note_factory(self, distribution: cst.Call, node: cst.CSTNode, message: str, parameter_flow) -> None:
        """A transform in a function (not a lambda, loop or tape): decided at its calls."""
        method = self._method()
        if method is None or method.node is None or self._loops or self._tapes:
            return
        if method.cls is not None and method.name in ("call", "__call__"):
            return  # run every step by Keras / tf.Module
        names = frozenset()
        for target_names, _ in self._assign_targets:
            names |= target_names
        self._factories.append(_Factory(node, message, method.node, distribution, names, parameter_flow))

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._graph_mode:
            return
        trained = self._closure()
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

    def _variable_arguments(self, flow) -> list[tuple[object, cst.BaseExpression, cst.Call]]:
        """(flow, argument, call) for the direct calls passing a trainable tf.Variable for the
        parameter `flow` stopped at."""
        found = []
        function, name = flow.parameter
        for site in self.resolver.call_sites(function):
            for inner, argument in self.resolver.argument_flows(flow, depth=1):
                if not _within(argument, site.call):
                    continue
                if self.resolver.read(inner, self._is_trainable_variable):
                    found.append((inner, argument, site.call))
        return found

    def _is_trainable_variable(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and not self.call_names(node).isdisjoint(VARIABLE) \
            and not is_non_trainable(node)

    def _trained_once(self, call: cst.Call, trained: set[str]) -> bool:
        if id(call) in self._fitted_calls:
            return True
        context = self._factory_calls.get(id(call))
        if context is None:
            return False
        if context.cls is None:
            return bool(context.targets & trained)
        return self._class_trains(context)

    def _returns(self, factory: _Factory) -> bool:
        """Whether the distribution is (part of) what the function returns: inside a returned
        expression, or bound to a local name that a returned expression uses."""
        for value in self.resolver.returned_values(factory.function):
            for node in _subtree(value):
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
        if isinstance(innermost, _Method) and innermost.cls is not None and innermost.name in _BUILDERS:
            if len(self._scopes) >= 2 and self._scopes[-2] is innermost.cls:
                return "method"
        return None

    def _method(self) -> Optional[_Method]:
        innermost = self._scopes[-1] if self._scopes else None
        return innermost if isinstance(innermost, _Method) else None

    def _is_tape(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and not self.call_names(node).isdisjoint(_TAPE)

    def _mark_training(self) -> None:
        for scope in self._scopes:
            if isinstance(scope, _Method):
                scope.trains = True

    def _closure(self) -> set[str]:
        trained: set[str] = set()
        pending = list(self._roots)
        while pending:
            name = pending.pop()
            if name in trained:
                continue
            trained.add(name)
            pending.extend(self._edges.get(name, ()))
        return trained

    def _class_trains(self, candidate: _Candidate) -> bool:
        if not candidate.attributes:
            return False
        for method in self._methods:
            if method.cls is not candidate.cls or method.name in _BUILDERS:
                continue
            if not method.attributes & candidate.attributes:
                continue
            lowered = method.name.lower()
            if method.trains or method.name in ("call", "__call__") or any(w in lowered for w in _TRAINING_WORDS):
                return True
        return False



def _subtree(node: cst.CSTNode):
    """`node` and every node below it (returned expressions are small)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _within(node: cst.CSTNode, container: cst.CSTNode) -> bool:
    return any(inner is node for inner in _subtree(container))

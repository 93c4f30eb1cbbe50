"""Value flow: where the value of an expression came from, within one file (the resolver's `follow`).

Why a module of its own: the resolver (resolver.py) records bindings during the traversal; this is
the bounded question rules ask on top of those bindings, with its own limits and records. `follow(node)`
returns a `Flow`: the expression a value last came from, and the scopes that expression is read in
(`within(flow)` / `read(flow, question)` let a rule run its usual checks there). It goes one step
further than the resolver's `value_of` through

* subscripts and slices (`v[0]`, `v[1:]` of `v = tf.Variable(...)`: the subscripts are kept on
  the Flow); an integer index of a literal list or tuple selects the element (`params[1]` of
  `params = [a, b]`);
* tuple unpacking (`loc, scale = tf.Variable(0.), tf.Variable(1.)`, `q, opt = build()`);
* calls to a function of the file, into the expression it returns (`surrogate = build(3)`), with
  the call's arguments (or the defaults) bound to the function's parameters, so
  `make_q(tf.Variable(1.))` is read with `s = tf.Variable(1.)` inside `make_q`;
* and when the value is a parameter of a `def` that no followed call bound, it says so
  (`Flow.parameter`): `argument_flows(flow)` then follows the argument passed at every call of
  that function the traversal has seen (rules ask in `leave_Module`, when all calls are known),
  through at most `FLOW_CALLS` levels of callers.

Limits, on purpose: at most `FLOW_STEPS` hops and `FLOW_CALLS` nested calls per question; one
file; the functions followed are `def`s bound in a visible scope (or at module level, defined
later), `self.method(...)` of the enclosing class and, for arguments only, a class of the file
called as a constructor (its `__init__`); not lambdas, not functions with decorators other than
`tf.function`, not methods of other objects, not `*args`/`**kwargs` beyond what is spelled out.
Bindings are the last ones seen (no control flow); a function's locals are read as they stand at
the end of its body; a function with several `return` values is followed only when they are all
the same name. Anything else ends the flow where it stands, which rules treat as "unknown",
never as a finding.

`ValueFlow` is a mixin of the Resolver: it reads the scopes and the records (defs, methods, calls)
the Resolver keeps during the traversal, declared below.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import libcst as cst

from elbolint.cst_helpers import integer_index, parameter_names, positional_parameters

UNKNOWN = object()  # a name bound to something we do not follow (parameter, loop target, ...)

#: Bounds of one value-flow question (see the module docstring).
FLOW_STEPS = 16
FLOW_CALLS = 2


class Element:
    """`a, b = value`: `a` is element `index` of `value`, read in `scopes`."""

    __slots__ = ("value", "index", "scopes")

    def __init__(self, value: cst.BaseExpression, index: int, scopes: tuple) -> None:
        self.value, self.index, self.scopes = value, index, scopes


class Argument:
    """A parameter bound, for one followed call, to the argument (or default) `value` read in `scopes`."""

    __slots__ = ("value", "scopes")

    def __init__(self, value: cst.BaseExpression, scopes: tuple) -> None:
        self.value, self.scopes = value, scopes


@dataclass(frozen=True)
class Flow:
    """Where a value came from (see the module docstring).

    `node` is the expression the flow stopped at (a call such as `tf.Variable(...)`, a literal, or
    the name it could not follow); `subscripts` the `cst.Subscript`s applied on the way, first
    applied first (`v[0]` of a variable); `scopes` the scope stack `node` is read in;
    `parameter` is (def, parameter name) when `node` is a parameter of that def that no followed
    call bound."""

    node: cst.BaseExpression
    subscripts: tuple = ()
    scopes: tuple = ()
    parameter: Optional[tuple] = None

    def indices(self) -> Optional[list[int]]:
        """The integer indices of `subscripts` (`v[0][1]` -> [0, 1]); None if any is not a literal
        integer (a slice, a name, several dimensions)."""
        found = []
        for subscript in self.subscripts:
            index = integer_index(subscript)
            if index is None:
                return None
            found.append(index)
        return found


@dataclass(frozen=True)
class CallSite:
    """A call of a function of the file: the call, the scopes it is read in, and the callee."""

    call: cst.Call
    scopes: tuple
    function: cst.FunctionDef
    skip_first: bool  # a method called through `self.` or a class constructor: `self` is implicit
    #: What each plain-name argument was bound to when the call was made: a notebook that rebinds
    #: the name in a later cell (`sigma = tf.constant(1.)` ... `sigma = tf.Variable(2.)`) did not
    #: pass the later value to the earlier call.
    names_at_call: dict = field(default_factory=dict)


@dataclass
class Scope:
    """One scope of the Resolver: its aliases of imported objects and the values last bound in it."""

    kind: str  # "module" | "class" | "function" | "lambda"
    node: cst.CSTNode
    aliases: dict[str, str] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)  # class scopes: self.<x>
    self_name: Optional[str] = None  # function scopes that are methods: their first parameter
    params: tuple = ()  # function scopes: their parameter names


class ValueFlow:
    """The value-flow questions of the Resolver (see the module docstring)."""

    # Kept by the Resolver during the traversal (resolver.py).
    _scopes: list[Scope]
    _functions: dict[int, tuple[tuple, Scope]]  # id(def) -> (enclosing scopes, its scope)
    _module_defs: dict[str, object]  # top-level def/class by name (None: defined twice)
    _methods: dict[int, dict[str, Optional[cst.FunctionDef]]]  # id(class) -> methods
    _returns: dict[int, list[cst.Return]]
    _calls: dict[int, list[CallSite]]  # id(def) -> its calls seen so far

    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        raise NotImplementedError  # the Resolver's

    def follow(self, node: cst.BaseExpression, scopes: Optional[tuple] = None) -> Flow:
        """Where the value of `node` comes from, followed through names, `self.` attributes,
        subscripts, tuple unpacking and calls of the file's functions (see the module docstring).
        `scopes` defaults to the scopes of the node being visited."""
        scopes = tuple(self._scopes) if scopes is None else scopes
        return self._follow(node, scopes, [FLOW_STEPS], 0)

    @contextmanager
    def within(self, flow: Flow) -> Iterator[cst.BaseExpression]:
        """Answer every query (`value_of`, `call_names`, `follow`, ...) in the scopes of `flow`,
        e.g. inside the function a value was returned from; yields `flow.node`."""
        saved = self._scopes
        self._scopes = list(flow.scopes) or saved
        try:
            yield flow.node
        finally:
            self._scopes = saved

    def read(self, flow: Flow, question):
        """`question(flow.node)` answered in the scopes of `flow` (see `within`)."""
        with self.within(flow) as node:
            return question(node)

    def function_of(self, call: cst.Call) -> Optional[cst.FunctionDef]:
        """The `def` of this file that `call` runs (a class constructor: its `__init__`), or None."""
        callee = self._callee(call, self._scopes)
        return callee[0] if callee is not None else None

    def call_sites(self, function: cst.FunctionDef) -> list[CallSite]:
        """Every call of `function` seen so far in the traversal (all of them in `leave_Module`)."""
        return list(self._calls.get(id(function), ()))

    def returned_values(self, function: cst.FunctionDef) -> list[cst.BaseExpression]:
        """The values of `function`'s own `return` statements (not those of nested functions)."""
        return [r.value for r in self._returns_of(function) if r.value is not None]

    def argument_flows(self, flow: Flow, depth: int = FLOW_CALLS) -> list[tuple[Flow, cst.BaseExpression]]:
        """When `flow` stopped at a parameter of a def: for each call of that def in the file, the
        flow of the argument passed for it and the argument as written at the call (the place to
        report). An argument that is itself a parameter of its caller is followed to that caller's
        calls, `depth` levels at most; arguments not passed (defaults) are left out."""
        if flow.parameter is None or depth <= 0:
            return []
        function, name = flow.parameter
        found: list[tuple[Flow, cst.BaseExpression]] = []
        for site in self._calls.get(id(function), ()):
            bound = self._bind_arguments(site.function, site.skip_first, site.call, site.scopes, defaults=False)
            if bound is None or not isinstance(bound.get(name), Argument):
                continue
            argument = bound[name]
            inner = self.follow(site.names_at_call.get(id(argument.value), argument.value), argument.scopes)
            inner = Flow(inner.node, inner.subscripts + flow.subscripts, inner.scopes, inner.parameter)
            if inner.parameter is not None and depth > 1:
                found += [(deeper, node) for deeper, node in self.argument_flows(inner, depth - 1)]
            else:
                found.append((inner, argument.value))
        return found

    def _follow(self, node: cst.BaseExpression, scopes: tuple, budget: list[int], calls: int) -> Flow:
        while budget[0] > 0:
            budget[0] -= 1
            if isinstance(node, cst.Name):
                found = self._lookup_in(scopes, node.value)
                if found is None:
                    break
                index, alias, value = found
                if alias is not None:
                    break
                if isinstance(value, cst.BaseExpression):
                    node, scopes = value, scopes[: index + 1]
                    continue
                if isinstance(value, Argument):
                    node, scopes = value.value, value.scopes
                    continue
                if isinstance(value, Element):
                    element = self._element(value, budget, calls)
                    if element is None:
                        break
                    node, scopes = element
                    continue
                scope = scopes[index]
                if value is UNKNOWN and scope.kind == "function" and node.value in scope.params:
                    return Flow(node, (), scopes, (scope.node, node.value))
                break
            if isinstance(node, cst.Attribute):
                bound = self._attribute_in(scopes, node)
                if bound is None:
                    break
                node = bound
                continue
            if isinstance(node, cst.Subscript):
                inner = self._follow(node.value, scopes, budget, calls)
                element = self._select(inner, node)
                if element is None:
                    return Flow(inner.node, inner.subscripts + (node,), inner.scopes, inner.parameter)
                node, scopes = element
                continue
            if isinstance(node, cst.Call) and calls < FLOW_CALLS:
                entered = self._enter(node, scopes)
                if entered is None:
                    break
                node, scopes = entered
                calls += 1
                continue
            break
        return Flow(node, (), scopes, None)

    def _element(self, value: Element, budget: list[int], calls: int):
        inner = self._follow(value.value, value.scopes, budget, calls)
        if inner.subscripts or not isinstance(inner.node, (cst.Tuple, cst.List)):
            return None
        elements = inner.node.elements
        if any(isinstance(e, cst.StarredElement) for e in elements) or value.index >= len(elements):
            return None
        return elements[value.index].value, inner.scopes

    @staticmethod
    def _select(inner: Flow, subscript: cst.Subscript):
        """`params[1]` of a literal list or tuple: the element and its scopes; None otherwise."""
        if inner.subscripts or not isinstance(inner.node, (cst.Tuple, cst.List)):
            return None
        index = integer_index(subscript)
        elements = inner.node.elements
        if index is None or any(isinstance(e, cst.StarredElement) for e in elements):
            return None
        if not -len(elements) <= index < len(elements):
            return None
        return elements[index].value, inner.scopes

    def _enter(self, call: cst.Call, scopes: tuple):
        """(returned expression, scopes with the call's arguments bound) for a call of a def of
        the file whose returned value is unambiguous; None otherwise."""
        callee = self._callee(call, scopes)
        if callee is None or callee[2]:
            return None
        function, skip_first, _ = callee
        values = self.returned_values(function)
        if not values:
            return None
        first = values[0]
        if len(values) > 1 and not (
            isinstance(first, cst.Name) and all(isinstance(v, cst.Name) and v.value == first.value for v in values)
        ):
            return None
        parents, own = self._function_scopes(function, scopes)
        instance = Scope("function", function, aliases=own.aliases, values=dict(own.values),
                          self_name=own.self_name, params=own.params)
        bound = self._bind_arguments(function, skip_first, call, scopes, defaults=True, parents=parents)
        for name, argument in (bound or {}).items():
            if instance.values.get(name) is UNKNOWN:
                instance.values[name] = argument
        return first, parents + (instance,)

    def _function_scopes(self, function: cst.FunctionDef, scopes: tuple) -> tuple[tuple, Scope]:
        recorded = self._functions.get(id(function))
        if recorded is not None:
            return recorded
        # A module-level def called before the traversal reached it: only its parameters are known.
        own = Scope("function", function, params=tuple(parameter_names(function.params)))
        for name in own.params:
            own.values[name] = UNKNOWN
        return (scopes[:1], own)

    def _bind_arguments(self, function: cst.FunctionDef, skip_first: bool, call: cst.Call, scopes: tuple,
                        defaults: bool, parents: tuple = ()) -> Optional[dict[str, Argument]]:
        """parameter -> Argument for the arguments spelled out at `call` (and the defaults)."""
        params = function.params
        positional = positional_parameters(params)
        if skip_first:
            positional = positional[1:]
        names = {p.name.value for p in (*positional, *params.kwonly_params)}
        bound: dict[str, Argument] = {}
        position, starred = 0, False
        for arg in call.args:
            if arg.star:
                starred = True
                continue
            if arg.keyword is not None:
                if arg.keyword.value in names:
                    bound[arg.keyword.value] = Argument(arg.value, scopes)
            elif not starred and position < len(positional):
                bound[positional[position].name.value] = Argument(arg.value, scopes)
                position += 1
        if defaults and not starred:
            for param in (*positional, *params.kwonly_params):
                if param.name.value not in bound and param.default is not None:
                    bound[param.name.value] = Argument(param.default, parents)
        return bound

    def _callee(self, call: cst.Call, scopes) -> Optional[tuple[cst.FunctionDef, bool, bool]]:
        """(def, skip_first, is_constructor) of the function of this file `call` runs."""
        func = call.func
        if isinstance(func, cst.Name):
            found = self._lookup_in(scopes, func.value)
            if found is None:
                target = self._module_defs.get(func.value)  # defined further down
            else:
                target = found[2] if found[1] is None else None
            if isinstance(target, cst.FunctionDef):
                return (target, False, False) if _followable(target, self) else None
            if isinstance(target, cst.ClassDef):
                init = self._methods.get(id(target), {}).get("__init__")
                if init is None:
                    return None
                return (init, True, True) if _followable(init, self) else None
            return None
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            cls, self_name = self._method_context(scopes)
            if cls is None or func.value.value != self_name:
                return None
            method = self._methods.get(id(cls.node), {}).get(func.attr.value)
            if method is None or not _followable(method, self):
                return None
            return method, True, False
        return None

    def _method_context(self, scopes) -> tuple[Optional[Scope], Optional[str]]:
        """(class scope, self name) of the method whose code `scopes` reads."""
        for index in range(len(scopes) - 1, 0, -1):
            if scopes[index].kind == "function" and scopes[index - 1].kind == "class":
                innermost = None
                for scope in reversed(scopes):
                    if scope.kind == "function":
                        innermost = scope
                        break
                return scopes[index - 1], innermost.self_name if innermost is not None else None
        return None, None

    def _attribute_in(self, scopes, node: cst.Attribute) -> Optional[cst.BaseExpression]:
        if not isinstance(node.value, cst.Name):
            return None
        cls, self_name = self._method_context(scopes)
        if cls is None or node.value.value != self_name:
            return None
        return cls.attributes.get(node.attr.value)

    def _returns_of(self, function: cst.FunctionDef) -> list[cst.Return]:
        found = self._returns.get(id(function))
        if found is None:
            found = self._returns[id(function)] = _own_returns(function)
        return found

    def _lookup_in(self, scopes, name: str):
        """(index in scopes, alias target, value) of the innermost binding of `name`, or None."""
        last = len(scopes) - 1
        for index in range(last, -1, -1):
            scope = scopes[index]
            if scope.kind == "class" and index != last:
                continue
            if name in scope.aliases:
                return index, scope.aliases[name], None
            if name in scope.values:
                return index, None, scope.values[name]
        return None


def _followable(function: cst.FunctionDef, resolver: "ValueFlow") -> bool:
    """A def whose calls run its body as written: no decorators, or only `tf.function`."""
    for decorator in function.decorators:
        expression = decorator.decorator
        if isinstance(expression, cst.Call):
            expression = expression.func
        if resolver.qualified_names(expression).isdisjoint(_TF_FUNCTION):
            return False
    return not isinstance(function.asynchronous, cst.Asynchronous)


_TF_FUNCTION = frozenset({"tensorflow.function", "tensorflow.compat.v2.function", "tensorflow.compat.v1.function"})
_NESTED = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
_BLOCKS = (cst.BaseSuite, cst.BaseStatement, cst.BaseSmallStatement, cst.ExceptHandler, cst.ExceptStarHandler,
           cst.Else, cst.Finally, cst.MatchCase, cst.If)


def _own_returns(function: cst.FunctionDef) -> list[cst.Return]:
    """The `return` statements of `function` itself, in source order, found without walking
    expressions (statements only)."""
    found: list[cst.Return] = []
    stack: list[cst.CSTNode] = [function.body]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Return):
            found.append(node)
            continue
        if isinstance(node, _NESTED) or isinstance(node, cst.BaseExpression):
            continue
        if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            stack.extend(reversed([n for n in node.body if isinstance(n, cst.Return)]))
            continue
        stack.extend(reversed([c for c in node.children if isinstance(c, _BLOCKS)]))
    return found

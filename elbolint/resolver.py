"""One TFP-aware name resolver shared by every rule.

LibCST's QualifiedNameProvider does not follow the assignment idiom TFP users write everywhere
(`tfd = tfp.distributions`), and on large files it costs about ten times the parse. This resolver
is a small visitor that runs first in the single batched traversal and records, per scope:

* import aliases (`import tensorflow_probability as tfp`, `from tensorflow_probability import
  distributions as tfd`) and assignment aliases of imported objects (`tfd = tfp.distributions`,
  `Normal = tfd.Normal`);
* the last value bound to a plain name (`scale = tf.Variable(1.0)`) and to `self.<attr>` in a
  class, so rules can follow simple local flow.

Rules query it while they visit a node (scopes are popped on leave), and get canonical qualified
names (see `names.canonical`) as a frozenset.

Value flow (`follow`, `within`/`read`, `function_of`, `call_sites`, `returned_values`,
`argument_flows`): a small, bounded, intra-file facility on top of those bindings. `follow(node)`
returns a `Flow`: the expression a value last came from, and the scopes that expression is read in
(`within(flow)` / `read(flow, question)` let a rule run its usual checks there). It goes one step
further than `value_of` through

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
"""

from __future__ import annotations

import builtins

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional, Union

import libcst as cst

from elbolint.names import canonical
from elbolint.visitor import BatchableVisitor

_UNKNOWN = object()  # a name bound to something we do not follow (parameter, loop target, ...)

#: Bounds of one value-flow question (see the module docstring).
FLOW_STEPS = 16
FLOW_CALLS = 2


class _Element:
    """`a, b = value`: `a` is element `index` of `value`, read in `scopes`."""

    __slots__ = ("value", "index", "scopes")

    def __init__(self, value: cst.BaseExpression, index: int, scopes: tuple) -> None:
        self.value, self.index, self.scopes = value, index, scopes


class _Argument:
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
            index = _integer_index(subscript)
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
class _Scope:
    kind: str  # "module" | "class" | "function" | "lambda"
    node: cst.CSTNode
    aliases: dict[str, str] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)  # class scopes: self.<x>
    self_name: Optional[str] = None  # function scopes that are methods: their first parameter
    params: tuple = ()  # function scopes: their parameter names


#: Names so conventional that, left unbound (a blog snippet without its imports, a notebook that
#: imports `tf_keras as tfk` and then writes `tf_keras.layers`), they can only mean these packages.
#: Ambiguous ones (`tfk` is `tf_keras` or `tfp.math.psd_kernels`) are not guessed.
_CONVENTIONAL = {
    "tf": "tensorflow", "tensorflow": "tensorflow", "tfp": "tensorflow_probability",
    "tensorflow_probability": "tensorflow_probability", "tfd": "tensorflow_probability.distributions",
    "tfb": "tensorflow_probability.bijectors", "tfpl": "tensorflow_probability.layers",
    "tf_keras": "tf_keras", "keras": "keras",
}

#: Packages whose star imports are followed: their public names are what the rules know.
_STAR_PACKAGES = frozenset({"tensorflow", "tensorflow_probability", "keras", "tf_keras"})
_BUILTINS = frozenset(dir(builtins))


def dotted_name(node: cst.CSTNode) -> Optional[str]:
    """`tfp.distributions.Normal` -> "tfp.distributions.Normal"; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def _module_name(node: Union[cst.Attribute, cst.Name]) -> str:
    return dotted_name(node) or ""


class Resolver(BatchableVisitor):
    """Records aliases and bindings during the traversal; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._scopes: list[_Scope] = []
        self._functions: dict[int, tuple[tuple, _Scope]] = {}  # id(def) -> (enclosing scopes, its scope)
        self._module_defs: dict[str, object] = {}  # top-level def/class by name (None: defined twice)
        self._methods: dict[int, dict[str, Optional[cst.FunctionDef]]] = {}  # id(class) -> methods
        self._returns: dict[int, list[cst.Return]] = {}
        self._calls: dict[int, list[CallSite]] = {}  # id(def) -> its calls seen so far
        self._star_modules: list[str] = []  # `from tensorflow.keras.optimizers import *` (TF/TFP/Keras only)

    # ----------------------------------------------------------------- scopes
    def visit_Module(self, node: cst.Module) -> None:
        self._scopes = [_Scope("module", node)]
        self._functions, self._returns, self._calls, self._methods = {}, {}, {}, {}
        self._module_defs = {}
        for statement in node.body:
            if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                name = statement.name.value
                self._module_defs[name] = None if name in self._module_defs else statement

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._bind_value(node.name.value, node)
        methods: dict[str, Optional[cst.FunctionDef]] = {}
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for statement in body:
            if isinstance(statement, cst.FunctionDef):
                name = statement.name.value
                methods[name] = None if name in methods else statement
        self._methods[id(node)] = methods
        self._scopes.append(_Scope("class", node))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind_value(node.name.value, node)
        scope = _Scope("function", node)
        params = _parameter_names(node.params)
        scope.params = tuple(params)
        if self._scopes and self._scopes[-1].kind == "class" and params:
            scope.self_name = params[0]
        for name in params:
            scope.values[name] = _UNKNOWN
        self._functions[id(node)] = (tuple(self._scopes), scope)
        self._scopes.append(scope)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        scope = _Scope("lambda", node)
        for name in _parameter_names(node.params):
            scope.values[name] = _UNKNOWN
        self._scopes.append(scope)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._scopes.pop()

    # ---------------------------------------------------------------- imports
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = _module_name(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self._bind_alias(alias.asname.name.value, full)
            else:
                head = full.split(".")[0]
                self._bind_alias(head, head)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = _module_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            if module.split(".")[0] in _STAR_PACKAGES and module not in self._star_modules:
                self._star_modules.append(module)
            return
        for alias in node.names:
            member = _module_name(alias.name)
            local = member
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self._bind_alias(local, f"{module}.{member}")

    # ------------------------------------------------------------ assignments
    def leave_Assign(self, original_node: cst.Assign) -> None:
        for target in original_node.targets:
            self._bind_target(target.target, original_node.value)

    def leave_AnnAssign(self, original_node: cst.AnnAssign) -> None:
        if original_node.value is not None:
            self._bind_target(original_node.target, original_node.value)

    def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
        self._bind_target(original_node.target, None)

    def visit_For(self, node: cst.For) -> None:
        self._bind_target(node.target, None)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, None)

    def visit_Call(self, node: cst.Call) -> None:
        callee = self._callee(node, self._scopes)
        if callee is not None:
            site = CallSite(node, tuple(self._scopes), callee[0], callee[1])
            for arg in node.args:
                if isinstance(arg.value, cst.Name) and not arg.star:
                    _, value = self._lookup(arg.value.value)
                    if isinstance(value, cst.BaseExpression):
                        site.names_at_call[id(arg.value)] = value
            self._calls.setdefault(id(site.function), []).append(site)

    def _bind_target(self, target: cst.BaseExpression, value: Optional[cst.BaseExpression]) -> None:
        if isinstance(target, cst.Name):
            name = target.value
            dotted = dotted_name(value) if value is not None else None
            # `tfd = tfp.distributions`: an alias of an imported object, not a value.
            resolved = self._resolve_dotted(dotted) if dotted else None
            if resolved is not None:
                self._bind_alias(name, resolved)
            else:
                self._bind_value(name, value if value is not None else _UNKNOWN)
        elif isinstance(target, (cst.Tuple, cst.List)):
            starred = any(isinstance(e, cst.StarredElement) for e in target.elements)
            aliases = self._tuple_aliases(target, value) if not starred else None
            if aliases is not None:  # `tfd, tfb = tfp.distributions, tfp.bijectors`
                for name, full in aliases:
                    self._bind_alias(name, full)
                return
            scopes = tuple(self._scopes) if value is not None and not starred else None
            for index, element in enumerate(target.elements):
                inner = element.value
                if isinstance(inner, cst.StarredElement):
                    inner = inner.value
                if scopes is not None and isinstance(inner, cst.Name):
                    self._bind_value(inner.value, _Element(value, index, scopes))  # `q, opt = build()`
                else:
                    self._bind_target(inner, None)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            function = self._innermost("function")
            cls = self._enclosing_class()
            if function is not None and cls is not None and target.value.value == function.self_name:
                if value is not None:
                    cls.attributes[target.attr.value] = value
                else:
                    cls.attributes.pop(target.attr.value, None)

    def _tuple_aliases(self, target, value) -> Optional[list[tuple[str, str]]]:
        """(name, imported object) pairs when a tuple assignment binds only aliases of imported
        objects; None otherwise (values are bound as elements, see `follow`)."""
        if not isinstance(value, (cst.Tuple, cst.List)) or len(value.elements) != len(target.elements):
            return None
        pairs = []
        for element, bound in zip(target.elements, value.elements):
            dotted = dotted_name(bound.value) if not isinstance(bound, cst.StarredElement) else None
            resolved = self._resolve_dotted(dotted) if dotted else None
            if not isinstance(element.value, cst.Name) or resolved is None:
                return None
            pairs.append((element.value.value, resolved))
        return pairs

    def _bind_alias(self, local: str, full: str) -> None:
        scope = self._scopes[-1]
        scope.aliases[local] = full
        scope.values.pop(local, None)

    def _bind_value(self, local: str, value: object) -> None:
        if not self._scopes:
            return
        scope = self._scopes[-1]
        scope.values[local] = value
        scope.aliases.pop(local, None)

    # ---------------------------------------------------------------- lookups
    def _visible_scopes(self):
        """Innermost first; class bodies are invisible from the functions nested in them."""
        for index in range(len(self._scopes) - 1, -1, -1):
            scope = self._scopes[index]
            if scope.kind == "class" and index != len(self._scopes) - 1:
                continue
            yield scope

    def _lookup(self, name: str) -> tuple[Optional[str], object]:
        """(alias target, value) of the innermost binding of `name`."""
        for scope in self._visible_scopes():
            if name in scope.aliases:
                return scope.aliases[name], None
            if name in scope.values:
                return None, scope.values[name]
        return None, None

    def _resolve_dotted(self, dotted: str) -> Optional[str]:
        head, _, rest = dotted.partition(".")
        target, value = self._lookup(head)
        if target is None and value is None:
            target = _CONVENTIONAL.get(head)  # a snippet or notebook that never imported it
        if target is None:
            return None
        return f"{target}.{rest}" if rest else target

    def _innermost(self, kind: str) -> Optional[_Scope]:
        for scope in reversed(self._scopes):
            if scope.kind == kind:
                return scope
        return None

    def _enclosing_class(self) -> Optional[_Scope]:
        """The class whose method we are in (function scope directly inside a class scope)."""
        for index in range(len(self._scopes) - 1, 0, -1):
            if self._scopes[index].kind == "function" and self._scopes[index - 1].kind == "class":
                return self._scopes[index - 1]
        return None

    # ------------------------------------------------------------- public API
    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        """Canonical qualified names of a Name/Attribute that refers to an imported object."""
        dotted = dotted_name(node)
        if dotted is None:
            return frozenset()
        resolved = self._resolve_dotted(dotted)
        if resolved:
            return frozenset({canonical(resolved)})
        return self._star_names(dotted)

    def _star_names(self, dotted: str) -> frozenset[str]:
        """An unbound, non-builtin name in a file with `from tensorflow.keras.optimizers import *`
        may come from any of those packages: every candidate (a rule matches the one it knows)."""
        head = dotted.partition(".")[0]
        if not self._star_modules or head in _BUILTINS or self._lookup(head) != (None, None):
            return frozenset()
        return frozenset(canonical(f"{module}.{dotted}") for module in self._star_modules)

    def imports(self, package: str) -> bool:
        """Whether the module has imported `package` (or something in it) so far."""
        prefix = package + "."
        return bool(self._scopes) and any(
            target == package or target.startswith(prefix) for target in self._scopes[0].aliases.values())

    def call_names(self, node: cst.CSTNode) -> frozenset[str]:
        """Qualified names of the callee when `node` is a Call, else an empty set."""
        if isinstance(node, cst.Call):
            return self.qualified_names(node.func)
        return frozenset()

    def value_of(self, node: cst.BaseExpression, depth: int = 5) -> cst.BaseExpression:
        """Follow `name` / `self.name` to the expression last bound to it (a few hops).

        Returns `node` itself when it is not a followable binding.
        """
        for _ in range(depth):
            bound = self._bound_value(node)
            if bound is None:
                return node
            node = bound
        return node

    def _bound_value(self, node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        if isinstance(node, cst.Name):
            _, value = self._lookup(node.value)
            return value if isinstance(value, cst.BaseExpression) else None
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            function = self._innermost("function")
            cls = self._enclosing_class()
            if function is not None and cls is not None and node.value.value == function.self_name:
                return cls.attributes.get(node.attr.value)
        return None

    # -------------------------------------------------------------- value flow
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
            if bound is None or not isinstance(bound.get(name), _Argument):
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
                if isinstance(value, _Argument):
                    node, scopes = value.value, value.scopes
                    continue
                if isinstance(value, _Element):
                    element = self._element(value, budget, calls)
                    if element is None:
                        break
                    node, scopes = element
                    continue
                scope = scopes[index]
                if value is _UNKNOWN and scope.kind == "function" and node.value in scope.params:
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

    def _element(self, value: _Element, budget: list[int], calls: int):
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
        index = _integer_index(subscript)
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
        instance = _Scope("function", function, aliases=own.aliases, values=dict(own.values),
                          self_name=own.self_name, params=own.params)
        bound = self._bind_arguments(function, skip_first, call, scopes, defaults=True, parents=parents)
        for name, argument in (bound or {}).items():
            if instance.values.get(name) is _UNKNOWN:
                instance.values[name] = argument
        return first, parents + (instance,)

    def _function_scopes(self, function: cst.FunctionDef, scopes: tuple) -> tuple[tuple, _Scope]:
        recorded = self._functions.get(id(function))
        if recorded is not None:
            return recorded
        # A module-level def called before the traversal reached it: only its parameters are known.
        own = _Scope("function", function, params=tuple(_parameter_names(function.params)))
        for name in own.params:
            own.values[name] = _UNKNOWN
        return (scopes[:1], own)

    def _bind_arguments(self, function: cst.FunctionDef, skip_first: bool, call: cst.Call, scopes: tuple,
                        defaults: bool, parents: tuple = ()) -> Optional[dict[str, _Argument]]:
        """parameter -> _Argument for the arguments spelled out at `call` (and the defaults)."""
        params = function.params
        positional = [*params.posonly_params, *params.params]
        if skip_first:
            positional = positional[1:]
        names = {p.name.value for p in (*positional, *params.kwonly_params)}
        bound: dict[str, _Argument] = {}
        position, starred = 0, False
        for arg in call.args:
            if arg.star:
                starred = True
                continue
            if arg.keyword is not None:
                if arg.keyword.value in names:
                    bound[arg.keyword.value] = _Argument(arg.value, scopes)
            elif not starred and position < len(positional):
                bound[positional[position].name.value] = _Argument(arg.value, scopes)
                position += 1
        if defaults and not starred:
            for param in (*positional, *params.kwonly_params):
                if param.name.value not in bound and param.default is not None:
                    bound[param.name.value] = _Argument(param.default, parents)
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

    def _method_context(self, scopes) -> tuple[Optional[_Scope], Optional[str]]:
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

    def local_name_for(self, qualified: str) -> Optional[str]:
        """How this file spells an imported object, e.g. "tfp.bijectors" -> "tfb" (for fixes)."""
        best: Optional[str] = None
        best_length = -1
        for scope in self._visible_scopes():
            for local, target in scope.aliases.items():
                full = canonical(target)
                if full == qualified:
                    return local
                if qualified.startswith(full + ".") and len(full) > best_length:
                    best, best_length = local + qualified[len(full):], len(full)
        return best

    @property
    def in_function(self) -> bool:
        """True inside a def or lambda: code there runs when called (e.g. every training step)."""
        return any(scope.kind in ("function", "lambda") for scope in self._scopes)

    @property
    def in_lambda(self) -> bool:
        return any(scope.kind == "lambda" for scope in self._scopes)

    @property
    def scope_node(self) -> Optional[cst.CSTNode]:
        return self._scopes[-1].node if self._scopes else None


def _parameter_names(params: cst.Parameters) -> list[str]:
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        names.append(params.star_arg.name.value)
    names.extend(p.name.value for p in params.kwonly_params)
    if params.star_kwarg is not None:
        names.append(params.star_kwarg.name.value)
    return names


def _integer_index(subscript: cst.Subscript) -> Optional[int]:
    """0 for `x[0]`, -1 for `x[-1]`; None for slices, names, several dimensions."""
    if len(subscript.slice) != 1 or not isinstance(subscript.slice[0].slice, cst.Index):
        return None
    value = subscript.slice[0].slice.value
    negative = False
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        value, negative = value.expression, True
    if not isinstance(value, cst.Integer):
        return None
    number = int(value.evaluated_value)
    return -number if negative else number


def _followable(function: cst.FunctionDef, resolver: "Resolver") -> bool:
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

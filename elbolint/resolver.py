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
`argument_flows`): a small, bounded, intra-file facility on top of those bindings, in
value_flow.py (the Resolver's `ValueFlow` mixin; its limits are described there). The small CST
readers both use (dotted names, parameters, integer indices) are in cst_helpers.py.
"""

from __future__ import annotations

import builtins
from typing import Optional, Union

import libcst as cst

from elbolint.cst_helpers import dotted_name, parameter_names
from elbolint.names import canonical
from elbolint.value_flow import FLOW_CALLS, FLOW_STEPS, UNKNOWN, CallSite, Element, Flow, Scope, ValueFlow
from elbolint.visitor import BatchableVisitor

#: Imported from here by rules and tests (they predate value_flow.py and cst_helpers.py).
__all__ = ["FLOW_CALLS", "FLOW_STEPS", "CallSite", "Flow", "Resolver", "dotted_name"]

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
#: How many bindings `value_of` follows by default (`a = b`, `b = tf.Variable(...)`: two).
VALUE_HOPS = 5


def _module_name(node: Union[cst.Attribute, cst.Name]) -> str:
    return dotted_name(node) or ""


class Resolver(ValueFlow, BatchableVisitor):
    """Records aliases and bindings during the traversal; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._scopes: list[Scope] = []
        self._functions: dict[int, tuple[tuple, Scope]] = {}  # id(def) -> (enclosing scopes, its scope)
        self._module_defs: dict[str, object] = {}  # top-level def/class by name (None: defined twice)
        self._methods: dict[int, dict[str, Optional[cst.FunctionDef]]] = {}  # id(class) -> methods
        self._returns: dict[int, list[cst.Return]] = {}
        self._calls: dict[int, list[CallSite]] = {}  # id(def) -> its calls seen so far
        self._star_modules: list[str] = []  # `from tensorflow.keras.optimizers import *` (TF/TFP/Keras only)

    # ----------------------------------------------------------------- scopes
    def visit_Module(self, node: cst.Module) -> None:
        self._scopes = [Scope("module", node)]
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
        self._scopes.append(Scope("class", node))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind_value(node.name.value, node)
        scope = Scope("function", node)
        params = parameter_names(node.params)
        scope.params = tuple(params)
        if self._scopes and self._scopes[-1].kind == "class" and params:
            scope.self_name = params[0]
        for name in params:
            scope.values[name] = UNKNOWN
        self._functions[id(node)] = (tuple(self._scopes), scope)
        self._scopes.append(scope)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        scope = Scope("lambda", node)
        for name in parameter_names(node.params):
            scope.values[name] = UNKNOWN
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
                self._bind_value(name, value if value is not None else UNKNOWN)
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
                if scopes is not None and value is not None and isinstance(inner, cst.Name):
                    self._bind_value(inner.value, Element(value, index, scopes))  # `q, opt = build()`
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
        """(alias target, value) of the innermost binding of `name`. (`_visible_scopes`, written out:
        the resolver's most frequent question, asked for every call's callee by every rule.)"""
        scopes = self._scopes
        innermost = len(scopes) - 1
        for index in range(innermost, -1, -1):
            scope = scopes[index]
            if scope.kind == "class" and index != innermost:
                continue
            aliases = scope.aliases
            if name in aliases:
                return aliases[name], None
            values = scope.values
            if name in values:
                return None, values[name]
        return None, None

    def _resolve_dotted(self, dotted: str) -> Optional[str]:
        head, _, rest = dotted.partition(".")
        target, value = self._lookup(head)
        if target is None and value is None:
            target = _CONVENTIONAL.get(head)  # a snippet or notebook that never imported it
        if target is None:
            return None
        return f"{target}.{rest}" if rest else target

    def _innermost(self, kind: str) -> Optional[Scope]:
        for scope in reversed(self._scopes):
            if scope.kind == kind:
                return scope
        return None

    def _enclosing_class(self) -> Optional[Scope]:
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

    def value_of(self, node: cst.BaseExpression, depth: int = VALUE_HOPS) -> cst.BaseExpression:
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

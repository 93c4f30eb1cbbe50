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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst

from elbolint.names import canonical
from elbolint.visitor import BatchableVisitor

_UNKNOWN = object()  # a name bound to something we do not follow (parameter, loop target, ...)


@dataclass
class _Scope:
    kind: str  # "module" | "class" | "function" | "lambda"
    node: cst.CSTNode
    aliases: dict[str, str] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)  # class scopes: self.<x>
    self_name: Optional[str] = None  # function scopes that are methods: their first parameter


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

    # ----------------------------------------------------------------- scopes
    def visit_Module(self, node: cst.Module) -> None:
        self._scopes = [_Scope("module", node)]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._bind_value(node.name.value, _UNKNOWN)
        self._scopes.append(_Scope("class", node))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind_value(node.name.value, _UNKNOWN)
        scope = _Scope("function", node)
        params = _parameter_names(node.params)
        if self._scopes and self._scopes[-1].kind == "class" and params:
            scope.self_name = params[0]
        for name in params:
            scope.values[name] = _UNKNOWN
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
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = _module_name(node.module)
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
            for element in target.elements:
                inner = element.value
                if isinstance(inner, cst.StarredElement):
                    inner = inner.value
                self._bind_target(inner, None)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            function = self._innermost("function")
            cls = self._enclosing_class()
            if function is not None and cls is not None and target.value.value == function.self_name:
                if value is not None:
                    cls.attributes[target.attr.value] = value
                else:
                    cls.attributes.pop(target.attr.value, None)

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
        target, _ = self._lookup(head)
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
        return frozenset({canonical(resolved)}) if resolved else frozenset()

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

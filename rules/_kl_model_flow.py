"""Where a variational layer's model goes, for ELB010: the names a model is bound to and what each use does.

Why this module exists: a `tfp.layers` layer adds its KL to the loss of whatever model it ends up
in, and whether that KL must be scaled depends on what trains that model (a Keras `compile` /
`fit`, a hand-written loss that reads `model.losses`, nothing at all). The layer check
(_kl_layers.py) asks `ModelFlow.reach` for the uses of the model a layer was put in; this module
records, during the rule's one traversal, every binding and use of a name with the context of the
use, and follows a model through `Sequential(layers)`, `model.add(layer)`, `layers.append(layer)`,
`outputs = DenseFlipout(1)(h)` then `Model(inputs, outputs)`, and `net = model`.

A use counts in the scope the name was bound in, between that binding and the next one (a "tick"
orders them), and in any function nested there that does not bind the name itself. What cannot be
followed (a use passed to an unknown function, `model.layers`) is an "escape": the layer check then
judges the file as a whole.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import libcst as cst

from elbolint.names import TFPL
from elbolint.rule import Rule

#: Methods of a Keras model that train it (each adds the layers' losses to every batch's loss).
_TRAIN_METHODS = frozenset({"compile", "fit", "fit_generator", "train_on_batch"})
#: Methods that put a layer into a model or a list (`model.add(layer)`, `layers.append(layer)`).
_BUILD_METHODS = frozenset({"add", "append", "extend", "insert"})
#: Builtins that only look at a model (`print(model)`).
_INERT_BUILTINS = frozenset({"print", "len", "isinstance", "type", "repr", "str", "id", "hasattr"})

#: (name, tick, enclosing scopes) of the binding a model is followed from.
Owner = tuple[str, int, tuple[int, ...]]
#: One use of a followed model: (kind, info, the name it was used under); see `ModelFlow.use_kind`.
Use = tuple[str, Any, str]


class ModelFlow:
    """The bindings and uses of names in the file, and where a layer's model goes."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.scopes: list[int] = []  # enclosing defs and lambdas
        self.scope_tuple: tuple[int, ...] = ()
        self.loops = 0  # enclosing `for` loops
        self.tick = 0
        self.owner_of: dict[int, Owner] = {}  # layer call -> (name, tick, scopes)
        self._owners: list[tuple[int, str]] = []  # enclosing `name = ...` / `name.add(...)` / `name.append(...)`
        self._assignments: list[Owner] = []
        self._uses: list[tuple[str, int, tuple[int, ...], Optional[tuple]]] = []  # (name, tick, scopes, context)
        self._context: dict[int, tuple] = {}  # Name node -> how its parent uses it (set before it is visited)
        self._skip: set[int] = set()  # Name nodes that are bindings, not uses
        self._reached: dict[Owner, list[Use]] = {}  # owner -> its model's uses (`reach`)
        self._assigned: Optional[set[tuple[str, tuple[int, ...]]]] = None  # (name, scopes) bound anywhere
        self._uses_by_name: dict[str, list] = {}
        self._attributed: Optional[set] = None  # reads of the models the layers went into

    # ------------------------------------------------------------------ scopes and bindings
    def enter(self, node: Union[cst.FunctionDef, cst.Lambda], params: cst.Parameters) -> None:
        self.scopes.append(id(node))
        scopes = self.scope_tuple = tuple(self.scopes)
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            self.bind(param.name, scopes)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self.bind(star.name, scopes)

    def leave(self) -> None:
        self.scopes.pop()
        self.scope_tuple = tuple(self.scopes)

    def bind(self, target: cst.BaseExpression, scopes: Optional[tuple[int, ...]] = None) -> None:
        """Record a (re)binding of the names in `target`; they are not uses."""
        if isinstance(target, cst.Name):
            self._skip.add(id(target))
            self._assignments.append((target.value, self.tick, scopes if scopes is not None else self.scope_tuple))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.bind(element.value.value if isinstance(element.value, cst.StarredElement) else element.value,
                          scopes)

    def visit_assign(self, node: cst.Assign) -> None:
        self.tick += 1
        for target in node.targets:
            self.bind(target.target)
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            name = node.targets[0].target.value
            self._owners.append((id(node), name))
            # `net = model`, `layers = [hidden, output]`: the value goes on under another name
            value = node.value
            elements = [e.value for e in value.elements] if isinstance(value, (cst.List, cst.Tuple)) else [value]
            for element in elements:
                if isinstance(element, cst.Name):
                    self._context[id(element)] = ("alias", name)

    def visit_aug_assign(self, node: cst.AugAssign) -> None:
        self.tick += 1
        if isinstance(node.target, cst.Name):
            self._context[id(node.target)] = ("build",)  # `layers += [...]`, `kl /= n`
            self._owners.append((id(node), node.target.value))

    def leave_owner(self, node: cst.CSTNode) -> None:
        """Leaving an assignment or call that may have been the enclosing owner."""
        if self._owners and self._owners[-1][0] == id(node):
            self._owners.pop()

    def visit_attribute(self, node: cst.Attribute) -> None:
        base = node.value
        if isinstance(base, cst.Name) and id(base) not in self._context:
            self._context[id(base)] = ("attr", node.attr.value, node)

    def visit_name(self, node: cst.Name) -> None:
        if id(node) in self._skip:
            return
        self.tick += 1
        context = self._context.get(id(node))
        if context is not None and context[0] == "arg":  # where `Sequential(layers)` goes
            context = (*context, self._owners[-1][1] if self._owners else None)
        self._uses.append((node.value, self.tick, self.scope_tuple, context))

    def visit_call(self, node: cst.Call) -> None:
        self.tick += 1
        func = node.func
        if isinstance(func, cst.Name):
            self._context[id(func)] = ("called",)
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            self._context[id(func.value)] = ("method", func.attr.value, node)
        for arg in node.args:
            values = [e.value for e in arg.value.elements] if isinstance(arg.value, (cst.List, cst.Tuple)) \
                else [arg.value]
            for value in values:
                if isinstance(value, cst.Name):
                    self._context[id(value)] = ("arg", node)
        if isinstance(func, cst.Attribute) and func.attr.value in _BUILD_METHODS and isinstance(func.value, cst.Name):
            self._owners.append((id(node), func.value.value))

    def note_layer(self, node: cst.Call) -> None:
        """A variational layer is built here: remember the model (name) it is being put in."""
        if self._owners:
            self.owner_of[id(node)] = (self._owners[-1][1], self.tick, self.scope_tuple)

    # ------------------------------------------------------------------ what a use does
    def use_kind(self, context: Optional[tuple]) -> tuple[str, Any]:
        """What a use of a name does to the model it may name (read from the use's `context`, only
        for the names of models): "train" (Keras compile / fit), "losses" (reads its KL terms),
        "inert" (calls it, shows it, builds it up), "forward" (it goes on under another name:
        info), "escape" (anything else)."""
        if context is None:
            return "escape", None
        if context[0] == "method":
            return ("train", context[2]) if context[1] in _TRAIN_METHODS else ("inert", None)
        if context[0] == "attr":
            if context[1] == "layers":
                return "escape", None  # `for layer in model.layers: ... layer.losses`
            return ("losses", id(context[2])) if context[1] == "losses" else ("inert", None)
        if context[0] in ("called", "build"):
            return "inert", None
        if context[0] == "alias":
            return "forward", context[1]
        if context[0] == "arg":
            call, owner = context[1], context[2]
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _BUILD_METHODS \
                    and isinstance(func.value, cst.Name):
                return "forward", func.value.value  # `model.add(layer)`, `layers.append(block)`
            if isinstance(func, cst.Name) and func.value in _INERT_BUILTINS:
                return "inert", None
            if owner is not None and self._keras_constructor(call):
                return "forward", owner  # `model = Sequential(layers)`, `y = Layer(...)(x)`
        return "escape", None

    def _keras_constructor(self, call: cst.Call) -> bool:
        """A Keras model or layer built from its argument (`Sequential(layers)`, `Model(inputs,
        outputs)`), or a layer applied to it (`DenseFlipout(10)(h)`)."""
        if isinstance(call.func, cst.Call):
            return True
        names = self.rule.call_names(call)
        if any(n.startswith(("keras.", TFPL + ".")) for n in names):
            return True
        last = call.func.attr.value if isinstance(call.func, cst.Attribute) else \
            call.func.value if isinstance(call.func, cst.Name) else ""
        return not names and last in ("Sequential", "Model", "Functional")

    # ------------------------------------------------------------ where a layer's KL goes
    def reach(self, owner: Owner) -> list[Use]:
        """The uses of the model a layer was put in, following it through `Sequential(layers)`,
        `model.add(layer)`, `outputs = Layer(...)(h)`, `net = model`: [(kind, info, name)]. A use
        counts in the scope the name was bound in, between that binding and the next, and in any
        function nested there that does not bind the name itself."""
        cached = self._reached.get(owner)
        if cached is not None:
            return cached
        if self._assigned is None:
            self._assigned = {(n, s) for n, _, s in self._assignments}
            for use in self._uses:
                self._uses_by_name.setdefault(use[0], []).append(use)
        assigned = self._assigned
        found: list[Use] = []
        seen: set[Owner] = set()
        queue = [owner]
        while queue and len(seen) < 32:
            name, tick, scopes = queue.pop()
            if (name, tick, scopes) in seen:
                continue
            seen.add((name, tick, scopes))
            rebound = min((t for n, t, s in self._assignments if n == name and s == scopes and t > tick),
                          default=float("inf"))
            for _, use_tick, use_scopes, context in self._uses_by_name.get(name, ()):
                if use_scopes == scopes:
                    if not tick < use_tick < rebound:
                        continue
                elif use_scopes[:len(scopes)] != scopes or any((name, use_scopes[:k]) in assigned
                                                               for k in range(len(scopes) + 1, len(use_scopes) + 1)):
                    continue  # another scope, or a nested one with a variable of its own by that name
                kind, info = self.use_kind(context)
                found.append((kind, info, name))
                if kind == "forward":
                    queue.append((info, use_tick, use_scopes))
        self._reached[owner] = found
        return found

    def attributed_reads(self) -> set:
        """The `.losses` reads (ids of the attributes) of the models the layers were followed into."""
        if self._attributed is None:
            self._attributed = set()
            for owner in set(self.owner_of.values()):
                self._attributed |= {info for kind, info, _ in self.reach(owner) if kind == "losses"}
        return self._attributed

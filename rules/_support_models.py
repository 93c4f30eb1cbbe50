"""The components of models and surrogates, for ELB014 (surrogate-support-mismatch).

A fit pairs a surrogate's components with a model's; this module reads both sides into the same shape,
a `Joint` of `Part`s with the calling convention TFP uses to hand the sample to the target: a
`JointDistributionSequential` / `Coroutine` (by position; names from `name=` and the lambdas' arguments,
the coroutine's `yield`s in order), a `JointDistributionNamed` (by key), a model pinned with
`experimental_pin` (TFP renumbers the rest), a single distribution as the whole surrogate, and a
surrogate built by `tfp.experimental.vi.build_factored_surrogate_posterior` /
`build_affine_surrogate_posterior` (one part per `event_shape` component, on the image of its
`bijector=`). How a target's arguments then meet these parts is rules/_support_matching.py.
Not a rule module (it defines no Rule subclass with a code), so the registry skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from elbolint.names import TFD, TFP_EXPERIMENTAL_VI, member_of, names_in
from elbolint.rule import Rule
from elbolint.rules._support_reading import RuleReader, SupportReader, string
from elbolint.rules._support_table import INF, SUPPORTS, Support
from elbolint.rules._tfp import distribution_name

BUILDERS = names_in(TFP_EXPERIMENTAL_VI, "build_factored_surrogate_posterior", "build_affine_surrogate_posterior")
_SEQUENTIAL = names_in(TFD, "JointDistributionSequential", "JointDistributionSequentialAutoBatched")
_NAMED = names_in(TFD, "JointDistributionNamed", "JointDistributionNamedAutoBatched")
COROUTINE = names_in(TFD, "JointDistributionCoroutine", "JointDistributionCoroutineAutoBatched")
PARTIAL = frozenset({"functools.partial"})


@dataclass
class Part:
    """One component of a joint distribution (model or surrogate)."""

    position: Optional[int]
    name: Optional[str]
    value: Optional[cst.BaseExpression]  # the distribution as written (a call, a name, a lambda's body)
    scopes: tuple
    #: a surrogate built by a tfp.experimental.vi builder: its support (None: unknown) and how the
    #: builder maps it (words for the message); None for a distribution written in the file
    built: Optional[tuple[Optional[Support], str]] = None
    report_node: Optional[cst.CSTNode] = None
    whole: bool = False  # the surrogate is this one distribution


@dataclass
class Joint:
    """A model or a surrogate as its components."""

    #: how the sample reaches the target: "args" fn(*s), "kwargs" fn(**s), "one" fn(s)
    convention: str
    parts: list[Part]
    spelled: str = "model"  # the model's name in the file, for advice

    def by_position(self, position: int) -> Optional[Part]:
        for part in self.parts:
            if part.position == position:
                return part
        return None

    def by_name(self, name: str) -> Optional[Part]:
        found = [p for p in self.parts if p.name == name]
        return found[0] if len(found) == 1 else None


class ModelReader(RuleReader):
    """Reads models and surrogates into Joints, in the scopes the rule is visiting (or given ones)."""

    def __init__(self, rule: Rule, supports: SupportReader) -> None:
        super().__init__(rule)
        self.supports = supports
        #: `@tfd.JointDistributionCoroutine def model(): ...`, by name (filled by the rule's traversal)
        self.coroutines: dict[str, cst.FunctionDef] = {}

    def surrogate(self, node: cst.BaseExpression, scopes: Optional[tuple]) -> Optional[Joint]:
        """The surrogate a fit is given: a builder's, a joint distribution's components, or one
        distribution that is the whole surrogate; None when it cannot be read."""
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        call = flow.node
        with self.resolver.within(flow):
            names = self.call_names(call)
            if names & BUILDERS:
                return self._built(call, flow.scopes)
            joint = self._joint(call, flow.scopes, spelled=None)
            if joint is not None:
                return joint
            if distribution_name(self.resolver, call) is not None:
                return Joint("one", [Part(0, None, call, flow.scopes, whole=True)])
        return None

    def _built(self, call: cst.Call, scopes: tuple) -> Optional[Joint]:
        """`build_factored_surrogate_posterior(event_shape=..., bijector=...)` (or the affine one):
        one part per event shape, Gaussian on the real line unless a bijector maps it."""
        if any(a.star for a in call.args):
            return None
        affine = any(n.endswith("build_affine_surrogate_posterior") for n in self.call_names(call))
        shape = self.get_arg(call, "event_shape", 0)
        if shape is None:
            return None
        bijector = self.get_arg(call, "bijector", 2 if affine else 1) or self.get_arg(call, "constraining_bijectors")
        base = self.get_arg(call, "base_distribution" if affine else "base_distribution_cls", 3)
        if base is not None and not any(_real_family(n) for n in self.qualified_names(base.value)):
            return None  # a base family elbolint does not know to be real-valued
        structure = self._shape_structure(shape.value, scopes)
        if structure is None:
            return None
        convention, slots = structure  # slots: [(position, name)]
        supports = self._builder_supports(bijector.value if bijector is not None else None, slots, scopes)
        if supports is None:
            return None
        parts = []
        for (position, name), (support, mapped) in zip(slots, supports):
            words = f"mapped by {mapped}" if mapped else "Gaussian (no bijector=)"
            parts.append(Part(position, name, None, scopes, built=(support, words), report_node=call))
        return Joint(convention, parts)

    def _shape_structure(self, node: cst.BaseExpression, scopes: tuple):
        """("args" | "kwargs" | "one", [(position, name)]) of an `event_shape`, or None."""
        flow = self.resolver.follow(node, scopes)
        window = slice(None)
        if flow.subscripts:  # `model.event_shape_tensor()[:-1]`: the model's components but the last
            literal = _literal_slice(flow.subscripts)
            if literal is None:
                return None
            window = literal
        value = flow.node
        if isinstance(value, (cst.List, cst.Tuple)) and not flow.subscripts:
            elements = value.elements
            if any(isinstance(e, cst.StarredElement) for e in elements):
                return None
            if all(isinstance(e.value, (cst.Integer,)) for e in elements):
                return "one", [(0, None)]  # one component with a vector shape
            if all(isinstance(e.value, (cst.List, cst.Tuple)) for e in elements):
                return "args", [(i, None) for i in range(len(elements))]
            return None
        if isinstance(value, cst.Dict) and not flow.subscripts:
            keys = [string(e.key) if isinstance(e, cst.DictElement) else None for e in value.elements]
            if None in keys:
                return None
            return "kwargs", [(None, k) for k in keys]
        model_node = None
        if isinstance(value, cst.Attribute) and value.attr.value == "event_shape":
            model_node = value.value
        elif (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
              and value.func.attr.value == "event_shape_tensor" and not value.args):
            model_node = value.func.value
        if model_node is None:
            return None
        with self.resolver.within(flow):
            model = self.model(model_node, None)
        if model is None:
            return None
        parts = model.parts
        if flow.subscripts:
            if model.convention != "args" or any(p.position is None for p in parts):
                return None
            parts = parts[window]
            return model.convention, [(i, p.name) for i, p in enumerate(parts)]
        return model.convention, [(p.position, p.name) for p in parts]

    def _builder_supports(self, bijector: Optional[cst.BaseExpression], slots, scopes) -> Optional[list]:
        """[(support or None, how the bijector is spelled or "")] per slot; None when the bijector
        cannot be read per component (the model's event-space bijector, a JointMap, ...)."""
        if bijector is None or (isinstance(bijector, cst.Name) and bijector.value == "None"):
            return [(Support("interval"), "")] * len(slots)
        flow = self.resolver.follow(bijector, scopes)
        if flow.subscripts:
            return None
        value = flow.node
        if isinstance(value, (cst.List, cst.Tuple)) and len(value.elements) == len(slots):
            found = []
            with self.resolver.within(flow):
                for element in value.elements:
                    if isinstance(element, cst.StarredElement):
                        return None
                    found.append(self._mapped(element.value))
            return found
        entries = self._dict_entries(value)
        if entries is not None and all(name is not None for _, name in slots):
            by_key = dict(entries)
            if set(by_key) != {name for _, name in slots}:
                return None
            with self.resolver.within(flow):
                return [self._mapped(by_key[name]) for _, name in slots]
        return None

    def _mapped(self, bijector: cst.BaseExpression) -> tuple[Optional[Support], str]:
        """(the image of the real line, how the bijector is spelled) of one component's bijector
        (`None`: the real line, unmapped)."""
        if isinstance(bijector, cst.Name) and bijector.value == "None":
            return Support("interval"), ""
        return self.supports.image(bijector, None, Support("interval")), self.source(bijector)


    def _joint(self, call: cst.Call, scopes: tuple, spelled: Optional[str]) -> Optional[Joint]:
        """The components of a JointDistribution{Sequential,Named,Coroutine}(...) call, read in its scopes."""
        names = self.call_names(call)
        spelled = spelled or "model"
        if names & _SEQUENTIAL:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            flow = self.resolver.follow(argument.value)
            if flow.subscripts or not isinstance(flow.node, (cst.List, cst.Tuple)):
                return None
            elements = flow.node.elements
            if any(isinstance(e, cst.StarredElement) for e in elements):
                return None
            parts: list[Part] = []
            lambda_names: dict[Optional[int], str] = {}
            for index, element in enumerate(elements):
                value = element.value
                if isinstance(value, cst.Lambda):
                    params = [p.name.value for p in value.params.params]
                    for offset, param in enumerate(params):
                        lambda_names.setdefault(index - 1 - offset, param)
                    value = value.body
                parts.append(Part(index, None, value, flow.scopes))
            for part in parts:
                part.name = self._explicit_name(part.value, part.scopes) or lambda_names.get(part.position)
            return Joint("args", parts, spelled)
        if names & _NAMED:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            flow = self.resolver.follow(argument.value)
            if flow.subscripts:
                return None
            entries = self._dict_entries(flow.node)
            if entries is None:
                return None
            parts = []
            for key, value in entries:
                if isinstance(value, cst.Lambda):
                    value = value.body
                parts.append(Part(None, key, value, flow.scopes))
            return Joint("kwargs", parts, spelled)
        if names & COROUTINE:
            argument = self.get_arg(call, "model", 0)
            if argument is None:
                return None
            function = self._coroutine_function(argument.value)
            if function is None:
                return None
            return self._coroutine(function, spelled)
        return None

    def _coroutine_function(self, node: cst.BaseExpression) -> Optional[cst.FunctionDef]:
        flow = self.resolver.follow(node)
        value = flow.node
        if isinstance(value, cst.Call) and not self.call_names(value).isdisjoint(PARTIAL) and value.args:
            with self.resolver.within(flow):
                return self._coroutine_function(value.args[0].value)
        if isinstance(value, cst.Name):
            with self.resolver.within(flow):
                return self.resolver.function_of(cst.Call(func=value))
        return None

    def _coroutine(self, function: cst.FunctionDef, spelled: str) -> Joint:
        """Components of a JointDistributionCoroutine's model: its `yield`s in order (positions are
        unknown from the first yield in a loop or a branch on)."""
        parts: list[Part] = []
        certain = [True]

        def walk(node: cst.CSTNode, nested: bool) -> None:
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and node is not function:
                return
            if isinstance(node, cst.Yield):
                if nested:
                    certain[0] = False
                value = node.value
                if isinstance(value, cst.From) or value is None:
                    certain[0] = False
                    return
                value = _unroot(value)
                position = len(parts) if certain[0] else None
                parts.append(Part(position, None, value, ()))
                return
            branching = isinstance(node, (cst.For, cst.While, cst.If, cst.Try, cst.Match, cst.IfExp,
                                          cst.ListComp, cst.GeneratorExp))
            for child in node.children:
                walk(child, nested or branching)

        walk(function.body, False)
        scopes = self.function_scopes(function) or self.current_scopes()
        for part in parts:
            part.scopes = scopes
            part.name = self._explicit_name(part.value, scopes)
        return Joint("args", parts, spelled)

    def function_scopes(self, function: cst.FunctionDef) -> tuple:
        """The scopes the body of `function` is read in (through the resolver's call-following), or
        () when the resolver does not enter it (several different returned values, no return)."""
        flow = self.resolver.follow(cst.Call(func=function.name))
        for index, scope in enumerate(flow.scopes):
            if getattr(scope, "node", None) is function:
                return flow.scopes[: index + 1]
        return ()

    def _explicit_name(self, value: Optional[cst.BaseExpression], scopes: tuple) -> Optional[str]:
        if value is None:
            return None
        flow = self.resolver.follow(value, scopes or None)
        call = flow.node
        if not isinstance(call, cst.Call):
            return None
        arg = self.get_arg(call, "name", None)
        return string(arg.value) if arg is not None else None

    def _dict_entries(self, node: cst.CSTNode) -> Optional[list[tuple[str, cst.BaseExpression]]]:
        if isinstance(node, cst.Dict):
            entries = []
            for element in node.elements:
                key = string(element.key) if isinstance(element, cst.DictElement) else None
                if key is None:
                    return None
                entries.append((key, element.value))
            return entries
        if (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "dict"
                and all(a.keyword is not None and not a.star for a in node.args)):
            return [(a.keyword.value, a.value) for a in node.args if a.keyword is not None]
        return None

    def model(self, node: cst.BaseExpression, scopes: Optional[tuple], depth: int = 0) -> Optional[Joint]:
        """The model a `.log_prob` belongs to: a JointDistribution*, maybe pinned."""
        if depth > 4:
            return None
        spelled = self.source(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts:
            return None
        value = flow.node
        if isinstance(value, cst.Name) and flow.parameter is None and value.value in self.coroutines:
            return self._coroutine(self.coroutines[value.value], spelled or value.value)
        if not isinstance(value, cst.Call):
            return None
        with self.resolver.within(flow):
            if isinstance(value.func, cst.Attribute) and value.func.attr.value == "experimental_pin":
                base = self.model(value.func.value, None, depth + 1)
                pins = self._pins(value)
                if base is None or pins is None:
                    return None
                if spelled is None:
                    spelled = self.source(value.func.value) if isinstance(value.func.value, cst.Name) else base.spelled
                return pinned(base, pins, spelled)
            return self._joint(value, flow.scopes, spelled)

    def _pins(self, call: cst.Call) -> Optional[set[str]]:
        pins: set[str] = set()
        for arg in call.args:
            if arg.star:
                return None
            if arg.keyword is not None:
                pins.add(arg.keyword.value)
            else:
                entries = self._dict_entries(self.resolver.value_of(arg.value))
                if entries is None:
                    return None
                pins |= {k for k, _ in entries}
        return pins


    def current_scopes(self) -> tuple:
        """The scopes queries are answered in now (to read a value later in the same place)."""
        return self.resolver.follow(cst.Name("__elbolint_here__")).scopes



def _real_family(qualified: str) -> bool:
    """Whether `qualified` names a table family supported on the whole real line (a builder's base)."""
    spec = SUPPORTS.get(member_of(qualified, TFD) or "")
    return spec is not None and spec.kind == "interval" and spec.low == -INF and spec.high == INF


def pinned(model: Joint, pins: set, spelled: str) -> Optional[Joint]:
    """The model with the named components pinned (TFP renumbers the rest)."""
    if not pins:
        return Joint(model.convention, model.parts, spelled)
    names = {p.name for p in model.parts}
    if not pins <= names:
        return None
    kept = [p for p in model.parts if p.name not in pins]
    if model.convention == "args":
        certain = all(p.position is not None for p in model.parts)
        kept = [Part(i if certain else None, p.name, p.value, p.scopes) for i, p in enumerate(kept)]
    return Joint(model.convention, kept, spelled)



def _literal_slice(subscripts: tuple) -> Optional[slice]:
    """`[:-1]`, `[1:]`, `[0:2]` (one subscript, literal integers): the slice; None otherwise."""
    if len(subscripts) != 1 or len(subscripts[0].slice) != 1:
        return None
    inner = subscripts[0].slice[0].slice
    if not isinstance(inner, cst.Slice) or inner.step is not None:
        return None
    bounds: list[Optional[int]] = []
    for bound in (inner.lower, inner.upper):
        if bound is None:
            bounds.append(None)
            continue
        negative = isinstance(bound, cst.UnaryOperation) and isinstance(bound.operator, cst.Minus)
        number = bound.expression if negative and isinstance(bound, cst.UnaryOperation) else bound
        if not isinstance(number, cst.Integer):
            return None
        bounds.append(-int(number.evaluated_value) if negative else int(number.evaluated_value))
    return slice(*bounds)


def _unroot(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Root(tfd.Gamma(...))` -> `tfd.Gamma(...)`."""
    if isinstance(value, cst.Call) and len(value.args) == 1 and not value.args[0].keyword:
        func = value.func
        spelled = (func.value if isinstance(func, cst.Name)
                   else func.attr.value if isinstance(func, cst.Attribute) else "")
        if spelled.lower() == "root":
            return value.args[0].value
    return value


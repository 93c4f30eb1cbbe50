"""How a fit's target meets the surrogate's sample, for ELB014 (surrogate-support-mismatch).

TFP calls the target with the surrogate's sample: `target(*sample)` for a sequential surrogate,
`target(**sample)` for a named one, `target(sample)` for a single distribution. This module follows
that sample through the target as the file writes it (`model.log_prob`, a pinned model's
`unnormalized_log_prob`, `functools.partial(model.log_prob, y=y)`, a lambda or def that adds the
observed values, a hand-written target that scores a component with a prior) down to the model's
`log_prob` call, and pairs each model component with the surrogate component that reaches it, the way
TFP binds `log_prob(*args, **kwargs)`. A component the target transforms first (`tf.exp(z)`,
`sigma = tf.exp(sigma)`) is no longer the sample and is not paired. The components themselves are read
by rules/_support_models.py. Not a rule module (it defines no Rule subclass with a code), so the
registry skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from elbolint.cst_helpers import positional_names, target_names
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.rules._support_models import PARTIAL, Joint, ModelReader, Part, pinned
from elbolint.rules._support_reading import RuleReader, string
from elbolint.walk import children

_DENSITY_METHODS = frozenset({"log_prob", "unnormalized_log_prob"})
_BUILTIN_SEQUENCES = ("list", "tuple")
_NONE = object()


@dataclass(frozen=True)
class Ref:
    """A value of the target that is one component of the surrogate's sample."""

    position: Optional[int] = None
    name: Optional[str] = None
    spelled: Optional[str] = None  # the target's own name for it (`sigma` in `lambda sigma, mu: ...`)


@dataclass(frozen=True)
class Whole:
    """The surrogate's sample, or the tail of it from `offset` (`*z`), or all of it by name (`**kw`)."""

    offset: int = 0
    named: bool = False


@dataclass
class Match:
    """A surrogate component and the model component (prior) it stands for; `joint` is the model
    (None for a prior scored on its own by a hand-written target)."""

    surrogate: Part
    prior: Part
    joint: Optional[Joint]



class TargetMatcher(RuleReader):
    """Pairs surrogate components with model components through a fit's target."""

    def __init__(self, rule: Rule, models: ModelReader) -> None:
        super().__init__(rule)
        self.models = models

    def matches(self, target: cst.BaseExpression, surrogate: Joint) -> list[Match]:
        flow = self.resolver.follow(target)
        if flow.subscripts:
            return []
        with self.resolver.within(flow) as value:
            return self._target_matches(value, flow, surrogate, (), {})

    def _target_matches(self, value: cst.BaseExpression, flow: Flow, surrogate: Joint,
                        bound_positional: tuple, bound_keywords: dict) -> list[Match]:
        if isinstance(value, cst.Attribute) and value.attr.value in _DENSITY_METHODS:
            model = self.models.model(value.value, None)
            if model is None:
                # one distribution as the target (`tfd.Gamma(2., 1.).log_prob`): the only component
                if bound_positional or bound_keywords or len(surrogate.parts) != 1:
                    return []
                prior = Part(None, None, value.value, self.models.current_scopes())
                return [Match(surrogate.parts[0], prior, None)]
            model = pinned(model, set(bound_keywords), model.spelled) if bound_keywords else model
            if model is None:
                return []
            positional, keywords = self._sample_as_arguments(surrogate)
            return self._pair(model, surrogate, [None] * len(bound_positional) + positional, keywords, None)
        if isinstance(value, cst.Call) and not self.call_names(value).isdisjoint(PARTIAL):
            if not value.args or any(a.star for a in value.args):
                return []
            inner = self.resolver.follow(value.args[0].value)
            if inner.subscripts:
                return []
            positional = tuple(a.value for a in value.args[1:] if a.keyword is None)
            keywords = {a.keyword.value: a.value for a in value.args[1:] if a.keyword is not None}
            with self.resolver.within(inner) as wrapped:
                return self._target_matches(wrapped, inner, surrogate, bound_positional + positional,
                                            {**bound_keywords, **keywords})
        if isinstance(value, cst.Lambda):
            return self._function_matches(value.params, [value.body], None, surrogate,
                                          bound_positional, bound_keywords)
        if isinstance(value, cst.Name) and flow.parameter is None:
            function = self.resolver.function_of(cst.Call(func=value))
            if function is None:
                return []
            scopes = self.models.function_scopes(function)
            if not scopes:
                return []
            with self.resolver.within(Flow(value, (), scopes)):
                return self._function_matches(function.params, [function.body], function, surrogate,
                                              bound_positional, bound_keywords)
        return []

    def _sample_as_arguments(self, surrogate: Joint):
        """How TFP passes the surrogate's sample to the target: positional and keyword values."""
        if surrogate.convention == "args":
            return [Ref(position=p.position, name=p.name) for p in surrogate.parts], {}
        if surrogate.convention == "kwargs":
            return [], {p.name: Ref(name=p.name) for p in surrogate.parts if p.name}
        return [Ref(position=0)], {}

    def _function_matches(self, params: cst.Parameters, bodies: list, function: Optional[cst.FunctionDef],
                          surrogate: Joint, bound_positional: tuple, bound_keywords: dict) -> list[Match]:
        env = self._environment(params, surrogate, len(bound_positional), bound_keywords)
        if env is None:
            return []
        if function is not None:
            for name in _assigned_names(function.body):
                env.pop(name, None)  # `sigma = tf.exp(sigma)`: no longer the sample
        matches: list[Match] = []
        for call in _calls_in(bodies):
            func = call.func
            if not isinstance(func, cst.Attribute) or func.attr.value not in _DENSITY_METHODS:
                continue
            if isinstance(func.value, cst.Name) and func.value.value in env:
                continue
            spread = self._spread_keywords(call, env, surrogate)  # `model.log_prob(**sample, y=y)`
            if spread is None:
                continue
            positional = self._positional(call, env, surrogate)
            if positional is None:
                continue
            keywords = {**spread, **{a.keyword.value: self._source(a.value, env, surrogate)
                                     for a in call.args if a.keyword is not None}}
            model = self.models.model(func.value, None)
            if model is not None:
                matches += self._pair(model, surrogate, positional, keywords, env)
                continue
            # a single prior scoring a sample: `tfd.HalfNormal(1.).log_prob(sigma)`
            if len(positional) + len(keywords) != 1:
                continue
            source = positional[0] if positional else keywords.get("value", _NONE)
            if isinstance(source, Ref):
                part = _lookup(surrogate, source)
                if part is not None:
                    prior = Part(None, source.spelled, func.value, self.models.current_scopes())
                    matches.append(Match(part, prior, None))
        return matches

    def _positional(self, call: cst.Call, env: dict, surrogate: Joint) -> Optional[list]:
        """What the positional arguments of a density call are in terms of the sample (see `_source`),
        a `*name` of the target's own `*args` spread into its parts; None when `*` spreads anything else."""
        positional: list = []
        for arg in call.args:
            if arg.keyword is not None or arg.star == "**":
                continue
            if arg.star == "*":
                source = env.get(arg.value.value) if isinstance(arg.value, cst.Name) else None
                if not isinstance(source, Whole) or source.named:
                    return None
                positional += self._tail(source, surrogate)
            else:
                positional.append(self._source(arg.value, env, surrogate))
        return positional

    def _spread_keywords(self, call: cst.Call, env: dict, surrogate: Joint) -> Optional[dict]:
        """The keywords a `**name` argument spreads: the surrogate's named parts when `name` is the
        target's own `**kwargs` (`def target(**sample): return model.log_prob(**sample, y=y)`); {}
        without one; None when something else is spread (what it holds cannot be read)."""
        spread = [a for a in call.args if a.star == "**"]
        if not spread:
            return {}
        source = env.get(spread[0].value.value) if isinstance(spread[0].value, cst.Name) else None
        if len(spread) != 1 or not isinstance(source, Whole) or not source.named:
            return None
        return {p.name: Ref(name=p.name) for p in surrogate.parts if p.name}

    def _environment(self, params: cst.Parameters, surrogate: Joint, skip: int, bound_keywords: dict):
        """Parameter name -> Ref / Whole for the parameters the surrogate's sample binds."""
        env: dict[str, object] = {}
        positional = positional_names(params)[skip:]
        positional = [p for p in positional if p not in bound_keywords]
        star = params.star_arg.name.value if isinstance(params.star_arg, cst.Param) else None
        if surrogate.convention == "args":
            count = len(surrogate.parts)
            for index, name in enumerate(positional[:count]):
                part = surrogate.by_position(index)
                env[name] = Ref(position=index, name=part.name if part else None, spelled=name)
            if star is not None and len(positional) < count:
                env[star] = Whole(offset=len(positional))
        elif surrogate.convention == "kwargs":
            names = {p.name for p in surrogate.parts if p.name}
            for param in (*params.posonly_params, *params.params, *params.kwonly_params):
                if param.name.value in names:
                    env[param.name.value] = Ref(name=param.name.value, spelled=param.name.value)
            if params.star_kwarg is not None:
                env[params.star_kwarg.name.value] = Whole(named=True)
        else:
            if positional:
                env[positional[0]] = Ref(position=0, spelled=positional[0])
        return env

    def _tail(self, whole: Whole, surrogate: Joint) -> list:
        return [Ref(position=p.position, name=p.name) for p in surrogate.parts
                if p.position is not None and p.position >= whole.offset]

    def _source(self, node: cst.BaseExpression, env: dict, surrogate: Joint):
        """What a target's expression is in terms of the surrogate's sample: a Ref, a Whole, a
        structure (list of sources / dict of sources) or None (data, or a transformed sample)."""
        if isinstance(node, cst.Name):
            return env.get(node.value)
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name):
            whole = env.get(node.value.value)
            if not isinstance(whole, Whole) or len(node.slice) != 1:
                return None
            index = node.slice[0].slice
            if not isinstance(index, cst.Index):
                return None
            if whole.named:
                key = string(index.value)
                return Ref(name=key) if key else None
            if isinstance(index.value, cst.Integer):
                return Ref(position=whole.offset + int(index.value.evaluated_value))
            return None
        if isinstance(node, (cst.List, cst.Tuple)):
            items: list = []
            for element in node.elements:
                if isinstance(element, cst.StarredElement):
                    inner = self._source(element.value, env, surrogate)
                    if isinstance(inner, Whole) and not inner.named:
                        items += self._tail(inner, surrogate)
                    elif isinstance(inner, list):
                        items += inner
                    else:
                        return None
                else:
                    items.append(self._source(element.value, env, surrogate))
            return items
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            left = self._sequence(self._source(node.left, env, surrogate), surrogate)
            right = self._sequence(self._source(node.right, env, surrogate), surrogate)
            if left is None or right is None:
                return None
            return left + right
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            if node.func.value in _BUILTIN_SEQUENCES and len(node.args) == 1 and not node.args[0].keyword:
                return self._sequence(self._source(node.args[0].value, env, surrogate), surrogate)
            if node.func.value == "dict":
                return self._dict_source(node, env, surrogate)
        if isinstance(node, cst.Dict):
            return self._dict_source(node, env, surrogate)
        return None

    def _sequence(self, source, surrogate: Joint) -> Optional[list]:
        if isinstance(source, Whole) and not source.named:
            return self._tail(source, surrogate)
        if isinstance(source, list):
            return source
        return None

    def _dict_source(self, node: Union[cst.Dict, cst.Call], env: dict, surrogate: Joint) -> Optional[dict]:
        found: dict = {}
        if isinstance(node, cst.Dict):
            for element in node.elements:
                if isinstance(element, cst.StarredDictElement):
                    inner = self._source(element.value, env, surrogate)
                    if not (isinstance(inner, Whole) and inner.named):
                        return None
                    found.update({p.name: Ref(name=p.name) for p in surrogate.parts if p.name})
                else:
                    key = string(element.key) if isinstance(element, cst.DictElement) else None
                    if key is None:
                        return None
                    found[key] = self._source(element.value, env, surrogate)
            return found
        for arg in node.args:
            if arg.keyword is not None:
                found[arg.keyword.value] = self._source(arg.value, env, surrogate)
            elif not arg.star:
                inner = self._source(arg.value, env, surrogate)
                if not (isinstance(inner, Whole) and inner.named):
                    return None
                found.update({p.name: Ref(name=p.name) for p in surrogate.parts if p.name})
            else:
                return None
        return found

    def _pair(self, model: Joint, surrogate: Joint, positional: list, keywords: dict,
              env: Optional[dict]) -> list[Match]:
        """Model component <-> surrogate component, following TFP's rule for `log_prob(*args, **kwargs)`:
        a keyword names a component; positional argument i is component i; a single positional
        argument of a model with several components is the whole value (a list or a dict)."""
        assigned: list[tuple[Part, object]] = []
        keywords = dict(keywords)
        value = keywords.pop("value", _NONE)
        if value is not _NONE:
            if positional:
                return []
            positional = [value]
        named = {k: v for k, v in keywords.items() if model.by_name(k) is not None}
        if len(positional) == 1 and not named and len(model.parts) > 1:
            structure = positional[0]
            if isinstance(structure, Whole):
                structure = self._tail(structure, surrogate) if not structure.named else {
                    p.name: Ref(name=p.name) for p in surrogate.parts if p.name}
            if isinstance(structure, list):
                positional = structure
            elif isinstance(structure, dict):
                positional, named = [], {k: v for k, v in structure.items() if model.by_name(k) is not None}
            else:
                return []
        for index, source in enumerate(positional):
            part = model.by_position(index)
            if part is not None and part.name not in named:
                assigned.append((part, source))
        for key, source in named.items():
            named_part = model.by_name(key)
            if named_part is not None:  # always: `named` keeps only the model's own names
                assigned.append((named_part, source))
        matches = []
        for prior, source in assigned:
            if isinstance(source, Ref):
                part = _lookup(surrogate, source)
                if part is not None:
                    matches.append(Match(part, prior, model))
        return matches




def _lookup(surrogate: Joint, ref: Ref) -> Optional[Part]:
    if ref.position is not None:
        part = surrogate.by_position(ref.position)
        if part is not None:
            return part
    if ref.name is not None:
        return surrogate.by_name(ref.name)
    return None



def _calls_in(bodies: list) -> list[cst.Call]:
    """Every call in the given code, not in nested functions, classes or lambdas."""
    found: list[cst.Call] = []
    stack = list(reversed(bodies))
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(node, cst.Call):
            found.append(node)
        stack.extend(reversed(children(node)))  # (CSTNode.children without rebuilding the node)
    return found


def _assigned_names(body: cst.CSTNode) -> set[str]:
    names: set[str] = set()
    stack: list[cst.CSTNode] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        targets: list[cst.BaseExpression] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, cst.For):
            targets = [node.target]
        elif isinstance(node, cst.NamedExpr):
            targets = [node.target]
        for target in targets:
            for inner in target_names(target):
                names.add(inner)
        stack.extend(children(node))
    return names

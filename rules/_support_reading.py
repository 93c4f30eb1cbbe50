"""What support a distribution written in the file has, for ELB014 (surrogate-support-mismatch).

Reads one expression of the file (a prior or a surrogate component) down to the call that makes it and
answers where it has density: a table family with its bounds read from the call (`Uniform(0., 10.)`,
`Pareto(2., scale=s)`), through wrappers (`Independent`, `Sample`, ...), `TransformedDistribution`s and
bijectors called on a distribution, whose images of the base support are computed here too (`Softplus`,
`Exp`, `Sigmoid(low, high)`, `Chain`, ...). The facts come from rules/_support_table.py; this module
only reads code. Not a rule module (it defines no Rule subclass with a code), so the registry skips it.
"""

from __future__ import annotations

import math
from typing import Optional

import libcst as cst

from elbolint.names import TFB, member_of
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.rules._support_table import (
    FINITE, INF, REAL_LINE_IMAGES, SUPPORTS, BOUND_PARAMETERS, Bound, Support, SupportSpec,
    monotone, softplus,
)
from elbolint.rules._tfp import distribution_name, literal_values

_WRAPPERS = frozenset({"Independent", "Sample", "BatchReshape", "BatchBroadcast"})
_TRANSFORMED = "TransformedDistribution"

#: What the support of a distribution expression is: (support, how the family is spelled, the call that
#: makes it, what the prior's log_prob is outside ("-inf", "unchecked", "none" or "" when mapped), the
#: text of its low bound, of its high bound).
Found = tuple[Support, str, cst.Call, str, str, str]


def string(node: Optional[cst.CSTNode]) -> Optional[str]:
    """The value of a plain string literal, or None."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


class RuleReader:
    """A helper that reads code on behalf of a rule: the rule's resolver and its LibCST helpers."""

    get_arg = staticmethod(Rule.get_arg)

    def __init__(self, rule: Rule) -> None:
        self.resolver = rule.resolver
        self.source = rule.source
        self.call_names = rule.call_names
        self.qualified_names = rule.qualified_names


class SupportReader(RuleReader):
    """The supports of priors and surrogate components, and the images of bijectors."""

    def prior_support(self, value: Optional[cst.BaseExpression], scopes: tuple) -> Optional[Found]:
        """(support, label, call, outside, low text, high text) of a model component, or None."""
        if value is None:
            return None
        with self.resolver.within(Flow(value, (), scopes)):
            return self.distribution_support(value, prior=True)

    def surrogate_support(self, value: Optional[cst.BaseExpression],
                          scopes: tuple) -> Optional[tuple[Support, str, cst.Call]]:
        """(support, label, node to report) of a surrogate component, or None."""
        if value is None:
            return None
        with self.resolver.within(Flow(value, (), scopes)):
            found = self.distribution_support(value, prior=False)
        if found is None:
            return None
        support, label, call, _, _, _ = found
        return support, label, call

    def distribution_support(self, node: cst.BaseExpression, prior: bool, depth: int = 0) -> Optional[Found]:
        """What `node` is as a distribution (see Found), read in the current scopes; None when unknown.
        A prior must be a table family (maybe wrapped): a transformed prior may be a target's own space."""
        if depth > 6:
            return None
        flow = self.resolver.follow(node)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        call = flow.node
        with self.resolver.within(flow):
            if any(a.star for a in call.args):
                return None
            if isinstance(call.func, cst.Call) and self.is_bijector(call.func):
                if prior or len(call.args) != 1:  # `tfb.Softplus()(tfd.Normal(...))`
                    return None
                inner = self.distribution_support(call.args[0].value, prior, depth + 1)
                if inner is None:
                    return None
                image = self.image(call.func, None, inner[0])
                if image is None:
                    return None
                return image, f"{inner[1]} mapped by {self.source(call.func.func)}", call, "", "", ""
            name = distribution_name(self.resolver, call)
            if name is None:
                return None
            label = self.source(call.func)
            if name in _WRAPPERS:
                inner_arg = self.get_arg(call, "distribution", 0)
                if inner_arg is None:
                    return None
                inner = self.distribution_support(inner_arg.value, prior, depth + 1)
                if inner is None:
                    return None
                return inner[0], inner[1], call, inner[3], inner[4], inner[5]
            if name == _TRANSFORMED:
                if prior:
                    return None  # a prior in another space: the target may be written there
                base = self.get_arg(call, "distribution", 0)
                bijector = self.get_arg(call, "bijector", 1)
                if base is None or bijector is None:
                    return None
                inner = self.distribution_support(base.value, prior, depth + 1)
                if inner is None:
                    return None
                image = self.image(bijector.value, None, inner[0])
                if image is None:
                    return None
                return image, f"{label} of {inner[1]}", call, "", "", ""
            spec = SUPPORTS.get(name)
            if spec is None:
                return None
            if spec.kind != "interval":
                return Support(spec.kind), label, call, spec.outside, "", ""
            low, low_text = self._bound(call, name, spec.low, spec)
            high, high_text = self._bound(call, name, spec.high, spec)
            outside = spec.outside
            forced = self.get_arg(call, "force_probs_to_zero_outside_support", None)
            if forced is not None and isinstance(forced.value, cst.Name) and forced.value.value == "True":
                outside = "-inf"
            return Support("interval", low, high), label, call, outside, low_text, high_text

    def _bound(self, call: cst.Call, name: str, spec_bound, spec: SupportSpec) -> tuple[Bound, str]:
        if not isinstance(spec_bound, str):
            return float(spec_bound), ""
        signature = BOUND_PARAMETERS[name]
        position = [p for p, _ in signature].index(spec_bound)
        arg = self.get_arg(call, spec_bound, position)
        if arg is None:
            default = signature[position][1]
            return (float(default), "") if default is not None else (None, spec_bound)
        text = self.source(arg.value)
        value = self.number(arg.value)
        if value is not None:
            return value, text
        return (None if spec_bound in spec.may_be_infinite else FINITE), text

    def number(self, node: cst.BaseExpression) -> Optional[float]:
        """A literal bound, infinities included (`np.inf`, `-math.inf`, `float("inf")`)."""
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = self.number(node.expression)
            return -inner if inner is not None else None
        value = self.resolver.value_of(node)
        qualified = self.qualified_names(value) if isinstance(value, (cst.Name, cst.Attribute)) else frozenset()
        if any(q.rsplit(".", 1)[-1] in ("inf", "Inf", "infty", "Infinity") for q in qualified):
            return INF
        if (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "float"
                and len(value.args) == 1 and string(value.args[0].value) in ("inf", "+inf", "-inf", "infinity")):
            return -INF if string(value.args[0].value) == "-inf" else INF
        values = literal_values(value, self.resolver)
        if values and len(values) == 1:
            return values[0]
        if values and len(set(values)) == 1:
            return values[0]
        return None

    def is_bijector(self, call: cst.Call) -> bool:
        return any(member_of(n, TFB) is not None for n in self.call_names(call))

    def image(self, node: cst.BaseExpression, scopes: Optional[tuple], base: Support,
              depth: int = 0) -> Optional[Support]:
        """The support a bijector maps `base` onto, or None when it cannot be told."""
        if depth > 8 or base.kind != "interval":
            return None
        flow = self.resolver.follow(node, scopes)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return None
        call = flow.node
        with self.resolver.within(flow):
            names = self.call_names(call)
            members = {m for m in (member_of(n, TFB) for n in names) if m is not None}
            if not members or any(a.star for a in call.args):
                return None
            member = members.pop()
            if member == "Chain":
                bijectors = self.get_arg(call, "bijectors", 0)
                if bijectors is None:
                    return base
                inner = self.resolver.follow(bijectors.value)
                if inner.subscripts or not isinstance(inner.node, (cst.List, cst.Tuple)):
                    return None
                support: Optional[Support] = base
                sequence = inner.node
                with self.resolver.within(inner):
                    for element in reversed(sequence.elements):
                        if isinstance(element, cst.StarredElement) or support is None:
                            return None
                        support = self.image(element.value, None, support, depth + 1)
                return support
            return self._simple_image(member, call, base)

    def _simple_image(self, member: str, call: cst.Call, base: Support) -> Optional[Support]:
        low, high = base.low, base.high
        if member == "Identity":
            return base
        if member == "Exp":
            return Support("interval", monotone(low, math.exp), monotone(high, math.exp))
        if member == "Softplus":
            shift = 0.0
            low_arg = self.get_arg(call, "low", 1)
            if low_arg is not None:
                value = self.number(low_arg.value)
                if value is None:
                    return Support("interval", FINITE, INF) if base.low == -INF else None
                shift = value
            if self.get_arg(call, "hinge_softness", 0) is not None:
                return Support("interval", shift, INF) if base.low == -INF else None
            return Support("interval", monotone(low, lambda v: softplus(v) + shift),
                           monotone(high, lambda v: softplus(v) + shift))
        if member in ("Sigmoid", "NormalCDF", "Tanh"):
            lo: Bound
            hi: Bound
            lo, hi = REAL_LINE_IMAGES[member]
            if member == "Sigmoid":
                bounds = []
                for keyword, position, default in (("low", 0, 0.0), ("high", 1, 1.0)):
                    arg = self.get_arg(call, keyword, position)
                    value = self.number(arg.value) if arg is not None else default
                    bounds.append(FINITE if value is None else value)
                lo, hi = bounds
            if base.real:
                return Support("interval", lo, hi)
            return Support("interval", lo if low == -INF else FINITE, hi if high == INF else FINITE)
        if member in ("Square", "AbsoluteValue"):
            return Support("interval", *REAL_LINE_IMAGES[member]) if base.real else None
        if member == "Shift":
            arg = self.get_arg(call, "shift", 0)
            offset = self.number(arg.value) if arg is not None else None
            if offset is None:
                return Support("interval", low if low == -INF else FINITE, high if high == INF else FINITE)
            return Support("interval", monotone(low, lambda v: v + offset), monotone(high, lambda v: v + offset))
        if member == "Scale":
            arg = self.get_arg(call, "scale", 0)
            value = self.number(arg.value) if arg is not None else None
            if base.real:
                return base
            if value is None or value == 0:
                return None
            if value > 0:
                return Support("interval", monotone(low, lambda v: v * value), monotone(high, lambda v: v * value))
            return Support("interval", monotone(high, lambda v: v * value), monotone(low, lambda v: v * value))
        if member == "SoftmaxCentered":
            return Support("simplex") if base.real else None
        if member == "CorrelationCholesky":
            return Support("cholesky-correlation") if base.real else None
        return None

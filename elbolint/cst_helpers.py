"""Small readers of LibCST nodes that the engine's analyses share: one copy of each.

Why: the resolver, its value flow and the file analyses each read the same few shapes (a dotted
name, a def's parameters, a call's argument by keyword or position, an integer index, the names an
assignment target binds). Copies of such readers drift apart in the corner cases (`*args`, the
order of keyword-only parameters, `x[-1]`), and a finding then depends on which copy a rule went
through. Pure functions of the syntax tree: no resolver, no TFP knowledge.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst


def dotted_name(node: cst.CSTNode) -> Optional[str]:
    """`tfp.distributions.Normal` -> "tfp.distributions.Normal"; None for anything else.
    (`type(...) is`: LibCST's node classes are ABCs, so `isinstance` goes through ABCMeta, and this runs
    for nearly every name the rules resolve; Name and Attribute have no subclasses.)"""
    if type(node) is cst.Name:
        return node.value
    if type(node) is cst.Attribute:
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def positional_parameters(params: cst.Parameters) -> list[cst.Param]:
    """The parameters that take positional arguments, in order (`*args` not included)."""
    return [*params.posonly_params, *params.params]


def positional_names(params: cst.Parameters) -> list[str]:
    """The names of `positional_parameters`."""
    return [p.name.value for p in positional_parameters(params)]


def parameter_names(params: cst.Parameters) -> list[str]:
    """Every name a def or lambda binds as a parameter: positional ones, `*args`, keyword-only
    ones, `**kwargs`, in that order (the first is a method's `self`)."""
    names = positional_names(params)
    if isinstance(params.star_arg, cst.Param):
        names.append(params.star_arg.name.value)
    names.extend(p.name.value for p in params.kwonly_params)
    if params.star_kwarg is not None:
        names.append(params.star_kwarg.name.value)
    return names


def argument(call: cst.Call, keyword: str, position: int) -> Optional[cst.BaseExpression]:
    """The value passed as `keyword=` (wherever it stands), else the positional argument at
    `position` (0-based) unless a `*args` comes before or at it; None when neither is spelled out."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [a for a in call.args if a.keyword is None]
    if len(positional) > position and not any(a.star for a in positional[: position + 1]):
        return positional[position].value
    return None


def integer_index(subscript: cst.Subscript) -> Optional[int]:
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


def target_names(target: cst.BaseExpression) -> list[str]:
    """The plain names an assignment or `for` target binds (`a, (b, *c)` -> a, b, c); attributes
    and subscripts bind no name."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        names: list[str] = []
        for element in target.elements:
            names += target_names(element.value)
        return names
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


def callee_name(call: cst.Call) -> Optional[str]:
    """The last name of what `call` calls: `f` of `f(x)`, `fit` of `model.fit(x)`; None otherwise."""
    func = call.func
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None

"""ELB005 joint-lambda-arguments: a callable component of a `JointDistributionSequential` whose
parameters cannot be what TFP passes it (the previous components, most recent first). The rule's
documentation is its class docstring."""

from __future__ import annotations

from typing import Optional, Union

import libcst as cst

from elbolint.diagnostics import Severity
from elbolint.names import TFD, names_in
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.rules._tfp import distribution_name, first_argument

#: Joint distributions that call each component with the previous samples, most recent first.
_SEQUENTIAL = names_in(TFD, "JointDistributionSequential", "JointDistributionSequentialAutoBatched")

_Callable = Union[cst.Lambda, cst.FunctionDef]


class JointLambdaArguments(Rule):
    """
    ## What it does
    Flags a callable component of a `tfd.JointDistributionSequential` (or
    `JointDistributionSequentialAutoBatched`) whose arguments cannot be what TFP passes it:
    a lambda (or a `def` of the same file) with more required positional parameters than there are
    components before it, or whose parameters are named after the earlier components (`name=`) in
    first-to-last order, when TFP passes the previous samples most recent first.

    ## Why is this bad?
    `JointDistributionSequential` calls each callable with the samples of the components before
    it in *reverse* order: the first parameter receives the immediately preceding component, the
    second the one before it, and so on. A lambda with more parameters than preceding components
    makes TFP raise `Too few inputs provided ... expected: 3, saw: 2` as soon as the model is
    sampled or evaluated. A lambda written `lambda weight, bias:` after `weight` and `bias`
    silently receives `(bias, weight)`: the model is a different model, and the ELBO of the
    surrogate against it is large or never settles.

    ## Example
    ```python
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        tfd.Normal(0.0, 1.0, name="bias"),
        lambda weight, bias: tfd.Independent(
            tfd.Normal(weight * x + bias, 1.0), reinterpreted_batch_ndims=1),
    ])
    ```

    ## Use instead
    Name the parameters most recent first (and pass data by closure, not as a parameter):
    ```python
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        tfd.Normal(0.0, 1.0, name="bias"),
        lambda bias, weight: tfd.Independent(
            tfd.Normal(weight * x + bias, 1.0), reinterpreted_batch_ndims=1),
    ])
    ```
    or use `tfd.JointDistributionNamed`, which passes arguments by name.
    Lambdas with `*args`, parameters with defaults, and parameter names that are not component
    names are left alone unless there are too many of them. The model list and its components are
    followed through names, tuple elements and the functions of the file that return them
    (`d1 = make_prior()`; `JointDistributionSequential([d1, ...])`, `model = build_model()`).
    """

    code = "ELB005"
    name = "joint-lambda-arguments"
    severity = Severity.ERROR
    confirmed_by = ("ELB100", "ELB106")
    #: Triage: a component of a JointDistributionSequential.
    starts_from = (last_parts(_SEQUENTIAL),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._defs: dict[str, Optional[cst.FunctionDef]] = {}

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        name = node.name.value
        # A name defined twice in the file is ambiguous: forget it.
        self._defs[name] = None if name in self._defs else node

    def visit_Call(self, node: cst.Call) -> None:
        if self.call_names(node).isdisjoint(_SEQUENTIAL):
            return
        model = first_argument(node, "model")
        if model is None:
            return
        flow = self.resolver.follow(model)
        components = flow.node
        if flow.subscripts or not isinstance(components, (cst.List, cst.Tuple)):
            return
        with self.resolver.within(flow):
            names: list[Optional[str]] = []
            for index, element in enumerate(components.elements):
                if isinstance(element, cst.StarredElement):
                    return  # positions after `*parts` are unknowable
                function = self._callable(element.value)
                if function is not None:
                    self._check(element.value, function, index, names, spelled=self.source(node.func))
                names.append(self._component_name(element.value))

    # ------------------------------------------------------------------ helpers
    def _callable(self, node: cst.BaseExpression) -> Optional[_Callable]:
        if isinstance(node, cst.Lambda):
            return node
        if isinstance(node, cst.Name):
            if self.qualified_names(node):
                return None
            if node.value in self._defs:
                resolved = self.value_of(node)
                return self._defs[node.value] if resolved is node else None
            resolved = self.value_of(node)
            if isinstance(resolved, cst.Lambda):
                return resolved
        return None

    def _component_name(self, node: cst.BaseExpression) -> Optional[str]:
        flow = self.resolver.follow(node)
        call = flow.node
        if flow.subscripts or not isinstance(call, cst.Call):
            return None
        with self.resolver.within(flow):
            if distribution_name(self.resolver, call) is None:
                return None
        arg = self.get_arg(call, "name")
        if arg is not None and isinstance(arg.value, cst.SimpleString):
            value = arg.value.evaluated_value
            return value if isinstance(value, str) and value.isidentifier() else None
        return None

    def _check(self, node: cst.BaseExpression, function: _Callable, index: int,
               names: list[Optional[str]], spelled: str) -> None:
        params = function.params
        if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None:
            return  # TFP then passes every previous sample
        positional = [*params.posonly_params, *params.params]
        if isinstance(function, cst.FunctionDef) and _is_method_like(function):
            return
        required = [p.name.value for p in positional if p.default is None]
        kind = "lambda" if isinstance(function, cst.Lambda) else f"function `{function.name.value}`"
        if len(required) > index:
            self.report(
                node,
                f"this {kind} takes {len(required)} required argument(s) ({', '.join(required)}) but only "
                f"{index} component(s) precede it in {spelled}: TFP raises \"Too few inputs provided\". "
                "Pass data by closure, not as a parameter",
            )
            return
        if len(required) < 2:
            return
        received = [names[index - 1 - position] for position in range(len(required))]
        known = {n for n in names if n is not None}
        if len(known) != len([n for n in names if n is not None]):
            return  # duplicate component names: can't tell
        if not set(required) <= known or received == required:
            return
        if all(r is None or r == p for r, p in zip(received, required)):
            return
        shown = ", ".join(r if r is not None else f"<component {index - 1 - i}>" for i, r in enumerate(received))
        self.report(
            node,
            f"{spelled} passes previous samples most recent first: this {kind} receives ({shown}), "
            f"not ({', '.join(required)}). Reverse the parameters, or use JointDistributionNamed",
        )


def _is_method_like(function: cst.FunctionDef) -> bool:
    """A def with decorators may not be called as written; stay silent on it."""
    return bool(function.decorators)

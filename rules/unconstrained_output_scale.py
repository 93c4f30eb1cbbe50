"""ELB013 unconstrained-output-scale: a DistributionLambda's positive parameter that is a raw network output.

Why this module exists: it is the rule (its code, its documentation, the traversal's callbacks) and
the reading of the code it needs: the layers before a `DistributionLambda` (a `Sequential` list, a
`model.add` chain, `DistributionLambda(f)(x)`), the function that builds its distribution (a lambda,
a def of the file, a distribution class), and the sign of each positive-only parameter as a function
of the layer's input. The signs themselves, their arithmetic and which TF / Keras calls produce
which sign are the sign lattice, in _sign_lattice.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import libcst as cst

from elbolint.cst_helpers import integer_index
from elbolint.diagnostics import Severity
from elbolint.names import TF, TFD, TFPL, canonical, member_of, names_in
from elbolint.rules._trained_parameter import TrainedParameterRule
from elbolint.triage import last_parts
from elbolint.rules._tfp import (
    POSITIONAL, POSITIVE_PARAMETERS, distribution_arguments, distribution_name, literal_values,
)
from elbolint.rules._sign_lattice import (
    ACTIVATED_LAYERS, ACTIVATION_LAYER, ACTIVATION_STRINGS, ANY, CLIP, CONCATENATE, MAXIMUM, NONNEG,
    NONNEGATIVE_FUNCTIONS, NOT_VISIBLE, POS, POSITIVE_BIJECTORS, POSITIVE_FUNCTIONS, SIGN_PRESERVING,
    SIGNED_FUNCTIONS, SIGNED_LAYERS, TIME_DISTRIBUTED, TRANSPARENT_LAYERS, UNKNOWN, InputModel, SignFn,
    add_signs, combine_layers, constant, max_signs, multiply_signs,
)

DISTRIBUTION_LAMBDA = frozenset({f"{TFPL}.DistributionLambda"})

_DEPTH = 12


@dataclass
class _Candidate:
    parameter: str
    distribution: str
    node: cst.BaseExpression
    sign: SignFn
    fix: Optional[tuple[str, cst.CSTNode]]


@dataclass
class _Lambda:
    """One DistributionLambda call: its function and what flows into it."""

    call: cst.Call
    # a lambda, a def (or its name), a class
    function: Union[cst.Lambda, cst.FunctionDef, str, cst.BaseExpression, None]
    producers: list[InputModel]


class UnconstrainedOutputScale(TrainedParameterRule):
    """
    ## What it does
    Flags a positive-only parameter (`scale`, `scale_diag`, `concentration`, `rate`, `df`, ...) of
    the distribution built by a `tfp.layers.DistributionLambda` when it is the raw network output:
    the layer's input, a slice of it (`t[..., 1:]`) or a linear expression of it
    (`0.05 * t[..., 1:]`, `1e-3 + t[..., 1:]`), with no positive transform (`softplus`, `exp`,
    `sigmoid`, ...) in between. The function may be a lambda, a `def` of the same file or a
    distribution class (`DistributionLambda(tfd.Poisson)`). Not flagged: transformed or constant
    parameters, and inputs that visibly come from a layer with a positive activation
    (`Dense(2, activation="softplus")` just before it in a `Sequential` list or `model.add` chain,
    or applied to `Dense(1, activation=tf.exp)(x)`); an input produced by a layer elbolint cannot
    read (a custom layer, a `Lambda` layer, a concatenation of differently activated heads) is
    given the benefit of the doubt. A list input (`lambda t: tfd.Normal(loc=t[0], scale=t[1])`
    called on `[loc, scale]`, also through `self.head(...)`) is read element by element:
    `[loc, tf.nn.softplus(s) + 1e-5]` or a head with a positive activation is positive, a raw
    `Dense` output is not; an element of a list that no call in the file visibly feeds (the
    layer is returned or called elsewhere) gets the benefit of the doubt. A layer called several
    times is flagged when one of its calls feeds it a raw scale. `tfpl.IndependentNormal` and the
    other ready-made layers transform their parameters themselves and are never flagged.

    ## Why is this bad?
    A `Dense` layer's output is any real number: at initialisation about half of the predicted
    scales are negative. `tfd.Normal(loc, scale).log_prob(y)` with `scale <= 0` is NaN (the
    distributions do not validate their arguments by default), so the negative log-likelihood, and
    every gradient after it, is NaN from the first batch, or from the first step that moves an
    output across zero. Hence severity *error*: unlike an `exp` transform (ELB012, a warning,
    which works until it overflows), a raw scale is invalid for a large share of inputs from the
    very first step, and the fix costs nothing. A non-negative activation (`relu`) before the
    layer is not flagged: only an exact zero is invalid there.

    ## Example
    ```python
    model = tf.keras.Sequential([
        tf.keras.layers.Dense(2),
        tfp.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=t[..., 1:])),
    ])
    ```

    ## Use instead
    Map the raw output to a positive scale, with a small floor:
    ```python
    model = tf.keras.Sequential([
        tf.keras.layers.Dense(2),
        tfp.layers.DistributionLambda(
            lambda t: tfd.Normal(loc=t[..., :1], scale=1e-3 + tf.math.softplus(t[..., 1:]))
        ),
    ])
    ```
    or use `tfp.layers.IndependentNormal(1)`, which does this itself. `elbolint --fix` wraps the
    flagged expression in `1e-3 + tf.math.softplus(...)` when the file imports TensorFlow.
    """

    code = "ELB013"
    name = "unconstrained-output-scale"
    severity = Severity.ERROR
    confirmed_by = ("ELB101",)
    #: Triage: the distribution of a DistributionLambda.
    starts_from = (last_parts(DISTRIBUTION_LAMBDA),)
    fixable = True
    # Wrapping a network output in softplus changes what the layer computes (a trained model's
    # outputs change): applied only with --unsafe-fixes.
    fix_is_unsafe = True

    def __init__(self, context) -> None:
        super().__init__(context)
        self._functions: list[cst.CSTNode] = []  # enclosing lambdas and defs, innermost last
        self._candidates: dict[int, list[_Candidate]] = {}  # id(function) -> findings if it is a DL's
        self._defs: dict[str, list[cst.FunctionDef]] = {}
        self._lambdas: list[_Lambda] = []
        self._by_call: dict[int, _Lambda] = {}
        self._pending: dict[int, InputModel] = {}  # id(DistributionLambda call) -> its input, seen first
        self._previous: dict[int, list[cst.BaseExpression]] = {}  # id(layer) -> layers before it, nearest first
        self._added: dict[tuple[int, str], list[cst.BaseExpression]] = {}  # `model.add(...)` chains
        self._unpacked: dict[tuple[int, str], cst.BaseExpression] = {}  # `a, b = tf.split(t, 2, -1)`

    # ------------------------------------------------------------------ scopes
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._defs.setdefault(node.name.value, []).append(node)
        self._functions.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._functions.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._functions.append(node)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._functions.pop()

    # --------------------------------------------------------- layer sequences
    def visit_List(self, node: cst.List) -> None:
        self._remember_sequence(node.elements)

    def visit_Tuple(self, node: cst.Tuple) -> None:
        self._remember_sequence(node.elements)

    def _remember_sequence(self, elements: Sequence[cst.BaseElement]) -> None:
        earlier: list[cst.BaseExpression] = []
        for element in elements:
            if isinstance(element.value, cst.Call):
                self._previous[id(element.value)] = list(reversed(earlier))
            earlier.append(element.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self._functions:
            return
        scope = id(self._functions[-1])
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._unpacked.pop((scope, target.target.value), None)
            elif isinstance(target.target, (cst.Tuple, cst.List)) and isinstance(node.value, cst.Call):
                names = self.call_names(node.value)
                if names.isdisjoint(names_in(TF, "split", "unstack")) or not node.value.args:
                    continue
                for element in target.target.elements:
                    if isinstance(element.value, cst.Name):
                        self._unpacked[(scope, element.value.value)] = node.value.args[0].value

    # ------------------------------------------------------------------- calls
    def visit_Call(self, node: cst.Call) -> None:
        self._remember_add(node)
        positional = [a for a in node.args if a.keyword is None and not a.star]
        if positional and isinstance(node.func, cst.Call) and self.is_call_to(node.func, DISTRIBUTION_LAMBDA):
            # `DistributionLambda(f)(x)`: the inner call is visited next.
            self._pending[id(node.func)] = self._model_of(positional[0].value)
        elif positional:
            inner = self._distribution_lambda(node.func)
            if inner is not None:  # `head(x)` with `head = DistributionLambda(f)`
                inner.producers.append(self._model_of(positional[0].value))
        if self.is_call_to(node, DISTRIBUTION_LAMBDA):
            self._register(node)
            return
        if self._functions:
            self._check_distribution(node)

    def _remember_add(self, node: cst.Call) -> None:
        """`model.add(layer)`: the layer's predecessor is what was added before."""
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "add" and isinstance(func.value, cst.Name)):
            return
        if len(node.args) != 1 or node.args[0].keyword is not None or node.args[0].star:
            return
        key = (id(self.resolver.scope_node), func.value.value)
        if key not in self._added:
            initial: list[cst.BaseExpression] = []
            model = self.value_of(func.value)
            if isinstance(model, cst.Call) and model.args and isinstance(model.args[0].value, (cst.List, cst.Tuple)):
                initial = [e.value for e in model.args[0].value.elements]
            self._added[key] = initial
        layer = node.args[0].value
        if isinstance(layer, cst.Call):
            self._previous[id(layer)] = list(reversed(self._added[key]))
        self._added[key].append(layer)

    def _distribution_lambda(self, func: cst.BaseExpression) -> Optional[_Lambda]:
        """The DistributionLambda `func` names: `head` or `self.head` bound to one."""
        target = self.value_of(func) if isinstance(func, (cst.Name, cst.Attribute)) else func
        return self._by_call.get(id(target)) if isinstance(target, cst.Call) else None

    def _register(self, node: cst.Call) -> None:
        arg = self.get_arg(node, "make_distribution_fn", 0)
        function: Union[cst.Lambda, cst.FunctionDef, str, cst.BaseExpression, None] = None
        if arg is not None:
            value = self.value_of(arg.value) if isinstance(arg.value, (cst.Name, cst.Attribute)) else arg.value
            if isinstance(value, cst.Lambda):
                function = value
            elif isinstance(arg.value, cst.Name) and value is arg.value:
                defined = self._defs.get(arg.value.value)
                # The def in force here; one defined further down is looked up at the end.
                function = defined[-1] if defined else arg.value.value
            elif self._distribution_class(arg.value) is not None:
                function = arg.value
        entry = _Lambda(node, function, [])
        previous = self._previous.get(id(node))
        if previous is not None:
            entry.producers.append(self._model_of_sequence(previous))
        if id(node) in self._pending:
            entry.producers.append(self._pending.pop(id(node)))
        self._lambdas.append(entry)
        self._by_call[id(node)] = entry

    def _distribution_class(self, node: cst.BaseExpression) -> Optional[str]:
        for qualified in self.qualified_names(node):
            member = member_of(qualified, TFD)
            if member is not None and member[:1].isupper():
                return member
        return None

    # ---------------------------------------------------------- distributions
    def _check_distribution(self, node: cst.Call) -> None:
        distribution = distribution_name(self.resolver, node)
        if distribution is None:
            return
        function = self._functions[-1]
        input_name = _first_parameter(function)
        if input_name is None:
            return
        for parameter, arg in distribution_arguments(node, distribution):
            if parameter not in POSITIVE_PARAMETERS:
                continue
            sign = self._sign(arg.value, input_name, 0)
            if sign(NOT_VISIBLE) != (ANY, True) and sign(InputModel(ANY, (ANY,) * 8)) != (ANY, True):
                continue  # positive (or constant, or unknown) whatever flows in
            self._candidates.setdefault(id(function), []).append(
                _Candidate(parameter, f"{self.source(node.func)}", arg.value, sign, self._fix(arg.value))
            )

    def _sign(self, node: cst.BaseExpression, input_name: str, depth: int) -> SignFn:
        """The sign of `node` as a function of the input's sign (resolved now, evaluated later)."""
        if depth > _DEPTH:
            return constant(UNKNOWN)
        if isinstance(node, cst.Name):
            if node.value == input_name:
                return lambda model: (model.of(None), True)
            unpacked = self._unpacked.get((id(self._functions[-1]), node.value)) if self._functions else None
            if unpacked is not None:
                return self._sign(unpacked, input_name, depth + 1)
            bound = self.value_of(node)
            return self._sign(bound, input_name, depth + 1) if bound is not node else constant(UNKNOWN)
        values = literal_values(node, self.resolver)
        if values is not None:
            if all(v > 0 for v in values):
                return constant(POS)
            return constant(NONNEG if all(v >= 0 for v in values) else ANY)
        if isinstance(node, cst.Subscript):
            index = integer_index(node)
            if index is not None and isinstance(node.value, cst.Name) and node.value.value == input_name:
                return lambda model: (model.of(index), True)
            return self._sign(node.value, input_name, depth + 1)
        if isinstance(node, cst.UnaryOperation):
            inner = self._sign(node.expression, input_name, depth + 1)
            if isinstance(node.operator, cst.Plus):
                return inner
            if isinstance(node.operator, cst.Minus):
                return lambda model: ((UNKNOWN if inner(model)[0] == UNKNOWN else ANY), inner(model)[1])
            return constant(UNKNOWN)
        if isinstance(node, cst.BinaryOperation):
            left = self._sign(node.left, input_name, depth + 1)
            right = self._sign(node.right, input_name, depth + 1)
            if isinstance(node.operator, cst.Add):
                return lambda model: add_signs(left(model), right(model))
            if isinstance(node.operator, (cst.Multiply, cst.Divide)):
                return lambda model: multiply_signs(left(model), right(model))
            if isinstance(node.operator, cst.Subtract):
                return lambda model: add_signs(
                    left(model), (ANY if right(model)[0] != UNKNOWN else UNKNOWN, right(model)[1])
                )
            return constant(UNKNOWN)
        if isinstance(node, cst.Call):
            return self._call_sign(node, input_name, depth)
        return constant(UNKNOWN)

    def _call_sign(self, node: cst.Call, input_name: str, depth: int) -> SignFn:
        names = self.call_names(node)
        first = node.args[0].value if node.args and node.args[0].keyword is None and not node.args[0].star else None
        if not names.isdisjoint(POSITIVE_FUNCTIONS) or self._is_positive_bijector_call(node):
            return constant(POS)
        if not names.isdisjoint(NONNEGATIVE_FUNCTIONS):
            return constant(NONNEG)
        if first is None:
            return constant(UNKNOWN)
        if not names.isdisjoint(SIGNED_FUNCTIONS):
            inner = self._sign(first, input_name, depth + 1)
            return lambda model: (ANY if inner(model)[0] != UNKNOWN else UNKNOWN, inner(model)[1])
        if not names.isdisjoint(SIGN_PRESERVING):
            return self._sign(first, input_name, depth + 1)
        if not names.isdisjoint(MAXIMUM) and len(node.args) >= 2:
            a, b = (self._sign(arg.value, input_name, depth + 1) for arg in node.args[:2])
            return lambda model: max_signs(a(model), b(model))
        if not names.isdisjoint(CLIP):
            low = self.get_arg(node, "clip_value_min", 1)
            if low is None:
                return constant(UNKNOWN)
            bound = self._sign(low.value, input_name, depth + 1)
            inner = self._sign(first, input_name, depth + 1)
            return lambda model: (bound(model) if bound(model)[0] in (POS, NONNEG, UNKNOWN) else inner(model))
        return constant(UNKNOWN)

    def _is_positive_bijector_call(self, node: cst.Call) -> bool:
        """`tfb.Softplus()(x)` or `tfb.Exp().forward(x)`."""
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        func = self.value_of(func) if isinstance(func, cst.Name) else func
        return isinstance(func, cst.Call) and not self.call_names(func).isdisjoint(POSITIVE_BIJECTORS)

    def _fix(self, value: cst.BaseExpression) -> Optional[tuple[str, cst.CSTNode]]:
        """`1e-3 + tf.math.softplus(<value>)`, spelled as this file spells TensorFlow; no fix when
        the file does not import it under a name that resolves here."""
        softplus = self.resolver.local_name_for(f"{TF}.math.softplus")
        if softplus is None:
            return None
        try:
            func = cst.parse_expression(softplus)
        except cst.ParserSyntaxError:
            return None
        if f"{TF}.math.softplus" not in {canonical(n) for n in self.qualified_names(func)}:
            return None  # shadowed here by a local name
        replacement = cst.BinaryOperation(
            left=cst.Float("1e-3"),
            operator=cst.Add(whitespace_before=cst.SimpleWhitespace(" "), whitespace_after=cst.SimpleWhitespace(" ")),
            right=cst.Call(
                func=func, args=[cst.Arg(value.with_changes(lpar=[], rpar=[]) if _parenthesized(value) else value)]
            ),
            lpar=list(value.lpar) if _parenthesized(value) else [],
            rpar=list(value.rpar) if _parenthesized(value) else [],
        )
        return (f"Wrap it in 1e-3 + {softplus}(...)", replacement)

    # ----------------------------------------------------------------- inputs
    def _model_of_sequence(self, previous: list[cst.BaseExpression]) -> InputModel:
        """The input of a layer whose predecessors (nearest first) are `previous`."""
        for layer in previous[:_DEPTH]:
            sign, transparent = self._layer_sign(layer, 0)
            if not transparent:
                return InputModel(sign, producer=self.source(layer))
        return NOT_VISIBLE

    def _model_of(self, node: cst.BaseExpression, depth: int = 0) -> InputModel:
        """The input of `DistributionLambda(f)(node)`."""
        if depth > _DEPTH:
            return InputModel(UNKNOWN)
        if isinstance(node, (cst.List, cst.Tuple)):
            # A list input is read element by element: `[loc, 1e-5 + tf.nn.softplus(s)]`.
            if any(isinstance(e, cst.StarredElement) for e in node.elements):
                return InputModel(UNKNOWN)
            elements = tuple(self._element_sign(e.value, depth + 1) for e in node.elements)
            return InputModel(UNKNOWN, elements, self.source(node))
        if isinstance(node, cst.Name):
            bound = self.value_of(node)
            return NOT_VISIBLE if bound is node else self._model_of(bound, depth + 1)
        if isinstance(node, cst.Call):
            if isinstance(node.func, cst.Call) or (
                isinstance(node.func, (cst.Name, cst.Attribute)) and not self.call_names(node)
            ):
                # `Dense(2)(h)`, `layer(h)` or `self.layer(h)`: the layer, or what flows through it.
                layer = self.value_of(node.func) if isinstance(node.func, (cst.Name, cst.Attribute)) else node.func
                if not isinstance(layer, cst.Call):
                    return InputModel(UNKNOWN)
                if not self.call_names(layer).isdisjoint(CONCATENATE):
                    parts = node.args[0].value if node.args else None
                    if isinstance(parts, (cst.List, cst.Tuple)):
                        signs = [self._model_of(e.value, depth + 1).sign for e in parts.elements]
                        return InputModel(combine_layers(signs), producer=self.source(node))
                    return InputModel(UNKNOWN)
                sign, transparent = self._layer_sign(layer, depth + 1)
                if transparent and node.args:
                    return self._model_of(node.args[0].value, depth + 1)
                return InputModel(sign, producer=self.source(layer))
            if not self.call_names(node).isdisjoint(CONCATENATE):
                parts = node.args[0].value if node.args else None
                if isinstance(parts, (cst.List, cst.Tuple)):
                    signs = [self._model_of(e.value, depth + 1).sign for e in parts.elements]
                    return InputModel(combine_layers(signs))
            return InputModel(UNKNOWN)
        return InputModel(UNKNOWN)

    def _element_sign(self, node: cst.BaseExpression, depth: int) -> str:
        """The sign of one element of a list input: a layer's output (`_model_of`), or an
        expression of such outputs and constants (`1e-5 + tf.nn.softplus(s)`, `tf.exp(log_s)`)."""
        if depth > _DEPTH:
            return UNKNOWN
        if isinstance(node, cst.Name):
            bound = self.value_of(node)
            return UNKNOWN if bound is node else self._element_sign(bound, depth + 1)
        values = literal_values(node, self.resolver)
        if values is not None:
            return POS if all(v > 0 for v in values) else (NONNEG if all(v >= 0 for v in values) else ANY)
        if isinstance(node, cst.UnaryOperation):
            inner = self._element_sign(node.expression, depth + 1)
            if isinstance(node.operator, cst.Plus):
                return inner
            return ANY if isinstance(node.operator, cst.Minus) and inner != UNKNOWN else UNKNOWN
        if isinstance(node, cst.BinaryOperation):
            left = (self._element_sign(node.left, depth + 1), False)
            right = (self._element_sign(node.right, depth + 1), False)
            if isinstance(node.operator, cst.Add):
                return add_signs(left, right)[0]
            if isinstance(node.operator, (cst.Multiply, cst.Divide)):
                return multiply_signs(left, right)[0]
            if isinstance(node.operator, cst.Subtract):
                return add_signs(left, (ANY if right[0] != UNKNOWN else UNKNOWN, False))[0]
            return UNKNOWN
        if isinstance(node, cst.Call) and self.call_names(node):
            names = self.call_names(node)
            if not names.isdisjoint(POSITIVE_FUNCTIONS) or self._is_positive_bijector_call(node):
                return POS
            if not names.isdisjoint(NONNEGATIVE_FUNCTIONS):
                return NONNEG
            first = node.args[0].value if node.args and node.args[0].keyword is None and not node.args[0].star else None
            if first is not None and not names.isdisjoint(SIGNED_FUNCTIONS):
                return ANY if self._element_sign(first, depth + 1) != UNKNOWN else UNKNOWN
            if first is not None and not names.isdisjoint(SIGN_PRESERVING):
                return self._element_sign(first, depth + 1)
            if not names.isdisjoint(MAXIMUM) and len(node.args) >= 2:
                return max_signs(*((self._element_sign(a.value, depth + 1), False) for a in node.args[:2]))[0]
        return self._model_of(node, depth + 1).sign

    def _layer_sign(self, layer: cst.BaseExpression, depth: int) -> tuple[str, bool]:
        """(sign of the layer's output, whether it passes its input's sign through)."""
        if depth > _DEPTH:
            return UNKNOWN, False
        if isinstance(layer, cst.Name):
            bound = self.value_of(layer)
            return self._layer_sign(bound, depth + 1) if bound is not layer else (UNKNOWN, False)
        if not isinstance(layer, cst.Call):
            return UNKNOWN, False
        names = self.call_names(layer)
        for name in names:
            if name in ACTIVATED_LAYERS:
                position, default = ACTIVATED_LAYERS[name]
                activation = self.get_arg(layer, "activation", position)
                if activation is None:
                    return (UNKNOWN if self.has_keyword(layer, ("activation",)) else default), False
                return self._activation_sign(activation.value), False
        if not names.isdisjoint(SIGNED_LAYERS):
            return ANY, False
        if not names.isdisjoint(TRANSPARENT_LAYERS):
            return UNKNOWN, True
        if ACTIVATION_LAYER in names:
            activation = self.get_arg(layer, "activation", 0)
            return (self._activation_sign(activation.value) if activation else UNKNOWN), False
        if TIME_DISTRIBUTED in names and layer.args:
            return self._layer_sign(layer.args[0].value, depth + 1)
        return UNKNOWN, False

    def _activation_sign(self, node: cst.BaseExpression) -> str:
        if isinstance(node, cst.Name) and node.value == "None":
            return ANY
        if isinstance(node, cst.SimpleString):
            text = node.evaluated_value
            return ACTIVATION_STRINGS.get(text.lower(), UNKNOWN) if isinstance(text, str) else UNKNOWN
        names = self.qualified_names(node)
        if not names.isdisjoint(POSITIVE_FUNCTIONS):
            return POS
        if not names.isdisjoint(NONNEGATIVE_FUNCTIONS):
            return NONNEG
        if not names.isdisjoint(SIGNED_FUNCTIONS):
            return ANY
        return UNKNOWN

    # ------------------------------------------------------------------ report
    def leave_Module(self, original_node: cst.Module) -> None:
        for entry in self._lambdas:
            # Each input the layer is seen to get is judged on its own: one call feeding a raw
            # scale is enough, whatever the other calls feed it.
            models = entry.producers or [NOT_VISIBLE]
            function = entry.function
            if isinstance(function, str):
                functions: list[cst.CSTNode] = list(self._defs.get(function, []))
            elif isinstance(function, (cst.Lambda, cst.FunctionDef)):
                functions = [function]
            elif function is not None:
                self._check_class(entry, function, models)
                continue
            else:
                continue
            for node in functions:
                for candidate in self._candidates.get(id(node), []):
                    raw = next((m for m in models if candidate.sign(m) == (ANY, True)), None)
                    if raw is not None:
                        self._report(candidate, raw, entry.call)

    def _check_class(self, entry: _Lambda, function: cst.BaseExpression, models: list[InputModel]) -> None:
        """`DistributionLambda(tfd.Poisson)`: the input is the first positional parameter."""
        distribution = self._distribution_class(function)
        parameters = POSITIONAL.get(distribution or "", ())
        model = next((m for m in models if m.of(None) == ANY), None)
        if parameters and parameters[0] in POSITIVE_PARAMETERS and model is not None:
            self.report_trained(
                function,
                f"`{parameters[0]}` of {self.source(function)} is the raw input of the DistributionLambda"
                f"{_from(model)}; it can be <= 0 (NaN log-likelihood). Give the layer before it a positive "
                "activation (activation='softplus'), or build the distribution in a lambda with "
                f"1e-3 + tf.math.softplus(t)",
                anchor=entry.call,
            )

    def _report(self, candidate: _Candidate, model: InputModel, layer: cst.Call) -> None:
        self.report_trained(
            candidate.node,
            f"`{candidate.parameter}` of {candidate.distribution} in a DistributionLambda is a raw network "
            f"output{_from(model)}; it can be <= 0 (NaN log-likelihood). Use 1e-3 + tf.math.softplus(...)",
            anchor=layer, fix=candidate.fix,
        )


def _from(model: InputModel) -> str:
    if not model.producer:
        return ""
    text = " ".join(model.producer.split())
    return f" (from {text if len(text) <= 40 else text[:37] + '...'})"


def _first_parameter(function: cst.CSTNode) -> Optional[str]:
    params = function.params if isinstance(function, (cst.Lambda, cst.FunctionDef)) else None
    if params is None:
        return None
    positional = [*params.posonly_params, *params.params]
    return positional[0].name.value if positional else None


def _parenthesized(node: cst.BaseExpression) -> bool:
    return bool(getattr(node, "lpar", None))

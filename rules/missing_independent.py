"""ELB006 missing-independent: a vector-valued component where the joint log-density must be a scalar.

This module is the rule: it collects the components of `JointDistributionSequential` / `Named` whose
parameters are visibly vectors (a batch, not an event), then the places where the file needs the
joint log-density as one number (a VI or MCMC target, a loss, a pinned model, the score of its own
draw, a model built for code elsewhere), and reports a component only when its model reaches one of
them. Whether a parameter has several elements is read by rules/_independent_shapes.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from elbolint.analyses.test_code import in_test_code, is_test_path

from elbolint.cst_helpers import callee_name, parameter_names
from elbolint.diagnostics import Severity
from elbolint.names import TFD, TFP, names_in
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.triage import last_parts
from elbolint.walk import children
from elbolint.rules._independent_shapes import SCALAR_EVENT, ShapeReader
from elbolint.rules._tfp import distribution_arguments, distribution_name, first_argument
from elbolint.walk import visit

#: Joint distributions that sum component log-probs without reducing their batch dimensions.
_JOINTS = names_in(TFD, "JointDistributionSequential", "JointDistributionNamed")

# ------------------------------------------------------------------ where a scalar is expected
#: Methods giving a joint distribution's log-density.
_DENSITIES = frozenset({"log_prob", "unnormalized_log_prob"})
#: Packages whose functions take a log-density as the target of inference (VI fits and losses, MCMC
#: kernels and drivers, SMC): a log-density function passed to them is a target.
_INFERENCE_PACKAGES = tuple(f"{TFP}.{p}." for p in ("vi", "experimental.vi", "mcmc", "experimental.mcmc"))
#: Inference drivers that take the joint distribution itself and sample its (pinned) log-density.
_MODEL_TARGETS = frozenset({"windowed_adaptive_nuts", "windowed_adaptive_hmc", "sample_snaper_hmc"})
#: Keywords that name a target log-density, to whichever function they are passed.
_TARGET_KEYWORDS = frozenset({"target_log_prob_fn", "target_log_prob", "log_prob_fn", "p_log_prob"})
_PINNED = frozenset({f"{TFP}.experimental.distributions.JointDistributionPinned"})
_TAPES = frozenset({"tensorflow.GradientTape", "tensorflow.compat.v1.GradientTape"})
_PARTIAL = frozenset({"functools.partial"})
#: A name a log-density is assigned to when it is an objective (`loss = -model.log_prob(...)`).
_OBJECTIVE_NAME = re.compile(r"loss|elbo|objective|nll|neg_?log|log_?joint|log_?posterior|target", re.IGNORECASE)


@dataclass
class _Joint:
    """A joint distribution with vector-valued components: the findings it would give, and why its
    log-density must be a scalar once that is known."""

    node: cst.Call
    components: list[tuple[cst.Call, str]] = field(default_factory=list)
    reason: Optional[str] = None


@dataclass
class _Use:
    """A place that needs a scalar log-density from whatever `flow` (the receiver of `log_prob`, or
    the model itself) turns out to be."""

    flow: Flow
    reason: str


class MissingIndependent(Rule):
    """
    ## What it does
    Flags a component of a `tfd.JointDistributionSequential` or `tfd.JointDistributionNamed`
    (not the AutoBatched variants) that is a scalar-event distribution (`Normal`, `Gamma`,
    `Bernoulli`, ...) with visibly vector-valued parameters (a data array with several elements
    such as `np.linspace(-1, 1, 50)`, `tf.zeros([3])`, `[0.0, 1.0]`, or `w * x + b` with `x` such
    an array) and no `tfd.Independent` / `tfd.Sample` around it.

    It does so only where the joint log-density must be a scalar, that is when the file uses the
    joint distribution (followed through names, `self.` attributes, tuple unpacking, the functions of
    the file that build or return it, and the arguments of the functions it is passed to) in one
    of these ways:

    - **a VI or MCMC target**: its `log_prob` (`model.log_prob`, `functools.partial(model.log_prob,
      ...)`, or a lambda or def returning `model.log_prob(...)`) is passed to a function of
      `tfp.vi`, `tfp.experimental.vi`, `tfp.mcmc` or `tfp.experimental.mcmc`
      (`fit_surrogate_posterior`, `monte_carlo_variational_loss`, `HamiltonianMonteCarlo`,
      `NoUTurnSampler`, ...; `sample_chain` through its kernel), or as `target_log_prob_fn=` to any
      function; or the model itself is passed to `windowed_adaptive_nuts` / `windowed_adaptive_hmc`
      / `sample_snaper_hmc`;
    - **a target function**: a lambda or def returns `model.log_prob(...)` (also inside an
      expression, a tuple, or through a local name), or `model.log_prob` is passed or assigned as a
      function;
    - **a loss**: `model.log_prob(...)` is negated (`-model.log_prob(...)`,
      `-tf.reduce_mean(model.log_prob(...))`), assigned to a name that says it is an objective
      (`loss`, `elbo`, `objective`, `nll`, `neg_log...`, `log_joint`, `log_posterior`, `target...`),
      or computed inside a `tf.GradientTape` block;
    - **pinned**: `model.experimental_pin(...)`, `tfde.JointDistributionPinned(model, ...)`, or
      `model.unnormalized_log_prob(...)`: a pinned model exists to be a target;
    - **scored on its own draw**: `model.log_prob(model.sample())`, or on a value unpacked from
      `model.sample_distributions()`: TFP's JointDistribution contract is that `log_prob(sample())`
      is a scalar (one number per draw);
    - **built for code elsewhere**: the model is returned by a def that nothing in the file calls
      (a library's `make_model()`), or bound at module level to a name the file never mentions
      again: the code that uses it imports it, and a joint distribution is built to be scored.

    A model whose uses are all visible and none of them is one of these stays silent: a batch of
    joint distributions built on purpose (sampled, sliced with `model[:1]`, given to
    `particle_filter` as a batch of initial states or to `tfd.Blockwise`, its `log_prob` compared
    with batched expected values). In test code (a file named `test_*.py` / `*_test.py`, a `tests/`
    folder, a `test...` method or a `Test...` / `TestCase` class) only the first kind counts: tests
    build batched joint distributions on purpose to check batch semantics. Anywhere, a log-density
    computed inside an assertion (`assertAllClose(model.log_prob(x), expected)`) is neither a loss
    nor a score.

    ## Why is this bad?
    A `Normal` with 50 locations is a batch of 50 distributions, not one distribution over 50
    values: its `log_prob` returns 50 numbers. The joint distribution adds the components'
    log-probs with broadcasting, so `model.log_prob(sample)` is a vector instead of a scalar.
    `fit_surrogate_posterior` then averages a wrongly broadcast ELBO (the prior terms are counted
    once per data point, the surrogate terms are mixed across the batch) and the loss is
    mis-scaled or fits the wrong posterior; an MCMC kernel takes the 50 numbers for 50 independent
    chains.

    ## Example
    ```python
    x = np.linspace(-1.0, 1.0, 50).astype(np.float32)
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        lambda weight: tfd.Normal(loc=weight * x, scale=1.0),
    ])
    losses = tfp.vi.fit_surrogate_posterior(
        lambda weight: model.log_prob([weight, y]), surrogate, optimizer, num_steps=200)
    ```

    ## Use instead
    ```python
    model = tfd.JointDistributionSequential([
        tfd.Normal(0.0, 1.0, name="weight"),
        lambda weight: tfd.Independent(
            tfd.Normal(loc=weight * x, scale=1.0), reinterpreted_batch_ndims=1),
    ])
    ```
    or `tfd.JointDistributionSequentialAutoBatched`, which reduces batch dimensions for you.
    Parameters of shape `[1]` and shapes elbolint cannot see (lambda parameters, function
    arguments) are not flagged. A size that is a name or a size read from data
    (`tf.zeros(feature_dim)`, `tf.ones([n])`, `tf.zeros(x.shape[1])`, `len(x)`) counts as
    several elements unless it is visibly 1; a name spelled like a shape (`tf.zeros(event_shape)`)
    may be `[]` and does not count. Components are followed through names, tuple elements,
    literal lists and the functions of the file that return them (with the call's arguments), and
    a vector-valued component inside such a function is reported where it is written. Uses are
    followed within one file only: a model passed to a function of another module is not followed
    there, and a builder the file calls only to sample its model is not a target.
    """

    code = "ELB006"
    name = "missing-independent"
    severity = Severity.WARNING
    confirmed_by = ("ELB106",)
    #: Triage: a component of a JointDistributionSequential / Named.
    starts_from = (last_parts(_JOINTS),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._joints: dict[int, _Joint] = {}  # id(joint call) -> its vector-valued components
        self._uses: list[_Use] = []
        #: id(def or lambda) -> (in test code, flows of the receivers of the log-densities it returns)
        self._functions: dict[int, tuple[bool, list[Flow]]] = {}
        self._target_functions: dict[int, str] = {}  # id(def or lambda) given to inference -> why
        self._returns: list[tuple[cst.FunctionDef, bool, Flow]] = []  # (def, in test code, returned value)
        #: `name = tfd.JointDistribution...(...)` at module level
        self._module_models: list[tuple[str, cst.BaseExpression]] = []
        self._unpacked: dict[tuple[int, str], Flow] = {}  # (scope, name) -> model whose sample_distributions() bound it
        self._stack: list[cst.CSTNode] = []  # enclosing classes, defs and lambdas
        self._assertions: list[cst.CSTNode] = []
        self._tapes: list[cst.With] = []
        self._module: Optional[cst.Module] = None
        self._test_file = is_test_path(getattr(context, "path", None))
        self._shapes = ShapeReader(self)

    # ------------------------------------------------------------ traversal
    def visit_Module(self, node: cst.Module) -> None:
        self._module = node

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._stack.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._stack.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._stack.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._stack.append(node)
        receivers = self._densities(node.body)
        if receivers:
            self._functions[id(node)] = (self._in_test(), [self.resolver.follow(r) for r in receivers])

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._stack.pop()

    def leave_Return(self, original_node: cst.Return) -> None:
        if not self._stack or not isinstance(self._stack[-1], cst.FunctionDef) or original_node.value is None:
            return
        function, value = self._stack[-1], original_node.value
        receivers = self._densities(value)
        if receivers:
            entry = self._functions.setdefault(id(function), (self._in_test(), []))
            entry[1].extend(self.resolver.follow(r) for r in receivers)
        if self._joints:  # a builder: where the value it returns goes is asked in leave_Module
            values = [e.value for e in value.elements] if isinstance(value, (cst.Tuple, cst.List)) else [value]
            for returned in values:
                self._returns.append((function, self._in_test(), self.resolver.follow(returned)))

    def visit_Assert(self, node: cst.Assert) -> None:
        self._assertions.append(node)

    def leave_Assert(self, original_node: cst.Assert) -> None:
        self._assertions.pop()

    def visit_With(self, node: cst.With) -> None:
        if any(isinstance(i.item, cst.Call) and not self.call_names(i.item).isdisjoint(_TAPES) for i in node.items):
            self._tapes.append(node)

    def leave_With(self, original_node: cst.With) -> None:
        if self._tapes and self._tapes[-1] is original_node:
            self._tapes.pop()

    def visit_UnaryOperation(self, node: cst.UnaryOperation) -> None:
        if isinstance(node.operator, cst.Minus) and self._scores():
            for receiver in self._densities(node.expression):
                self._use(receiver, "its log_prob is negated into a loss")

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        if not self._stack and not self.call_names(value).isdisjoint(_JOINTS):
            self._module_models += [(t.target.value, value) for t in node.targets if isinstance(t.target, cst.Name)]
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                and value.func.attr.value == "sample_distributions":
            # `dists, sample = model.sample_distributions()`
            for target in node.targets:
                if isinstance(target.target, (cst.Tuple, cst.List)) and len(target.target.elements) == 2 \
                        and isinstance(target.target.elements[1].value, cst.Name):
                    key = (id(self.resolver.scope_node), target.target.elements[1].value.value)
                    self._unpacked[key] = self.resolver.follow(value.func.value)
        if not self._scores():
            return
        if isinstance(value, cst.Attribute) and value.attr.value in _DENSITIES:
            self._use(value.value, "its log_prob is taken as a function (a target log-density)")
            return
        names = [t.target.value for t in node.targets if isinstance(t.target, cst.Name)]
        if any(_OBJECTIVE_NAME.search(n) for n in names):
            for receiver in self._densities(value):
                self._use(receiver, f"its log_prob is assigned to `{names[0]}` (an objective)")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        short = callee_name(node) or ""
        if short.startswith("assert"):
            self._assertions.append(node)
        names = self.call_names(node)
        if not names.isdisjoint(_JOINTS):
            self._joint(node)
        if isinstance(func, cst.Attribute) and short in _DENSITIES:
            self._density_call(node, func.value)
        elif short == "experimental_pin" and isinstance(func, cst.Attribute) and not self._in_test():
            self._use(func.value, "it is pinned (`experimental_pin`) to be an inference target")
        elif not names.isdisjoint(_PINNED) and not self._in_test():
            model = first_argument(node, "distribution")
            if model is not None:
                self._use(model, f"it is pinned (`{self.source(func)}`) to be an inference target")
        self._arguments(node, names)

    def leave_Call(self, original_node: cst.Call) -> None:
        if self._assertions and self._assertions[-1] is original_node:
            self._assertions.pop()

    def leave_Module(self, original_node: cst.Module) -> None:
        if not self._joints:
            return
        for use in self._uses:
            self._target(use.flow, use.reason)
        for key, (in_test, flows) in self._functions.items():
            reason = self._target_functions.get(key)
            if reason is None and not in_test:
                reason = "a function returns its log_prob (a VI or MCMC target function)"
            if not reason:
                continue
            for flow in flows:
                self._target(flow, reason)
        for function, in_test, flow in self._returns:
            if not in_test and not self.resolver.call_sites(function):
                self._target(flow, f"it is returned by `{function.name.value}()`, which nothing in this file calls: "
                                   "the code that scores it is elsewhere")
        if self._module_models and not self._test_file:
            mentions = _name_counts(original_node, {name for name, _ in self._module_models})
            for name, call in self._module_models:
                joint = self._joints.get(id(call))
                if joint is not None and joint.reason is None and mentions.get(name, 0) <= 1:
                    joint.reason = (f"it is bound to `{name}` at module level and not used in this file: "
                                    "the code that scores it imports it")
        reported: set[int] = set()
        for joint in self._joints.values():
            if joint.reason is None:
                continue
            for body, message in joint.components:
                if id(body) not in reported:
                    reported.add(id(body))
                    self.report(body, f"{message} ({joint.reason})")

    # ------------------------------------------------- where a scalar is expected
    def _in_test(self) -> bool:
        return self._test_file or in_test_code(self._stack)

    def _scores(self) -> bool:
        """Whether a log-density computed here may be a loss or a score (not in test code, not
        inside an assertion)."""
        return not self._assertions and not self._in_test()

    def _use(self, expression: cst.BaseExpression, reason: str) -> None:
        self._uses.append(_Use(self.resolver.follow(expression), reason))

    def _density_call(self, call: cst.Call, receiver: cst.BaseExpression) -> None:
        """`receiver.log_prob(...)`: a loss inside a tape, a pinned model's target, or the score of
        the model's own draw."""
        if not self._scores():
            return
        if call.func.attr.value == "unnormalized_log_prob":  # type: ignore[attr-defined]
            self._use(receiver, "its unnormalized_log_prob is taken (a pinned model's target)")
        elif self._tapes:
            self._use(receiver, "its log_prob is computed under a tf.GradientTape (a loss)")
        elif self._own_draw(call, receiver):
            self._use(receiver, "its log_prob is evaluated on its own sample, which TFP's JointDistribution "
                                "contract says is a scalar")

    def _own_draw(self, call: cst.Call, receiver: cst.BaseExpression) -> bool:
        """`model.log_prob(model.sample())`, `x = model.sample(); model.log_prob(x)`, or
        `dists, x = model.sample_distributions(); model.log_prob(x)`."""
        value = first_argument(call, "value")
        if value is None:
            return False
        drawn: Optional[Flow] = None
        if isinstance(value, cst.Name) and self.value_of(value) is value:
            for scope in (self.resolver.scope_node, self._module):
                drawn = drawn or self._unpacked.get((id(scope), value.value))
        else:
            flow = self.resolver.follow(value)
            sample = flow.node
            if not flow.subscripts and isinstance(sample, cst.Call) and isinstance(sample.func, cst.Attribute) \
                    and sample.func.attr.value == "sample":
                drawn = self.resolver.read(flow, lambda node: self.resolver.follow(node.func.value))
        if drawn is None or drawn.subscripts:
            return False
        model = self.resolver.follow(receiver)
        return not model.subscripts and model.node is drawn.node and id(model.node) in self._joints

    def _arguments(self, call: cst.Call, names: frozenset[str]) -> None:
        """Log-densities passed as functions: to inference (a target anywhere), to anything else
        (a target outside test code)."""
        inference = any(n.startswith(_INFERENCE_PACKAGES) for n in names)
        if inference and any(n.rsplit(".", 1)[-1] in _MODEL_TARGETS for n in names):
            for arg in call.args:
                self._use(arg.value, f"it is sampled by `{self.source(call.func)}`")
            return
        for arg in call.args:
            keyword = arg.keyword.value if arg.keyword is not None else None
            if inference:
                reason = f"its log_prob is the target of `{self.source(call.func)}`"
            elif keyword in _TARGET_KEYWORDS:
                reason = f"its log_prob is passed as `{keyword}=`"
            else:
                reason = None
            value = arg.value
            if isinstance(value, cst.Attribute) and value.attr.value in _DENSITIES:
                if reason is None and self._scores():
                    reason = f"its log_prob is passed as a function to `{self.source(call.func)}`"
                if reason is not None:
                    self._use(value.value, reason)
            elif reason is not None:
                self._mark_target(value, reason)

    def _mark_target(self, value: cst.BaseExpression, reason: str, depth: int = 0) -> None:
        """A function given to inference: a lambda or def (whose returned log-densities are then
        targets), `model.log_prob`, or `functools.partial(model.log_prob, ...)`."""
        if depth > 3:
            return
        if isinstance(value, cst.Name):
            function = self.resolver.function_of(cst.Call(func=value))  # the def this name calls, if any
            bound = self.resolver.value_of(value)
            if function is not None:
                self._target_functions.setdefault(id(function), reason)
            elif bound is not value:
                self._mark_target(bound, reason, depth + 1)
        elif isinstance(value, cst.Lambda):
            self._target_functions.setdefault(id(value), reason)
        elif isinstance(value, cst.Attribute) and value.attr.value in _DENSITIES:
            self._use(value.value, reason)
        elif isinstance(value, cst.Call) and not self.call_names(value).isdisjoint(_PARTIAL) and value.args:
            self._mark_target(value.args[0].value, reason, depth + 1)

    def _densities(self, node: cst.BaseExpression) -> list[cst.BaseExpression]:
        """The receivers of the `log_prob(...)` / `unnormalized_log_prob(...)` calls `node`
        computes with: inside the expression and through the names it reads, not inside lambdas
        (functions of their own) nor under a subscript (`lp[..., 0]` knows it is a batch)."""
        found: list[cst.BaseExpression] = []
        stack: list[cst.CSTNode] = [node]
        seen: set[int] = set()
        budget = 200
        while stack and budget > 0:
            budget -= 1
            current = stack.pop()
            kind = type(current)  # (exact classes: `isinstance` against LibCST's ABCs is slow here)
            if kind is cst.Lambda or kind is cst.Subscript:
                continue
            if type(current) is cst.Call and type(current.func) is cst.Attribute \
                    and current.func.attr.value in _DENSITIES:
                found.append(current.func.value)
                continue
            if type(current) is cst.Name:
                bound = self.value_of(current)
                if bound is not current and isinstance(bound, cst.BaseExpression) and id(bound) not in seen:
                    seen.add(id(bound))
                    stack.append(bound)
                continue
            if type(current) is cst.Attribute:
                stack.append(current.value)
                continue
            stack.extend(children(current))  # (CSTNode.children without rebuilding the node)
        return found

    def _target(self, flow: Flow, reason: str) -> None:
        for joint in self._joints_of(flow):
            if joint.reason is None:
                joint.reason = reason

    def _joints_of(self, flow: Flow, depth: int = 0) -> list[_Joint]:
        """The joint distributions (with vector-valued components) that `flow` ends at."""
        if depth > 3 or flow.subscripts:  # `model[:1]`: a slice of a batch, used as one on purpose
            return []
        if flow.parameter is not None:
            return [j for inner, _ in self.resolver.argument_flows(flow) for j in self._joints_of(inner, depth + 1)]
        joint = self._joints.get(id(flow.node))
        if joint is not None:
            return [joint]
        if isinstance(flow.node, cst.Name):  # not bound yet where it was read: a def above the model
            again = self.resolver.follow(flow.node, flow.scopes)
            if again.node is not flow.node or again.parameter is not None:
                return self._joints_of(again, depth + 1)
        return []

    # ------------------------------------------------------------ components
    def _joint(self, node: cst.Call) -> None:
        model = first_argument(node, "model")
        if model is None:
            return
        flow = self.resolver.follow(model)
        if flow.subscripts:
            return
        joint = _Joint(node)
        with self.resolver.within(flow) as model:
            components: list[cst.BaseExpression] = []
            if isinstance(model, (cst.List, cst.Tuple)):
                components = [e.value for e in model.elements if not isinstance(e, cst.StarredElement)]
            elif isinstance(model, cst.Dict):
                components = [e.value for e in model.elements if isinstance(e, cst.DictElement)]
            elif isinstance(model, cst.Call) and isinstance(model.func, cst.Name) and model.func.value == "dict" \
                    and self.value_of(model.func) is model.func and not self.qualified_names(model.func):
                components = [a.value for a in model.args if a.keyword is not None]
            for component in components:
                self._check(component, joint)
        if joint.components:
            self._joints[id(node)] = joint

    def _check(self, component: cst.BaseExpression, joint: _Joint) -> None:
        if isinstance(component, cst.Lambda):
            self._check_body(component.body, frozenset(parameter_names(component.params)), joint)
            return
        flow = self.resolver.follow(component)
        if flow.subscripts or not isinstance(flow.node, cst.Call):
            return
        with self.resolver.within(flow) as body:
            self._check_body(body, frozenset(), joint)

    def _check_body(self, body: cst.BaseExpression, hidden: frozenset[str], joint: _Joint) -> None:
        if not isinstance(body, cst.Call):
            return
        distribution = distribution_name(self.resolver, body)
        if distribution not in SCALAR_EVENT:
            return
        for parameter, arg in distribution_arguments(body, distribution):
            if parameter in ("name", "validate_args", "allow_nan_stats", "dtype"):
                continue
            if self._shapes.is_vector(arg.value, hidden):
                joint.components.append((body, (
                    f"`{parameter}` of {self.source(body.func)} is vector-valued, so this component of "
                    f"{self.source(joint.node.func)} is a batch and its log_prob a vector: the joint log_prob "
                    "is not a scalar and the ELBO is broadcast wrongly. Wrap it in "
                    "tfd.Independent(..., reinterpreted_batch_ndims=1) or use the AutoBatched variant")))
                return


def _name_counts(module: cst.Module, names: set[str]) -> dict[str, int]:
    """How often each of `names` is written in `module` (its binding included)."""
    counts: dict[str, int] = {}

    class _Counter(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            if node.value in names:
                counts[node.value] = counts.get(node.value, 0) + 1

    visit(module, _Counter())
    return counts

"""The rules about a trained parameter: the training gate they share, and the base of the rules
about a raw variable passed as a constrained parameter.

Why one gate: a raw `tf.Variable` scale, a far-off initial value or a raw network-output scale is
a risk only where training can reach it. `TrainedParameterRule.report_trained` records, with each
finding, the call that holds the parameter (`anchor`); after the traversal, `finalize` keeps only
the findings that the Training analysis (elbolint/analyses/training.py) says are at risk. The
rules decide what is risky; the analysis decides what is trained, the same way for every rule.
Not a rule module (no Rule subclass with a code), so the registry skips it.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from elbolint.analyses.optimizer_roles import OptimizerRoles
from elbolint.analyses.training import Training
from elbolint.names import TFP
from elbolint.resolver import Flow
from elbolint.rule import Rule
from elbolint.rules._tfp import (
    RAW_VARIABLE_WORDS, distribution_name, raw_variable_at, raw_variables_passed, variable_words,
)


_NAN_LOSS = "\x00nan-loss\x00"


class TrainedParameterRule(Rule):
    """A rule whose findings are about a parameter that training moves: report with
    `report_trained(node, message, anchor=...)`; findings training cannot reach are dropped."""

    analyses = (Training, OptimizerRoles)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._anchors: dict[int, tuple] = {}
        self._groups: dict[int, object] = {}  # id(finding) -> what makes two findings one

    def report_trained(self, node: cst.CSTNode, message: str, *, anchor: Optional[cst.CSTNode],
                       argument: Optional[cst.CSTNode] = None, variable: Optional[cst.CSTNode] = None,
                       fix: Optional[tuple[str, cst.CSTNode]] = None, same_as: object = None) -> None:
        """`report_once`, remembering `anchor`: the call that holds the parameter (a distribution,
        a layer), `argument`, the expression passed as the parameter, and `variable`, the raw
        variable's construction when known. With no anchor the finding always stays. Findings with
        the same `same_as` key (one named variable passed the same way to several distributions)
        are one finding, shown where training uses it (see `finalize`)."""
        if id(node) in self._reported_nodes:
            return
        self.report_once(node, message, fix=fix)
        if anchor is not None:
            self._anchors[id(self.findings[-1])] = (anchor, argument, variable)
        if same_as is not None:
            self._groups[id(self.findings[-1])] = same_as

    def finalize(self) -> None:
        training: Training = self.analysis(Training)
        self.findings = [
            finding for finding in self.findings
            if id(finding) not in self._anchors or training.at_risk(*self._anchors[id(finding)])
        ]
        self._merge_same_variable(training)
        words = "NaN ELBO" if self.does_vi else "NaN loss"  # known only once the whole file is read
        for finding in self.findings:
            finding.message = finding.message.replace(_NAN_LOSS, words)

    def _merge_same_variable(self, training: Training) -> None:
        """One raw variable passed the same way to several distributions of one kind (`q = tfd.Normal(v[0],
        v[1])` before the loop, inside it, and again to plot the result) is one risk: it is
        reported once, at the distribution a training site uses (else the first), saying how many
        others share it."""
        groups: dict[object, list] = {}
        for finding in self.findings:
            key = self._groups.get(id(finding))
            if key is not None:
                groups.setdefault(key, []).append(finding)
        dropped: set[int] = set()
        for members in groups.values():
            if len(members) < 2:
                continue
            trained = [f for f in members if training.trains_where(self._anchors[id(f)][0])]
            kept = (trained or members)[0]
            others = len(members) - 1
            kept.message += f" (the same variable reaches {others} other distribution{'s' if others > 1 else ''})"
            dropped |= {id(f) for f in members if f is not kept}
        self.findings = [f for f in self.findings if id(f) not in dropped]

    @property
    def does_vi(self) -> bool:
        """Whether the file does variational inference (VIContext's signs): decides whether a
        message speaks of the ELBO or of the loss (maximum likelihood, MAP)."""
        return self.analysis(OptimizerRoles).vi.does_vi

    def tfp_name(self, member: str) -> str:
        """How advice spells a TFP object (`bijectors.Sigmoid`) in this file: with the names it
        imports (`tfb.Sigmoid`), else by its public path from `tfp`."""
        return self.resolver.local_name_for(f"{TFP}.{member}") or f"tfp.{member}"

    @staticmethod
    def loss_words() -> str:
        """"NaN ELBO" in a file that does VI, "NaN loss" elsewhere (maximum likelihood, MAP): a
        placeholder that `finalize` fills in, once every sign of VI in the file has been seen."""
        return _NAN_LOSS


class RawParameterRule(TrainedParameterRule):
    """Base of the rules about a raw trainable variable passed as a constrained parameter (ELB001
    positive, ELB007 probabilities, ELB008 triangular/covariance matrices): one traversal for all
    three, so the value flow they follow and the places they report stay the same.

    A subclass says which arguments it checks (`checked_arguments(node, distribution)` -> (parameter,
    arg) pairs) and what the risk and the remedy are (`consequence(parameter, distribution,
    variable)`; `variable` is None for a variable passed to a function of the file that builds the
    distribution); it may offer a fix (`fix_for(variable, arg)`). The variable is followed through
    names, subscripts, builders of the file (`raw_variable_at`), and to the call sites of a def whose
    parameter it is (`raw_variables_passed`, reported in `leave_Module`).

    Findings go through the training gate (TrainedParameterRule): a raw variable that training cannot
    reach (a test's `tfd.Gamma(tf.Variable(-3.), 1.)` that checks `validate_args`) is not reported.

    A distribution built in a bare expression statement (`tfd.Normal(loc=tf.Variable(0.),
    scale=tf.Variable(1.))` shown in a notebook cell, its value discarded) can never be trained, so
    its raw variables risk nothing: nothing inside one is reported.
    """

    _discarded_depth = 0
    #: Triage: every finding is a raw trainable variable (`raw_variable_at`).
    starts_from = (RAW_VARIABLE_WORDS,)

    def __init__(self, context) -> None:
        super().__init__(context)
        #: (flow to a def's parameter, parameter, distribution, callee as written)
        self._parameters: list[tuple[Flow, str, str, str]] = []

    def checked_arguments(self, node: cst.Call, distribution: str):
        raise NotImplementedError

    def consequence(self, parameter: str, distribution: str, variable: Optional[cst.Call]) -> str:
        raise NotImplementedError

    def fix_for(self, variable: cst.Call, arg: cst.Arg):
        return None

    @property
    def discarded(self) -> bool:
        return self._discarded_depth > 0

    def visit_Expr(self, node: cst.Expr) -> None:
        if isinstance(node.value, cst.Call) and distribution_name(self.resolver, node.value) is not None:
            self._discarded_depth += 1

    def leave_Expr(self, original_node: cst.Expr) -> None:
        value = original_node.value
        if isinstance(value, cst.Call) and distribution_name(self.resolver, value) is not None:
            self._discarded_depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        if self.discarded:
            return
        distribution = distribution_name(self.resolver, node)
        if distribution is None:
            return
        for parameter, arg in self.checked_arguments(node, distribution):
            flow = self.resolver.follow(arg.value)
            variable = raw_variable_at(self.resolver, flow)
            if variable is None:
                if flow.parameter is not None:
                    self._parameters.append((flow, parameter, distribution, self.source(node.func)))
                continue
            words = variable_words(variable)
            what = f"a raw {words}"
            if flow.subscripts:
                what = f"an element of a raw {words}" if flow.indices() is not None else f"a slice of a raw {words}"
            self.report_trained(
                arg.value,
                f"`{parameter}` of {self.source(node.func)} is {what}; "
                f"{self.consequence(parameter, distribution, variable)}",
                anchor=node, argument=arg.value, variable=variable,
                same_as=None if variable is arg.value else (
                    id(variable), parameter, self.source(arg.value), self.source(node.func)),
                fix=self.fix_for(variable, arg) if variable is arg.value else None,
            )

    def leave_Module(self, original_node: cst.Module) -> None:
        for flow, parameter, distribution, spelled in self._parameters:
            assert flow.parameter is not None  # visit_Call keeps only the flows that reach a parameter
            function, name = flow.parameter
            for argument in raw_variables_passed(self.resolver, flow):
                self.report_trained(
                    argument,
                    f"this raw tf.Variable becomes `{parameter}` of {spelled} in `{function.name.value}` "
                    f"(parameter `{name}`); {self.consequence(parameter, distribution, None)}",
                    anchor=argument,
                )

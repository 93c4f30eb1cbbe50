"""What counts as confirming a static finding: evidence that *shows the cause*, measured on
the finding's own parameter or by re-running the fit with the finding's fix; not evidence that only
fits (a NaN somewhere in the file, a large gradient at step 0, a NaN after a few steps).

Per code (the rule's `confirmed_by` lists what may be observed; this module decides which of it
confirms, and the README's dynamic table says the same):

| code | confirmed only by |
|---|---|
| ELB001 / ELB007 / ELB008 | the parameter's own observation (ELB104 on *this* parameter: a scale <= 0, a `scale_tril` diagonal <= 0, a covariance eigenvalue <= 0, a probability outside [0, 1]) |
| ELB002 | ELB102 (the initial loss far above a default surrogate's on the same model) |
| ELB004 | ELB105: a variable never trained, or the finding's own watched parameter frozen at every step while the loss moves |
| ELB003 | ELB110: the same seeds re-run with the gradients clipped end finite (or clearly lower) |
| ELB009 | ELB112: the same seeds re-run with the same optimizer at a 10x smaller learning rate end finite (or clearly lower) |
| others | the codes of their rule's `confirmed_by` |

A finding whose confirming evidence was not observed, while other codes of its `confirmed_by` were
(a NaN, a huge gradient norm), is `unconfirmed`: the summary says what was observed (reported once,
as its own row) and why it does not show this finding's cause. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Policy:
    #: codes that confirm (a subset of the rule's confirmed_by, or its counterfactual)
    codes: tuple
    #: "parameter": an ELB104 confirms only when it was measured on this finding's parameter
    own_parameter: bool = False
    #: why the other observed codes do not confirm (completes "observed ..., not a confirmation: ")
    why: str = ""
    #: counterfactual codes (pathologies.COUNTERFACTUAL: a re-run with the rule's fix) that confirm it
    #: although the rule's `confirmed_by` does not list them (rules/ predates the re-run): ELB009's
    #: ELB112. `policy()` adds them to `codes`; the rule's own list stays what its fits may observe.
    counterfactual: tuple = ()
    #: the finding says its parameter never trains (ELB004): its own watched value frozen at every step
    #: while the loss moves confirms it too (frozen_parameter), whatever module-level variables show
    frozen: bool = False


_OWN = ("only the parameter's own observation confirms it (this parameter leaving its support); "
        "a NaN does not say which parameter caused it")
POLICIES = {
    "ELB001": Policy(("ELB104",), own_parameter=True, why=_OWN),
    "ELB007": Policy(("ELB104",), own_parameter=True, why=_OWN),
    "ELB008": Policy(("ELB104",), own_parameter=True, why=_OWN),
    "ELB004": Policy(("ELB105",), frozen=True, why=(
        "only the parameter staying at its initial value while the fit trains (ELB105) shows it is cut off")),
    "ELB002": Policy(("ELB102",), why=("only an initial loss far above a default surrogate's (ELB102) shows the "
                                       "initial value is the cause")),
    "ELB003": Policy(("ELB110",), why=("only a re-run of the same seeds with clipping (ELB110) shows missing "
                                       "clipping is the cause")),
    "ELB009": Policy((), counterfactual=("ELB112",), why=(
        "only a re-run of the same seeds at a 10x smaller learning rate that fixes it (ELB112) shows the rate is "
        "the cause; elbolint makes one when the optimizer's rate is a constant of at least 0.1")),
}


def policy(code: str, confirmed_by: tuple) -> Policy:
    """The confirming codes of a rule: its policy's codes and counterfactuals, else its `confirmed_by`."""
    found = POLICIES.get(code)
    if found is None:
        return Policy(tuple(confirmed_by))
    if not found.counterfactual:
        return found
    return Policy(found.codes + tuple(c for c in found.counterfactual if c not in found.codes),
                  own_parameter=found.own_parameter, why=found.why, counterfactual=found.counterfactual,
                  frozen=found.frozen)


# ------------------------------------------------------------------ which parameter a finding is about
_SUBJECT = re.compile(r"^`(?P<parameter>\w+)` of (?P<distribution>[\w.]+)")


@dataclass(frozen=True)
class Subject:
    """The parameter a static finding is about, as the finding and its source line say it."""

    parameter: str
    distribution: str
    component: Optional[str] = None  # the distribution's name= keyword
    variable: Optional[str] = None   # the argument when it is a plain name (`raw_scale`, `self.scale`)


def subject(diagnostic, source: str, line: Optional[int] = None, column: Optional[int] = None) -> Optional[Subject]:
    """The finding's parameter and distribution (from its message), the distribution's `name=` and the
    argument's name (from the source, with `ast`; `line`/`column` are the finding's position in
    `source`, which differ from the finding's own for a notebook cell)."""
    match = _SUBJECT.match(diagnostic.message or "")
    if not match:
        return None
    distribution = match.group("distribution").rsplit(".", 1)[-1]
    line = line if line is not None else diagnostic.line
    column = (column if column is not None else diagnostic.column) - 1  # ast columns are 0-based
    component = variable = None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        best = None
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node) == distribution and _contains(node, line, column):
                if best is None or _size(node) < _size(best):
                    best = node
        if best is not None:
            for keyword in best.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) \
                        and isinstance(keyword.value.value, str):
                    component = keyword.value.value
            for argument in list(best.args) + [k.value for k in best.keywords]:
                if getattr(argument, "lineno", None) == line and argument.col_offset == column:
                    if isinstance(argument, ast.Name):
                        variable = argument.id
                    elif isinstance(argument, ast.Attribute):
                        variable = argument.attr
    return Subject(match.group("parameter"), distribution, component, variable)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else (func.id if isinstance(func, ast.Name) else "")


def _contains(node, line: int, column: int) -> bool:
    start, end = (node.lineno, node.col_offset), (node.end_lineno or node.lineno, node.end_col_offset or 0)
    return start <= (line, column) <= end


def _size(node) -> tuple:
    return ((node.end_lineno or node.lineno) - node.lineno, (node.end_col_offset or 0) - node.col_offset)


def _same_kind(identity: dict, wanted: Subject) -> bool:
    return identity.get("parameter") == wanted.parameter and identity.get("distribution") == wanted.distribution


def owns(identity: dict, wanted: Subject, watched: list[dict], subjects: list[Subject]) -> Optional[bool]:
    """Whether an observation (`identity`, from watch.Watch.identity) was measured on the finding's
    parameter: True, False, or None when it cannot be told. `watched` are all the identities the run
    watched, `subjects` those of every finding of the same kind in the file."""
    if not identity or not _same_kind(identity, wanted):
        return False
    if wanted.component and identity.get("component"):
        return identity["component"] == wanted.component
    if wanted.variable and identity.get("variable"):
        return identity["variable"] == wanted.variable
    # nothing names them: one watched parameter of this kind and one finding about one: the same
    same_watched = [w for w in watched if _same_kind(w, wanted)]
    same_findings = [s for s in subjects if s.parameter == wanted.parameter and s.distribution == wanted.distribution]
    if len(same_watched) == 1 and len(same_findings) <= 1:
        return True
    return None


_LABEL = re.compile(r"^`(?P<parameter>\w+)` of (?P<distribution>\w+)"
                    r"(?: '(?P<component>[^']+)')?(?: \(`(?P<variable>[^`]+)`\))?")


def identity_from_label(label: str) -> dict:
    """The identity a watch label spells ("`scale` of Normal 'weight' (`raw_scale`)"), for traces that
    carry labels only."""
    match = _LABEL.match(label or "")
    if not match:
        return {}
    return {key: match.group(key) for key in ("parameter", "distribution", "component", "variable")}


def identities(trace: dict) -> dict:
    """label -> identity of every parameter the run watched (its seeds included)."""
    found: dict = {}
    for record in [trace.get("fit") or {}, *(trace.get("seeds") or [])]:
        for label, identity in (record.get("watched") or {}).items():
            found.setdefault(label, identity)
        for label in (record.get("positive") or {}):
            found.setdefault(label, identity_from_label(label))
    return {label: identity for label, identity in found.items() if identity}


#: Steps a parameter must stay exactly where it started, while the loss moves, to count as never trained.
FROZEN_MIN_STEPS = 10


def frozen_parameter(trace: dict, wanted: Optional[Subject], watched: dict, subjects: list) -> Optional[dict]:
    """ELB105 measured on the finding's own parameter: its watched value (the run's `positive` minima,
    watch.py) identical at every recorded step while the loss changed, so the optimizer never moves it
    (a scale computed once from a variable the surrogate does not track: the variable may be a local of
    a builder function, which no module-level check sees). None when it moved, or cannot be told."""
    if wanted is None:
        return None
    run = trace.get("fit") or {}
    losses = [v for v in (run.get("loss") or []) if isinstance(v, (int, float)) and v == v]
    for label, identity in watched.items():
        if not owns(identity, wanted, list(watched.values()), subjects):
            continue
        series = [v for v in ((run.get("positive") or {}).get(label) or []) if isinstance(v, (int, float))]
        if len(series) < FROZEN_MIN_STEPS or len(losses) < FROZEN_MIN_STEPS or losses[0] == losses[-1]:
            continue
        if max(series) != min(series):
            continue
        steps = min(len(series), len(losses))
        return {"code": "ELB105", "message": (f"{label} stayed at {series[0]:.4g} at every one of {steps} steps "
                                              f"while the loss went from {losses[0]:.4g} to {losses[-1]:.4g}: "
                                              "the fit never moves it"),
                "evidence": {"parameter": label, "value": series[0], "steps": steps, "identity": identity}}
    return None

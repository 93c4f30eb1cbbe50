"""Turn each file's dynamic findings into what the user reads.

Static findings whose rule declares `confirmed_by` get a `dynamic` status: `confirmed` (one of those
codes was observed; its evidence is the summary), `not-reproduced` (the fit ran and showed none of them)
or `not-run` (the sandbox stopped the file, or nothing runnable was found). Dynamic findings that
confirm a static finding are folded into it; the others become ordinary rows, reported at the line of
the exception, the fit call, or the surrogate/model definition. Rules are read from the registry only.

Each fit runs with several seeds (seeds.py aggregates; a finding says in how many seeds it
showed, `not-reproduced` says which seeds and steps it covered); a file with several fits gets one
result per fit, each static finding judged by the fit it belongs to (owners.py) and each dynamic row at
its own fit's line; failures of elbolint's own machinery (HARNESS_KINDS) are `not-run`, never ELB100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from elbolint.diagnostics import Diagnostic, Position
from elbolint.dynamic.parent.attribution import Attribution, run_name, site_of
from elbolint.dynamic.parent.owners import owners as fit_owners
from elbolint.dynamic.verdicts.classify import SANDBOX_KINDS, trace_summary
from elbolint.dynamic.verdicts.confirmation import Policy, frozen_parameter, identities, owns, policy, subject
from elbolint.dynamic.verdicts.contract import checking, problems, verdict_problems
from elbolint.dynamic.verdicts.pathologies import COUNTERFACTUAL, COUNTERFACTUAL_KEYS, PATHOLOGIES
from elbolint.dynamic.verdicts.seeds import (MIN_PAIRED_SEEDS, TRAJECTORY, classify_seeds, counterfactual_seeds,
                                             coverage, too_few_seeds)
from elbolint.dynamic.verdicts.support import CODE as SUPPORT_CODE
from elbolint.dynamic.verdicts.support import not_reproduced as support_not_reproduced
from elbolint.registry import all_rules
from elbolint.suppression import is_suppressed

if TYPE_CHECKING:
    from elbolint.rule import Rule

_CODES = {c.code: c for c in PATHOLOGIES}


#: Failures of elbolint's own machinery (a worker that died, no TensorFlow): never an error finding,
#: the file is `not-run` with the reason (ELB100 means the program fails on its own).
HARNESS_KINDS = ("internal", "unavailable")


def apply_results(selected, outcomes, settings, enabled) -> list[Diagnostic]:
    if checking():  # the tests: every trace and every verdict against the declared contract
        _enforce([f"{r.path}: {p}" for r, o in zip(selected, outcomes) for p in problems(o)])
    rows = _apply_results(selected, outcomes, settings, enabled)
    if checking():
        _enforce([f"{d.path}:{d.line} {d.code}: {p}" for r in selected for d in list(r.diagnostics) + rows
                  for p in verdict_problems(d.dynamic)])
    return rows


def _enforce(found: list[str]) -> None:
    if found:
        raise AssertionError("dynamic trace contract broken (elbolint/dynamic/verdicts/contract.py):\n"
                             + "\n".join(found[:20]))


def rules_by_code() -> dict[str, type[Rule]]:
    """Every rule by its code (the registry lists them as classes; each is a `Rule` subclass)."""
    from elbolint.rule import Rule

    return {rule.code: rule for rule in all_rules() if issubclass(rule, Rule)}


def _apply_results(selected, outcomes, settings, enabled) -> list[Diagnostic]:
    rules = rules_by_code()
    rows: list[Diagnostic] = []
    for result, trace in zip(selected, outcomes):
        lines = result.source.text.splitlines() if result.source and result.source.text else []
        failure = trace.get("failure") or {}
        if failure.get("kind") in HARNESS_KINDS:
            trace = {"nothing": f"not run: {failure.get('message') or 'elbolint could not run this file'}",
                     "seconds": trace.get("seconds"), "harness_error": failure.get("message")}
        parts = _parts(trace)
        attribution = Attribution("\n".join(lines))
        owners = _own_runs(result, parts, fit_owners(result, parts, lines), attribution)
        locate = _locator(result)
        names = [run_name(site_of(part), locate) for part in parts]
        judged: set[int] = set()
        foreign: dict[int, list[int]] = {}  # findings whose own run is not among the parts
        for index, part in enumerate(parts):
            mine = []
            for d in result.diagnostics:
                if index not in owners.get(id(d), [0]):
                    continue
                line = _virtual_line(result, d)
                if line is not None and attribution.belongs(d.code, line, d.message, site_of(part)) is False:
                    foreign.setdefault(id(d), []).append(index)
                    continue
                mine.append(d)
                judged.add(id(d))
            label = _label(part, index, len(parts))
            rows += _apply_one(result, part, mine, rules, settings, enabled, lines, label, names[index])
        for d in result.diagnostics:
            rule = rules.get(d.code)
            if id(d) in judged or id(d) not in foreign or rule is None or not rule.confirmed_by:
                continue
            line = _virtual_line(result, d)
            own = attribution.own_site(d.code, line, d.message, locate) if line is not None else None
            spent = "; ".join(_spent(parts[i], names[i]) for i in foreign[id(d)])
            spent += _unreached_note(trace, attribution.uses(d.code, line, d.message) if line is not None else [])
            d.dynamic = {"status": "not-run",
                         "summary": f"not run: no run reached {own or 'the training run this finding belongs to'}; "
                                    f"{spent}",
                         "evidence": {"codes": [], "findings": []},
                         "trace": {"runs": [names[i] for i in foreign[id(d)]]}}
        for d in result.diagnostics:
            rule = rules.get(d.code)
            if owners.get(id(d)) == [-1] and rule is not None and rule.confirmed_by:
                stopped = trace.get("stopped_after") or trace.get("fits_not_checked")
                d.dynamic = {"status": "not-run",
                             "summary": "not run: the script did not reach this fit_surrogate_posterior call "
                                        f"({len(parts)} fits were checked" + (f"; {stopped}" if stopped else "") + ")",
                             "evidence": {"codes": [], "findings": []}, "trace": {}}
    return rows


def _unreached_note(trace: dict, uses: list[dict]) -> str:
    """Why the run of the file meant for this finding's site recorded nothing (process/site_runs.py)."""
    for site in (trace.get("site_runs") or {}).get("unreached") or []:
        if any(use["first"] <= site["last"] and site["first"] <= use["last"] for use in uses):
            return f"; {site['why']}"
    return ""


def _label(part: dict, index: int, count: int) -> Optional[str]:
    """"fit 2 of 3 (line 40)" for one of several fit_surrogate_posterior calls; "run 2 of 3" for one of
    a file's runs per flagged site (the summary names the run itself)."""
    if count < 2:
        return None
    if part.get("source") in ("loop", "keras"):
        return f"run {index + 1} of {count}"
    return f"fit {index + 1} of {count} (line {part.get('line')})"


def _own_runs(result, parts: list[dict], owners: dict[int, list[int]], attribution: Attribution) -> dict:
    """`owners` (owners.py, which reads fit_surrogate_posterior calls), narrowed to the first part whose
    run is the finding's own (attribution.belongs), among those given or else any: a file run once per
    flagged site (process/site_runs.py) has one part per Keras fit or loop, and a notebook's findings
    are given every part (a finding judged by two parts would keep the last verdict). A finding of a
    script that several of the given fits own (a surrogate builder called for two fits) is judged by
    each of them: a confirmation by one is kept (_judge), naming that fit."""
    if len(parts) < 2:
        return owners
    sites = [site_of(part) for part in parts]
    corrected = dict(owners)
    for d in result.diagnostics:
        line = _virtual_line(result, d)
        given = owners.get(id(d), [0])
        if line is None or given == [-1]:
            continue
        verdicts = {i: attribution.belongs(d.code, line, d.message, site) for i, site in enumerate(sites)}
        own = [i for i in given if verdicts[i] is not False]
        if len(own) > 1 and getattr(result, "notebook", None) is None:  # several fits: a builder called twice
            own = [i for i in own if verdicts[i]] or own
            corrected[id(d)] = own  # each judges it; a confirmation by one is kept (_judge)
            continue
        own = [i for i in given if verdicts[i]] or [i for i, belongs in verdicts.items() if belongs]
        if own:  # judged once, by its own run (a notebook's findings are given every part)
            corrected[id(d)] = own[:1]
    return corrected


def _locator(result):
    """Virtual line -> "line 42", or "cell 12:3" for a notebook (its virtual module is what ran)."""
    notebook = getattr(result, "notebook", None)
    if notebook is None or not getattr(notebook, "spans", None):
        return None

    def locate(line: int) -> str:
        span, inner = notebook.locate(line)
        return f"cell {span.cell}:{inner}"

    return locate


def _virtual_line(result, d) -> Optional[int]:
    """The finding's line in the module that ran (a notebook's findings are in cell coordinates)."""
    notebook = getattr(result, "notebook", None)
    if notebook is None or d.cell is None:
        return d.line
    span = next((s for s in notebook.spans if s.cell == d.cell), None)
    return span.start + d.line - 1 if span is not None else None


def _spent(part: dict, name: str) -> str:
    """What the budget went to instead of the finding's own run."""
    fit = part.get("fit") or {}
    steps = len(fit.get("loss") or [])
    budget = part.get("budget")
    unit = "batches" if part.get("source") == "keras" else "steps"
    brief = (part.get("site") or {}).get("brief")
    if brief:  # a run no finding points at, cut short (loop.py, BRIEF): the script ended after it
        if (part.get("site") or {}).get("brief_timeout"):
            return (f"the run recorded was {name}, cut short after {brief} {unit} (no finding points at it); "
                    "it went on unrecorded past its share of the time budget and the script was stopped")
        return (f"the run recorded was {name}, cut short after {brief} {unit} (no finding points at it); "
                "the script ended before any other run")
    if budget and steps >= budget:
        return f"the budget ({budget} {unit}) was spent on {name}"
    if steps:
        return f"the run recorded was {name} ({steps} {unit})"
    return f"the run that ran was {name}"


def _counterfactual_note(codes: tuple, trace: dict) -> str:
    """Why a finding confirmed only by a re-run with its fix was not confirmed, when the re-run happened."""
    if not codes or not set(codes) <= COUNTERFACTUAL:
        return ""
    fit = trace.get("fit") or {}
    notes = []
    for code in codes:
        rerun = fit.get(COUNTERFACTUAL_KEYS[code])
        if not rerun or not rerun.get("runs"):
            continue
        runs = rerun["runs"]
        bad = sum(1 for run in runs if not run.get("finite"))
        if too_few_seeds(trace, runs):
            needed = counterfactual_seeds(trace.get("seeds") or [fit]) or MIN_PAIRED_SEEDS  # (never fixed draws)
            notes.append(f"; the {_REPLAYS[code]} re-run covered {len(runs)} seed"
                         f"{'s' if len(runs) != 1 else ''} only ({bad} non-finite): too few to show the cause "
                         f"(at least {needed} are needed)")
        elif code == "ELB112":
            head = (f"re-run at learning rate {rerun.get('smaller', 0):g} ({rerun.get('factor', 10):g}x smaller "
                    f"than {rerun.get('learning_rate', 0):g})")
            notes.append(f"; {head}, the loss still goes non-finite in {bad} of {len(runs)} seeds: the smaller "
                         "rate did not help, the instability comes from elsewhere" if bad else
                         f"; {head}, the fit ends no better: the smaller rate did not help")
        elif bad:
            notes.append(f"; re-run with gradients clipped to norm {rerun.get('clipnorm', 1.0):g}, the loss still "
                         f"goes non-finite in {bad} of {len(runs)} seeds: the instability comes from elsewhere")
        else:
            notes.append("; re-run with clipping, the fit ends no better")
    return "".join(notes)


def _for(finding: dict, line: Optional[int]) -> bool:
    """A dynamic finding measured for one static finding (`evidence.for_line`, e.g. ELB113: that
    finding's surrogate component) confirms only the finding at that line of the module that ran."""
    wanted = (finding.get("evidence") or {}).get("for_line")
    return wanted is None or wanted == line


def _support_note(codes: tuple, trace: dict, line: Optional[int]) -> str:
    """What the support measurement saw for an ELB014 finding that stayed inside (support.py)."""
    if SUPPORT_CODE not in codes or line is None:
        return ""
    text = support_not_reproduced(trace, line)
    return f"; {text}" if text else ""


#: The replay (replays.py) that makes each counterfactual code for a loop or a Keras fit.
_REPLAYS = {"ELB110": "clipped", "ELB112": "smaller-rate"}


def _replay_note(codes: tuple, trace: dict) -> str:
    """Why the program's replay with the finding's fix did not happen, when it was wanted."""
    names = tuple(_REPLAYS[c] for c in codes if c in _REPLAYS)
    notes = [n for n in (trace.get("replays") or {}).get("skipped") or [] if names and n.startswith(names)]
    return f"; {notes[0]}" if notes else ""


def _counterfactual_ran(trace: dict, codes=tuple(COUNTERFACTUAL)) -> bool:
    fit = trace.get("fit") or {}
    return any(((fit.get(COUNTERFACTUAL_KEYS[code]) or {}).get("runs")) for code in codes
               if code in COUNTERFACTUAL_KEYS)


def _observed(findings: list[dict]) -> str:
    """The codes observed, without their story (each observation is told once, in its own row)."""
    codes = []
    for f in findings:
        if f["code"] not in codes:
            codes.append(f["code"])
    return "/".join(codes)


def _unwatched(rule_policy, wanted, mine) -> str:
    if not rule_policy.own_parameter or mine:
        return ""
    if wanted is None:
        return "; this finding's parameter could not be told apart among the watched ones"
    return (f"; `{wanted.parameter}` of {wanted.distribution} is not a surrogate parameter elbolint could "
            "identify in this run")


def _subject(result, d, source: str):
    """The finding's parameter (confirmation.subject), at its position in the module that ran (a
    notebook's finding is in cell coordinates; its virtual module is what ran)."""
    line, column = d.line, d.column
    notebook = getattr(result, "notebook", None)
    if notebook is not None and d.cell is not None:
        span = next((s for s in notebook.spans if s.cell == d.cell), None)
        if span is None:
            return None
        line, column = span.start + d.line - 1, d.column - span.indent
    return subject(d, source, line, column)


def _parts(trace: dict) -> list[dict]:
    """One trace per fit: a file with several fit_surrogate_posterior calls has `fits` (drive_fit.py)."""
    fits = trace.get("fits")
    if not fits:
        return [trace]
    parts = []
    for fit in fits:
        part = dict(fit)
        part.setdefault("keras", trace.get("keras"))
        seconds = float((fit.get("fit") or {}).get("seconds") or 0.0) + \
            float((fit.get("reference") or {}).get("seconds") or 0.0)
        part["seconds"] = seconds
        for key in ("stopped_after", "fits_not_checked"):
            if trace.get(key):
                part.setdefault(key, trace[key])
        parts.append(part)
    return parts


def _named(summary: str, tail: str, run: Optional[str]) -> str:
    """The summary with the run it comes from named before the sparkline tail (a verdict says which
    run it was judged by)."""
    if not run:
        return summary
    if tail and summary.endswith(tail):
        return summary[:-len(tail)] + f" (run: {run})" + tail
    return summary + f" (run: {run})"


def _apply_one(result, trace, diagnostics, rules, settings, enabled, lines, label, run=None) -> list[Diagnostic]:
    """The dynamic status of `diagnostics` (the static findings this fit owns) and the dynamic-only
    rows of one fit's trace: the fit read once (`_fit_view`), each finding judged in turn (`_judge`),
    then what confirmed no finding becomes a row of its own (`_dynamic_rows`)."""
    fit = _fit_view(result, trace, diagnostics, rules, settings, enabled, lines, label, run)
    for d in diagnostics:
        _judge(fit, d)
    return _dynamic_rows(fit)


@dataclass
class _Fit:
    """One fit's trace as the verdicts of its static findings read it. `confirming` grows while
    findings are judged (a frozen parameter found for one finding is a finding of its own), and `used`
    collects the indexes of the findings folded into a static finding (they are no row of their own)."""

    result: Any
    trace: dict
    rules: dict
    lines: list[str]
    label: Optional[str]  # "fit 2 of 3 (line 40)" when the file has several fits
    run: Optional[str]  # the run's name, None when nothing ran
    digest: dict
    findings: list[dict]  # the classifier's, codes enabled only
    confirming: list[dict]  # those that may confirm a static finding (no sandbox failure)
    failure: dict
    sandboxed: bool  # the sandbox stopped the file (SANDBOX_KINDS)
    tail: str  # the sparkline and budget every summary ends with
    observable: set[str]
    watched: dict  # label -> identity of every watched parameter
    subjects: dict[int, Any]  # id(finding) -> its own parameter, for own-parameter rules
    frozen_subjects: dict[int, Any]  # the same for frozen-parameter rules
    used: set[int] = field(default_factory=set)

    @property
    def where(self) -> str:
        return f"{self.label}: " if self.label else ""


class _Match(NamedTuple):
    """Which of a fit's findings confirm one static finding (`_match`)."""

    matched: list[int]  # indexes into `_Fit.confirming`
    mine: list[str]  # labels of the watched parameters that are this finding's own
    elsewhere: str  # the parameter an ELB104 belongs to when it is all there was, else ""


def _fit_findings(trace: dict, settings, enabled) -> list[dict]:
    """The classifier's findings over the fit's seeds, enabled codes only; a fit no finding points at
    is cut to a few steps (drive_fit.py), too short to judge its trajectory (TRAJECTORY codes)."""
    findings = [f for f in classify_seeds(trace, settings.thresholds) if f["code"] in enabled]
    if (trace.get("site") or {}).get("brief"):
        findings = [f for f in findings if f["code"] not in TRAJECTORY]
    return findings


def _digest(trace: dict, label: Optional[str], run: Optional[str]) -> tuple[dict, Optional[str]]:
    """The digest every verdict and row of the fit carries (trace_summary, plus what the trace says
    about skipped work, replays, seeds and budget, the fit's label and its run's name), and the run's
    name: None when nothing ran (the reason says why, there is no run to name)."""
    digest = trace_summary(trace)
    for key in ("skipped", "stopped_after", "fits_not_checked", "harness_error", "replays"):
        if trace.get(key):
            digest[key] = trace[key]
    if trace.get("seeds"):
        digest["seeds"] = len(trace["seeds"])
    if trace.get("budget"):
        digest["budget"] = trace["budget"]
    if label:
        digest["fit"] = label
    if run and (trace.get("site") or trace.get("fit")):
        digest["run"] = run
        return digest, run
    return digest, None


def _fit_view(result, trace, diagnostics, rules, settings, enabled, lines, label, run) -> _Fit:
    """Read one fit's trace once for the verdicts of the static findings it owns."""
    findings = _fit_findings(trace, settings, enabled)
    digest, run = _digest(trace, label, run)
    failure = trace.get("failure") or {}
    sandboxed = failure.get("kind") in SANDBOX_KINDS
    source = "\n".join(lines)

    def subjects_of(wanted: Callable[[Policy], bool]) -> dict[int, Any]:
        return {id(d): _subject(result, d, source) for d in diagnostics
                if rules.get(d.code) is not None and wanted(policy(d.code, rules[d.code].confirmed_by))}

    return _Fit(
        result=result, trace=trace, rules=rules, lines=lines, label=label, run=run, digest=digest,
        findings=findings, confirming=[f for f in findings if not (f["code"] == "ELB100" and sandboxed)],
        failure=failure, sandboxed=sandboxed, tail=_tail(digest) + _keras_note(trace, lines),
        observable=set(trace.get("observable") or []), watched=identities(trace),
        subjects=subjects_of(lambda p: p.own_parameter), frozen_subjects=subjects_of(lambda p: p.frozen),
    )


def _judge(fit: _Fit, d: Diagnostic) -> None:
    """Set `d.dynamic`, the verdict of one static finding the fit owns, when its rule is confirmed by
    dynamic codes; a finding another fit of the same call (a sweep) confirmed already keeps that."""
    rule = fit.rules.get(d.code)
    if rule is None or not rule.confirmed_by:
        return
    if fit.label and d.dynamic and d.dynamic.get("status") == "confirmed":
        return
    rule_policy = policy(d.code, rule.confirmed_by)
    match = _match(fit, d, rule_policy)
    fit.used.update(match.matched)
    status, chosen, summary = _verdict(fit, d, rule, rule_policy, match)
    evidence: dict[str, Any] = {"codes": [f["code"] for f in chosen], "findings": [_public(f) for f in chosen]}
    if fit.trace.get("keras"):
        evidence["keras"] = fit.trace["keras"]
    d.dynamic = {"status": status, "summary": _named(summary, fit.tail, fit.run), "evidence": evidence,
                 "trace": fit.digest}


def _match(fit: _Fit, d: Diagnostic, rule_policy: Policy) -> _Match:
    """The fit's findings that confirm `d`: those of its policy's codes measured for its line; for a
    frozen-parameter rule with none, the frozen parameter found in the trace (added to `confirming`);
    for an own-parameter rule, only the ELB104 findings of the finding's own watched parameters."""
    line = _virtual_line(fit.result, d)
    matched = [i for i, f in enumerate(fit.confirming) if f["code"] in rule_policy.codes and _for(f, line)]
    if rule_policy.frozen and not matched:
        frozen = frozen_parameter(fit.trace, fit.frozen_subjects.get(id(d)), fit.watched,
                                  [s for s in fit.frozen_subjects.values() if s is not None])
        if frozen is not None:
            fit.confirming.append(frozen)
            matched = [len(fit.confirming) - 1]
    if not rule_policy.own_parameter:
        return _Match(matched, [], "")
    wanted = fit.subjects.get(id(d))
    others = [s for s in fit.subjects.values() if s is not None]
    mine = [name for name, identity in fit.watched.items()
            if wanted is not None and owns(identity, wanted, list(fit.watched.values()), others)]
    outside = [i for i in matched if fit.confirming[i]["code"] == "ELB104"
               and str((fit.confirming[i].get("evidence") or {}).get("parameter")) not in mine]
    matched = [i for i in matched if i not in outside]
    elsewhere = str(fit.confirming[outside[0]]["evidence"]["parameter"]) if outside and not matched else ""
    return _Match(matched, mine, elsewhere)


def _verdict(fit: _Fit, d: Diagnostic, rule, rule_policy: Policy, match: _Match) -> tuple[str, list[dict], str]:
    """Status, the findings folded in, and the summary of one static finding, by the first case that
    applies: confirmed; not reproduced by a model sampled without a fit; not reproduced by a program
    that trained nothing; not run; not reproduced on its own parameter; unconfirmed (only other
    findings' codes seen); not reproduced."""
    trace, failure, where, tail = fit.trace, fit.failure, fit.where, fit.tail
    if match.matched:
        chosen = [fit.confirming[i] for i in match.matched]
        return "confirmed", chosen, where + "; ".join(f"{f['message']}" for f in chosen) + tail
    sampled = set(rule.confirmed_by) & fit.observable
    if not failure and not trace.get("fit") and sampled:
        return "not-reproduced", [], f"no {'/'.join(sorted(sampled))} observed: {_sampled_text(trace)}"
    if trace.get("ran_to_end") and not failure:
        return "not-reproduced", [], ("the program ran to its end and trained nothing (no fit, training loop or "
                                      "Keras fit was reached), so the pathology never occurred")
    if failure or trace.get("nothing") or not trace.get("fit"):
        reason = failure.get("message") or trace.get("nothing") or (
            f"no fit was recorded ({_sampled_text(trace)})" if trace.get("sampled") else "no fit was recorded")
        return "not-run", [], where + reason
    context = [f for i, f in enumerate(fit.confirming) if f["code"] in rule.confirmed_by and i not in match.matched
               and f["code"] != "ELB104"]
    if rule_policy.own_parameter and (match.mine or match.elsewhere):
        return "not-reproduced", [], _own_parameter_summary(fit, match, context)
    if context and not (set(rule_policy.codes) & COUNTERFACTUAL and _counterfactual_ran(trace, rule_policy.codes)):
        return "unconfirmed", [], (f"{where}{_observed(context)} observed in this run (reported on its own), not a "
                                   f"confirmation: {rule_policy.why}"
                                   + _unwatched(rule_policy, fit.subjects.get(id(d)), match.mine)
                                   + _replay_note(rule_policy.codes, trace) + tail)
    codes = rule_policy.codes or tuple(c for c in rule.confirmed_by if c not in COUNTERFACTUAL)
    return "not-reproduced", [], (f"{where}no {'/'.join(codes)} observed in {coverage(trace)}"
                                  + _counterfactual_note(codes, trace)
                                  + _support_note(codes, trace, _virtual_line(fit.result, d)) + tail)


def _own_parameter_summary(fit: _Fit, match: _Match, context: list[dict]) -> str:
    """Why an own-parameter finding is not reproduced: its own parameters stayed inside their
    support, or what was observed belongs to another parameter."""
    where, coverage_text = fit.where, coverage(fit.trace)
    own = ", ".join(match.mine) if match.mine else "this line's parameter"
    summary = f"{where}{own} stayed inside its support in {coverage_text}"
    if match.elsewhere:
        summary = (f"{where}what was observed belongs to another parameter ({match.elsewhere}); nothing of "
                   f"this line's own ({own}) in {coverage_text}")
    if context:
        summary += f" ({_observed(context)} observed in this run comes from elsewhere)"
    return summary + fit.tail


def _dynamic_rows(fit: _Fit) -> list[Diagnostic]:
    """The fit's findings that confirmed no static finding, as rows of their own (all of them when the
    sandbox stopped the file), at their own lines, unless a `noqa` there suppresses them; those of
    elbolint's own use of the model (`confirm_only`) never are rows."""
    rows: list[Diagnostic] = []
    for index, finding in enumerate(fit.confirming if not fit.sandboxed else fit.findings):
        if not fit.sandboxed and index in fit.used:
            continue
        if finding.get("confirm_only"):
            continue
        line = _line(finding, fit.trace, fit.lines)
        if is_suppressed(fit.lines, line, finding["code"]):
            continue
        code = _CODES[finding["code"]]
        message = finding["message"]
        if finding["code"] != "ELB100":
            message = _named(fit.where + message + fit.tail, fit.tail, fit.run)
        rows.append(Diagnostic(
            path=fit.result.path, start=Position(line, 1), end=Position(line, 1), code=code.code,
            name=code.name, message=message, severity=code.severity,
            dynamic={"status": "observed", "evidence": _public(finding), "trace": fit.digest},
        ))
    return rows


def _tail(digest: dict) -> str:
    spark = f"   {digest['sparkline']}" if digest.get("sparkline") else ""
    if not digest.get("steps"):
        return ""
    return f"{spark} (dynamic, {digest['steps']} steps, {digest['seconds']:.1f} s)"


def _keras_note(trace: dict, lines: list[str]) -> str:
    """Say so when the file ran with tf-keras as `tf.keras` although it does not ask for it itself:
    run as written under TF >= 2.16 it may fail ("Only instances of keras.Layer can be added")."""
    keras = trace.get("keras") or ""
    if "TF_USE_LEGACY_KERAS=1" not in keras or any("TF_USE_LEGACY_KERAS" in line or "tf_keras" in line
                                                  for line in lines):
        return ""
    return " [run with tf-keras as tf.keras (TF_USE_LEGACY_KERAS=1), as TFP's Keras layers need; set it in the file]"


def _sampled_text(trace: dict) -> str:
    sampled = trace.get("sampled") or []
    return (f"sampled {len(sampled)} JointDistribution model(s) once and evaluated log_prob, without a "
            "fit (no fit_surrogate_posterior call, training loop or surrogate to pair)")


def _public(finding: dict) -> dict:
    return {"code": finding["code"], "message": finding["message"], "evidence": finding.get("evidence", {})}


def _line(finding: dict, trace: dict, lines: list[str]) -> int:
    anchors = trace.get("anchors") or {}
    candidates: list[Optional[int]] = [finding.get("line")]
    if finding.get("anchor") == "failure":
        candidates.append((trace.get("failure") or {}).get("line"))
    if finding.get("anchor") in ("surrogate", "model"):
        candidates.append(_definition_line(anchors.get(finding["anchor"]), lines))
        candidates.append(_definition_line(anchors.get("surrogate"), lines))
    candidates.append(trace.get("line"))
    candidates.append((trace.get("failure") or {}).get("line"))
    candidates.append(_definition_line(anchors.get("surrogate"), lines))
    for line in candidates:
        if isinstance(line, int) and 1 <= line <= max(len(lines), 1):
            return line
    return 1


def _definition_line(name: Optional[str], lines: list[str]) -> Optional[int]:
    if not name:
        return None
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*(:[^=]+)?=(?!=)")
    for number, text in enumerate(lines, start=1):
        if pattern.match(text):
            return number
    return None

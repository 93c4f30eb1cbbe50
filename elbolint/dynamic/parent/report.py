"""Turn each file's dynamic findings into what the user reads.

Static findings whose rule declares `confirmed_by` get a `dynamic` status: `confirmed` (one of those
codes was observed; its evidence is the summary), `not-reproduced` (the fit ran and showed none of them)
or `not-run` (the sandbox stopped the file, or nothing runnable was found). Dynamic findings that
confirm a static finding are folded into it; the others become ordinary rows, reported at the line of
the exception, the fit call, or the surrogate/model definition. Rules are read from the registry only.

Issue 8: each fit runs with several seeds (seeds.py aggregates; a finding says in how many seeds it
showed, `not-reproduced` says which seeds and steps it covered); a file with several fits gets one
result per fit, each static finding judged by the fit it belongs to (`_owners`) and each dynamic row at
its own fit's line; failures of elbolint's own machinery (HARNESS_KINDS) are `not-run`, never ELB100.
"""

from __future__ import annotations

import re
from typing import Optional

from elbolint.diagnostics import Diagnostic, Position
from elbolint.dynamic.parent.attribution import Attribution, run_name, site_of
from elbolint.dynamic.verdicts.classify import SANDBOX_KINDS, trace_summary
from elbolint.dynamic.verdicts.confirmation import frozen_parameter, identities, owns, policy, subject
from elbolint.dynamic.verdicts.contract import checking, problems, verdict_problems
from elbolint.dynamic.verdicts.pathologies import COUNTERFACTUAL, COUNTERFACTUAL_KEYS, PATHOLOGIES
from elbolint.dynamic.verdicts.seeds import TRAJECTORY, classify_seeds, coverage
from elbolint.dynamic.verdicts.support import CODE as SUPPORT_CODE
from elbolint.dynamic.verdicts.support import not_reproduced as support_not_reproduced
from elbolint.registry import all_rules
from elbolint.suppression import is_suppressed

_CODES = {c.code: c for c in PATHOLOGIES}


#: Failures of elbolint's own machinery (a worker that died, no TensorFlow): never an error finding,
#: the file is `not-run` with the reason (issue 8: ELB100 means the program fails on its own).
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


def _apply_results(selected, outcomes, settings, enabled) -> list[Diagnostic]:
    rules = {r.code: r for r in all_rules()}
    rows: list[Diagnostic] = []
    for result, trace in zip(selected, outcomes):
        lines = result.source.text.splitlines() if result.source and result.source.text else []
        failure = trace.get("failure") or {}
        if failure.get("kind") in HARNESS_KINDS:
            trace = {"nothing": f"not run: {failure.get('message') or 'elbolint could not run this file'}",
                     "seconds": trace.get("seconds"), "harness_error": failure.get("message")}
        parts = _parts(trace)
        owners = _owners(result, parts, lines)
        attribution = Attribution("\n".join(lines))
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
            label = (f"fit {index + 1} of {len(parts)} (line {part.get('line')})" if len(parts) > 1 else None)
            rows += _apply_one(result, part, mine, rules, settings, enabled, lines, label, names[index])
        for d in result.diagnostics:
            rule = rules.get(d.code)
            if id(d) in judged or id(d) not in foreign or rule is None or not rule.confirmed_by:
                continue
            line = _virtual_line(result, d)
            own = attribution.own_site(d.code, line, d.message, locate) if line is not None else None
            spent = "; ".join(_spent(parts[i], names[i]) for i in foreign[id(d)])
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
        if code == "ELB112":
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
    """The summary with the run it comes from named before the sparkline tail (issue 16)."""
    if not run:
        return summary
    if tail and summary.endswith(tail):
        return summary[:-len(tail)] + f" (run: {run})" + tail
    return summary + f" (run: {run})"


def _apply_one(result, trace, diagnostics, rules, settings, enabled, lines, label, run=None) -> list[Diagnostic]:
    """The dynamic status of `diagnostics` (the static findings this fit owns) and the dynamic-only
    rows of one fit's trace."""
    rows: list[Diagnostic] = []
    findings = [f for f in classify_seeds(trace, settings.thresholds) if f["code"] in enabled]
    if (trace.get("site") or {}).get("brief"):  # a fit no finding points at, cut to a few steps (drive_fit.py):
        findings = [f for f in findings if f["code"] not in TRAJECTORY]  # too short to judge its trajectory
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
    else:
        run = None  # nothing ran: the reason says why, there is no run to name
    failure = trace.get("failure") or {}
    sandboxed = failure.get("kind") in SANDBOX_KINDS
    confirming = [f for f in findings if not (f["code"] == "ELB100" and sandboxed)]
    tail = _tail(digest) + _keras_note(trace, lines)
    where = f"{label}: " if label else ""
    observable = set(trace.get("observable") or [])
    used: set[int] = set()
    watched = identities(trace)
    source = "\n".join(lines)
    subjects = {id(d): _subject(result, d, source) for d in diagnostics
                if rules.get(d.code) is not None and policy(d.code, rules[d.code].confirmed_by).own_parameter}
    frozen_subjects = {id(d): _subject(result, d, source) for d in diagnostics
                       if rules.get(d.code) is not None and policy(d.code, rules[d.code].confirmed_by).frozen}
    for d in diagnostics:
        rule = rules.get(d.code)
        if rule is None or not rule.confirmed_by:
            continue
        if label and d.dynamic and d.dynamic.get("status") == "confirmed":
            continue  # a sweep: another fit of the same call confirmed it already
        rule_policy = policy(d.code, rule.confirmed_by)
        matched = [i for i, f in enumerate(confirming) if f["code"] in rule_policy.codes
                   and _for(f, _virtual_line(result, d))]
        if rule_policy.frozen and not matched:
            frozen = frozen_parameter(trace, frozen_subjects.get(id(d)), watched,
                                      [s for s in frozen_subjects.values() if s is not None])
            if frozen is not None:
                confirming.append(frozen)
                matched = [len(confirming) - 1]
        mine: list[str] = []  # labels of the watched parameters that are this finding's own
        elsewhere = ""
        if rule_policy.own_parameter:
            wanted = subjects.get(id(d))
            others = [s for s in subjects.values() if s is not None]
            mine = [name for name, identity in watched.items()
                    if wanted is not None and owns(identity, wanted, list(watched.values()), others)]
            outside = [i for i in matched if confirming[i]["code"] == "ELB104"
                       and str((confirming[i].get("evidence") or {}).get("parameter")) not in mine]
            matched = [i for i in matched if i not in outside]
            if outside and not matched:
                elsewhere = str(confirming[outside[0]]["evidence"]["parameter"])
        context = [f for i, f in enumerate(confirming) if f["code"] in rule.confirmed_by and i not in matched
                   and f["code"] != "ELB104"]
        if matched:
            used.update(matched)
            chosen = [confirming[i] for i in matched]
            status = "confirmed"
            summary = where + "; ".join(f"{f['message']}" for f in chosen) + tail
        elif not failure and not trace.get("fit") and set(rule.confirmed_by) & observable:
            chosen = []
            status = "not-reproduced"
            summary = (f"no {'/'.join(sorted(set(rule.confirmed_by) & observable))} observed: "
                       f"{_sampled_text(trace)}")
        elif trace.get("ran_to_end") and not failure:
            chosen = []
            status = "not-reproduced"
            summary = ("the program ran to its end and trained nothing (no fit, training loop or Keras fit "
                       "was reached), so the pathology never occurred")
        elif failure or trace.get("nothing") or not trace.get("fit"):
            chosen = []
            status = "not-run"
            reason = failure.get("message") or trace.get("nothing") or (
                f"no fit was recorded ({_sampled_text(trace)})" if trace.get("sampled") else
                "no fit was recorded")
            summary = where + reason
        elif rule_policy.own_parameter and (mine or elsewhere):
            chosen = []
            status = "not-reproduced"
            own = ", ".join(mine) if mine else "this line's parameter"
            summary = f"{where}{own} stayed inside its support in {coverage(trace)}"
            if elsewhere:
                summary = (f"{where}what was observed belongs to another parameter ({elsewhere}); nothing of "
                           f"this line's own ({own}) in {coverage(trace)}")
            if context:
                summary += f" ({_observed(context)} observed in this run comes from elsewhere)"
            summary += tail
        elif context and not (set(rule_policy.codes) & COUNTERFACTUAL
                              and _counterfactual_ran(trace, rule_policy.codes)):
            chosen = []
            status = "unconfirmed"
            summary = (f"{where}{_observed(context)} observed in this run (reported on its own), not a "
                       f"confirmation: {rule_policy.why}" + _unwatched(rule_policy, subjects.get(id(d)), mine)
                       + _replay_note(rule_policy.codes, trace) + tail)
        else:
            chosen = []
            status = "not-reproduced"
            codes = rule_policy.codes or tuple(c for c in rule.confirmed_by if c not in COUNTERFACTUAL)
            summary = (f"{where}no {'/'.join(codes)} observed in {coverage(trace)}"
                       + _counterfactual_note(codes, trace) + _support_note(codes, trace, _virtual_line(result, d))
                       + tail)
        d.dynamic = {
            "status": status,
            "summary": _named(summary, tail, run),
            "evidence": {"codes": [f["code"] for f in chosen],
                         "findings": [_public(f) for f in chosen]},
            "trace": digest,
        }
        if trace.get("keras"):
            d.dynamic["evidence"]["keras"] = trace["keras"]
    for index, finding in enumerate(confirming if not sandboxed else findings):
        if not sandboxed and index in used:
            continue
        if finding.get("confirm_only"):  # elbolint's own use of the model failed, not the program
            continue
        line = _line(finding, trace, lines)
        if is_suppressed(lines, line, finding["code"]):
            continue
        code = _CODES[finding["code"]]
        message = finding["message"]
        if finding["code"] != "ELB100":
            message = _named(where + message + tail, tail, run)
        rows.append(Diagnostic(
            path=result.path, start=Position(line, 1), end=Position(line, 1), code=code.code,
            name=code.name, message=message, severity=code.severity,
            dynamic={"status": "observed", "evidence": _public(finding), "trace": digest},
        ))
    return rows


def _owners(result, parts: list[dict], lines: list[str]) -> dict[int, list[int]]:
    """Which fit(s) each static finding belongs to, when a file has several: the fit whose call
    statement, or whose surrogate/model/optimizer/target definition, holds the finding's line; else
    the first fit call at or after the line (objects are defined before the call that uses them),
    or none when that call was never reached; else the last fit. A sweep (one call, several fits)
    owns its findings together. Notebook findings are in cell coordinates: every fit owns them."""
    if len(parts) < 2:
        return {}
    every = list(range(len(parts)))
    if getattr(result, "notebook", None) is not None:
        return {id(d): every for d in result.diagnostics}
    statements = _statements("\n".join(lines))
    calls = sorted({span for span in statements.values() if span[2]}, key=lambda s: s[0])

    def statement(line):
        best = None
        for span in statements.values():
            if span[0] <= line <= span[1] and (best is None or span[1] - span[0] < best[1] - best[0]):
                best = span
        return best

    held: list[set[int]] = []
    call_of: list = []
    for part in parts:
        covered: set[int] = set()
        span = statement(part.get("line")) if isinstance(part.get("line"), int) else None
        call_of.append(span)
        if span:
            covered.update(range(span[0], span[1] + 1))
        for name in (part.get("anchors") or {}).values():
            definition = statements.get(name)
            if definition:
                covered.update(range(definition[0], definition[1] + 1))
        held.append(covered)
    owners: dict[int, list[int]] = {}
    for d in result.diagnostics:
        line = d.line
        direct = [i for i, covered in enumerate(held) if line in covered]
        if direct:
            first = direct[0]
            owners[id(d)] = [i for i in every if call_of[i] is not None and call_of[i] == call_of[first]] or [first]
            continue
        later = [c for c in calls if c[1] >= line]
        if later:
            owners[id(d)] = [i for i in every if call_of[i] is not None and call_of[i][:2] == later[0][:2]]
            if not owners[id(d)]:
                owners[id(d)] = [-1]  # that fit was never reached
            continue
        owners[id(d)] = [len(parts) - 1]
    return owners


def _statements(text: str) -> dict:
    """name -> (first, last, is_fit_call) for module-level assignments and definitions, plus every
    statement that calls fit_surrogate_posterior (keyed by its line), from the source (ast)."""
    import ast

    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict = {}
    for node in tree.body:
        span = (node.lineno, getattr(node, "end_lineno", node.lineno) or node.lineno, False)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.setdefault(node.name, span)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found.setdefault(name.id, span)
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef, ast.For, ast.While, ast.If,
                                                                ast.With, ast.Try)):
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            if any(_callee(c) == "fit_surrogate_posterior" for c in calls):
                found[f"<fit {node.lineno}>"] = (node.lineno, node.end_lineno or node.lineno, True)
    return found


def _callee(call) -> str:
    import ast

    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


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

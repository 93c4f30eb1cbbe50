"""Turn each file's dynamic findings into what the user reads.

Static findings whose rule declares `confirmed_by` get a `dynamic` status: `confirmed` (one of those
codes was observed; its evidence is the summary), `not-reproduced` (the fit ran and showed none of them)
or `not-run` (the sandbox stopped the file, or nothing runnable was found). Dynamic findings that
confirm a static finding are folded into it; the others become ordinary rows, reported at the line of
the exception, the fit call, or the surrogate/model definition. Rules are read from the registry only.
"""

from __future__ import annotations

import re
from typing import Optional

from elbolint.diagnostics import Diagnostic, Position
from elbolint.dynamic.classify import SANDBOX_KINDS, classify, trace_summary
from elbolint.dynamic.pathologies import PATHOLOGIES
from elbolint.registry import all_rules
from elbolint.suppression import is_suppressed

_CODES = {c.code: c for c in PATHOLOGIES}


def apply_results(selected, outcomes, settings, enabled) -> list[Diagnostic]:
    rules = {r.code: r for r in all_rules()}
    rows: list[Diagnostic] = []
    for result, trace in zip(selected, outcomes):
        findings = [f for f in classify(trace, settings.thresholds) if f["code"] in enabled]
        digest = trace_summary(trace)
        failure = trace.get("failure") or {}
        sandboxed = failure.get("kind") in SANDBOX_KINDS
        confirming = [f for f in findings if not (f["code"] == "ELB100" and sandboxed)]
        tail = _tail(digest)
        observable = set(trace.get("observable") or [])
        used: set[int] = set()
        for d in result.diagnostics:
            rule = rules.get(d.code)
            if rule is None or not rule.confirmed_by:
                continue
            matched = [i for i, f in enumerate(confirming) if f["code"] in rule.confirmed_by]
            if matched:
                used.update(matched)
                chosen = [confirming[i] for i in matched]
                status = "confirmed"
                summary = "; ".join(f"{f['message']}" for f in chosen) + tail
            elif not failure and not trace.get("fit") and set(rule.confirmed_by) & observable:
                chosen = []
                status = "not-reproduced"
                summary = (f"no {'/'.join(sorted(set(rule.confirmed_by) & observable))} observed: "
                           f"{_sampled_text(trace)}")
            elif failure or trace.get("nothing") or not trace.get("fit"):
                chosen = []
                status = "not-run"
                reason = failure.get("message") or trace.get("nothing") or (
                    f"no fit was recorded ({_sampled_text(trace)})" if trace.get("sampled") else
                    "no fit was recorded")
                summary = (f"the model failed ({reason})" if failure and not sandboxed
                           and not failure.get("confirm_only") else reason)
            else:
                chosen = []
                status = "not-reproduced"
                summary = f"no {'/'.join(rule.confirmed_by)} observed" + tail
            d.dynamic = {
                "status": status,
                "summary": summary,
                "evidence": {"codes": [f["code"] for f in chosen],
                             "findings": [_public(f) for f in chosen]},
                "trace": digest,
            }
            if trace.get("keras"):
                d.dynamic["evidence"]["keras"] = trace["keras"]
        lines = result.source.text.splitlines() if result.source and result.source.text else []
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
                message += tail
            rows.append(Diagnostic(
                path=result.path, start=Position(line, 1), end=Position(line, 1), code=code.code,
                name=code.name, message=message, severity=code.severity,
                dynamic={"status": "observed", "evidence": _public(finding), "trace": digest},
            ))
    return rows


def _tail(digest: dict) -> str:
    spark = f"   {digest['sparkline']}" if digest.get("sparkline") else ""
    if not digest.get("steps"):
        return ""
    return f"{spark} (dynamic, {digest['steps']} steps, {digest['seconds']:.1f} s)"


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

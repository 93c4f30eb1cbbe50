"""Which fit each static finding belongs to, in a file with several fits (report.py judges each
finding by its own fit's trace only).

Why a module of its own: the rule is about the *source* (which statement holds a finding's line, which
fit_surrogate_posterior call comes after it), read with the standard library's `ast`, while report.py
turns traces into verdicts; keeping the source reading here keeps each side small.
"""

from __future__ import annotations

import ast
from typing import Optional

Span = tuple[int, int, bool]  # first line, last line, whether the statement calls fit_surrogate_posterior


def owners(result, parts: list[dict], lines: list[str]) -> dict[int, list[int]]:
    """Which fit(s) each static finding belongs to, when a file has several: the fit whose call
    statement, or whose surrogate/model/optimizer/target definition, holds the finding's line; else
    the first fit call at or after the line (objects are defined before the call that uses them),
    or none when that call was never reached; else the last fit. A sweep (one call, several fits)
    owns the findings in its call together; an object only one of its fits uses (`for q in (q1, q2)`)
    belongs to that fit. Notebook findings are in cell coordinates: every fit owns them."""
    if len(parts) < 2:
        return {}
    every = list(range(len(parts)))
    if getattr(result, "notebook", None) is not None:
        return {id(d): every for d in result.diagnostics}
    spans = statements("\n".join(lines))
    built_by = builders("\n".join(lines))
    calls = sorted({span for span in spans.values() if span[2]}, key=lambda s: s[0])

    def statement(line: int) -> Optional[Span]:
        best: Optional[Span] = None
        for span in spans.values():
            if span[0] <= line <= span[1] and (best is None or span[1] - span[0] < best[1] - best[0]):
                best = span
        return best

    held: list[set[int]] = []
    call_of: list[Optional[Span]] = []
    for part in parts:
        covered: set[int] = set()
        line = part.get("line")
        span = statement(line) if isinstance(line, int) else None
        call_of.append(span)
        if span:
            covered.update(range(span[0], span[1] + 1))
        for name in (part.get("anchors") or {}).values():
            for definition in [spans.get(name), *built_by.get(name, [])]:
                if definition:
                    covered.update(range(definition[0], definition[1] + 1))
        held.append(covered)
    found: dict[int, list[int]] = {}
    for d in result.diagnostics:
        line = d.line
        direct = [i for i, covered in enumerate(held) if line in covered]
        if direct:
            first = direct[0]
            sweep = [i for i, call in enumerate(call_of) if call is not None and call == call_of[first]]
            call = call_of[first]
            in_call = call is not None and call[0] <= line <= call[1]
            # a sweep owns the findings in its call together; one fit's own object (its surrogate in
            # `for q in (q1, q2)`) belongs to that fit only
            found[id(d)] = (sweep if in_call else direct) or [first]
            continue
        later = [c for c in calls if c[1] >= line]
        if later:
            found[id(d)] = [i for i, call in enumerate(call_of) if call is not None and call[:2] == later[0][:2]]
            if not found[id(d)]:
                found[id(d)] = [-1]  # that fit was never reached
            continue
        found[id(d)] = [len(parts) - 1]
    return found


def statements(text: str) -> dict[str, Span]:
    """name -> (first, last, is_fit_call) for module-level assignments and definitions, plus every
    statement that calls fit_surrogate_posterior (keyed by its line), from the source (ast)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, Span] = {}
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
    for walked in ast.walk(tree):
        if isinstance(walked, ast.stmt) and not isinstance(walked, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                    ast.ClassDef, ast.For, ast.While, ast.If,
                                                                    ast.With, ast.Try)):
            calls = [n for n in ast.walk(walked) if isinstance(n, ast.Call)]
            if any(_callee(c) == "fit_surrogate_posterior" for c in calls):
                found[f"<fit {walked.lineno}>"] = (walked.lineno, walked.end_lineno or walked.lineno, True)
    return found


def builders(text: str) -> dict[str, list[Span]]:
    """name -> the spans of the module-level functions its module-level assignment calls
    (`q2 = make_surrogate()`): a finding inside such a builder belongs to every fit of what it built."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    functions = {node.name: (node.lineno, node.end_lineno or node.lineno, False) for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found: dict[str, list[Span]] = {}
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        called = [functions[c.func.id] for c in ast.walk(node.value)
                  if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in functions]
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for name in (n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)):
            found.setdefault(name, called)
    return found


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""

"""`--output-format html -o report.html`: one self-contained page a reviewer can open or a CI job can
keep as an artifact: a summary (counts per code, severity and dynamic status; the files), then every
finding with its source excerpt, message, the rule's explanation, its fix as a diff and, for a
dynamic verdict, the curves that justify it (html_svg.py: every seed, the clipped and smaller-rate
re-runs and the reference fit beside the user's run, the step where it went wrong marked).

Self-contained: the CSS, the SVG and the small filter script are inline; nothing is fetched (no
network, fonts, scripts or images), so the file works from a CI artifact store or an e-mail.
Readable without JavaScript: findings are <details> elements (those with a dynamic verdict open), the
filters (code, severity, status) are a form the script reveals and drives, and without the script
everything is shown. Size: a rule's full documentation appears once (the "Rules" section; a finding
links to it and repeats its one-line summary), source is read once per file (source_lines.py) and
long series are thinned (html_svg.MAX_POINTS), so hundreds of findings stay a few hundred KB.

The curves come from `evidence` (html_curves.Evidence: the whole traces of the dynamic run, which a
verdict's digest does not carry); without it a dynamic verdict shows its summary and no curve.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from typing import Optional

from elbolint.diagnostics import Code, Diagnostic, Fix
from elbolint.reporters import display_path, rule_url
from elbolint.reporters.html_curves import Evidence, ended, failing_marks, finite, runs, site_name
from elbolint.reporters.html_svg import COLOURS, DASHES, DotGroup, chart, dots, esc, fmt
from elbolint.reporters.source_lines import SourceLines

#: Lines of context around a finding's span, and the longest span shown in full.
CONTEXT, MAX_LINES = 2, 12
STATUSES = ("confirmed", "not-reproduced", "unconfirmed", "not-run", "observed", "static")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:0 16px 40px;
color:#1d232a;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #ddd}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;margin:6px 0}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f4f6}.num{text-align:right}
details.finding{border:1px solid #d0d7de;border-radius:6px;margin:8px 0;padding:0 10px}
details.finding>summary{cursor:pointer;padding:6px 0}details[open].finding>summary{border-bottom:1px solid #eee}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;margin-right:4px;border:1px solid #ccc}
.error{background:#ffebe9;border-color:#ff8182}.warning{background:#fff8c5;border-color:#d4a72c}
.confirmed{background:#dafbe1;border-color:#4ac26b}.not-reproduced{background:#ddf4ff;border-color:#54aeff}
.not-run,.unconfirmed,.static{background:#f6f8fa}.observed{background:#fbefff;border-color:#c297ff}
.loc{color:#57606a}.hl{background:#fff3b0;display:block}.ln{color:#8c959f;user-select:none}
.del{background:#ffebe9;display:block}.add{background:#dafbe1;display:block}
.curves{display:flex;flex-wrap:wrap;gap:10px 18px}.curves figure{margin:4px 0}
svg.curve{background:#fff;max-width:100%;height:auto;font-family:system-ui,sans-serif}
.legend{font-size:11px;color:#444;max-width:520px}.legend span{margin-right:10px;white-space:nowrap}
.legend i{display:inline-block;width:18px;margin-right:4px;vertical-align:middle}
.caption{font-size:11px;color:#57606a;max-width:520px;margin:2px 0}
#filters fieldset{display:inline-block;border:1px solid #ddd;margin:4px 8px 4px 0;padding:4px 8px}
#filters label{margin-right:8px;white-space:nowrap}.hidden{display:none}
"""

SCRIPT = """
(function(){
  var form=document.getElementById('filters');if(!form){return;}form.hidden=false;
  function apply(){
    var on={};form.querySelectorAll('input[type=checkbox]').forEach(function(box){
      (on[box.name]=on[box.name]||{})[box.value]=box.checked;});
    var shown=0;document.querySelectorAll('details.finding').forEach(function(f){
      var ok=on.code[f.dataset.code]&&on.severity[f.dataset.severity]&&on.status[f.dataset.status];
      f.classList.toggle('hidden',!ok);if(ok){shown++;}});
    document.querySelectorAll('section.file').forEach(function(s){
      var n=s.querySelectorAll('details.finding:not(.hidden)').length;s.classList.toggle('hidden',!n);
      var c=s.querySelector('.count');if(c){c.textContent=n+(n<s.querySelectorAll('details.finding').length?
        ' of '+s.querySelectorAll('details.finding').length:'');}});
    document.getElementById('shown').textContent=shown;
  }
  form.addEventListener('change',apply);
  function reveal(){var t=location.hash&&document.getElementById(location.hash.slice(1));
    if(t&&t.tagName==='DETAILS'){t.open=true;}}
  window.addEventListener('hashchange',reveal);reveal();
  document.getElementById('expand').addEventListener('click',function(){
    document.querySelectorAll('details.finding').forEach(function(d){d.open=true;});});
  document.getElementById('collapse').addEventListener('click',function(){
    document.querySelectorAll('details.finding').forEach(function(d){d.open=false;});});
  apply();
})();
"""


def status(d: Diagnostic) -> str:
    found = (d.dynamic or {}).get("status")
    return found if found in STATUSES else "static"


def render(diagnostics: list[Diagnostic], evidence: Optional[Evidence] = None) -> str:
    evidence = evidence or Evidence()
    sources = SourceLines()
    files: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        files.setdefault(display_path(d.path), []).append(d)
    body = [_summary(diagnostics, files), _filters(diagnostics)]
    body.append('<section id="findings"><h2>Findings</h2>')
    if not diagnostics:
        body.append("<p>No findings.</p>")
    number = 0
    drawn: dict[str, str] = {}  # a chart's SVG -> its id, to draw each chart once (_shared)
    reported = _reported(diagnostics)
    for name, found in files.items():
        body.append(f'<section class="file"><h3><code>{esc(name)}</code> (<span class="count">{len(found)}</span>)'
                    '</h3>')
        for d in found:
            number += 1
            body.append(_finding(number, d, sources, evidence, drawn, reported))
        body.append("</section>")
    body.append("</section>")
    body.append(_rules(sorted({d.code for d in diagnostics})))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>elbolint report</title><style>" + CSS + "</style></head><body>"
            + "".join(body) + "<script>" + SCRIPT + "</script></body></html>\n")


def _reported(diagnostics: list[Diagnostic]) -> dict[str, frozenset]:
    """File -> the codes reported on it: its findings' and those their dynamic verdicts observed."""
    codes: dict[str, set] = {}
    for d in diagnostics:
        found = codes.setdefault(str(d.path), set())
        found.add(d.code)
        evidence = (d.dynamic or {}).get("evidence") or {}
        found.update(c for c in evidence.get("codes") or () if isinstance(c, str))
        found.update(f.get("code") for f in evidence.get("findings") or () if isinstance(f, dict))
    return {path: frozenset(c for c in found if c) for path, found in codes.items()}


def _summary(diagnostics: list[Diagnostic], files: dict[str, list[Diagnostic]]) -> str:
    severities = Counter(d.severity.value for d in diagnostics)
    statuses = Counter(status(d) for d in diagnostics)
    head = (f'<h1>elbolint report</h1><p id="totals"><b>{len(diagnostics)}</b> finding'
            f'{"s" if len(diagnostics) != 1 else ""} ({severities["error"]} errors, {severities["warning"]} warnings)'
            f' in {len(files)} file{"s" if len(files) != 1 else ""}'
            + ("; dynamic verdicts: " + ", ".join(f"{statuses[s]} {s}" for s in STATUSES[:-1] if statuses[s])
               if any(statuses[s] for s in STATUSES[:-1]) else "") + ".</p>")
    rows = []
    per_code: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        per_code.setdefault(d.code, []).append(d)
    for code in sorted(per_code):
        found = per_code[code]
        counts = Counter(status(d) for d in found)
        rows.append(f'<tr><td><a href="#rule-{esc(code)}">{esc(code)}</a></td><td>{esc(found[0].name)}</td>'
                    f'<td>{esc(found[0].severity.value)}</td><td class="num">{len(found)}</td>'
                    f'<td>{esc(", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))}</td></tr>')
    table = ("<table id=\"codes\"><tr><th>Code</th><th>Name</th><th>Severity</th><th>Findings</th>"
             "<th>Status</th></tr>" + "".join(rows) + "</table>") if rows else ""
    file_rows = "".join(f"<tr><td><code>{esc(name)}</code></td><td class=\"num\">{len(found)}</td></tr>"
                        for name, found in files.items())
    file_table = ("<details><summary>Files with findings</summary><table id=\"files\"><tr><th>File</th>"
                  "<th>Findings</th></tr>" + file_rows + "</table></details>") if file_rows else ""
    return f'<section id="summary">{head}{table}{file_table}</section>'


def _filters(diagnostics: list[Diagnostic]) -> str:
    """Checkboxes the script reveals (`hidden` until it runs: without it every finding is shown); none
    for an empty report."""
    if not diagnostics:
        return ""
    groups = (("code", sorted({d.code for d in diagnostics})),
              ("severity", sorted({d.severity.value for d in diagnostics})),
              ("status", [s for s in STATUSES if any(status(d) == s for d in diagnostics)]))
    sets = []
    for name, values in groups:
        boxes = "".join(f'<label><input type="checkbox" name="{name}" value="{esc(v)}" checked> {esc(v)}</label>'
                        for v in values)
        sets.append(f"<fieldset><legend>{name}</legend>{boxes}</fieldset>")
    return (f'<form id="filters" hidden>{"".join(sets)}<p><span id="shown">{len(diagnostics)}</span> shown. '
            '<button type="button" id="expand">Expand all</button> '
            '<button type="button" id="collapse">Collapse all</button></p></form>')


def _finding(number: int, d: Diagnostic, sources: SourceLines, evidence: Evidence, drawn: dict[str, str],
             reported: dict) -> str:
    where = f"{d.start.line}:{d.start.column}" if d.cell is None else f"cell {d.cell}, {d.start.line}:{d.start.column}"
    state = status(d)
    fixable = " [*]" if d.fix is not None else ""
    summary = (f'<summary><span class="loc">{esc(where)}</span> '
               f'<span class="badge {esc(d.severity.value)}">{esc(d.code)}{fixable}</span>'
               f'<span class="badge {esc(state)}">{esc(state)}</span> {esc(_first_line(d.message))}</summary>')
    parts = [] if _first_line(d.message) == d.message else [f'<p class="message">{esc(d.message)}</p>']
    parts.append(_excerpt(d, sources))
    parts.append(f'<p class="rule"><a href="#rule-{esc(d.code)}">{esc(d.code)} [{esc(d.name)}]</a>: '
                 f'{esc(_rule_summary(d.code))} (<a href="#rule-{esc(d.code)}">why, and what to write '
                 f'instead</a>)</p>')
    if d.fix is not None:
        parts.append(_fix(d, d.fix, sources))
    if d.dynamic is not None:
        parts.append(_dynamic(d, evidence, drawn, reported))
    opened = " open" if d.dynamic is not None else ""  # every dynamic verdict is open, as the README says
    return (f'<details class="finding" id="finding-{number}" data-code="{esc(d.code)}" '
            f'data-severity="{esc(d.severity.value)}" data-status="{esc(state)}"{opened}>'
            f'{summary}{"".join(parts)}</details>')


def _first_line(message: str, limit: int = 160) -> str:
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= limit else line[:limit - 1] + "\u2026"


def _excerpt(d: Diagnostic, sources: SourceLines) -> str:
    lines = sources.lines(d)
    span = sources.span(d)
    if lines is None or span is None:
        return '<p class="loc">(source not available)</p>'
    first, last = d.start.line, max(d.start.line, d.end.line)
    last = min(last, first + MAX_LINES - 1)
    begin, end = max(1, first - CONTEXT), min(len(lines), last + CONTEXT)
    width = len(str(end))
    rows = []
    for number in range(begin, end + 1):
        text = f'<span class="ln">{number:>{width}} </span>{esc(lines[number - 1].expandtabs(4))}'
        rows.append(f'<span class="hl">{text}</span>' if first <= number <= last else text + "\n")
    return f'<pre class="excerpt">{"".join(rows)}</pre>'


def _fix(d: Diagnostic, fix: Fix, sources: SourceLines) -> str:
    """`d`'s fix as a diff of the lines it changes."""
    kind = "unsafe fix (applied with --unsafe-fixes)" if fix.unsafe else "fix (applied by --fix)"
    lines = sources.lines(d)
    edits = sorted(fix.edits, key=lambda e: (e.start.line, e.start.column))
    diff = None
    if lines is not None and edits:
        first, last = edits[0].start.line, max(e.end.line for e in edits)
        if 1 <= first <= last <= len(lines):
            old = lines[first - 1:last]
            text = "\n".join(old)
            offsets = [0]
            for line in old:
                offsets.append(offsets[-1] + len(line) + 1)
            new = text
            for edit in reversed(edits):
                start = offsets[edit.start.line - first] + edit.start.column - 1
                stop = offsets[edit.end.line - first] + edit.end.column - 1
                new = new[:start] + edit.content + new[stop:]
            diff = list(difflib.unified_diff(old, new.split("\n"), lineterm="", n=0))[2:]
            diff = [f"@@ line {first} @@" if line.startswith("@@") else line for line in diff]
    if diff is None:
        diff = [f"@@ {e.start.line}:{e.start.column}-{e.end.line}:{e.end.column} @@\n+{e.content}" for e in edits]
    rows = []
    for line in diff:
        cls = "del" if line.startswith("-") else "add" if line.startswith("+") else ""
        rows.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line) + "\n")
    return (f'<div class="fix"><b>{kind}</b>: {esc(fix.message)}'
            f'<pre class="diff">{"".join(rows)}</pre></div>')


def _dynamic(d: Diagnostic, evidence: Evidence, drawn: dict[str, str], reported: dict) -> str:
    dynamic = d.dynamic or {}
    summary = dynamic.get("summary") or ""  # an observation's words are the row's own message
    out = [f'<div class="dynamic"><p><b>Dynamic mode: {esc(status(d))}</b>. {esc(summary)}</p>']
    part = evidence.part_for(d)
    if part is not None:
        out.append(_shared(curves(part, failing_marks(d), reported.get(str(d.path), frozenset()),
                                  evidence.locate(d.path)), drawn))
    elif dynamic.get("trace", {}).get("steps"):
        out.append('<p class="loc">(the run\'s curves were not recorded)</p>')
    elif str(d.path) in evidence.traces:
        failure = evidence.traces[str(d.path)].get("failure") or {}
        why = failure.get("message") or evidence.traces[str(d.path)].get("nothing") or "nothing was trained"
        out.append(f'<p class="loc">No curves: no training step ran ({esc(_first_line(str(why), 300))}).</p>')
    out.append("</div>")
    return "".join(out)


_SVG = re.compile(r'<svg class="curve"([^>]*)>(.*?)</svg>', re.S)


_MARK = re.compile(r'<line [^>]*class="mark".*?</line>', re.S)


def _shared(block: str, drawn: dict[str, str]) -> str:
    """A chart already drawn for another finding (the same run judged several findings) is drawn once:
    later findings show it through SVG <use> (`data-use` names the drawn chart), with their own marks
    (the step where their run went wrong) drawn over it, so each finding still shows its curves and
    the file holds each chart once."""

    def one(match) -> str:
        marks = "".join(_MARK.findall(match.group(2)))
        key = match.group(1) + _MARK.sub("", match.group(2))
        if key in drawn:
            name = drawn[key]
            return f'<svg class="curve"{match.group(1)} data-use="{name}"><use href="#{name}-g"/>{marks}</svg>'
        name = drawn[key] = f"chart{len(drawn) + 1}"
        return (f'<svg class="curve"{match.group(1)} id="{name}"><g id="{name}-g">{_MARK.sub("", match.group(2))}'
                f'</g>{marks}</svg>')

    return _SVG.sub(one, block)


def _recorded(part: dict, seeds: list) -> str:
    """How many steps each seed recorded, in the chart's caption: a seed whose loss went non-finite
    twice in a row stops early (fitting.py), so seeds of one fit can differ in length."""
    users = [r for r in seeds if r.variant in ("user", "replay") and r.series.get("loss") is not None]
    if not users:
        return ""
    budget = part.get("budget")
    unit = "batches" if part.get("source") == "keras" else "steps"
    words = []
    for r in users:
        values = r.series["loss"]
        why = ""
        if isinstance(budget, int) and len(values) < budget:
            why = " (stopped: loss not finite)" if len(values) >= 2 and not any(
                finite(v) for v in values[-2:]) else " (stopped early)"
        words.append(f"{r.label}: {len(values)}{why}")
    lengths = {len(r.series["loss"]) for r in users}
    head = f"{unit} recorded per run" if len(lengths) > 1 else f"every run recorded {lengths.pop()} {unit}"
    tail = f"; budget {budget}" if isinstance(budget, int) else ""
    return f"{head}: {', '.join(words)}{tail}" if len(words) > 1 or tail else f"{head}: {', '.join(words)}"


def curves(part: dict, marks: dict, reported: frozenset = frozenset(), locate=None) -> str:
    """Every chart of one training site's run: loss, gradient norm, each watched minimum, KL/data
    terms, the re-runs' final losses beside the user's, the richer family's ELBO. `marks` (chart tag
    -> {seed index: step}, html_curves.failing_marks) marks only the series a finding is about;
    `reported` are the codes reported on the file (the richer-family chart says when ELB111 was not);
    `locate` words a notebook's line in cell coordinates, as the verdicts do."""
    found = runs(part)
    seeds = [r for r in found if r.variant in ("user", "replay", "clipped", "smaller-rate") and r.series]
    reference = [r for r in found if r.variant == "reference"]
    colour: dict[Optional[int], str] = {}  # seed -> its colour in every chart
    for r in seeds:
        colour.setdefault(r.seed, COLOURS[len(colour) % len(COLOURS)])
    name = site_name(part, locate)
    figures = []

    def line(r, tag):
        label = r.label
        if r.variant == "reference":
            label = f"ELB108's reference fit: its loss ({(part.get('reference') or {}).get('kind') or 'default'} " \
                    "mean-field surrogate)"
        return {"label": label, "values": r.series[tag], "run": r.label, "tag": tag,
                "colour": "#6e7781" if r.variant == "reference" else colour.get(r.seed, COLOURS[0]),
                "dash": DASHES.get(r.variant, "")}

    recorded = _recorded(part, seeds)
    losses = [line(r, "loss") for r in seeds + reference if "loss" in r.series]
    if losses:
        figures.append(chart(f"Loss per step, {name}", "loss", losses, marks.get("loss", {}), note=recorded))
    norms = [line(r, "grad_norm") for r in seeds if "grad_norm" in r.series]
    if any(finite(v) for n in norms for v in n["values"]):
        figures.append(chart(f"Gradient norm, {name}", "global norm", norms, marks.get("grad_norm", {})))
    watched = sorted({t for r in seeds for t in r.series if t.startswith("min ")})
    for tag in watched:
        figures.append(chart(f"Minimum of {tag[4:]}", "minimum (0 = leaves support)",
                             [line(r, tag) for r in seeds if tag in r.series], marks.get(tag, {}), log=False,
                             zero=True))
    terms = [line(r, t) for r in seeds[:1] for t in ("kl", "data") if t in r.series]
    if terms:
        for t in terms:
            t["label"] = f"{t['tag'].upper() if t['tag'] == 'kl' else 'data term'} ({t['label']})"
            t["colour"] = "#cf222e" if t["tag"] == "kl" else "#1f77b4"
        figures.append(chart(f"KL and data terms, {name}", "loss terms", terms, {}))
    figures += _counterfactual(found, seeds)
    figures += _richer(found, reported)
    return '<div class="curves">' + "".join(f"<figure>{f}</figure>" for f in figures) + "</div>"


def _richer(found: list, reported: frozenset) -> list[str]:
    """ELB111's evidence: the full-rank reference's ELBO estimates per seed (± their standard error),
    its mean-field re-fit's, and your solution's; drawn only when those estimates exist."""
    richer = [r for r in found if r.variant == "richer"]
    if not any(finite(r.points.get("elbo")) or finite(r.points.get("mean_field_elbo")) for r in richer):
        return []
    groups: list[DotGroup] = [
        {"label": "ELB111: full-rank reference's ELBO estimate", "colour": "#2ca02c", "values": {}, "errors": {}},
        {"label": "ELB111: mean-field re-fit's ELBO estimate (not ELB108's reference fit)", "colour": "#ff7f0e",
         "values": {}},
        {"label": "ELB111: your solution's ELBO estimate", "colour": "#1f77b4", "values": {}, "errors": {}}]
    for r in richer:
        if r.seed is None:
            groups[2]["values"][None] = r.points.get("elbo")
            groups[2]["errors"][None] = r.points.get("elbo_se")
        else:
            groups[0]["values"][r.seed] = r.points.get("elbo")
            groups[0]["errors"][r.seed] = r.points.get("elbo_se")
            if r.points.get("mean_field_elbo") is not None:
                groups[1]["values"][r.seed] = r.points.get("mean_field_elbo")
    groups = [g for g in groups if g["values"]]
    note = "" if "ELB111" in reported else "no ELB111: the richer family's gain is below the threshold"
    return [dots("ELBO: your family vs a richer one (higher is better)", "ELBO", groups, note)]


def _counterfactual(found: list, seeds: list) -> list[str]:
    """The clipped and smaller-rate re-runs' final loss per seed beside the user's own, both as the
    verdicts count them (seeds.prevents): a run whose loss was not finite at some step is a cross (its
    tooltip says where it went non-finite and where it ended), any other its final loss, the median
    of its last tenth (seeds.final_loss, the re-runs' `final`)."""
    reruns = [r for r in found if r.variant in ("clipped", "smaller-rate") and r.points]
    if not reruns:
        return []
    groups: list[DotGroup] = [{"label": "your run", "colour": "#1f77b4", "values": {}, "tips": {}}]
    for r in seeds:
        values = r.series.get("loss")
        if r.variant in ("user", "replay") and values:
            bad = [i for i, v in enumerate(values) if not finite(v)]
            final = ended(values)
            if not bad:
                groups[0]["values"][r.seed] = final
                continue
            groups[0]["values"][r.seed] = math.nan
            last = values[-1]
            groups[0]["tips"][r.seed] = (
                f"not finite at {len(bad)} of {len(values)} steps, from step {bad[0]}; "
                + (f"ended finite at step {len(values) - 1} ({fmt(last)}, median of the last tenth "
                   f"{fmt(final) if final is not None else 'not finite'})" if finite(last)
                   else f"still not finite at its last step {len(values) - 1}"))
    for variant, colour in (("clipped", "#2ca02c"), ("smaller-rate", "#9467bd")):
        chosen = [r for r in reruns if r.variant == variant]
        if chosen:
            groups.append({"label": f"{variant} re-run ({chosen[0].note})", "colour": colour,
                           "values": {r.seed: r.points.get("final_loss") for r in chosen}})
    recovered = [f"seed {seed}" for seed, tip in groups[0]["tips"].items() if "ended finite" in tip]
    note = ("Final loss: the median of a run's last tenth; \u2715: the loss was not finite at some step "
            "(what the verdict counts as non-finite)")
    if recovered:
        note += f"; {', '.join(recovered)} went non-finite but ended finite (hover the \u2715)"
    return [dots("Final loss: your run beside its counterfactuals (\u2715 = not finite)", "final loss", groups,
                 note + ".")]


_RULE_SUMMARIES: dict[str, str] = {}


def _rule_summary(code: str) -> str:
    if code not in _RULE_SUMMARIES:
        from elbolint.registry import rule_by_code_or_name

        found = rule_by_code_or_name(code)
        text = ""
        if isinstance(found, Code):  # an engine or dynamic code: its summary is a string
            text = found.summary
        elif found is not None:  # a rule class: its summary is read from its documentation
            text = found.summary()
        _RULE_SUMMARIES[code] = text if len(text) <= 200 else text[:text.rfind(" ", 0, 199)] + " \u2026"
    return _RULE_SUMMARIES[code]


def _rules(codes: list[str]) -> str:
    if not codes:
        return ""
    from elbolint.docs import explain

    out = ['<section id="rules"><h2>Rules</h2>']
    for code in codes:
        text = explain(code) or f"# {code}\n\n(no documentation)\n"
        title, _, rest = text.partition("\n")
        url = rule_url(code)
        link = "" if url is None else f'<p><a href="{esc(url)}">{esc(url)}</a></p>'
        out.append(f'<details class="rule" id="rule-{esc(code)}"><summary><b>{esc(title.lstrip("# "))}</b>'
                   f'</summary>{markdown(rest)}{link}</details>')
    out.append("</section>")
    return "".join(out)


def markdown(text: str) -> str:
    """The rule documentation's markdown (headings, fenced code, lists, paragraphs, `code`) as HTML."""
    out: list[str] = []
    paragraph: list[str] = []
    fence: Optional[list[str]] = None  # the lines of an open ``` block

    def flush():
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{esc(chr(10).join(fence))}</code></pre>")
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```"):
            flush()
            fence = []
        elif line.startswith("#"):
            flush()
            out.append(f"<h4>{_inline(line.lstrip('#').strip())}</h4>")
        elif line.startswith("- "):
            flush()
            out.append(f"<p>\u2022 {_inline(line[2:])}</p>")
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
    flush()
    if fence is not None:
        out.append(f"<pre><code>{esc(chr(10).join(fence))}</code></pre>")
    return "".join(out)


def _inline(text: str) -> str:
    pieces = text.split("`")
    return "".join(f"<code>{esc(p)}</code>" if i % 2 else esc(p) for i, p in enumerate(pieces))


__all__ = ["render", "curves", "markdown", "fmt"]

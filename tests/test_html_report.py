"""`--output-format html`, the self-contained page of findings and training curves. The report is
built from a real static lint and a hand-made but realistic dynamic trace (checked against the
contract, judged by the real report.apply_results), so these tests need no TensorFlow; every curve
drawn is read back from the SVG and compared with the trace. tests/test_html_browser.py opens the
same report in Chromium, tests/test_tensorboard_logdir.py writes its event files; the one real
dynamic run is at the end of test_tensorboard_logdir.py."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from conftest import FIXTURES
from elbolint.config import Config
from elbolint.cli import main
from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.dynamic.parent import report
from elbolint.dynamic.parent.settings import DynamicSettings
from elbolint.dynamic.verdicts.contract import problems
from elbolint.dynamic.verdicts.seeds import final_loss
from elbolint.linter import lint_file
from elbolint.registry import all_rules
from elbolint.reporters import html
from elbolint.reporters.html_curves import Evidence, number, runs

MODEL = FIXTURES / "dynamic" / "raw_scale_high_lr.py"  # line 19: tfd.Normal(..., scale=tf.Variable(1.0)); fit at 22
STEPS = 60
LABEL = "`scale` of Normal"
WATCHED = {LABEL: {"parameter": "scale", "distribution": "Normal", "component": None, "variable": None,
                   "kind": "minimum", "strict": False}}
#: seed -> the step where its scale goes below 0 (the loss is NaN from the next step on); seed 3 stays positive
BREAKS = {0: 6, 1: 9, 2: 14}
SVG = "{http://www.w3.org/2000/svg}"


def seed_record(seed: int) -> dict:
    """One seed of the user's fit, shaped like fitting.py's (contract.Run)."""
    broken = BREAKS.get(seed)
    loss, norm, scale = [], [], [1.0]
    for step in range(STEPS):
        if broken is not None and step > broken:
            loss.append(math.nan)
            norm.append(math.nan)
            scale.append(math.nan)
            continue
        loss.append(10.0 + 300.0 * math.exp(-step / (4 + seed)) + 3.0 * math.sin(step * (seed + 1)))
        norm.append(40.0 + 20.0 * math.cos(step / 3 + seed))
        scale.append(1.0 - (step + 1) / (broken + 0.5) if broken is not None else 0.5 + 0.5 * math.exp(-step / 9))
    return {"seed": seed, "loss": loss, "grad_norm": norm, "final_estimate": None, "positive": {LABEL: scale},
            "constrained": [], "watched": WATCHED, "none_grad": [], "zero_grad": [], "untracked": [],
            "no_trainable": False, "seconds": 0.3, "logprob_shape": [], "expected_rank": 0}


def reruns(finals: dict) -> list[dict]:
    return [{"seed": s, "finite": math.isfinite(v), "final": v if math.isfinite(v) else None,
             "max_grad_norm": 400.0 + s} for s, v in finals.items()]


def fit_trace(path: Path = MODEL) -> dict:
    """A fit_surrogate_posterior trace with 4 seeds, its clipped and smaller-rate re-runs and a reference."""
    seeds = [seed_record(s) for s in range(4)]
    fit = dict(seeds[0])
    fit["counterfactual"] = {"clipnorm": 1.0, "runs": reruns({0: math.nan, 1: 11.5, 2: math.nan, 3: 10.9})}
    fit["smaller_rate"] = {"learning_rate": 0.5, "smaller": 0.05, "factor": 10.0,
                           "runs": reruns({0: 11.0, 1: 10.9, 2: 11.2, 3: 10.8})}
    return {"source": "fit_surrogate_posterior", "line": 22, "budget": 200,
            "anchors": {"surrogate": "surrogate_posterior", "optimizer": "optimizer", "target": "target_log_prob_fn"},
            "user_num_steps": 200, "fit": fit, "seeds": seeds,
            "reference": {"kind": "factored", "loss": [33.0 * math.exp(-i / 20) + 10.0 for i in range(STEPS)],
                          "final_estimate": 12.9, "affine_skipped": "the fit's loss turned non-finite",
                          "seconds": 0.4},
            "richer": {"skipped": "the fit's loss is not finite"},
            "site": {"kind": "fit", "line": 22, "stack": [22], "optimizer_names": ["optimizer"]},
            "fit_index": 0, "seconds": 1.7, "output_tail": "", "path": str(path), "keras": "Keras 3 as tf.keras"}


def judged(trace: dict | None = None, path: Path = MODEL) -> tuple[list[Diagnostic], Evidence]:
    """The static findings of `path` with their verdicts on `trace` (the real report.apply_results,
    which also checks trace and verdicts against the contract: tests/conftest.py sets ELBOLINT_CHECK_TRACES)."""
    trace = fit_trace(path) if trace is None else trace
    assert problems(trace) == []
    result = lint_file(path, all_rules(), {}, Config().enabled_codes())
    evidence = Evidence()
    evidence.keep(result, trace)  # as run_dynamic(..., on_trace=evidence.keep) hands it over
    rows = report.apply_results([result], [trace], DynamicSettings(), Config().enabled_codes())
    diagnostics = sorted(list(result.diagnostics) + rows, key=Diagnostic.sort_key)
    return diagnostics, evidence


def svgs(block: str, page: str = "") -> list[ET.Element]:
    """The charts of `block`; a chart drawn once and shown again through <use> (the same run judged
    several findings) is resolved to the drawing in `page`, after checking it shows the same chart, with
    the copy's own marks (drawn over it) in place of the drawing's."""
    found = []
    for text in re.findall(r'<svg class="curve".*?</svg>', block, re.S):
        svg = ET.fromstring(text)
        if svg.get("data-use"):
            [drawing] = re.findall(rf'<svg class="curve"[^>]* id="{svg.get("data-use")}">.*?</svg>', page, re.S)
            original = ET.fromstring(drawing)
            assert svg.find(f"{SVG}use").get("href") == f"#{svg.get('data-use')}-g"
            assert {k: v for k, v in svg.attrib.items() if k != "data-use"} == \
                {k: v for k, v in original.attrib.items() if k != "id"}
            for mark in [m for m in original if m.get("class") == "mark"]:
                original.remove(mark)
            for mark in [m for m in svg if m.get("class") == "mark"]:
                original.append(mark)
            svg = original
        found.append(svg)
    return found


def drawn_points(svg: ET.Element, path: ET.Element) -> list[tuple[float, float]]:
    """(step, value) of every vertex of a series, from the chart's declared plot area and domain."""
    left, top, right, bottom = map(float, svg.get("data-plot").split(","))
    x0, x1 = map(float, svg.get("data-x").split(","))
    points = []
    for x, y in re.findall(r"M?(-?[\d.]+) (-?[\d.]+)", path.get("d")):
        step = x0 + (float(x) - left) / (right - left) * (x1 - x0)
        points.append((step, value_at(svg, float(y))))
    return points


def value_at(svg: ET.Element, y: float) -> float:
    """The value a pixel row stands for, by the chart's declared scale (linear, log10, symlog)."""
    _, top, _, bottom = map(float, svg.get("data-plot").split(","))
    low, high = map(float, svg.get("data-y").split(","))
    v = low + (bottom - y) / (bottom - top) * (high - low)
    scale, c = svg.get("data-scale", "linear"), float(svg.get("data-c", "1"))
    if scale == "log":
        return 10 ** v
    if scale == "symlog":
        return math.copysign(c * (10 ** abs(v) - 1), v)
    return v


def on_scale(svg: ET.Element, value: float) -> float:
    scale, c = svg.get("data-scale", "linear"), float(svg.get("data-c", "1"))
    if scale == "log":
        return math.log10(value)
    if scale == "symlog":
        return math.copysign(math.log10(1 + abs(value) / c), value)
    return value


def assert_matches(svg: ET.Element, path: ET.Element, values: list) -> None:
    """Every vertex is the recorded value at its step (to the 0.1 px the coordinates are rounded to),
    and every finite value of a short series is drawn."""
    low, high = map(float, svg.get("data-y").split(","))
    tolerance = (high - low) * 0.002 + 1e-9
    points = drawn_points(svg, path)
    assert int(path.get("data-n")) == len(values)
    for step, value in points:
        index = round(step)
        assert abs(step - index) < 0.3, (step, path.get("data-run"))
        expected = number(values[index])
        assert expected is not None and math.isfinite(expected)
        got, want = on_scale(svg, value), on_scale(svg, expected)
        assert abs(got - want) <= tolerance, (path.get("data-run"), path.get("data-tag"), index, value, expected)
    finite_values = [v for v in values if v is not None and math.isfinite(number(v))]
    if len(values) <= 180:
        assert len(points) == len(finite_values)
    else:
        assert len(points) >= 60  # at least one vertex per bucket


def check_curves(block: str, trace_part: dict, page: str = "") -> int:
    """Every series `block` draws equals the trace's (loss, gradient norm, minima; seeds and reference)."""
    expected = {}
    for run in runs(trace_part):
        for tag, values in run.series.items():
            expected[(run.label, tag)] = values
    checked = 0
    for svg in svgs(block, page):
        for path in svg.iter(f"{SVG}path"):
            if path.get("class") != "series":
                continue
            assert_matches(svg, path, expected[(path.get("data-run"), path.get("data-tag"))])
            checked += 1
    return checked


def marks(svg: ET.Element) -> list[int]:
    return sorted(int(line.get("data-step")) for line in svg.iter(f"{SVG}line") if line.get("class") == "mark")


def test_a_confirmed_finding_shows_every_seed_the_reference_and_the_failing_step():
    diagnostics, evidence = judged()
    [elb001] = [d for d in diagnostics if d.code == "ELB001"]
    assert elb001.dynamic["status"] == "confirmed"
    page = html.render(diagnostics, evidence)
    block = re.search(r'<details class="finding"[^>]*data-code="ELB001".*?</details>', page, re.S).group(0)
    assert 'data-status="confirmed" open' in block
    charts = svgs(block)
    titles = [svg.get("aria-label") for svg in charts]
    assert titles[:3] == ["Loss per step, fit at line 22", "Gradient norm, fit at line 22", f"Minimum of {LABEL}"]
    assert titles[3].startswith("Final loss: your run beside its counterfactuals")
    loss = charts[0]
    runs_drawn = [p.get("data-run") for p in loss.iter(f"{SVG}path")]
    assert runs_drawn == ["seed 0", "seed 1", "seed 2", "seed 3", "reference fit (factored)"]
    # the failing steps of the verdict's evidence (per seed) are marked on the finding's own parameter's
    # chart only (ELB104 on `scale`: not the loss, not the gradient norm); each NaN's first step is crossed
    assert [marks(chart) for chart in charts[:2]] == [[], []]
    below = [next(i for i, v in enumerate(r["positive"][LABEL]) if v <= 0) for r in fit_trace()["seeds"][:3]]
    assert marks(charts[2]) == below == [b + 1 for b in BREAKS.values()]  # index i: its value after i steps
    crosses = sorted(int(t.get("data-step")) for t in loss.iter(f"{SVG}text") if t.get("class") == "nan")
    assert crosses == sorted(b + 1 for b in BREAKS.values())
    assert check_curves(block, fit_trace()) == 5 + 4 + 4
    # the counterfactual beside the original: the clipped re-runs' final losses, crosses where they diverged
    dots = charts[3]
    finals = {(c.find(f"{SVG}title").text.split(",")[0], c.get("data-seed")): float(c.get("data-value"))
              for c in dots.iter(f"{SVG}circle")}
    assert finals[("clipped re-run (clipnorm 1)", "1")] == 11.5
    assert finals[("smaller-rate re-run (learning rate 0.05 (/10))", "2")] == 11.2
    assert finals[("your run", "3")] == final_loss(fit_trace()["seeds"][3]["loss"])  # as the verdict counts
    diverged = [t.get("data-seed") for t in dots.iter(f"{SVG}text") if "nan" in (t.get("class") or "")]
    assert sorted(diverged) == ["0", "0", "1", "2", "2"]  # the user's seeds 0-2, clipped seeds 0 and 2


def test_every_dynamic_verdict_with_a_run_has_its_curves_and_static_only_findings_have_none():
    diagnostics, evidence = judged()
    page = html.render(diagnostics, evidence)
    blocks = re.findall(r'<details class="finding".*?</details>', page, re.S)
    assert len(blocks) == len(diagnostics)
    for d, block in zip(diagnostics, blocks):
        assert f'data-code="{d.code}"' in block
        if d.dynamic and d.dynamic["status"] in ("confirmed", "not-reproduced", "observed"):
            assert check_curves(block, fit_trace(), page) >= 13, d.code
        assert f'data-status="{(d.dynamic or {}).get("status", "static")}"' in block
    static_page = html.render([Diagnostic(d.path, d.start, d.end, d.code, d.name, d.message, d.severity, d.fix)
                               for d in diagnostics])
    assert "<svg" not in static_page and static_page.count('<details class="finding"') == len(diagnostics)


def test_the_report_is_self_contained_and_readable_without_javascript():
    diagnostics, evidence = judged()
    page = html.render(diagnostics, evidence)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import|url\(", page)
    assert [m for m in re.findall(r'href="([^"#][^"]*)"', page) if not m.startswith("https://github.com/")] == []
    assert '<form id="filters" hidden>' in page  # revealed by the script; without it nothing is dead
    # the summary counts per code, severity and status, and names the file
    assert re.search(r'<td><a href="#rule-ELB001">ELB001</a></td><td>unconstrained-scale</td><td>error</td>'
                     r'<td class="num">1</td><td>1 confirmed</td>', page)
    assert "raw_scale_high_lr.py" in page and 'id="rule-ELB001"' in page and 'id="rule-ELB009"' in page
    # the rule's explanation and its fix, as a diff
    assert "Why is this bad?" in page
    assert ('<span class="add">+surrogate_posterior = tfd.Normal(loc=tf.Variable(0.0), '
            'scale=tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus()))</span>') in page
    assert '<span class="hl"><span class="ln">19 </span>surrogate_posterior = tfd.Normal(' in page


def test_a_keras_fit_shows_its_kl_and_data_terms_and_elb111_its_richer_family():
    record = {"seed": 0, "loss": [700.0 - i for i in range(50)], "grad_norm": [16.0 - i / 10 for i in range(50)],
              "kl": [699.0 - i for i in range(50)], "data": [1.0 + (i % 3) / 10 for i in range(50)],
              "kl_weight": 1.0, "dataset_size": 2000, "batch_size": 32, "positive": {}, "none_grad": [],
              "zero_grad": [], "untracked": [], "no_trainable": False, "seconds": 0.2,
              "posterior_scale": {"min": [0.03] * 50, "mean": [0.05] * 50, "prior": 1.0}}
    part = {"source": "keras", "line": 27, "fit": record, "seeds": [record, dict(record, seed=1, variant={"seed": 1})],
            "site": {"kind": "keras", "line": 27, "stack": [27], "model_names": ["model"]},
            "richer": {"latent": 2, "names": ["w", "b"], "user_elbo": -98.2, "user_se": 0.9, "start_elbo": -99.9,
                       "reference": [{"seed": s, "steps": 1000, "elbo": -76.4 - s, "se": 0.02,
                                      "mean_field_elbo": -79.1, "mean_field_se": 0.03} for s in range(3)],
                       "steps": 1000, "step_cap": 1000, "seeds": 3}}
    assert problems(part) == []
    block = html.curves(part, {})
    titles = [svg.get("aria-label") for svg in svgs(block)]
    assert titles == ["Loss per step, keras fit at line 27", "Gradient norm, keras fit at line 27",
                      "KL and data terms, keras fit at line 27", "ELBO: your family vs a richer one (higher is better)"]
    assert check_curves(block, part) == 2 + 2 + 2
    richer = svgs(block)[3]
    values = sorted(float(c.get("data-value")) for c in richer.iter(f"{SVG}circle"))
    assert values == sorted([-76.4, -77.4, -78.4, -79.1, -79.1, -79.1, -98.2])


def test_a_long_series_is_thinned_without_losing_its_spike():
    losses = [5.0] * 3000
    losses[1234] = 900.0
    part = {"fit": {"loss": losses}, "source": "loop"}
    [svg] = svgs(html.curves(part, {}))
    [path] = [p for p in svg.iter(f"{SVG}path")]
    assert_matches(svg, path, losses)
    assert max(v for _, v in drawn_points(svg, path)) > 899 and len(drawn_points(svg, path)) <= 190


def test_hundreds_of_findings_stay_small(tmp_path):
    """A static-only report of 600 findings (a repository's worth) stays a few hundred KB."""
    source = tmp_path / "m.py"
    source.write_text("".join(f"q{i} = tfd.Normal(loc=0., scale=tf.Variable(1.0))\n" for i in range(300)))
    rows = [Diagnostic(source, Position(i // 2 + 1, 30), Position(i // 2 + 1, 46), "ELB001" if i % 2 else "ELB003",
                       "unconstrained-scale" if i % 2 else "missing-gradient-clipping", f"finding {i} " + "x" * 120,
                       Severity.ERROR if i % 2 else Severity.WARNING) for i in range(600)]
    page = html.render(rows)
    assert page.count('<details class="finding"') == 600
    assert len(page.encode()) < 600 * 1500, len(page)


def test_cli_writes_the_report_and_an_unwritable_output_is_one_line(tmp_path):
    """In-process (click's runner): the command's exit code, file and stderr are what this checks, not
    the process; an exception escaping the command fails the test (catch_exceptions=False)."""
    out = tmp_path / "report.html"
    runner = CliRunner()
    done = runner.invoke(main, ["check", "--no-cache", "--output-format", "html", "-o", str(out),
                                str(FIXTURES / "ELB001" / "bad_tfd_alias.py")], catch_exceptions=False)
    assert done.exit_code == 1, done.stderr
    assert out.read_text().count('<details class="finding"') == 7
    bad = runner.invoke(main, ["check", "--no-cache", "--output-format", "html", "-o", str(out / "x.html"),
                               str(FIXTURES / "ELB001" / "bad_tfd_alias.py")], catch_exceptions=False)
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("elbolint: error: cannot write the report to") and len(bad.stderr.splitlines()) == 1


def test_a_run_that_stopped_before_its_first_step_says_why_instead_of_a_curve():
    trace = {"source": "fit_surrogate_posterior", "line": 22, "anchors": {}, "seconds": 1.0, "path": str(MODEL),
             "failure": {"kind": "exception", "message": "ValueError: boom at line 22", "line": 22,
                         "exception": "ValueError"}}
    diagnostics, evidence = judged(trace)
    page = html.render(diagnostics, evidence)
    assert "<svg" not in page and any(d.dynamic for d in diagnostics)
    assert "No curves: no training step ran (" in page and "boom at line 22" in page


def intermittent_trace() -> dict:
    """Like the real run of raw_scale_high_lr.py (4 seeds, budget 200): seeds 0-2 go NaN and stop after
    100 steps (two NaN losses in a row at a chunk's end), seed 3 is NaN at odd steps 13-115 and ends
    finite after 200 steps; the smaller-rate re-runs all end finite, the clipped ones all NaN."""
    trace = fit_trace()
    seeds = []
    for seed in range(4):
        n, first = (200, 13) if seed == 3 else (100, 6 + 3 * seed)
        loss = [20.0 + 500.0 * math.exp(-i / 5) + (i % 7) / 10 for i in range(n)]
        for i in range(first, n if seed < 3 else 116):
            if seed < 3 and (i % 2 or i >= 98) or seed == 3 and i % 2:
                loss[i] = math.nan
        record = dict(seed_record(seed), loss=loss, grad_norm=[30.0 + i % 5 for i in range(n)],
                      positive={LABEL: [1.0 - i / 10 for i in range(n + 1)]})
        seeds.append(record)
    fit = dict(seeds[0], counterfactual={"clipnorm": 1.0, "runs": reruns({s: math.nan for s in range(4)})},
               smaller_rate={"learning_rate": 0.5, "smaller": 0.05, "factor": 10.0,
                             "runs": reruns({0: 11.0, 1: 10.9, 2: 11.04, 3: 11.03})})
    trace.update(fit=fit, seeds=seeds)
    trace["reference"]["loss"] = [33.0 * math.exp(-i / 20) + 10.0 for i in range(200)]
    return trace


def test_the_final_loss_chart_counts_a_run_as_the_verdict_does_and_each_seed_shows_its_own_length():
    """The verdict says "(at 0.5: 4 of 4)" seeds were non-finite; seed 3 went NaN
    at step 13 but ended finite. The chart must not show seed 3's last value as if it were a finite run:
    it counts runs as the verdict does, says where seed 3 ended, and each seed's length is its own."""
    trace = intermittent_trace()
    diagnostics, evidence = judged(trace)
    [elb009] = [d for d in diagnostics if d.code == "ELB009"]
    assert elb009.dynamic["status"] == "confirmed" and "(at 0.5: 4 of 4)" in elb009.dynamic["summary"]
    page = html.render(diagnostics, evidence)
    block = re.search(r'<details class="finding"[^>]*data-code="ELB009".*?</details>', page, re.S).group(0)
    charts = svgs(block, page)
    [dots] = [c for c in charts if c.get("aria-label").startswith("Final loss")]
    yours = [t for t in dots.iter(f"{SVG}text") if "nan" in (t.get("class") or "")
             and t.find(f"{SVG}title").text.startswith("your run")]
    finite_yours = [c for c in dots.iter(f"{SVG}circle") if c.find(f"{SVG}title").text.startswith("your run")]
    assert len(yours) == elb009.dynamic["evidence"]["findings"][0]["evidence"]["non_finite_before"] == 4
    assert finite_yours == []
    [seed3] = [t.find(f"{SVG}title").text for t in yours if t.get("data-seed") == "3"]
    last = trace["seeds"][3]["loss"][-1]
    assert "from step 13" in seed3 and f"ended finite at step 199 ({last:.4g}" in seed3
    assert "seed 3 went non-finite but ended finite" in block
    # item 2: the loss chart spans the longest run; the others end where they stopped, as the caption says
    loss = charts[0]
    assert loss.get("data-x") == "0,199"
    ends = {int(e.get("data-step")) for e in loss.iter(f"{SVG}line") if e.get("class") == "end"}
    assert ends == {99}
    assert ("steps recorded per run: seed 0: 100 (stopped: loss not finite), seed 1: 100 (stopped: loss not "
            "finite), seed 2: 100 (stopped: loss not finite), seed 3: 200; budget 200") in block
    assert check_curves(block, trace, page) >= 13


def test_a_notebook_chart_names_its_site_in_cell_coordinates():
    """Item 3: the verdict says "cell 25:9"; the chart must not say the virtual module's "line 164"."""
    from types import SimpleNamespace

    class Notebook:
        spans = [SimpleNamespace(cell=25, start=156)]

        def locate(self, line):
            return self.spans[0], line - self.spans[0].start + 1

    part = {"source": "keras", "line": 164, "fit": {"loss": [3.0, 2.0, 1.0]},
            "site": {"kind": "keras", "line": 164, "stack": [164]}}
    evidence = Evidence()
    evidence.keep(SimpleNamespace(path=Path("nb.ipynb"), notebook=Notebook()), part)
    [svg] = svgs(html.curves(part, {}, locate=evidence.locate(Path("nb.ipynb"))))
    assert svg.get("aria-label") == "Loss per step, keras fit at cell 25:9"
    [plain] = svgs(html.curves(part, {}))
    assert plain.get("aria-label") == "Loss per step, keras fit at line 164"


def test_values_spanning_many_orders_with_mixed_signs_keep_every_series_readable():
    """Item 4: a user loss from 6.8e7 down to -81.56 and ELB108's reference loss from 1740: on a linear
    axis the reference is a flat line at the bottom; a symlog axis keeps its shape, read back exactly."""
    user = [6.8e7 * math.exp(-i / 3) - 81.56 * (1 - math.exp(-i / 3)) for i in range(60)]
    reference = [1740.0 * math.exp(-i / 10) - 60.0 for i in range(60)]
    part = {"source": "fit_surrogate_posterior", "line": 22, "fit": {"loss": user},
            "reference": {"kind": "factored", "loss": reference}}
    assert problems(part) == []
    block = html.curves(part, {})
    [svg] = svgs(block)
    assert svg.get("data-scale") == "symlog"
    assert check_curves(block, part) == 2
    [ref] = [p for p in svg.iter(f"{SVG}path") if p.get("data-tag") == "loss" and "reference" in p.get("data-run")]
    ys = [y for _, y in re.findall(r"M?(-?[\d.]+) (-?[\d.]+)", ref.get("d"))]
    assert max(map(float, ys)) - min(map(float, ys)) > 40  # not flat against the axis
    assert ref.find(f"{SVG}title").text.startswith("ELB108's reference fit: its loss")
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick" and t.get("text-anchor") == "end"
             and t.text != "step"]
    assert len(ticks) == 5 and len(set(ticks)) == 5 and "0" in ticks, ticks


def test_the_richer_family_chart_only_with_its_estimates_and_says_when_elb111_was_not_reported():
    part = {"source": "fit_surrogate_posterior", "line": 22, "fit": {"loss": [5.0, 4.0, 3.0]},
            "richer": {"skipped": "the fit's loss is not finite"}}
    assert problems(part) == []
    assert [s.get("aria-label") for s in svgs(html.curves(part, {}))] == ["Loss per step, fit at line 22"]
    part["richer"] = {"latent": 2, "user_elbo": -61.0, "user_se": 0.5,
                      "reference": [{"seed": s, "elbo": -60.5, "se": 0.1, "mean_field_elbo": -1.8e7} for s in (0, 1)]}
    assert problems(part) == []
    block = html.curves(part, {})
    [_, richer] = svgs(block)
    labels = [c.find(f"{SVG}title").text for c in richer.iter(f"{SVG}circle")]
    assert labels and all(label.startswith("ELB111: ") for label in labels)
    assert "your solution: -61" in " ".join(labels) and "seed None" not in block
    assert "no ELB111: the richer family&#x27;s gain is below the threshold" in block
    assert "no ELB111" not in html.curves(part, {}, frozenset({"ELB111"}))
    assert richer.get("data-scale") == "symlog"  # -61 and -1.8e7 on one axis


def test_ticks_differ_single_points_are_drawn_and_overlapping_seeds_are_named():
    """Item 5."""
    close = [3.91e7 + 1e5 * (i % 3) for i in range(30)]
    [svg] = svgs(html.curves({"fit": {"loss": close}, "source": "loop"}, {}))
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick" and t.get("text-anchor") == "end"
             and t.text != "step"]
    assert len(ticks) == 3 and len(set(ticks)) == 3, ticks
    record = {"loss": [math.nan, 5.0, math.nan, 4.0, 3.0]}
    near = {"loss": [math.nan, 5.0001, math.nan, 4.0001, 3.0]}  # not the same numbers, the same pixels
    part = {"fit": record, "seeds": [dict(record, seed=0), dict(record, seed=1), dict(near, seed=2)],
            "source": "fit_surrogate_posterior"}
    assert problems(part) == []
    block = html.curves(part, {"loss": {0: 3, 1: 3, 2: 4}})
    [svg] = svgs(block)
    singles = [(int(c.get("data-step")), value_at(svg, float(c.get("cy")))) for c in svg.iter(f"{SVG}circle")
               if c.get("class") == "single"]
    assert [s for s, _ in singles] == [1, 1, 1] and all(abs(v - 5.0) < 0.01 for _, v in singles)
    assert "seed 0, seed 1, seed 2 draw the same line (overlap)" in block
    # two seeds that went wrong at one step: one mark naming both
    assert [(m.get("data-step"), m.get("data-seeds")) for m in svg.iter(f"{SVG}line") if m.get("class") == "mark"] \
        == [("3", "0,1"), ("4", "2")]


def test_an_observed_nan_marks_the_loss_chart_and_charts_are_drawn_once():
    """Items 6-7: ELB101's row marks its NaN steps on the loss chart (and nothing else); a chart two
    findings share is drawn once; every dynamic verdict is open; an empty report has no filters."""
    diagnostics, evidence = judged()
    page = html.render(diagnostics, evidence)
    block = re.search(r'<details class="finding"[^>]*data-code="ELB101".*?</details>', page, re.S).group(0)
    charts = svgs(block, page)
    assert marks(charts[0]) == [7, 10, 15] and [marks(c) for c in charts[1:3]] == [[], []]
    drawn = re.findall(r'<svg class="curve"[^>]* id="(chart\d+)"><g id="chart\d+-g">(.*?)</g>', page, re.S)
    assert len({body for _, body in drawn}) == len(drawn) and 'data-use="' in page
    assert 'class="mark"' not in "".join(body for _, body in drawn)  # marks are each finding's own, drawn over
    for d in diagnostics:
        if d.dynamic:
            assert re.search(rf'data-code="{d.code}"[^>]*data-status="[a-z-]+" open>', page), d.code
    assert '<span class="count">' in page
    empty = html.render([])
    assert 'id="filters"' not in empty and "No findings." in empty

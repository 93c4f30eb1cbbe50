"""Every flagged training site gets its own run (process/site_runs.py): a file with two Bayesian
networks or two hand-written loops is run once per site, each finding is judged by its own site's run,
and a site that no run reached says why. The unit tests drive `run_each_site` with fake runs (no
TensorFlow); the dynamic test runs the two fixtures for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from elbolint.dynamic.child.sites import identity, unflagged
from elbolint.dynamic.parent.attribution import run_name
from elbolint.dynamic.process import site_runs
from elbolint.dynamic.verdicts.contract import Trace, problems

DYNAMIC = FIXTURES / "dynamic"


def _loop(line: int, caller: int) -> dict:
    site = {"kind": "loop", "line": line, "stack": [line, caller], "caller": caller}
    site["identity"] = identity(site)
    return {"source": "loop", "line": line, "site": site, "fit": {"loss": [3.0, 2.0]}, "seconds": 1.0}


def _job(sites, timeout=60.0) -> dict:
    return {"path": "f.py", "settings": {"timeout": timeout, "flagged_sites": sites}}


def test_one_site_is_one_run_as_before():
    calls = []
    trace = site_runs.run_each_site(_job([["loop", 30, 31]]), lambda job: calls.append(job) or _loop(31, 40))
    assert len(calls) == 1 and "done_sites" not in calls[0]["settings"] and "site_runs" not in trace


def test_each_site_gets_a_run_of_its_own_with_the_earlier_sites_done():
    runs = iter([_loop(25, 35), _loop(25, 42)])
    calls = []
    trace = site_runs.run_each_site(_job([["loop", 35, 35], ["loop", 42, 42]]),
                                    lambda job: calls.append(job) or next(runs))
    assert [c["settings"]["done_sites"] for c in calls] == [[], [["loop", [25, 35]]]]
    assert calls[0]["settings"]["timeout"] == pytest.approx(30.0, abs=0.5)  # an equal share each
    assert [p["site"]["caller"] for p in trace["fits"]] == [35, 42]
    assert trace["site_runs"] == {"runs": 2, "unreached": []}
    assert problems(trace, Trace) == []


def test_a_site_no_run_reached_says_why():
    first = _loop(25, 35)
    trace = site_runs.run_each_site(_job([["loop", 35, 35], ["loop", 42, 42]]),
                                    lambda job: first if not job["settings"]["done_sites"] else
                                    {"failure": {"kind": "timeout", "message": "timeout after 30 s"}})
    (unreached,) = trace["site_runs"]["unreached"]
    assert unreached["first"] == 42 and "timeout after 30 s" in unreached["why"]
    assert [p["site"]["caller"] for p in trace["fits"]] == [35]  # the failed run adds no part


def test_a_run_that_only_passed_earlier_runs_says_so_and_the_finding_shows_why():
    from elbolint.dynamic.parent.report import _unreached_note

    passing = {"source": "loop", "line": 30, "site": dict(_loop(30, 40)["site"], brief=10),
               "cut_short": [_loop(25, 35)["site"]], "seconds": 80.0}
    trace = site_runs.run_each_site(_job([["loop", 35, 35], ["loop", 50, 60]], timeout=120.0),
                                    lambda job: _loop(25, 35) if not job["settings"]["done_sites"] else passing)
    (unreached,) = trace["site_runs"]["unreached"]
    assert unreached["why"].startswith("the run of the file meant for it passed 2 earlier training runs "
                                       "unrecorded in 80 s (of the "), unreached
    assert _unreached_note(trace, [{"first": 52, "last": 52}]) == f"; {unreached['why']}"
    assert _unreached_note(trace, [{"first": 35, "last": 35}]) == ""


def test_a_run_that_recorded_every_fit_is_followed_by_one_for_the_later_site():
    fits = {"source": "fit_surrogate_posterior", "line": 10,
            "fits": [dict(_loop(10, 10), source="fit_surrogate_posterior")]}
    keras = dict(_loop(20, 20), source="keras")
    calls = []
    trace = site_runs.run_each_site(_job([["fit", 10, 10], ["keras", 20, 20]]),
                                    lambda job: calls.append(job) or (keras if calls[1:] else fits))
    assert calls[1]["settings"]["done_sites"] == [["loop", [10, 10]]]
    assert [p["source"] for p in trace["fits"]] == ["fit_surrogate_posterior", "keras"]


def test_a_first_run_that_failed_is_the_files_result_as_before():
    failed = {"failure": {"kind": "timeout", "message": "timeout after 60 s"}}
    calls = []
    trace = site_runs.run_each_site(_job([["loop", 35, 35], ["loop", 42, 42]]),
                                    lambda job: calls.append(job) or failed)
    assert trace is failed and len(calls) == 1
    assert calls[0]["settings"]["hard_timeout"] == pytest.approx(60.0, abs=0.5)  # killed only at the whole time


def test_a_run_at_a_done_site_is_nobodys():
    site = _loop(25, 35)["site"]
    assert unflagged(site, [[35, 35]], [], done=[["loop", [25, 35]]])
    assert not unflagged(site, [[35, 35]], [], done=[["loop", [25, 42]]])


def test_a_loop_in_a_helper_is_named_with_its_caller():
    assert run_name(_loop(25, 42)["site"]) == "the loop at line 25, called at line 42"


@pytest.mark.dynamic
def test_two_networks_two_loops_and_a_fit_then_a_network_are_each_judged_by_their_own_run():
    pytest.importorskip("tensorflow_probability")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(DYNAMIC / "two_bnns.py"), str(DYNAMIC / "two_loops.py"),
         str(DYNAMIC / "fit_then_keras.py"), "--dynamic", "-j", "2", "--output-format", "json", "--exit-zero"],
        capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert completed.returncode == 0, completed.stderr
    rows = {(r["filename"].rsplit("/", 1)[-1], r["code"], r["location"]["row"]): r
            for r in json.loads(completed.stdout)}
    for line, model, fit in ((22, "narrow", 26), (23, "narrow", 26), (30, "wide", 34), (31, "wide", 34)):
        verdict = rows[("two_bnns.py", "ELB010", line)]["dynamic"]
        assert verdict["status"] == "confirmed", verdict  # natively the KL ends 33x / 200x the MSE
        assert verdict["trace"]["run"] == f"the Keras fit of `{model}` at line {fit}", verdict
    for line, scale, caller in ((32, "first_scale", 35), (39, "second_scale", 42)):
        verdict = rows[("two_loops.py", "ELB001", line)]["dynamic"]
        assert verdict["status"] == "confirmed", verdict  # natively negative within a few steps
        assert f"`{scale}`" in verdict["summary"] and f"called at line {caller})" in verdict["summary"], verdict

    fit = rows[("fit_then_keras.py", "ELB001", 26)]["dynamic"]
    assert fit["status"] == "confirmed" and fit["trace"]["run"] == "the fit at line 28", fit
    for line in (32, 33):
        verdict = rows[("fit_then_keras.py", "ELB010", line)]["dynamic"]
        assert verdict["status"] == "confirmed", verdict
        assert verdict["trace"]["run"] == "the Keras fit of `bnn` at line 36", verdict



@pytest.mark.dynamic
def test_a_loop_called_twice_a_for_loop_of_fits_and_a_builder_are_each_judged_by_their_own_fit():
    """The same loop reached from two calls (the second call's steps are not the first run's
    evidence), one fit call in a `for` loop over two surrogates (each finding belongs to its own
    surrogate's fit) and one builder for two fits (its finding is confirmed by the fit where its
    scale crossed zero). Natively: rate 0.01 keeps the scale positive, rate 0.5 crosses zero."""
    pytest.importorskip("tensorflow_probability")
    names = ("loop_helper_called_twice.py", "fits_in_a_for_loop.py", "builder_for_two_fits.py")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", *(str(DYNAMIC / n) for n in names), "--dynamic", "-j", "2",
         "--output-format", "json", "--exit-zero"], capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert completed.returncode == 0, completed.stderr
    rows = {(r["filename"].rsplit("/", 1)[-1], r["code"], r["location"]["row"]): r
            for r in json.loads(completed.stdout)}
    safe = rows[("loop_helper_called_twice.py", "ELB001", 34)]["dynamic"]
    assert safe["status"] == "not-reproduced" and "called at line 35)" in safe["summary"], safe
    assert "150 steps recorded" in safe["summary"], safe  # the second call's steps are not in this run
    bad = rows[("loop_helper_called_twice.py", "ELB001", 37)]["dynamic"]
    assert bad["status"] == "confirmed" and "called at line 38)" in bad["summary"], bad
    assert not any(key[0] == "loop_helper_called_twice.py" and key[1] == "ELB101" and len(
        [k for k in rows if k[:2] == key[:2]]) > 1 for key in rows)  # one NaN row: the second call's
    # the second call's module-level variables are trained, by its own run: no "never trained" row
    assert not [key for key in rows if key[0] == "loop_helper_called_twice.py" and key[1] == "ELB105"]
    for line, status, fit in ((22, "not-reproduced", "fit 1 of 2"), (23, "confirmed", "fit 2 of 2")):
        verdict = rows[("fits_in_a_for_loop.py", "ELB001", line)]["dynamic"]
        assert verdict["status"] == status and verdict["summary"].startswith(fit), verdict
    built = rows[("builder_for_two_fits.py", "ELB001", 23)]["dynamic"]
    assert built["status"] == "confirmed" and built["summary"].startswith("fit 2 of 2 (line 31)"), built


_BUILDERS = '''\
def create_baseline():
    model = Sequential([Dense(1)])
    opt = Adam(learning_rate=0.01)
    model.compile(loss="mse", optimizer=opt)
    return model


def create_bnn():
    model = Sequential([tfp.layers.DenseFlipout(1)])
    opt = Adam(learning_rate=0.01)
    model.compile(loss="mse", optimizer=opt)
    return model


baseline = create_baseline()
baseline.fit(x, y)
bnn = create_bnn()
bnn.fit(x, y)
'''


def test_an_optimizer_or_model_built_in_a_function_is_followed_to_the_fit_of_what_it_returns():
    from elbolint.dynamic.parent.attribution import Attribution

    attribution = Attribution(_BUILDERS)
    optimizer = ("ELB003", 10, "Adam drives variational inference without gradient clipping")
    layer = ("ELB010", 9, "`DenseFlipout(1)` in `model` keeps the default kernel_divergence_fn")
    for finding in (optimizer, layer):
        assert attribution.own_site(*finding) == "the Keras fit of `bnn` at line 18"
        bnn = {"kind": "keras", "line": 18, "stack": [18], "model_names": ["bnn"]}
        baseline = {"kind": "keras", "line": 16, "stack": [16], "model_names": ["baseline"]}
        assert attribution.belongs(*finding, bnn) is True
        assert attribution.belongs(*finding, baseline) is False


_RECOMPILED = '''\
model = make(1)
model.compile(optimizer=Adam(learning_rate=0.01), loss=nll)
model.fit(x, y)
model = make(2)
model.compile(optimizer=Adam(learning_rate=0.01), loss=nll)
model.fit(x, y)
model.compile(optimizer=Adam(learning_rate=0.1), loss=nll)
model.fit(x, y)
'''


def test_an_inline_optimizer_owns_the_fits_of_its_model_until_the_model_is_rebuilt_or_recompiled():
    from elbolint.dynamic.parent.attribution import Attribution

    attribution = Attribution(_RECOMPILED)
    fits = [{"kind": "keras", "line": line, "stack": [line], "model_names": ["model"]} for line in (3, 6, 8)]
    for finding_line, own in ((2, 3), (5, 6), (7, 8)):
        verdicts = [attribution.belongs("ELB003", finding_line, "Adam drives variational inference", fit)
                    for fit in fits]
        assert verdicts == [fit["line"] == own for fit in fits], (finding_line, verdicts)


def test_flagged_fits_ahead_share_the_runs_time_and_the_last_one_keeps_the_usual_shares():
    import time

    from elbolint.dynamic.child.drive_fit import FIT_SPAN, _fit_seconds
    from elbolint.dynamic.child.fitting import _fit_deadlines

    settings = {"flagged_sites": [["fit", 10, 12], ["fit", 20, 22], ["fit", 30, 31], ["loop", 40, 45]]}
    state = {"started": time.monotonic()}
    assert abs(_fit_seconds(settings, state, 10, 60.0) - FIT_SPAN * 60.0 / 3) < 0.5
    assert abs(_fit_seconds(settings, state, 20, 60.0) - FIT_SPAN * 60.0 / 2) < 0.5
    assert _fit_seconds(settings, state, 30, 60.0) is None  # the last flagged fit: no share of its own
    assert _fit_seconds({"flagged_sites": [["fit", 10, 12]]}, state, 10, 60.0) is None
    now = time.monotonic()
    deadline, cut_at = _fit_deadlines({"timeout": 60.0})
    assert abs(deadline - now - 24.0) < 0.5 and abs(cut_at - now - 30.0) < 0.5  # 40 % and half the timeout
    deadline, cut_at = _fit_deadlines({"timeout": 60.0, "fit_seconds": 16.0})
    assert abs(deadline - now - 8.0) < 0.5 and abs(cut_at - now - 10.0) < 0.5  # the same proportions of its own


def test_a_finding_in_a_builder_belongs_to_every_fit_of_what_it_built_and_a_for_loops_fits_to_their_own():
    from elbolint.dynamic.parent.owners import builders, owners

    source = ("def make():\n    return Normal(0.0, Variable(1.0))\n\n\nq1 = make()\nfit(q1)\nq2 = make()\nfit(q2)\n"
              "a = Normal(0.0, Variable(1.0))\nb = Normal(0.0, Variable(1.0))\nfor q in (a, b):\n"
              "    tfp.vi.fit_surrogate_posterior(t, q)\n")
    assert builders(source)["q2"] == [(1, 2, False)]

    class Finding:
        def __init__(self, line):
            self.line = line

    class Result:
        notebook = None
        diagnostics = [Finding(2), Finding(9), Finding(10)]

    parts = [{"line": 6, "anchors": {"surrogate": "q1"}}, {"line": 8, "anchors": {"surrogate": "q2"}},
             {"line": 12, "anchors": {"surrogate": "a"}}, {"line": 12, "anchors": {"surrogate": "b"}}]
    found = owners(Result, parts, source.splitlines())
    assert [found[id(d)] for d in Result.diagnostics] == [[0, 1], [2], [3]]


def test_a_keras_models_finding_is_not_judged_by_another_models_fit_in_a_for_loop():
    """`for net in (scaled_net, unscaled_net): net.fit(...)`: both fits are at one line; the fit of
    `scaled_net` is not the run of a finding in `unscaled_net` (before, it judged it `not-reproduced`)."""
    from elbolint.dynamic.parent.attribution import Attribution

    source = ("scaled_net = Sequential([DenseFlipout(4, kernel_divergence_fn=scaled)])\n"
              "unscaled_net = Sequential([\n    DenseFlipout(4),\n])\n"
              "for net in (scaled_net, unscaled_net):\n    net.compile(optimizer=Adam(clipnorm=1.0), loss='mse')\n"
              "    net.fit(x, y)\n")
    attribution = Attribution(source)
    site = {"kind": "keras", "line": 7, "stack": [7]}
    assert attribution.belongs("ELB010", 3, "", dict(site, model_names=["net", "scaled_net"])) is False
    assert attribution.belongs("ELB010", 3, "", dict(site, model_names=["net", "unscaled_net"])) is True

"""Seeds, results and blame without TensorFlow: several seeds per fit (seeds.py), `not-reproduced` that says
what it covered, one result per fit, and the user's failure told from elbolint's own (report.py,
runner.failed_run, failures.blame). The end-to-end checks (real TF) are marked `dynamic` at the end."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES, ROOT, expected_findings, lint
from elbolint.config import Config
from elbolint.dynamic.parent.report import apply_results
from elbolint.dynamic.verdicts.seeds import classify_seeds, coverage
from elbolint.dynamic.parent.settings import DynamicSettings, build_settings
from elbolint.linter import lint_file
from elbolint.registry import all_rules

NAN = "nan"
README_EXAMPLE = ROOT / "examples" / "bayesian_regression.py"
TWO_FITS = FIXTURES / "dynamic" / "two_fits.py"


def run_record(losses, *, scale=None, norm=1.0, seed=0):
    record = {"seed": seed, "loss": list(losses), "grad_norm": [norm] * len(losses), "none_grad": [],
              "zero_grad": [], "untracked": [], "no_trainable": False, "final_estimate": None,
              "positive": {"`scale` of Normal": scale} if scale is not None else {}}
    return record


def fit_trace(runs, **extra):
    trace = {"source": "fit_surrogate_posterior", "line": 29, "budget": 500, "user_num_steps": 500,
             "anchors": {}, "fit": runs[0], "seeds": runs, "seconds": 1.0}
    trace.update(extra)
    return trace


def clean(n=500):
    return [10.0 - i * 0.001 for i in range(n)]


def nan_at(step, n=500):
    return [10.0] * step + [NAN, NAN]


# ------------------------------------------------------------------ seeds.py
def test_nan_in_two_of_four_seeds_is_reported_with_the_fraction_and_step():
    runs = [run_record(clean(), seed=0), run_record(nan_at(312), seed=1),
            run_record(clean(), seed=2), run_record(nan_at(117), seed=3)]
    findings = classify_seeds(fit_trace(runs))
    [nan] = [f for f in findings if f["code"] == "ELB101"]
    assert nan["message"] == "loss NaN from step 312; in 2 of 4 seeds by step 312 (up to 500 steps each)"
    assert nan["evidence"]["seeds"] == {"observed": 2, "of": 4, "which": [1, 3], "steps": [312, 117]}


def test_one_seed_falls_through_to_the_classifier():
    trace = fit_trace([run_record(nan_at(3))])
    del trace["seeds"]
    [nan] = [f for f in classify_seeds(trace) if f["code"] == "ELB101"]
    assert nan["message"] == "loss NaN from step 3"


def test_seed_independent_evidence_is_reported_once_without_a_fraction():
    runs = [run_record(clean(), seed=k) for k in range(4)]
    runs[0]["logprob_shape"], runs[0]["expected_rank"] = [30], 0
    findings = classify_seeds(fit_trace(runs))
    [shape] = [f for f in findings if f["code"] == "ELB106"]
    assert "seeds" not in shape["message"] and "shape [30]" in shape["message"]


def test_huge_finite_gradient_norm_is_no_finding_when_the_optimizer_clips():
    runs = [run_record(clean(), norm=5e4, seed=k) for k in range(4)]
    assert "ELB107" in {f["code"] for f in classify_seeds(fit_trace(runs))}
    assert "ELB107" not in {f["code"] for f in classify_seeds(fit_trace(runs, clipping={"clipnorm": 1.0}))}
    runs = [run_record(clean(), norm=float("inf"), seed=k) for k in range(4)]  # not finite: kept
    assert "ELB107" in {f["code"] for f in classify_seeds(fit_trace(runs, clipping={"clipnorm": 1.0}))}


def test_coverage_says_seeds_steps_and_where_the_budget_came_from():
    runs = [run_record(clean(), seed=k) for k in range(4)]
    assert coverage(fit_trace(runs)) == "4 seeds x 500 steps (the fit's own num_steps)"
    capped = fit_trace(runs, user_num_steps=5000)
    assert coverage(capped) == "4 seeds x 500 steps (the fit's own num_steps=5000, capped)"
    budget = fit_trace([run_record(clean(200))], user_num_steps=None, budget=200)
    del budget["seeds"]
    assert coverage(budget) == "1 seed x 200 steps (elbolint's step budget)"


# ------------------------------------------------------------------ report.py
def _results(path):
    result = lint_file(path, all_rules(), {}, Config().enabled_codes())
    return result


def _settings():
    return DynamicSettings()


def test_not_reproduced_states_the_seeds_and_steps_it_covered():
    result = _results(README_EXAMPLE)
    runs = [run_record(clean(), scale=[1.0] * 501, seed=k) for k in range(4)]
    apply_results([result], [fit_trace(runs)], _settings(), Config().enabled_codes())
    elb001 = [d for d in result.diagnostics if d.code == "ELB001"]
    assert elb001 and all(d.dynamic["status"] == "not-reproduced" for d in elb001)
    assert elb001[0].dynamic["summary"].startswith(
        "no ELB104 observed in 4 seeds x 500 steps (the fit's own num_steps)")
    assert elb001[0].dynamic["trace"]["seeds"] == 4


def test_confirmed_by_some_seeds_says_how_many():
    result = _results(README_EXAMPLE)
    weight = "`scale` of Normal 'weight'"
    runs = [run_record(clean(), seed=0), run_record(nan_at(312), seed=1),
            run_record(nan_at(200), seed=2), run_record(clean(), seed=3)]
    for run in runs:
        run["positive"] = {weight: [1.0] * 10 + ([-0.1] * 300 if run["seed"] in (1, 2) else [1.0] * 300)}
    rows = apply_results([result], [fit_trace(runs)], _settings(), Config().enabled_codes())
    elb001 = next(d for d in result.diagnostics if d.code == "ELB001")
    assert elb001.dynamic["status"] == "confirmed"
    assert elb001.dynamic["summary"].count("in 2 of 4 seeds by step 10 (up to 500 steps each)") == 1
    assert "NaN" not in elb001.dynamic["summary"]  # the NaN is told once, in its own row
    [nan] = [r for r in rows if r.code == "ELB101"]
    assert "loss NaN from step 312; in 2 of 4 seeds by step 312 (up to 500 steps each)" in nan.message


def test_a_nan_alone_confirms_no_raw_scale_and_no_learning_rate():
    """A NaN somewhere in the run does not say which parameter caused it, nor that the
    learning rate did (no re-run at a smaller rate): such findings are `unconfirmed`, not confirmed."""
    result = _results(README_EXAMPLE)
    runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    rows = apply_results([result], [fit_trace(runs)], _settings(), Config().enabled_codes())
    status = {(d.code, d.line): d.dynamic for d in result.diagnostics}
    for key in (("ELB001", 22), ("ELB001", 23), ("ELB003", 26)):
        assert status[key]["status"] == "unconfirmed", key
        assert status[key]["summary"].startswith(
            "ELB101 observed in this run (reported on its own), not a confirmation")
        assert status[key]["evidence"]["codes"] == []
    assert [r.code for r in rows].count("ELB101") == 1


def test_user_failure_is_elb100_naming_file_line_and_exception():
    result = _results(README_EXAMPLE)
    trace = {"failure": {"kind": "exception", "line": 29,
                         "message": "the program fails on its own at bayesian_regression.py:29: NameError: x"},
             "seconds": 0.1}
    rows = apply_results([result], [trace], _settings(), Config().enabled_codes())
    [row] = [r for r in rows if r.code == "ELB100"]
    assert row.line == 29 and row.message.startswith("the program fails on its own at bayesian_regression.py:29")


@pytest.mark.parametrize("kind", ["internal", "unavailable"])
def test_elbolints_own_failure_is_not_run_never_an_error_row(kind):
    result = _results(README_EXAMPLE)
    trace = {"failure": {"kind": kind, "message": "elbolint's runner failed: KeyError: 'x'"}, "seconds": 0.1}
    rows = apply_results([result], [trace], _settings(), Config().enabled_codes())
    assert rows == []
    elb001 = next(d for d in result.diagnostics if d.code == "ELB001")
    assert elb001.dynamic["status"] == "not-run" and "KeyError" in elb001.dynamic["summary"]


def test_each_fit_gets_its_own_result_at_its_own_line():
    """two_fits.py: the baseline (fit 1, line 24) is clean, the raw-scale model (fit 2, line 32) NaNs;
    the static findings of the second fit's surrogate and optimizer are judged by the second fit."""
    result = _results(TWO_FITS)
    first = fit_trace([run_record(clean(200), seed=k) for k in range(4)], line=24, budget=200,
                      anchors={"surrogate": "baseline"})
    second = fit_trace([run_record(nan_at(6), scale=[1.0, 0.5, -0.1], seed=k) for k in range(4)], line=32,
                       budget=200, anchors={"surrogate": "surrogate_posterior", "optimizer": "optimizer"})
    trace = {"source": "fit_surrogate_posterior", "line": 24, "fits": [first, second], "seconds": 3.0}
    rows = apply_results([result], [trace], _settings(), Config().enabled_codes())
    # the scale's crossing confirms the raw scale; the NaN confirms nothing and is its own row, at the fit
    assert [(r.code, r.line) for r in rows] == [("ELB101", 32)]
    status = {d.code: d.dynamic for d in result.diagnostics}
    assert status["ELB001"]["status"] == "confirmed"
    assert status["ELB003"]["status"] == "unconfirmed" and status["ELB009"]["status"] == "unconfirmed"
    assert status["ELB001"]["summary"].startswith("fit 2 of 2 (line 32): ")
    assert "in 4 of 4 seeds" in status["ELB001"]["summary"]
    assert status["ELB001"]["trace"]["fit"] == "fit 2 of 2 (line 32)"


def test_a_finding_of_a_fit_never_reached_is_not_run():
    result = _results(TWO_FITS)
    first = fit_trace([run_record(clean(200), seed=k) for k in range(4)], line=24, budget=200,
                      anchors={"surrogate": "baseline"})
    second = dict(first)
    trace = {"source": "fit_surrogate_posterior", "line": 24, "fits": [first, second], "seconds": 3.0,
             "stopped_after": "KeyboardInterrupt"}
    apply_results([result], [trace], _settings(), Config().enabled_codes())
    elb001 = next(d for d in result.diagnostics if d.code == "ELB001")
    assert elb001.dynamic["status"] == "not-run"
    assert "did not reach this fit_surrogate_posterior call" in elb001.dynamic["summary"]


# ---------------------------------------------------------- runner / fitting
def _context(path):
    from elbolint.dynamic.child.drivers import Context

    return Context(str(path), "", DynamicSettings().to_json())


def _raise(source: str, path):
    namespace = {}
    try:
        exec(compile(source, str(path), "exec"), namespace)
    except BaseException as error:  # noqa: B036
        return error
    raise AssertionError("did not raise")


def test_missing_package_is_not_run_with_the_reason(tmp_path):
    from elbolint.dynamic.child.execute import failed_run

    path = tmp_path / "model.py"
    error = _raise("import elbolint_no_such_package_xyz\n", path)
    trace = failed_run(error, _context(path))
    assert "failure" not in trace
    assert trace["nothing"].startswith("not run: the file imports `elbolint_no_such_package_xyz`, which is "
                                       "not installed in ")
    assert trace["nothing"].endswith("(line 1)")


def test_the_users_own_exception_is_a_failure_at_file_and_line(tmp_path):
    from elbolint.dynamic.child.execute import failed_run

    path = tmp_path / "model.py"
    error = _raise("x = 1\ny = undefined_name + x\n", path)
    trace = failed_run(error, _context(path))
    assert trace["failure"]["line"] == 2
    assert trace["failure"]["message"] == ("the program fails on its own at model.py:2: NameError: name "
                                           "'undefined_name' is not defined")


def test_blame_tells_elbolints_frames_from_the_users(tmp_path):
    from elbolint.dynamic.child.failures import blame

    path = tmp_path / "model.py"
    user = _raise("def f():\n    return 1 / 0\nf()\n", path)
    assert blame(user, str(path)) == "user"
    try:
        coverage(None)  # elbolint's own code raising, no user frame
    except Exception as error:  # noqa: BLE001
        assert blame(error, str(path)) == "harness"


def test_new_settings_are_config_keys_and_validated():
    from elbolint.config import ConfigError

    settings = build_settings({"seeds": 2, "max-steps": 300, "max-fits": 3}, {})
    assert (settings.seeds, settings.max_steps, settings.max_fits) == (2, 300, 3)
    assert DynamicSettings().seeds == 4 and DynamicSettings().max_steps == 1000
    with pytest.raises(ConfigError):
        build_settings({"seeds": 0}, {})


def test_budget_follows_the_users_num_steps_up_to_the_cap():
    from elbolint.dynamic.child.fitting import budget_for

    settings = DynamicSettings().to_json()
    assert budget_for(settings, None) == 200
    assert budget_for(settings, 500) == 500
    assert budget_for(settings, 50) == 50
    assert budget_for(settings, 10 ** 6) == 1000
    assert budget_for(dict(settings, steps=2000), 10 ** 6) == 2000


def test_two_fits_fixture_has_its_static_expectations():
    assert sorted((d.line, d.code) for d in lint(TWO_FITS)) == expected_findings(TWO_FITS)


# ------------------------------------------------------------ end to end (TF)
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One elbolint run over the README's example, the two-fit script, a file with a missing package
    and one whose fit fails on its own."""
    pytest.importorskip("tensorflow_probability")
    folder = tmp_path_factory.mktemp("models")
    (folder / "missing_package.py").write_text(textwrap.dedent("""\
        import tensorflow as tf
        import tensorflow_probability as tfp
        import elbolint_no_such_package_xyz

        tfd = tfp.distributions
        q = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))
        """))
    (folder / "fails_on_its_own.py").write_text(textwrap.dedent("""\
        import tensorflow as tf
        import tensorflow_probability as tfp

        tfd = tfp.distributions
        q = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))


        def target(z):
            return tfd.Normal(0.0, 1.0).log_prob(z) + undefined_data


        losses = tfp.vi.fit_surrogate_posterior(target, q, optimizer=tf.optimizers.Adam(0.1), num_steps=10)
        """))
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(README_EXAMPLE), str(TWO_FITS), str(folder),
         "--dynamic=all", "-j", "2", "--output-format", "json", "--exit-zero", "--no-cache"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    return json.loads(completed.stdout)


def _rows(rows, name):
    return [r for r in rows if r["filename"].endswith("/" + name)]


@pytest.mark.dynamic
def test_readme_example_raw_scale_is_confirmed_over_seeds_and_its_own_num_steps(run):
    mine = _rows(run, "bayesian_regression.py")
    elb001 = [r for r in mine if r["code"] == "ELB001"]
    # the weight's scale (line 22) goes negative; the bias's (line 23) stays positive in every seed
    assert [r["dynamic"]["status"] for r in elb001] == ["confirmed", "not-reproduced"]
    summary = elb001[0]["dynamic"]["summary"]
    assert "of 4 seeds by step" in summary and "500 steps each)" in summary
    assert elb001[0]["dynamic"]["trace"]["budget"] == 500 and elb001[0]["dynamic"]["trace"]["seeds"] == 4
    assert not [r for r in mine if r["code"] == "ELB100"]


@pytest.mark.dynamic
def test_two_fits_each_checked_at_its_own_line(run):
    mine = _rows(run, "two_fits.py")
    status = {r["code"]: r["dynamic"] for r in mine if r["code"] < "ELB100"}
    assert set(status) == {"ELB001", "ELB003", "ELB009"}
    assert status["ELB001"]["status"] == "confirmed"
    assert status["ELB001"]["trace"]["fit"] == "fit 2 of 2 (line 32)"
    assert "`scale` of Normal reached" in status["ELB001"]["summary"]
    assert "loss NaN" not in status["ELB001"]["summary"]  # the NaN is its own row, told once
    assert [r["location"]["row"] for r in mine if r["code"] == "ELB101"] == [32]
    for row in mine:  # nothing of the clean baseline is blamed on the model, and vice versa
        if row["code"] >= "ELB100":
            assert row["location"]["row"] in (24, 30, 31, 32), row
            assert row["code"] != "ELB100"


@pytest.mark.dynamic
def test_missing_package_is_not_run_end_to_end(run):
    mine = _rows(run, "missing_package.py")
    assert [r["code"] for r in mine] == ["ELB001"]
    assert mine[0]["dynamic"]["status"] == "not-run"
    assert "`elbolint_no_such_package_xyz`, which is not installed" in mine[0]["dynamic"]["summary"]


@pytest.mark.dynamic
def test_failure_of_the_program_itself_is_elb100_at_its_line(run):
    mine = _rows(run, "fails_on_its_own.py")
    [row] = [r for r in mine if r["code"] == "ELB100"]
    assert row["location"]["row"] == 9
    assert row["message"].startswith("the program fails on its own at fails_on_its_own.py:9: NameError")


# ------------------------------------------------------------------ the clipping counterfactual (ELB110)
def clipped_runs(finite, finals=None):
    finals = finals or [1.0] * len(finite)
    return {"clipnorm": 1.0, "runs": [{"seed": k, "finite": ok, "final": final if ok else None, "max_grad_norm": 1.0}
                                      for k, (ok, final) in enumerate(zip(finite, finals))]}


def test_elb110_when_clipping_keeps_the_nan_seeds_finite():
    runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    runs[0]["counterfactual"] = clipped_runs([True, True, True, True])
    [elb110] = [f for f in classify_seeds(fit_trace(runs)) if f["code"] == "ELB110"]
    assert elb110["message"] == ("re-run with gradients clipped to norm 1: the loss goes non-finite in 0 of 4 seeds "
                                 "(unclipped: 4 of 4)")
    assert elb110["evidence"]["non_finite_unclipped"] == 4 and elb110["evidence"]["non_finite_clipped"] == 0


def test_no_elb110_when_the_nan_persists_with_clipping():
    """A raw scale or a huge learning rate NaNs with or without clipping: not ELB003's evidence."""
    runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    runs[0]["counterfactual"] = clipped_runs([False, False, True, False])
    assert "ELB110" not in [f["code"] for f in classify_seeds(fit_trace(runs))]


def test_elb110_for_finite_runs_only_when_clipping_ends_clearly_better():
    better = [run_record([5000.0] * 100, norm=1e5, seed=k) for k in range(4)]
    better[0]["counterfactual"] = clipped_runs([True] * 4, [12.0] * 4)
    assert "ELB110" in [f["code"] for f in classify_seeds(fit_trace(better))]
    same = [run_record([12.5] * 100, norm=1e5, seed=k) for k in range(4)]
    same[0]["counterfactual"] = clipped_runs([True] * 4, [12.0] * 4)  # a huge first gradient, same end
    assert "ELB110" not in [f["code"] for f in classify_seeds(fit_trace(same))]


def test_a_counterfactual_over_two_seeds_confirms_nothing_and_clears_nothing():
    """Two re-run seeds that stayed finite are a 1-in-4 chance for a fix that prevents the NaN in half the
    seeds only (measured natively: a 10x smaller rate still NaNs in 5 of 10 seeds): no ELB110, and the huge
    gradient norm is not dropped as harmless either."""
    runs = [run_record(nan_at(3), norm=5e4, seed=k) for k in range(2)]
    runs[0]["counterfactual"] = clipped_runs([True, True])
    codes = [f["code"] for f in classify_seeds(fit_trace(runs))]
    assert "ELB110" not in codes and "ELB107" in codes
    finite = [run_record([12.5] * 100, norm=1e5)]
    finite[0]["counterfactual"] = clipped_runs([True], [12.4])  # no better, but one pair of seeds says nothing
    assert "ELB107" in [f["code"] for f in classify_seeds(fit_trace(finite))]
    runs[0]["counterfactual"] = clipped_runs([True])  # a program that fixes its own draws: one run is all
    fixed = dict(fit_trace(runs[:1]), replays={"ran": 2, "seconds": 1.0, "skipped": [], "fixed_draws": True})
    assert "ELB110" in [f["code"] for f in classify_seeds(fixed)]


def test_a_counterfactual_over_more_seeds_than_the_runs_compares_shares():
    """Two runs that both went NaN, re-run clipped over three seeds: none non-finite confirms, one does not."""
    runs = [run_record(nan_at(3), seed=k) for k in range(2)]
    runs[0]["counterfactual"] = clipped_runs([True, True, True])
    [elb110] = [f for f in classify_seeds(fit_trace(runs)) if f["code"] == "ELB110"]
    assert elb110["message"] == ("re-run with gradients clipped to norm 1: the loss goes non-finite in 0 of 3 seeds "
                                 "(unclipped: 2 of 2)")
    assert elb110["evidence"]["of"] == 3 and elb110["evidence"]["of_unclipped"] == 2
    runs[0]["counterfactual"] = clipped_runs([True, False, True])
    assert "ELB110" not in [f["code"] for f in classify_seeds(fit_trace(runs))]


def test_a_learning_rate_finding_with_a_two_seed_rerun_says_too_few_seeds():
    from elbolint.dynamic.parent.report import _counterfactual_note

    runs = [run_record(nan_at(3), seed=k) for k in range(2)]
    runs[0]["smaller_rate"] = {"learning_rate": 0.5, "smaller": 0.05, "factor": 10.0,
                               "runs": clipped_runs([True, True])["runs"]}
    trace = fit_trace(runs)
    assert "ELB112" not in [f["code"] for f in classify_seeds(trace)]
    assert _counterfactual_note(("ELB112",), trace) == (
        "; the smaller-rate re-run covered 2 seeds only (0 non-finite): too few to show the cause "
        "(at least 3 are needed)")
    runs[0]["smaller_rate"]["runs"] = clipped_runs([True, False, False])["runs"]
    assert _counterfactual_note(("ELB112",), trace).startswith(
        "; re-run at learning rate 0.05 (10x smaller than 0.5), the loss still goes non-finite in 2 of 3 seeds")


def test_missing_clipping_is_confirmed_only_by_the_counterfactual_where_one_ran():
    result = _results(README_EXAMPLE)
    nan_runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    nan_runs[0]["counterfactual"] = clipped_runs([False] * 4)  # clipping does not help
    apply_results([result], [fit_trace(nan_runs)], _settings(), Config().enabled_codes())
    elb003 = next(d for d in result.diagnostics if d.code == "ELB003")
    assert elb003.dynamic["status"] == "not-reproduced"
    assert elb003.dynamic["summary"].startswith("no ELB110 observed in 4 seeds")
    elb001 = next(d for d in result.diagnostics if d.code == "ELB001")
    assert elb001.dynamic["status"] == "unconfirmed"  # a NaN alone does not say which scale caused it

    result = _results(README_EXAMPLE)  # a run that is not re-run (a Keras fit, a loop): an observation only
    loop_like = dict(fit_trace([run_record(nan_at(3), norm=5e4)]), source="loop")
    loop_like.pop("seeds", None)
    apply_results([result], [loop_like], _settings(), Config().enabled_codes())
    elb003 = next(d for d in result.diagnostics if d.code == "ELB003")
    assert elb003.dynamic["status"] == "unconfirmed" and elb003.dynamic["evidence"]["codes"] == []
    summary = elb003.dynamic["summary"]
    assert "ELB101" in summary and "re-run of the same seeds with clipping" in summary


def test_a_program_that_ran_to_its_end_and_trained_nothing_is_not_reproduced_not_not_run():
    result = _results(README_EXAMPLE)
    apply_results([result], [{"nothing": "not run: no fit_surrogate_posterior call reached", "ran_to_end": True}],
                  _settings(), Config().enabled_codes())
    elb001 = next(d for d in result.diagnostics if d.code == "ELB001")
    assert elb001.dynamic["status"] == "not-reproduced"
    assert elb001.dynamic["summary"].startswith("the program ran to its end and trained nothing")


def test_a_huge_gradient_that_clipping_does_not_improve_is_no_row():
    same = [run_record([12.5] * 100, norm=1e5, seed=k) for k in range(4)]
    assert "ELB107" in [f["code"] for f in classify_seeds(fit_trace(same))]
    same[0]["counterfactual"] = clipped_runs([True] * 4, [12.4] * 4)
    assert [f["code"] for f in classify_seeds(fit_trace(same))] == []


def test_a_parameter_that_went_negative_confirms_its_own_line_not_its_neighbours():
    """README example: the weight's scale went negative; the bias's raw scale (name="bias") is not
    confirmed by the weight's evidence."""
    result = _results(README_EXAMPLE)
    record = run_record(clean(), seed=0)
    record["positive"] = {"`scale` of Normal 'weight'": [1.0] * 10 + [-0.5] * 490,
                          "`scale` of Normal 'bias'": [1.0] * 500}
    apply_results([result], [fit_trace([record])], _settings(), Config().enabled_codes())
    by_line = {d.line: d.dynamic for d in result.diagnostics if d.code == "ELB001"}
    assert by_line[22]["status"] == "confirmed" and "'weight'" in by_line[22]["summary"]
    assert by_line[23]["status"] == "not-reproduced"
    assert "belongs to another parameter (`scale` of Normal 'weight')" in by_line[23]["summary"]


def test_every_parameter_that_went_nonpositive_is_its_own_observation():
    record = run_record(clean(), seed=0)
    record["positive"] = {"`scale` of Normal 'qw'": [1.0, -1.5] + [-1.5] * 498,
                          "`scale` of Normal 'qz'": [1.0, 1.0, -0.2] + [-0.2] * 497}
    elb104 = [f for f in classify_seeds(fit_trace([record])) if f["code"] == "ELB104"]
    assert [f["evidence"]["parameter"] for f in elb104] == ["`scale` of Normal 'qw'", "`scale` of Normal 'qz'"]


def test_a_median_carried_by_bad_seeds_confirms_nothing_unless_most_seeds_improve():
    """A measured case: an intermittent fit, bad in 2 of 4 seeds, whose clipped re-run has a far
    lower median while clipping makes the good seeds worse: not a confirmation of missing clipping."""
    runs = [run_record([15000.0] * 100, norm=5e4, seed=0), run_record([15000.0] * 100, norm=5e4, seed=1),
            run_record([900.0] * 100, norm=5e4, seed=2), run_record([950.0] * 100, norm=5e4, seed=3)]
    runs[0]["counterfactual"] = clipped_runs([True] * 4, [1000.0, 1100.0, 1600.0, 1700.0])
    assert "ELB110" not in [f["code"] for f in classify_seeds(fit_trace(runs))]
    runs[0]["counterfactual"] = clipped_runs([True] * 4, [1000.0, 1100.0, 800.0, 1700.0])  # 3 of 4 better
    assert "ELB110" in [f["code"] for f in classify_seeds(fit_trace(runs))]

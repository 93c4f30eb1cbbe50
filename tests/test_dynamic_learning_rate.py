"""ELB009 (high learning rate) is confirmed only by its counterfactual: the same seeds
re-run with the same optimizer at a 10x smaller learning rate end finite, or clearly lower (ELB112,
ELB110's criterion). A NaN after a few steps is not a confirmation: on a raw scale that crosses zero
at either rate, the smaller rate does not help and the verdict says so.

Native ground truth (test_native_ground_truth, run as the programs run: TFP's own
`fit_surrogate_posterior`, 6 seeds per rate): high_lr_poisson_overflow.py is NaN in every seed at
0.5 and finite in every seed at 0.05; high_lr_raw_scale_nan.py is NaN in every seed at both."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.dynamic

OVERFLOW = FIXTURES / "dynamic" / "high_lr_poisson_overflow.py"
RAW_SCALE = FIXTURES / "dynamic" / "high_lr_raw_scale_nan.py"

#: Runs a fixture's own target and surrogate natively (the fixture's own fit replaced by nothing),
#: once per seed from the same initial values, with its optimizer's class at each rate; prints, per
#: rate, how many seeds ended with a non-finite loss.
NATIVE = r"""
import json, runpy, sys
import numpy as np, tensorflow as tf, tensorflow_probability as tfp
fit = tfp.vi.fit_surrogate_posterior
tfp.vi.fit_surrogate_posterior = lambda *a, **k: tf.zeros([1])
module = runpy.run_path(sys.argv[1], run_name="__main__")
target, surrogate, optimizer = module["target_log_prob_fn"], module["surrogate_posterior"], module["optimizer"]
initial = [v.numpy() for v in surrogate.trainable_variables]
result = {}
for rate in (0.5, 0.05):
    bad = 0
    for seed in range(6):
        for v, value in zip(surrogate.trainable_variables, initial):
            v.assign(value)
        tf.random.set_seed(seed)
        losses = fit(target, surrogate, type(optimizer)(learning_rate=rate), num_steps=200, seed=seed)
        bad += int(not np.isfinite(losses.numpy()).all())
    result[str(rate)] = bad
print(json.dumps(result))
"""


def _native(path) -> dict:
    completed = subprocess.run([sys.executable, "-c", NATIVE, str(path)], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_native_ground_truth():
    assert _native(OVERFLOW) == {"0.5": 6, "0.05": 0}  # the rate is the cause
    assert _native(RAW_SCALE) == {"0.5": 6, "0.05": 6}  # the raw scale is: the smaller rate does not help


def test_high_rate_is_confirmed_only_when_a_ten_times_smaller_rate_fixes_it():
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--output-format",
                                "json", str(OVERFLOW), str(RAW_SCALE)], capture_output=True, text=True, timeout=600)
    rows = json.loads(completed.stdout)
    by_file: dict = {}
    for row in rows:
        by_file.setdefault(row["filename"].rsplit("/", 1)[-1], {})[row["code"]] = row
    overflow = by_file["high_lr_poisson_overflow.py"]
    elb009 = overflow["ELB009"]["dynamic"]
    assert elb009["status"] == "confirmed" and elb009["evidence"]["codes"] == ["ELB112"]
    assert ("re-run at learning rate 0.05 (10x smaller than 0.5): the loss goes non-finite in 0 of 4 seeds "
            "(at 0.5: 4 of 4)") in elb009["summary"]
    evidence = elb009["evidence"]["findings"][0]["evidence"]
    assert evidence["learning_rate"] == 0.5 and evidence["smaller_learning_rate"] == pytest.approx(0.05)
    assert "ELB112" not in overflow  # folded into the finding it confirms, not a row of its own
    # Adam's step does not follow the gradient's size: clipping does not prevent this NaN
    assert overflow["ELB003"]["dynamic"]["status"] == "not-reproduced"

    raw = by_file["high_lr_raw_scale_nan.py"]
    assert raw["ELB001"]["dynamic"]["status"] == "confirmed"  # the raw scale's own crossing
    elb009 = raw["ELB009"]["dynamic"]
    assert elb009["status"] == "not-reproduced" and elb009["evidence"]["codes"] == []
    assert elb009["summary"].startswith("no ELB112 observed")
    assert ("re-run at learning rate 0.05 (10x smaller than 0.5), the loss still goes non-finite in 4 of 4 "
            "seeds: the smaller rate did not help") in elb009["summary"]
    assert "ELB112" not in raw


# ------------------------------------------------------------------ the verdict logic, without TensorFlow
def smaller_rate_runs(finite, finals=None):
    finals = finals or [1.0] * len(finite)
    return {"learning_rate": 0.5, "smaller": 0.05, "factor": 10.0,
            "runs": [{"seed": k, "finite": ok, "final": final if ok else None, "max_grad_norm": 1.0}
                     for k, (ok, final) in enumerate(zip(finite, finals))]}


def _elb111(runs):
    from test_dynamic_seeds import fit_trace

    from elbolint.dynamic.verdicts.seeds import classify_seeds

    return [f for f in classify_seeds(fit_trace(runs)) if f["code"] == "ELB112"]


def test_elb111_mirrors_elb110s_criterion():
    from test_dynamic_seeds import nan_at, run_record

    runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    runs[0]["smaller_rate"] = smaller_rate_runs([True] * 4)
    [elb111] = _elb111(runs)
    assert elb111["message"] == ("re-run at learning rate 0.05 (10x smaller than 0.5): the loss goes non-finite in "
                                 "0 of 4 seeds (at 0.5: 4 of 4)")
    runs[0]["smaller_rate"] = smaller_rate_runs([False, True, True, True])  # 1 of 4: a quarter, still
    assert _elb111(runs)
    runs[0]["smaller_rate"] = smaller_rate_runs([False, False, True, True])  # half the seeds still NaN: no
    assert not _elb111(runs)
    finite = [run_record([5000.0] * 100, seed=k) for k in range(4)]
    finite[0]["smaller_rate"] = smaller_rate_runs([True] * 4, [12.0] * 4)  # all finite, clearly lower
    assert "the final loss is 12 instead of 5000" in _elb111(finite)[0]["message"]
    same = [run_record([12.5] * 100, seed=k) for k in range(4)]
    same[0]["smaller_rate"] = smaller_rate_runs([True] * 4, [12.0] * 4)  # all finite, no better
    assert not _elb111(same)


def test_high_rate_without_a_rerun_is_unconfirmed_and_a_useless_rerun_says_so():
    from test_dynamic_seeds import _results, _settings, fit_trace, nan_at, run_record

    from elbolint.config import Config
    from elbolint.dynamic.parent.report import apply_results

    result = _results(RAW_SCALE)
    loop_like = dict(fit_trace([run_record(nan_at(3), norm=5e4)]), source="loop")
    loop_like.pop("seeds", None)  # one run, as a loop's trace without replays
    apply_results([result], [loop_like], _settings(), Config().enabled_codes())
    elb009 = next(d for d in result.diagnostics if d.code == "ELB009")
    assert elb009.dynamic["status"] == "unconfirmed" and elb009.dynamic["evidence"]["codes"] == []
    assert "10x smaller learning rate" in elb009.dynamic["summary"]

    result = _results(RAW_SCALE)
    runs = [run_record(nan_at(3), seed=k) for k in range(4)]
    runs[0]["smaller_rate"] = smaller_rate_runs([False] * 4)
    apply_results([result], [fit_trace(runs)], _settings(), Config().enabled_codes())
    elb009 = next(d for d in result.diagnostics if d.code == "ELB009")
    assert elb009.dynamic["status"] == "not-reproduced"
    assert "the smaller rate did not help" in elb009.dynamic["summary"]


def test_policy_counterfactuals_are_declared_counterfactual_codes():
    """ELB009's rule (rules/, not dynamic mode's to edit) does not list ELB112 in its confirmed_by: the
    policy declares it as its counterfactual, and only a declared counterfactual code may be one."""
    from elbolint.dynamic.verdicts.confirmation import POLICIES, policy
    from elbolint.dynamic.verdicts.pathologies import COUNTERFACTUAL, COUNTERFACTUAL_KEYS, PATHOLOGIES
    from elbolint.registry import all_rules

    declared = {c.code for c in PATHOLOGIES}
    assert COUNTERFACTUAL <= declared and set(COUNTERFACTUAL_KEYS) == set(COUNTERFACTUAL)
    for code, found in POLICIES.items():
        assert set(found.counterfactual) <= COUNTERFACTUAL, code
    rules = {r.code: r for r in all_rules()}
    assert policy("ELB009", rules["ELB009"].confirmed_by).codes == ("ELB112",)
    assert policy("ELB003", rules["ELB003"].confirmed_by).codes == ("ELB110",)

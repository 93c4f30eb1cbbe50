"""End to end (TensorFlow runs): a hand-written loop's and a Keras fit's findings are confirmed by the
program replayed with the finding's fix (replays.py, variants.py), and a NaN that the fix does not
prevent confirms nothing: hand-written loops and Keras fits get the counterfactual re-run too, with
several seeds for every kind of run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.dynamic

DYNAMIC = FIXTURES / "dynamic"


@pytest.fixture(scope="module")
def verdicts():
    files = [DYNAMIC / name for name in ("loop_unclipped_sgd_explodes.py", "loop_high_learning_rate.py",
                                         "keras_high_learning_rate.py", "custom_loop_raw_scale.py",
                                         "loop_two_optimizers.py")]
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--dynamic-steps", "80",
                                "--output-format", "json", *map(str, files)],
                               capture_output=True, text=True, timeout=900)
    rows = json.loads(completed.stdout)
    found: dict = {}
    for row in rows:
        found.setdefault(row["filename"].rsplit("/", 1)[-1], {}).setdefault(row["code"], row)
    return found


def test_a_loops_missing_clipping_is_confirmed_by_the_program_replayed_clipped(verdicts):
    elb003 = verdicts["loop_unclipped_sgd_explodes.py"]["ELB003"]["dynamic"]
    assert elb003["status"] == "confirmed" and elb003["evidence"]["codes"] == ["ELB110"]
    assert "re-run with gradients clipped to norm 1: the loss goes non-finite in 0 of" in elb003["summary"]
    assert "(run: the loop at line 29, called at line 34)" in elb003["summary"]
    assert elb003["trace"]["seeds"] >= 2  # the program's own loop, run with several seeds


def test_a_loops_learning_rate_is_confirmed_by_the_program_replayed_at_a_smaller_rate(verdicts):
    elb009 = verdicts["loop_high_learning_rate.py"]["ELB009"]["dynamic"]
    assert elb009["status"] == "confirmed" and elb009["evidence"]["codes"] == ["ELB112"]
    assert elb009["summary"].startswith("re-run at learning rate 0.1 (10x smaller than 1): the final loss is")


def test_a_keras_fits_learning_rate_is_confirmed_by_the_program_replayed_at_a_smaller_rate(verdicts):
    elb009 = verdicts["keras_high_learning_rate.py"]["ELB009"]["dynamic"]
    assert elb009["status"] == "confirmed" and elb009["evidence"]["codes"] == ["ELB112"]
    assert elb009["summary"].startswith("re-run at learning rate 0.2 (10x smaller than 2): the final loss is")
    assert "(run: the Keras fit of `model` at line 26)" in elb009["summary"]


def test_a_nan_from_a_raw_scale_is_not_blamed_on_clipping_or_the_rate_when_their_replays_do_not_prevent_it(verdicts):
    found = verdicts["custom_loop_raw_scale.py"]
    assert found["ELB001"]["dynamic"]["status"] == "confirmed"  # the scale's own crossing
    for code, text in (("ELB003", "re-run with gradients clipped to norm 1, the loss still goes non-finite"),
                       ("ELB009", "the smaller rate did not help, the instability comes from elsewhere")):
        verdict = found[code]["dynamic"]
        assert verdict["status"] == "not-reproduced", code
        assert text in verdict["summary"], code
    # the loop passes stateless seeds (seed=[step, 0]): every replay repeats it, so it is one seed
    assert "one run: the program fixes its own random draws" in found["ELB003"]["dynamic"]["summary"]


def test_a_loop_with_one_optimizer_per_part_watches_both_parts_and_takes_the_highest_rate(verdicts):
    """The bias's raw scale is stepped only by the second optimizer of the loop: its own crossing confirms
    ELB001; the smaller-rate replay of the 0.5 rate still NaNs, so ELB009 is not the cause."""
    found = verdicts["loop_two_optimizers.py"]
    elb001 = found["ELB001"]["dynamic"]
    assert elb001["status"] == "confirmed"
    assert elb001["summary"].startswith("`scale` of Normal (`b_scale`) reached -")
    elb009 = found["ELB009"]["dynamic"]
    assert elb009["status"] == "not-reproduced"
    assert "re-run at learning rate 0.05 (10x smaller than 0.5), the loss still goes non-finite" in elb009["summary"]


def test_a_slow_loop_gets_fewer_steps_not_a_timeout():
    """A slow loop or Keras fit is re-run for fewer steps rather than timing out (no ELB100)."""
    path = DYNAMIC / "slow_loop_raw_scale.py"
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--dynamic-timeout", "10",
                                "--output-format", "json", str(path)], capture_output=True, text=True, timeout=300)
    rows = {row["code"]: row for row in json.loads(completed.stdout)}
    assert "ELB100" not in rows  # no timeout
    verdict = rows["ELB001"]["dynamic"]
    assert verdict["status"] == "not-reproduced"
    assert "; stopped by the time budget after " in verdict["summary"]
    assert 2 <= verdict["trace"]["steps"] < 200


def test_a_slow_fit_gets_fewer_steps_not_a_timeout():
    """A `fit_surrogate_posterior` fit of 1000 slow steps stops after the chunk that crosses half the
    per-file time, keeps what it recorded and says so (fitting.fit_trace's cut)."""
    path = DYNAMIC / "slow_fit_raw_scale.py"
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--dynamic-timeout", "12",
                                "--output-format", "json", str(path)], capture_output=True, text=True, timeout=300)
    rows = {row["code"]: row for row in json.loads(completed.stdout)}
    assert set(rows) == {"ELB001"}  # no ELB100 timeout
    verdict = rows["ELB001"]["dynamic"]
    assert verdict["status"] == "not-reproduced"
    assert "steps (of 1000, the fit's own num_steps: stopped by the time budget after " in verdict["summary"]
    assert verdict["trace"]["steps"] % 100 == 0 and 100 <= verdict["trace"]["steps"] < 1000

"""No verdict from another run, and every verdict names its run.

Two scripts whose first training run is not the one the findings are about (ground truth measured
natively, 4-5 seeds each, see the fixtures' docstrings):

- keras_baseline_then_bnn.py: a deterministic Keras baseline (`baseline.fit`, line 23) is trained
  before the DenseFlipout BNN (`bnn.fit`, line 32). Natively the BNN's unscaled KL is 12-47x its batch
  MSE after 6 epochs (ELB010 present) and its unclipped Adam stays finite in 4 of 4 seeds, clipped or
  not, ending no better clipped (ELB003 absent).
- map_then_vi.py: a MAP `tfp.math.minimize` loop (line 25) before the VI fit (line 32) with an
  unclipped SGD. Natively the VI fit is finite in 5 of 5 seeds, unclipped (final ~480) better than
  clipped (~800): ELB003 absent.

The first run is nobody's: no finding flows into it (the parent sends the flagged training calls'
lines, `flagged_spans`), so the child records it for a few steps only (loop.py, BRIEF: the Keras
baseline stops after its 10th batch, the MAP loop goes on unrecorded) and the script goes on to the
flagged run, which gets the whole budget. So at the default budget (200 steps) each finding is judged
by its own run, which its text names; with a larger budget, the same.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from elbolint.dynamic.parent.attribution import Attribution, run_name

DYNAMIC = FIXTURES / "dynamic"
BASELINE = "keras_baseline_then_bnn.py"
MAP = "map_then_vi.py"


def _run(*extra):
    pytest.importorskip("tensorflow_probability")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(DYNAMIC / BASELINE), str(DYNAMIC / MAP), "--dynamic",
         "-j", "2", "--output-format", "json", "--exit-zero", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(completed.stdout)
    found: dict[str, list] = {}
    for row in rows:
        found.setdefault(row["filename"].rsplit("/", 1)[-1], []).append(row)
    return found


@pytest.fixture(scope="module")
def default_budget():
    return _run()


@pytest.fixture(scope="module")
def large_budget():
    return _run("--dynamic-steps", "1000")


def _judged_by_their_own_runs(found):
    bnn = {(r["code"], r["location"]["row"]): r["dynamic"] for r in found[BASELINE] if r["code"] < "ELB100"}
    assert sorted(bnn) == [("ELB003", 30), ("ELB010", 27), ("ELB010", 28)]
    for key in (("ELB010", 27), ("ELB010", 28)):
        assert bnn[key]["status"] == "confirmed", bnn[key]  # natively the KL outweighs the MSE 12-47x
        assert bnn[key]["trace"]["run"] == "the Keras fit of `bnn` at line 32"
        assert "(run: the Keras fit of `bnn` at line 32)" in bnn[key]["summary"]
        assert "baseline" not in bnn[key]["summary"]
    elb003 = bnn[("ELB003", 30)]
    assert elb003["status"] == "not-reproduced", elb003  # natively finite in every seed, clipped or not
    assert "(run: the Keras fit of `bnn` at line 32)" in elb003["summary"] and "baseline" not in elb003["summary"]
    (vi,) = [r["dynamic"] for r in found[MAP] if r["code"] < "ELB100"]
    assert vi["status"] == "not-reproduced", vi  # natively finite in 5 of 5 seeds, clipped or not
    assert vi["trace"]["run"] == "the fit at line 32" and "4 seeds x 300 steps" in vi["summary"]
    assert "(run: the fit at line 32)" in vi["summary"] and "minimize" not in vi["summary"]
    for other in found[MAP] + found[BASELINE]:  # no row of the brief runs' own
        if other["code"] >= "ELB100":
            assert "minimize" not in other["message"] and "baseline" not in other["message"], other


@pytest.mark.dynamic
def test_the_unflagged_first_run_is_cut_short_so_the_flagged_run_is_reached(default_budget):
    _judged_by_their_own_runs(default_budget)


@pytest.mark.dynamic
def test_each_finding_is_judged_by_its_own_run_when_it_is_reached(large_budget):
    _judged_by_their_own_runs(large_budget)


# ------------------------------------------------------------------ the matching itself, no TensorFlow
SCRIPT = '''\
import tensorflow as tf
baseline = make()
baseline.compile(optimizer="adam", loss="mse")
baseline.fit(x, y)
bnn = make_bnn()
opt = tf.keras.optimizers.Adam(0.1)
bnn.compile(optimizer=opt, loss="mse")
bnn.fit(x, y)
surrogate = tfd.Normal(tf.Variable(0.0), tf.Variable(1.0))
def train(q, optimizer):
    for _ in range(10):
        with tf.GradientTape() as tape:
            loss = tfp.vi.monte_carlo_variational_loss(target, q)
        optimizer.apply_gradients(zip(tape.gradient(loss, q.trainable_variables), q.trainable_variables))
train(surrogate, tf.optimizers.SGD(0.1))
w = tfp.math.minimize(loss_fn, num_steps=10,
                      optimizer=tf.optimizers.Adam(0.1))
'''


def test_a_run_belongs_to_a_finding_by_the_call_its_object_flows_into():
    attribution = Attribution(SCRIPT)
    baseline = {"kind": "keras", "line": 4, "stack": [4], "model_names": ["baseline"], "compile_line": 3}
    bnn = {"kind": "keras", "line": 8, "stack": [8], "model_names": ["bnn"], "optimizer_names": ["opt"],
           "compile_line": 7}
    loop = {"kind": "loop", "line": 14, "stack": [14, 15]}
    minimize = {"kind": "minimize", "line": 16, "stack": [16]}
    optimizer = ("ELB003", 6, "tf.keras.optimizers.Adam drives variational inference without gradient clipping")
    assert attribution.belongs(*optimizer, bnn) is True
    assert attribution.belongs(*optimizer, baseline) is False
    assert attribution.belongs(*optimizer, minimize) is False
    kl = ("ELB010", 5, "`DenseFlipout(1)` in `bnn` keeps the default kernel_divergence_fn")
    assert attribution.belongs(*kl, bnn) is True and attribution.belongs(*kl, baseline) is False
    assert attribution.own_site(*kl) == "the Keras fit of `bnn` at line 8"
    scale = ("ELB001", 9, "`scale` of tfd.Normal is a raw tf.Variable")
    assert attribution.belongs(*scale, loop) is True  # train(surrogate, ...) is on the loop's stack
    assert attribution.belongs(*scale, minimize) is False and attribution.belongs(*scale, bnn) is False
    inline = ("ELB003", 17, "tf.optimizers.Adam drives variational inference without gradient clipping")
    assert attribution.belongs(*inline, minimize) is True and attribution.belongs(*inline, loop) is False
    # a probe or a pairing carries no site: it may judge every finding, as before
    assert attribution.belongs(*optimizer, {"kind": "probe", "derived": True}) is None


def test_every_kind_of_run_is_named():
    assert run_name({"kind": "fit", "line": 42}) == "the fit at line 42"
    assert run_name({"kind": "keras", "line": 3, "model_names": ["bnn"]},
                    lambda line: f"cell 12:{line}") == "the Keras fit of `bnn` at cell 12:3"
    assert run_name({"kind": "loop", "line": 30}) == "the loop at line 30"
    assert run_name({"kind": "minimize", "line": 25}) == "the tfp.math.minimize loop at line 25"


def test_the_parent_sends_the_flagged_training_calls_lines():
    from elbolint.dynamic import flagged_spans
    from elbolint.linter import lint_file
    from elbolint.registry import all_rules

    rules = all_rules()
    codes = {rule.code for rule in rules}
    spans = {name: flagged_spans(lint_file(DYNAMIC / name, rules, {}, codes)) for name in (BASELINE, MAP)}
    # bnn.compile (31), bnn.fit (32), bnn.evaluate (33); never the baseline's lines 22-23
    assert spans[BASELINE] == [[31, 31], [32, 32], [33, 33]]
    assert spans[MAP] == [[32, 32]]  # the VI fit, never the MAP loop at line 25


def test_a_brief_run_that_ended_the_script_says_so():
    from elbolint.dynamic.parent.report import _spent

    part = {"source": "loop", "budget": 200, "fit": {"loss": [1.0] * 10},
            "site": {"kind": "keras", "line": 23, "model_names": ["baseline"], "brief": 10}}
    assert _spent(part, "the Keras fit of `baseline` at line 23") == (
        "the run recorded was the Keras fit of `baseline` at line 23, cut short after 10 steps (no finding "
        "points at it); the script ended before any other run")


def test_a_fit_no_finding_points_at_is_brief_and_its_trajectory_is_not_judged():
    """two_fits.py: the clean baseline fit (line 24) has no finding, so it runs 10 steps with one seed
    and no references; the flagged fit (line 32) gets the budget and judges its own findings."""
    pytest.importorskip("tensorflow_probability")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(DYNAMIC / "two_fits.py"), "--dynamic", "--output-format",
         "json", "--exit-zero", "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    rows = json.loads(completed.stdout)
    assert not [r for r in rows if r["location"]["row"] == 24]  # no dynamic row from 10 brief steps
    status = {r["code"]: r["dynamic"] for r in rows if r["code"] in ("ELB001", "ELB009")}
    assert status["ELB001"]["status"] == "confirmed" and status["ELB001"]["trace"]["fit"] == "fit 2 of 2 (line 32)"
    assert status["ELB009"]["status"] == "confirmed" and status["ELB009"]["evidence"]["codes"] == ["ELB112"]


# A notebook that binds `optimizer` three times (measured on a public "trainable distributions"
# notebook: the first loop's SGD `optimizer` was handed the verdict of a later cell's Adam `optimizer`),
# and a surrogate built and returned by a function of the file.
REBOUND = """\
optimizer = tf.optimizers.SGD(0.05)
for step in range(100):
    optimizer.apply_gradients(zip(grads_of(normal), normal.trainable_variables))

def make_q(size):
    raw = tf.Variable(tf.zeros(size))
    q = tfd.MultivariateNormalDiag(loc=tf.Variable(tf.zeros(size)),
                                   scale_diag=tf.nn.softplus(raw))
    return q

mv = make_q(3)
optimizer = tf.optimizers.Adam(0.01)
for step in range(100):
    optimizer.apply_gradients(zip(grads_of(mv), mv.trainable_variables))
"""


def test_a_name_bound_again_holds_another_object_so_another_run_is_not_the_findings():
    from elbolint.dynamic.child.sites import unflagged

    attribution = Attribution(REBOUND)
    first = {"kind": "loop", "line": 3, "stack": [3], "optimizer_names": ["optimizer"]}
    second = {"kind": "loop", "line": 14, "stack": [14], "optimizer_names": ["optimizer"]}
    adam = ("ELB003", 12, "tf.optimizers.Adam drives variational inference without gradient clipping")
    assert attribution.belongs(*adam, second) is True
    assert attribution.belongs(*adam, first) is False  # same name, bound to the SGD while that loop ran
    windows = attribution.name_windows(*adam)
    assert windows == [("optimizer", 12, None)]
    sgd = ("ELB003", 1, "tf.optimizers.SGD drives variational inference without gradient clipping")
    assert attribution.name_windows(*sgd) == [("optimizer", 1, 12)]
    # the child: the first loop is nobody's, so it is cut short; the second is the flagged one
    spans = [[13, 15]]
    assert unflagged(first, spans, [list(w) for w in windows]) is True
    assert unflagged(second, spans, [list(w) for w in windows]) is False


def test_a_surrogate_returned_by_a_builder_is_followed_to_the_run_it_is_passed_to():
    attribution = Attribution(REBOUND)
    first = {"kind": "loop", "line": 3, "stack": [3], "optimizer_names": ["optimizer"]}
    second = {"kind": "loop", "line": 14, "stack": [14], "optimizer_names": ["optimizer"]}
    eager = ("ELB004", 8, "`scale_diag` of tfd.MultivariateNormalDiag is tf.nn.softplus(raw) computed once")
    assert attribution.names(*eager) == {"mv"}  # not the builder's local `q`
    assert attribution.belongs(*eager, second) is True
    assert attribution.belongs(*eager, first) is False

"""ELB111 restrictive-family: a full-rank Gaussian started from the user's fitted mean-field
solution gains ELBO clearly beyond noise. The decision (verdicts/restrictive.decide, classify.py) is pure
Python and tested here without TensorFlow; the end-to-end tests (marked `dynamic`) run
`elbolint --dynamic=all` on a mean-field regression whose inputs sit far from zero (a correlated
posterior), completed into a runnable program, and on its near misses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES
from elbolint.dynamic.verdicts.classify import THRESHOLDS, classify
from elbolint.dynamic.verdicts.restrictive import GAP_MIN, GAP_SE, GAP_STRONG, SPREAD_MIN, decide, gains
from elbolint.dynamic.verdicts.seeds import classify_seeds

FAR = FIXTURES / "dynamic" / "restrictive_family_far_inputs.py"
CENTRED = FIXTURES / "dynamic" / "restrictive_family_centred_inputs.py"
FULL_RANK = FIXTURES / "dynamic" / "restrictive_family_full_rank.py"
LOG_NORMAL = FIXTURES / "dynamic" / "restrictive_family_log_normal.py"
ASVI = FIXTURES / "dynamic" / "restrictive_family_asvi.py"


def _part(gains_=(2.8, 2.9, 2.85), se=0.03, user=16.07, control=None, spread=8.3, corr=-0.997, **extra):
    """A trace's `richer` part as richer_reference writes it: per seed the reference's ELBO and its
    mean-field control's (the user's family fitted as long from the same start)."""
    base = user if control is None else control
    runs = [{"seed": i, "steps": 1000, "elbo": base + g, "se": se, "mean_field_elbo": base, "mean_field_se": se}
            for i, g in enumerate(gains_)]
    part = {"latent": 2, "names": ["weight", "bias"], "user_elbo": user, "user_se": se, "start_elbo": user - 0.01,
            "reference": runs, "steps": 1000, "step_cap": 1000, "seeds": 3, "seconds": 4.2,
            "correlations": [["weight", "bias", corr]], "spread_ratio": {"weight": min(1.9, spread), "bias": spread}}
    part.update(extra)
    return part


def _trace(part, losses=None):
    return {"source": "fit_surrogate_posterior", "line": 41, "budget": 1000,
            "fit": {"loss": losses or [100.0 - i for i in range(50)], "grad_norm": [1.0] * 50},
            "richer": part}


# -- the decision -----------------------------------------------------------------------------------

def test_thresholds_are_configurable_and_documented_defaults():
    assert THRESHOLDS["restrictive_gap_min"] == GAP_MIN == 1.0
    assert THRESHOLDS["restrictive_gap_se"] == GAP_SE == 6.0
    assert THRESHOLDS["restrictive_spread_min"] == SPREAD_MIN == 1.5
    assert THRESHOLDS["restrictive_gap_strong"] == GAP_STRONG == 2.5


def test_a_clear_gain_is_reported_with_what_the_richer_family_revealed():
    finding = decide(_part())
    assert finding is not None and finding["code"] == "ELB111" and finding["anchor"] == "surrogate"
    message = finding["message"]
    assert "raises the ELBO by 2.85 ± 0.04 nats over the mean-field family" in message
    assert "median of 3 seeds, 3 clearly above noise, up to 1000 steps each" in message
    assert "under it the latents correlate (`weight` with `bias`: -0.997)" in message
    assert "`bias`'s standard deviation is 8.3x smaller" in message
    assert "Centre or rescale the inputs" in message and "operators='tril'" in message
    assert "4.2 s" in message
    evidence = finding["evidence"]
    assert evidence["gains"] == pytest.approx([2.8, 2.9, 2.85])
    assert evidence["steps"] == 1000 and evidence["step_cap"] == 1000 and evidence["seconds"] == 4.2
    assert evidence["seeds_run"] == 3


def test_a_gain_under_one_nat_is_quiet_however_precise():
    assert decide(_part(gains_=(0.9, 0.95, 0.92), se=0.001)) is None
    assert decide(_part(gains_=(-0.004, 0.001, -0.002), se=0.003, spread=1.02)) is None  # centred x, measured


def test_a_gain_within_six_standard_errors_is_noise():
    noisy = _part(gains_=(2.0, 2.1, 1.9), se=0.3)  # gain se = 0.42: 6 x 0.42 = 2.5 > 2.0
    assert decide(noisy) is None
    assert decide(_part(gains_=(2.0, 2.1, 1.9), se=0.2)) is not None  # 6 x 0.28 = 1.7 < 2.0


def test_most_seeds_must_gain_clearly():
    assert decide(_part(gains_=(5.0, 0.2, 0.1))) is None  # one seed found something the others did not
    assert decide(_part(gains_=(5.0, 4.0, 0.1))) is not None


def test_spreads_that_are_not_too_narrow_are_quiet():
    # 20 inputs x 200 rows (measured): many weak correlations add up to a nat, no spread is wrong
    assert decide(_part(gains_=(1.12, 1.07, 1.10), se=0.03, spread=1.09, corr=-0.27)) is None
    assert decide(_part(spread=1.6)) is not None
    assert decide(_part(gains_=(2.3, 2.4, 2.2), spread=1.3)) is None  # under GAP_STRONG: the spreads decide


def test_a_strong_gain_is_reported_whatever_the_spreads():
    # a 30-step Brownian smoothing model (measured): neighbours correlated +0.54-0.58, every spread
    # 1.2-1.46x too narrow, the full-rank reference gains 3.3 nats over the mean-field control
    part = _part(gains_=(3.36, 3.32, 3.35), se=0.07, spread=1.46, corr=0.584)
    part["spread_ratio"] = {f"x_{i}": 1.2 + 0.26 * i / 29 for i in range(30)}
    finding = decide(part)
    assert finding is not None
    assert "narrower than the full-rank fit's for 30 of 30 latents (up to 1.46x, `x_29`" in finding["message"]
    assert "too narrow" not in finding["message"]
    assert decide(part, {"restrictive_gap_strong": 4.0}) is None  # configurable


def test_the_gain_is_measured_against_the_better_of_the_fit_and_its_mean_field_control():
    # the user's fit had not converged: its family, fitted as long from the same start, reaches -79.1
    part = _part(gains_=(2.8, 2.9, 2.85), user=-97.67, control=-79.11)
    assert [round(g, 2) for g, _ in gains(part)] == [2.8, 2.9, 2.85]
    message = decide(part)["message"]
    assert "fitted surrogate's ELBO -97.67" in message
    assert "the same mean-field family fitted as long from the same start reaches -79.11" in message
    # without the control the whole 21 nats would have been blamed on the family
    unconverged = _part(gains_=(-1.0, -1.0, -1.0), user=-97.67, control=-79.11)
    assert decide(unconverged) is None


def test_seeds_without_their_control_do_not_count():
    part = _part()
    for run in part["reference"]:
        run.pop("mean_field_elbo")
    assert gains(part) == [] and decide(part) is None


def test_skipped_errors_and_missing_parts_are_quiet():
    assert decide(None) is None
    assert decide({"skipped": "not a mean-field surrogate: a MultivariateNormalTriL (already correlated)"}) is None
    assert decide({"error": "ValueError: boom"}) is None
    assert decide(_part(user_elbo=None)) is None


def test_several_modes_are_mentioned_when_the_seeds_disagree():
    message = decide(_part(gains_=(2.5, 6.0, 2.6)))["message"]
    assert "the seeds end at different gains (2.50, 6.00, 2.60)" in message and "several modes" in message


def test_classify_reports_it_once_per_fit_at_the_surrogate_and_not_after_a_nan():
    findings = [f for f in classify(_trace(_part())) if f["code"] == "ELB111"]
    assert len(findings) == 1 and findings[0]["anchor"] == "surrogate"
    assert not [f for f in classify(_trace(_part(), losses=[1.0, float("nan")] * 10)) if f["code"] == "ELB111"]
    # configurable: a stricter floor silences it
    assert not [f for f in classify(_trace(_part()), {"restrictive_gap_min": 5.0}) if f["code"] == "ELB111"]
    # several seeds of the user's fit: one ELB111, not one per seed
    trace = _trace(_part())
    trace["seeds"] = [dict(trace["fit"], seed=i) for i in range(4)]
    assert [f["code"] for f in classify_seeds(trace)].count("ELB111") == 1


# -- end to end ------------------------------------------------------------------------------------

@pytest.mark.dynamic
def test_example_2_completed_is_reported_and_its_near_misses_stay_quiet():
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic=all", "--output-format",
                                "json", str(FAR), str(CENTRED), str(FULL_RANK), str(LOG_NORMAL), str(ASVI)],
                               capture_output=True, text=True, timeout=900)
    rows = json.loads(completed.stdout)
    by_file: dict = {}
    for row in rows:
        by_file.setdefault(row["filename"].rsplit("/", 1)[-1], []).append(row)
    found = [r for r in by_file[FAR.name] if r["code"] == "ELB111"]
    assert len(found) == 1, completed.stderr[-3000:]
    row = found[0]
    surrogate_line = next(i for i, line in enumerate(FAR.read_text().splitlines(), 1)
                          if line.startswith("surrogate_posterior ="))
    assert row["location"]["row"] == surrogate_line and row["severity"] == "warning"
    assert "over the mean-field family" in row["message"]
    assert "(`weight` with `bias`: -0.99" in row["message"]
    assert "standard deviation is" in row["message"] and "operators='tril'" in row["message"]
    evidence = row["dynamic"]["evidence"]["evidence"]
    assert evidence["gain"] > 2.0 and evidence["gain_se"] < 0.2  # README: 2.7 nats, estimates ± 0.02-0.03
    assert evidence["spread_ratio"]["bias"] > 3.0
    assert evidence["step_cap"] == 1000 and 0 < evidence["seconds"] < 30
    # the same family built by TFP's ASVI helper (an AutoBatched joint distribution, named latents)
    asvi = [r for r in by_file[ASVI.name] if r["code"] == "ELB111"]
    assert len(asvi) == 1, completed.stderr[-3000:]
    builder_line = next(i for i, line in enumerate(ASVI.read_text().splitlines(), 1)
                        if line.startswith("surrogate_posterior ="))
    assert asvi[0]["location"]["row"] == builder_line
    assert "(`bias` with `weight`: -0.99" in asvi[0]["message"], asvi[0]["message"]
    for near_miss in (CENTRED, FULL_RANK, LOG_NORMAL):
        rows_ = by_file.get(near_miss.name, [])
        assert not [r for r in rows_ if r["code"] == "ELB111"], near_miss.name
        assert not [r for r in rows_ if r["code"] == "ELB100"], near_miss.name


@pytest.mark.dynamic
def test_only_mean_field_surrogates_are_compared():
    """Which surrogates the check takes (richer_family.mean_field), with TensorFlow in this process."""
    script = r"""
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import json
import tensorflow as tf
import tensorflow_probability as tfp
from elbolint.dynamic.child.richer_family import mean_field

tfd, tfb = tfp.distributions, tfp.bijectors
scale = lambda: tfp.util.TransformedVariable(1.0, tfb.Softplus())
model = tfd.JointDistributionNamed(dict(w=tfd.Normal(0.0, 1.0), s=tfd.HalfNormal(1.0)))
Root = tfd.JointDistributionCoroutine.Root

def hierarchy():
    a = yield Root(tfd.Normal(0.0, 1.0, name="a"))
    s = yield Root(tfd.HalfNormal(1.0, name="s"))
    yield tfd.Normal(a, s, name="b")

coroutine = tfd.JointDistributionCoroutineAutoBatched(hierarchy)
locs, scales = [tf.Variable(0.0), tf.Variable(0.0)], [scale(), scale()]

def independent_q():
    yield Root(tfd.Normal(locs[0], scales[0], name="a"))
    yield Root(tfd.Normal(locs[1], scales[1], name="b"))

def dependent_q():
    a = yield Root(tfd.Normal(locs[0], scales[0], name="a"))
    yield tfd.Normal(a, scales[1], name="b")

cases = {
    "jds": tfd.JointDistributionSequential([tfd.Normal(tf.Variable(0.0), scale()),
                                            tfd.Normal(tf.Variable(0.0), scale())]),
    "lognormal": tfd.JointDistributionNamed(dict(a=tfd.Normal(0.0, scale()), b=tfd.LogNormal(0.0, scale()))),
    "independent": tfd.Independent(tfd.Normal(tf.zeros(3), 1.0), 1),
    "diag": tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)),
    "factored": tfp.experimental.vi.build_factored_surrogate_posterior(event_shape=[2]),
    # with the model's event-space bijector (what ELB014 advises): TFP returns a non-composite
    # _TransformedDistribution, which is no tfd.TransformedDistribution
    "factored_bijected": tfp.experimental.vi.build_factored_surrogate_posterior(
        event_shape=model.event_shape, bijector=model.experimental_default_event_space_bijector()),
    "affine_diag": tfp.experimental.vi.build_affine_surrogate_posterior(event_shape=[2], operators="diag"),
    "softplus": tfd.TransformedDistribution(tfd.Normal(tf.zeros(2), 1.0), tfb.Softplus()),
    # ASVI's builder returns an AutoBatched coroutine (no resolve_graph): read by building its components
    "asvi_mean_field": tfp.experimental.vi.build_asvi_surrogate_posterior(coroutine, mean_field=True),
    "factored_autobatched": tfp.experimental.vi.build_factored_surrogate_posterior(
        event_shape=coroutine.event_shape, bijector=coroutine.experimental_default_event_space_bijector()),
    "affine_diag_bijected": tfp.experimental.vi.build_affine_surrogate_posterior(
        event_shape=coroutine.event_shape, operators="diag",
        bijector=coroutine.experimental_default_event_space_bijector()),
    "coroutine": tfd.JointDistributionCoroutineAutoBatched(independent_q),
    "tril": tfd.MultivariateNormalTriL(tf.zeros(2), tf.eye(2)),
    "affine": tfp.experimental.vi.build_affine_surrogate_posterior(event_shape=[2], operators="tril"),
    "structured": tfd.JointDistributionSequential([tfd.Normal(0.0, 1.0), lambda a: tfd.Normal(a, 1.0)]),
    "asvi_structured": tfp.experimental.vi.build_asvi_surrogate_posterior(coroutine, mean_field=False),
    "coroutine_structured": tfd.JointDistributionCoroutineAutoBatched(dependent_q),
    "flow": tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)),
                                        tfb.ScaleMatvecTriL(tf.constant([[1.0, 0.0], [0.5, 1.0]]))),
    "mixture": tfd.MixtureSameFamily(tfd.Categorical(logits=[0.0, 0.0]), tfd.Normal([0.0, 1.0], 1.0)),
}
print(json.dumps({name: mean_field(d) for name, d in cases.items()}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    verdicts = json.loads(completed.stdout.strip().splitlines()[-1])
    for name in ("jds", "lognormal", "independent", "diag", "factored", "factored_bijected", "affine_diag",
                 "softplus", "asvi_mean_field", "factored_autobatched", "affine_diag_bijected", "coroutine"):
        assert verdicts[name] is None, (name, verdicts[name])
    for name in ("tril", "affine", "structured", "flow", "mixture", "asvi_structured", "coroutine_structured"):
        assert verdicts[name], name
    assert "already correlated" in verdicts["tril"]
    for name in ("structured", "asvi_structured", "coroutine_structured"):
        assert "depend on each other" in verdicts[name], name


@pytest.mark.dynamic
def test_cost_is_bounded_and_reported():
    """The step cap and the time check (richer_family.richer_reference): a spent deadline skips the
    check, a short time budget stops it after the chunk that crosses it and says so."""
    script = r"""
import os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import json
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from elbolint.dynamic.child.richer_family import MIN_SECONDS, richer_reference

tfd, tfb = tfp.distributions, tfp.bijectors
x = np.linspace(20.0, 21.0, 30).astype(np.float32)
y = (0.5 * x + 1.0).astype(np.float32)

def target(weight, bias):  # [1]-shaped components, as the far-inputs fixture has
    prior = tfd.Normal(0.0, 10.0).log_prob(weight) + tfd.Normal(0.0, 10.0).log_prob(bias)
    return prior + tf.reduce_sum(tfd.Normal(weight * x + bias, 1.0).log_prob(y), axis=-1, keepdims=True)

surrogate = tfd.JointDistributionSequential([
    tfd.Normal(tf.Variable([0.0]), tfp.util.TransformedVariable([1.0], tfb.Softplus()), name="weight"),
    tfd.Normal(tf.Variable([0.0]), tfp.util.TransformedVariable([1.0], tfb.Softplus()), name="bias")])
tfp.vi.fit_surrogate_posterior(target, surrogate, tf.optimizers.Adam(0.05), num_steps=300, seed=(1, 2))
spent = richer_reference(target, surrogate, 1, None, deadline=time.monotonic())
short = richer_reference(target, surrogate, 1, None, max_seconds=MIN_SECONDS + 0.1, steps=10 ** 7)
nan = richer_reference(target, surrogate, 1, {"loss": [1.0, float("nan")]})
coin = tfd.JointDistributionSequential([tfd.Bernoulli(probs=0.5), tfd.Normal(0.0, 1.0)])
discrete = richer_reference(lambda a, b: tf.zeros_like(b), coin, 1, None)
print(json.dumps({"spent": spent, "short": short, "nan": nan, "discrete": discrete}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    parts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert parts["spent"] == {"skipped": "the time budget is spent"}
    short = parts["short"]
    assert "stopped after" in short["stopped"] and "time budget" in short["stopped"], short
    # a step cap no machine reaches in the time budget (20,000 steps did fit in 3.1 s on a quiet one)
    assert short["step_cap"] == 10 ** 7 and short["steps"] < 10 ** 7
    # the seeds and their mean-field controls are fitted as one batch: all stopped at the same step, so
    # each seed's gain still compares the two families after as many steps
    assert len(short["reference"]) == 3
    assert {run["steps"] for run in short["reference"]} == {short["steps"]}
    assert all("mean_field_elbo" in run for run in short["reference"])
    assert short["names"] == ["weight", "bias"] and short["latent"] == 2
    assert parts["nan"] == {"skipped": "the fit's loss is not finite"}
    assert parts["discrete"] == {"skipped": "discrete latents"}

"""ELB111's normalizing-flow reference (elbolint/dynamic/child/richer_flow.py): the decision that takes it
as a second reference (verdicts/restrictive.decide) and the flow's pure-numpy parts are tested without
TensorFlow; the end-to-end test (marked `dynamic`) runs `elbolint --dynamic=all` on the banana-shaped
posterior, where only the flow shows the gap, and on the centred regression, which stays quiet."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES
from elbolint.dynamic.child.richer_flow import HIDDEN, LAYERS, _init_weights, _masks, _revealed
from elbolint.dynamic.verdicts.contract import problems
from elbolint.dynamic.verdicts.restrictive import beyond_gaussian, decide, flow_gains

BANANA = FIXTURES / "dynamic" / "restrictive_family_banana.py"
CENTRED = FIXTURES / "dynamic" / "restrictive_family_centred_inputs.py"


def _part(full=(0.07, 0.02, -0.1), flow=(1.23, 1.16, 1.2), gaussian=(0.0, 0.05, 0.06), se=0.02, control=11.45,
          user=6.59, flow_spread=2.4, **flow_extra):
    """A `richer` part as richer_family writes it with its `flow`: per seed the full-rank reference, its
    mean-field control, the flow and its Gaussian control (gains relative to the mean-field control)."""
    runs = [{"seed": i, "steps": 1000, "elbo": control + g, "se": se, "mean_field_elbo": control, "mean_field_se": se}
            for i, g in enumerate(full)]
    flows = [{"seed": i, "steps": 1000, "elbo": control + g, "se": se, "gaussian_elbo": control + c, "gaussian_se": se}
             for i, (g, c) in enumerate(zip(flow, gaussian))]
    part = {"latent": 2, "names": ["a", "b"], "user_elbo": user, "user_se": 0.3, "start_elbo": user,
            "reference": runs, "steps": 1000, "step_cap": 1000, "seeds": 3, "seconds": 3.4,
            "correlations": [["a", "b", 0.03]], "spread_ratio": {"a": 0.9, "b": 1.1},
            "flow": {"latent": 2, "start_elbo": control, "start_se": se, "reference": flows, "steps": 1000,
                     "step_cap": 1000, "seeds": 3, "layers": LAYERS, "hidden": [HIDDEN, HIDDEN], "seconds": 13.2,
                     "skewness": {"a": -1.64, "b": 0.1}, "kurtosis": {"a": 3.33, "b": -1.0},
                     "spread_ratio": {"a": flow_spread, "b": 1.2}, "curvature": [["a", "b", -0.88], ["b", "a", 0.5]]}}
    part["flow"].update(flow_extra)
    return part


# -- the decision -----------------------------------------------------------------------------------

def test_a_flow_gain_beyond_its_gaussian_control_is_reported_as_a_non_gaussian_posterior():
    finding = decide(_part())
    assert finding is not None and finding["code"] == "ELB111" and finding["anchor"] == "surrogate"
    message = finding["message"]
    assert message.startswith("a normalizing flow (4 affine coupling layers of 32x32 units) started from the "
                              "fitted surrogate raises the ELBO by 1.20")
    assert "a full-rank Gaussian only by 0.02" in message
    assert "the posterior is not Gaussian, so a full-rank Gaussian surrogate will not fix it" in message
    assert "`a` is skewed (skewness -1.64)" in message and "excess kurtosis 3.33" in message
    assert "`a` follows `b`'s magnitude" in message
    assert "`a`'s standard deviation is 2.4x smaller than the flow's" in message
    assert "tfb.MaskedAutoregressiveFlow" in message and "operators='tril'" in message
    assert "13.2 s, after the full-rank fit's 3.4 s" in message
    assert "had not converged either" in message  # the user's 6.59 against the control's 11.45
    evidence = finding["evidence"]
    assert evidence["reference"] == "flow" and evidence["gain"] == pytest.approx(1.2)
    assert evidence["gains"] == pytest.approx([1.23, 1.16, 1.2]) and evidence["flow_seconds"] == 13.2
    assert evidence["beyond_gaussian"] == pytest.approx(1.14)


def test_flow_gains_are_measured_against_the_same_mean_field_controls():
    part = _part()
    assert [g for g, _ in flow_gains(part)] == pytest.approx([1.23, 1.16, 1.2])
    assert [g for g, _ in beyond_gaussian(part)] == pytest.approx([1.23, 1.11, 1.14])
    del part["reference"][1]["mean_field_elbo"]  # a seed without its control does not count
    assert len(flow_gains(part)) == 2


def test_a_flow_gain_within_noise_or_under_a_nat_is_quiet():
    assert decide(_part(flow=(0.4, 0.5, 0.45), gaussian=(0.0, 0.0, 0.0))) is None
    assert decide(_part(flow=(1.3, 1.2, 1.25), gaussian=(0.0, 0.0, 0.0), se=0.2)) is None  # 6 x 0.28 > 1.25
    assert decide(_part(flow=(1.5, 0.3, 0.2), gaussian=(0.0, 0.0, 0.0))) is None  # one seed of three


def test_a_flow_gain_that_its_gaussian_control_shares_leaves_the_full_rank_message():
    """Measured on restrictive_family_far_inputs.py: the flow gained 3.65 nats, the full-rank 2.68, but the
    flow's Gaussian control gained as much as the flow: the posterior is Gaussian, the full-rank message stays."""
    part = _part(full=(2.67, 2.68, 2.75), flow=(3.43, 3.66, 3.65), gaussian=(3.4, 3.6, 3.62))
    part["spread_ratio"] = {"a": 1.4, "b": 6.1}
    part["correlations"] = [["a", "b", -0.993]]
    finding = decide(part)
    assert finding is not None and finding["evidence"]["reference"] == "full-rank"
    message = finding["message"]
    assert message.startswith("a full-rank Gaussian started from the fitted surrogate raises the ELBO by 2.68")
    assert "3.4 s, and 13.2 s for a normalizing flow" in message
    assert "not Gaussian" not in message and "MaskedAutoregressiveFlow" not in message


def test_a_flow_gain_without_a_non_gaussian_shape_is_not_called_non_gaussian():
    """Measured on the affine 'diag' surrogate at x in [20, 21]: the flow beat its Gaussian control by
    1.08-1.22 nats on a Gaussian posterior (it optimises the ill-conditioned target faster), its draws
    skewness 0.02, excess kurtosis -1.09, curvature -0.01: the full-rank message stays."""
    part = _part(full=(1.79, 1.95, 2.0), flow=(3.51, 3.37, 3.4), gaussian=(2.3, 2.29, 2.26),
                 skewness={"a": 0.02, "b": 0.01}, kurtosis={"a": -1.09, "b": -0.5}, curvature=[["a", "b", -0.01]])
    part["spread_ratio"] = {"a": 1.4, "b": 8.7}
    finding = decide(part)
    assert finding is not None and finding["evidence"]["reference"] == "full-rank"
    assert "not Gaussian" not in finding["message"] and finding["evidence"]["beyond_gaussian"] is None


def test_a_full_rank_finding_also_says_when_the_flow_adds_beyond_it():
    part = _part(full=(2.67, 2.68, 2.75), flow=(4.7, 4.8, 4.75), gaussian=(2.7, 2.7, 2.75))
    part["spread_ratio"] = {"a": 1.4, "b": 6.1}
    finding = decide(part)
    assert finding is not None and finding["evidence"]["reference"] == "flow"
    part["flow"]["reference"] = [dict(r, elbo=r["gaussian_elbo"] + 2.0) for r in part["flow"]["reference"]]
    part["reference"] = [dict(r, elbo=r["elbo"] + 5.0) for r in part["reference"]]  # the full-rank gains more
    finding = decide(part)
    assert finding is not None and finding["evidence"]["reference"] == "full-rank"
    assert "a normalizing flow started from the full-rank fit adds 2.00" in finding["message"]
    assert "MaskedAutoregressiveFlow" in finding["message"]


def test_a_skipped_or_failed_flow_leaves_the_full_rank_decision_alone():
    for flow in ({"skipped": "the time budget is spent"}, {"error": "ValueError: shapes"}, {}):
        part = _part()
        part["flow"] = flow
        assert decide(part) is None  # the banana without its flow: the full-rank gains nothing
        assert flow_gains(part) == [] and beyond_gaussian(part) == []


def test_the_trace_part_is_in_the_contract():
    trace = {"source": "fit_surrogate_posterior", "line": 39, "budget": 1000,
             "fit": {"loss": [10.0, 9.0], "grad_norm": [1.0, 1.0]}, "richer": _part()}
    assert problems(trace, "Trace") == []
    trace["richer"]["flow"] = {"skipped": "20 latent values (the flow is fitted for 2 to 16)"}
    assert problems(trace, "Trace") == []


# -- the flow's pure parts ----------------------------------------------------------------------------

def test_every_latent_is_transformed_and_conditions_another():
    for latent in (2, 3, 5, 16):
        masks = _masks(latent)
        assert masks.shape == (LAYERS, latent)
        assert (masks.min(axis=0) == 0).all() and (masks.max(axis=0) == 1).all()  # each is moved and conditions


def test_the_last_layer_starts_at_zero_so_the_flow_starts_as_the_identity():
    weights = _init_weights(6, 3, [0, 0, 1, 1, 2, 2])
    assert not weights["w3"].any() and not weights["b3"].any()
    assert weights["w1"].shape == (6, LAYERS, 3, HIDDEN) and weights["w2"].shape == (6, LAYERS, HIDDEN, HIDDEN)
    assert np.array_equal(weights["w1"][0], weights["w1"][1]) and not np.array_equal(weights["w1"][0], weights["w1"][2])


def test_what_the_flow_reveals_is_zero_for_a_gaussian_and_not_for_a_banana():
    rng = np.random.RandomState(0)
    gaussian = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.8], [0.8, 1.0]], size=20000)
    shown = _revealed(gaussian, ["a", "b"], np.array([0.5, 0.5]))
    assert max(abs(v) for v in shown["skewness"].values()) < 0.1
    assert max(abs(v) for v in shown["kurtosis"].values()) < 0.2
    assert abs(shown["curvature"][0][2]) < 0.05
    assert shown["spread_ratio"]["a"] == pytest.approx(2.0, rel=0.05)
    b = rng.normal(size=20000)
    banana = np.stack([-b ** 2 + 0.1 * rng.normal(size=20000), b], axis=1)
    shown = _revealed(banana, ["a", "b"], np.array([1.0, 1.0]))
    assert shown["curvature"][0][:2] == ["a", "b"] and shown["curvature"][0][2] < -0.9
    assert shown["skewness"]["a"] < -1.0


# -- end to end ---------------------------------------------------------------------------------------

@pytest.mark.dynamic
def test_the_banana_is_reported_by_the_flow_and_the_centred_regression_stays_quiet():
    # a per-file timeout above the default 60 s: on a loaded machine the flow is the first thing the time
    # budget cuts (it runs last), and a cut flow gains less than a nat on the banana
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic=all", "--dynamic-timeout",
                                "120", "--output-format", "json", str(BANANA), str(CENTRED)],
                               capture_output=True, text=True, timeout=900)
    rows = json.loads(completed.stdout)
    found = [r for r in rows if r["filename"].endswith(BANANA.name) and r["code"] == "ELB111"]
    assert len(found) == 1, completed.stderr[-3000:]
    row = found[0]
    surrogate_line = next(i for i, line in enumerate(BANANA.read_text().splitlines(), 1)
                          if line.startswith("surrogate_posterior ="))
    assert row["location"]["row"] == surrogate_line
    assert row["message"].startswith("a normalizing flow"), row["message"]
    assert "the posterior is not Gaussian" in row["message"] and "MaskedAutoregressiveFlow" in row["message"]
    evidence = row["dynamic"]["evidence"]["evidence"]
    assert evidence["reference"] == "flow" and evidence["gain"] > 1.0 and evidence["beyond_gaussian"] > 1.0
    assert 0 < evidence["flow_seconds"] < 20
    assert not [r for r in rows if r["filename"].endswith(CENTRED.name) and r["code"] in ("ELB111", "ELB100")]

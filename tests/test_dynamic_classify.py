"""The pathology classifier and the dynamic settings, on hand-written traces: no TensorFlow needed."""

from __future__ import annotations

import math

import pytest

from elbolint.config import ConfigError
from elbolint.dynamic.verdicts.classify import THRESHOLDS, classify, sparkline, trace_summary
from elbolint.dynamic.parent.settings import build_settings


def fit(loss, grad=None, **extra):
    return {"fit": {"loss": loss, "grad_norm": grad if grad is not None else [1.0] * len(loss), **extra}}


def codes(findings):
    return sorted(f["code"] for f in findings)


def test_healthy_trace_has_no_findings():
    losses = [100.0 - i * 0.4 for i in range(200)]
    trace = fit(losses, positive={"scale": [1.0 - i * 0.001 for i in range(200)]})
    trace["reference"] = {"loss": [90.0 - i * 0.3 for i in range(200)]}
    assert classify(trace) == []


def test_nan_loss_and_nonpositive_scale():
    losses = [10.0, 9.0, 8.0, float("nan"), float("nan")]
    trace = fit(losses, grad=[1.0, 2.0, 3.0, float("nan"), float("nan")],
                positive={"`scale` of Normal": [1.0, 0.5, -0.013, float("nan"), float("nan")]})
    found = classify(trace)
    assert codes(found) == ["ELB101", "ELB104"]
    by_code = {f["code"]: f for f in found}
    assert by_code["ELB104"]["evidence"] == {"parameter": "`scale` of Normal", "step": 2, "value": -0.013}
    assert by_code["ELB104"]["message"] == "`scale` of Normal reached -0.013 at step 2"
    assert by_code["ELB101"]["evidence"]["step"] == 3
    # a NaN gradient caused by a NaN loss is not an exploding gradient
    assert "ELB107" not in codes(found)


def test_exploding_gradient_threshold_is_configurable():
    trace = fit([5.0] * 10, grad=[10.0] * 9 + [2000.0])
    assert codes(classify(trace)) == ["ELB107"]
    assert classify(trace, {"exploding_gradient_norm": 5000.0}) == []
    assert codes(classify(fit([5.0] * 3, grad=[1.0, float("inf"), 1.0]))) == ["ELB107"]


def test_huge_initial_loss_against_reference():
    trace = fit([5.1e4] + [55.0] * 19)
    trace["reference"] = {"loss": [61.0] + [50.0] * 19}
    found = classify(trace)
    assert codes(found) == ["ELB102"]
    assert found[0]["evidence"]["reference_initial_loss"] == 61.0
    assert "initial loss 5.1e+04" in found[0]["message"]
    assert classify(trace, {"huge_initial_loss_ratio": 1000.0}) == []
    del trace["reference"]
    assert classify(trace) == []  # no reference, no comparison


def test_diverging_loss():
    assert codes(classify(fit([10.0 + i for i in range(100)]))) == ["ELB103"]
    noisy = [10.0 + (3.0 if i % 2 else -3.0) for i in range(100)]
    assert classify(fit(noisy)) == []


def test_elbo_gap_prefers_final_estimates():
    trace = fit([100.0] * 40, final_estimate=90.0)
    trace["reference"] = {"loss": [20.0] * 40, "final_estimate": 80.0}
    assert classify(trace) == []  # the low-noise estimates are within 10 nats
    trace["fit"]["final_estimate"] = 150.0
    found = classify(trace)
    assert codes(found) == ["ELB108"] and found[0]["evidence"]["gap"] == 70.0


def test_untrained_variables_and_log_prob_shape():
    trace = fit([3.0] * 5, none_grad=["`v:0`"], untracked=["`raw_scale`"], no_trainable=False,
                logprob_shape=[30], expected_rank=0)
    found = classify(trace)
    assert codes(found) == ["ELB105", "ELB105", "ELB106"]
    assert any("`raw_scale`" in f["message"] for f in found)
    assert classify(fit([1.0], no_trainable=True))[0]["code"] == "ELB105"
    assert classify(fit([1.0], logprob_shape=[3], expected_rank=1)) == []


def test_failure_becomes_elb100():
    found = classify({"failure": {"kind": "exception", "message": "ValueError: Too few inputs", "line": 7}})
    assert found == [{"code": "ELB100", "anchor": "failure", "message": "ValueError: Too few inputs",
                      "evidence": {"kind": "exception", "line": 7, "output_tail": ""}}]


def test_summary_and_sparkline_are_json_safe():
    trace = fit([3.0, 2.0, 1.0, float("nan")])
    trace["seconds"] = 1.234
    summary = trace_summary(trace)
    assert summary["final_loss"] == "NaN" and summary["steps"] == 4 and summary["seconds"] == 1.23
    assert len(sparkline([1.0, 2.0, 3.0])) == 3 and sparkline([math.nan]) == ""


def test_settings_validate_keys_and_merge_cli():
    settings = build_settings({"steps": 50, "exploding-gradient-norm": 10, "probe": "my_probe"}, {"timeout": 5.0})
    assert settings.steps == 50 and settings.timeout == 5.0 and settings.probe == "my_probe"
    assert settings.thresholds["exploding_gradient_norm"] == 10.0
    assert set(THRESHOLDS) == set(settings.thresholds)
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        build_settings({"stepz": 1}, {})
    with pytest.raises(ConfigError, match="steps must be int"):
        build_settings({"steps": "many"}, {})
    with pytest.raises(ConfigError, match="scope"):
        build_settings({"scope": "some"}, {})


def test_sampled_models_without_a_fit():
    """drive_sample.py's records: ELB106 only when the components' batch shapes differ."""
    broken = {"model": "`model`", "line": 9, "logprob_shape": [30], "batch_shapes": [[], [30]]}
    batched = {"model": "`m2`", "line": 12, "logprob_shape": [3], "batch_shapes": [[3], [3]]}
    scalar = {"model": "`m3`", "line": 15, "logprob_shape": [], "batch_shapes": [[], []]}
    found = classify({"sampled": [broken, batched, scalar], "observable": ["ELB100", "ELB106"]})
    assert codes(found) == ["ELB106"]
    assert found[0]["line"] == 9 and "without a fit" in found[0]["message"]
    assert classify({"sampled": [batched, scalar]}) == []
    assert trace_summary({"source": "sample", "sampled": [scalar]})["sampled"] == 1


def test_confirm_only_failure_is_marked():
    """A failure of elbolint's own use of the model (sampling it, pairing it) only confirms."""
    [finding] = classify({"failure": {"kind": "model", "confirm_only": True, "line": 3,
                                      "message": "sampling `model` fails: ValueError: Too few inputs"}})
    assert finding["code"] == "ELB100" and finding["confirm_only"] is True
    assert "confirm_only" not in classify({"failure": {"kind": "exception", "message": "x"}})[0]


def test_a_transformed_scale_underflowing_to_zero_is_no_elb104():
    """`TransformedVariable(1., Softplus())` reaches 0 only by underflow while the fit explodes: that is
    the explosion's evidence, not a raw scale's. A raw scale at 0 still is ELB104."""
    from elbolint.dynamic.verdicts.classify import classify

    fit = {"loss": [10.0, 5.0, 3.0], "grad_norm": [1.0] * 3, "positive": {"`scale` of Normal": [1.0, 0.0, 0.0]},
           "none_grad": [], "zero_grad": [], "untracked": []}
    trace = {"source": "fit_surrogate_posterior", "fit": dict(fit, constrained=["`scale` of Normal"])}
    assert "ELB104" not in [f["code"] for f in classify(trace)]
    assert "ELB104" in [f["code"] for f in classify({"source": "fit_surrogate_posterior", "fit": fit})]

"""The Keras training driver (drive_keras.py) and ELB109 (kl-dominates-loss).

Unit tests of the ELB109 classification on hand-made traces (no TensorFlow), then real runs: the user's
own `model.fit` of `tfp.layers` models is recorded per batch (loss, KL term, data term, gradient norm,
posterior scales), an unscaled KL confirms ELB010 through ELB109, a KL weighted 1/N stays clean, and a
custom `train_step`, `train_on_batch`, a NaN from a raw `DistributionLambda` scale and a program that
fails on its own take their own paths."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES, ROOT
from elbolint.dynamic.verdicts.classify import THRESHOLDS, classify

UNSCALED = FIXTURES / "dynamic" / "keras_unscaled_kl.py"
SCALED_VARIATIONAL = FIXTURES / "dynamic" / "keras_dense_variational_scaled.py"
FLIPOUT = FIXTURES / "dynamic" / "keras_dense_flipout.py"


# ------------------------------------------------------------------ ELB109 on hand-made traces
def keras_trace(kl, data, *, weight=None, size=None, batch=32, scales=None, prior=1.0):
    fit = {"loss": [k + d for k, d in zip(kl, data)], "grad_norm": [1.0] * len(kl), "kl": kl, "data": data,
           "kl_weight": weight, "dataset_size": size, "batch_size": batch}
    if scales is not None:
        fit["posterior_scale"] = {"min": scales, "mean": scales, "prior": prior}
    return {"source": "keras", "line": 7, "fit": fit, "keras": "tf-keras 2.21.0 as tf.keras"}


def codes(findings):
    return sorted(f["code"] for f in findings)


def test_unscaled_kl_trace_gives_elb109_with_its_numbers():
    kl = [700.0 - i for i in range(50)]
    data = [0.5] * 50
    found = classify(keras_trace(kl, data, weight=1.0, size=2000, scales=[0.05 + 0.005 * i for i in range(50)]))
    assert codes(found) == ["ELB109"]
    finding = found[0]
    evidence = finding["evidence"]
    assert evidence["ratio"] == pytest.approx(675.5 / 0.5)
    assert evidence["kl"] == 675.5 and evidence["data"] == 0.5 and evidence["batches"] == 50
    assert evidence["kl_weight"] == 1.0 and evidence["dataset_size"] == 2000 and evidence["batch_size"] == 32
    assert evidence["posterior_scale_start"] == 0.05 and evidence["prior_scale"] == 1.0
    assert evidence["keras"] == "tf-keras 2.21.0 as tf.keras"
    assert finding["anchor"] == "fit"
    assert finding["message"].startswith("the KL term is 1351x the data term per batch (medians over 50 batches")
    assert "N=2000 examples (a per-example ELBO weights it 1/N = 0.0005)" in finding["message"]
    assert "toward the prior's 1" in finding["message"]


def test_kl_weighted_one_over_n_is_never_elb109_however_large():
    """A big network on little data: the scaled KL can outweigh the data term, but it is the ELBO."""
    kl, data = [40.0] * 50, [0.1] * 50
    assert classify(keras_trace(kl, data, weight=1 / 2000, size=2000)) == []
    # batch_size / N (wrong for a mean loss) is N-fold overweighted by batch_size: still reported
    assert codes(classify(keras_trace(kl, data, weight=32 / 2000, size=2000))) == ["ELB109"]


def test_elb109_is_conservative():
    data = [0.5] * 50
    assert classify(keras_trace([4.0] * 50, [0.01] * 50)) == []  # KL below the absolute floor
    assert classify(keras_trace([4.0] * 50, data)) == []  # ratio 8 < 10
    assert classify(keras_trace([700.0] * 4, [0.5] * 4)) == []  # too few batches
    assert classify(keras_trace([], [])) == []
    # weight unknown (a custom Bayesian layer): ratio and floor decide; a negative NLL counts by size
    assert codes(classify(keras_trace([300.0] * 20, [-1.5] * 20))) == ["ELB109"]
    # non-finite batches are left out; a NaN loss is ELB101's story
    kl = [700.0] * 10 + [float("nan")] * 2
    found = classify(keras_trace(kl, [0.5] * 12))
    assert codes(found) == ["ELB101", "ELB109"] and found[-1]["evidence"]["batches"] == 10


def test_elb109_thresholds_are_configurable():
    from elbolint.dynamic.parent.settings import build_settings

    trace = keras_trace([700.0] * 20, [0.5] * 20)
    assert codes(classify(trace)) == ["ELB109"]
    assert classify(trace, {"kl_dominance_ratio": 5000.0}) == []
    assert classify(trace, {"kl_dominance_min_kl": 1000.0}) == []
    settings = build_settings({"kl-dominance-ratio": 50, "kl-dominance-min-weight-n": 4.0}, {})
    assert settings.thresholds["kl_dominance_ratio"] == 50.0 and settings.thresholds["kl_dominance_min_weight_n"] == 4.0
    assert {"kl_dominance_ratio", "kl_dominance_min_kl", "kl_dominance_min_weight_n",
            "kl_dominance_data_floor"} <= set(THRESHOLDS)


def test_traces_of_other_drivers_never_give_elb109():
    assert classify({"fit": {"loss": [10.0 - i * 0.01 for i in range(50)], "grad_norm": [1.0] * 50}}) == []


def test_code_registry_and_driver_order():
    from elbolint.dynamic.child import drive_keras, drivers
    from elbolint.dynamic.verdicts.pathologies import PATHOLOGIES
    from elbolint.registry import rule_by_code_or_name

    code = {c.code: c for c in PATHOLOGIES}["ELB109"]
    assert code.name == "kl-dominates-loss" and code.severity.value == "warning"
    assert "ELB109" in rule_by_code_or_name("ELB010").confirmed_by
    assert drivers.ORDER.index("keras") < drivers.ORDER.index("loop")
    assert drive_keras.runs_file(UNSCALED.read_text())
    assert drive_keras.runs_file("import tensorflow as tf\nm = tf.keras.Sequential([])\nm.train_on_batch(x, y)")
    assert not drive_keras.runs_file("from sklearn.linear_model import Ridge\nRidge().fit(x, y)")


# ------------------------------------------------------------------ real runs
def _run(paths, steps=200):
    pytest.importorskip("tensorflow_probability")
    pytest.importorskip("tf_keras")
    from elbolint.dynamic import keras_flavour
    from elbolint.dynamic.parent.harness import run_jobs
    from elbolint.dynamic.parent.settings import DynamicSettings

    settings = DynamicSettings(timeout=60, steps=steps).to_json()
    jobs = [{"path": str(p), "settings": settings, "keras": keras_flavour(p.read_text())} for p in paths]
    return run_jobs(jobs, settings["python"], 1)


@pytest.mark.dynamic
def test_fixtures_recorded_per_batch_unscaled_confirmed_scaled_clean():
    unscaled, variational, flipout = _run([UNSCALED, SCALED_VARIATIONAL, FLIPOUT])
    for trace in (unscaled, variational, flipout):
        assert "failure" not in trace, trace["failure"]
        assert trace["source"] == "keras" and trace["keras_model"]["calls"] == ["fit"]
        assert trace["keras"].startswith("tf-keras 2.") and "TF_USE_LEGACY_KERAS=1" in trace["keras"]
        assert trace["seconds"] < 20
    fit = unscaled["fit"]
    assert len(fit["loss"]) == len(fit["kl"]) == len(fit["data"]) == len(fit["grad_norm"]) == 200  # the budget
    assert fit["dataset_size"] == 2000 and fit["batch_size"] == 32
    assert fit["kl_weight"] == pytest.approx(1.0, rel=0.01)  # DenseFlipout's default: the whole KL
    assert fit["kl"][0] > 500 and 0 < fit["data"][0] < 5
    assert fit["loss"][0] == pytest.approx(fit["kl"][0] + fit["data"][0])
    scale = fit["posterior_scale"]
    assert scale["prior"] == 1.0 and scale["mean"][-1] > 3 * scale["mean"][0]  # pulled toward the prior
    found = classify(unscaled)
    assert codes(found) == ["ELB109"]
    assert found[0]["evidence"]["ratio"] > 100 and found[0]["evidence"]["dataset_size"] == 2000

    assert variational["fit"]["kl_weight"] == pytest.approx(1 / 2000)  # DenseVariational's kl_weight
    assert variational["fit"]["dataset_size"] == 2000 and len(variational["fit"]["loss"]) == 200
    assert max(variational["fit"]["kl"]) < 1.0
    assert classify(variational) == []
    assert len(flipout["fit"]["loss"]) == 12  # 64 examples, batches of 16, 3 epochs: the whole fit
    assert flipout["fit"]["kl_weight"] == pytest.approx(1 / 64)
    assert classify(flipout) == []


PRELUDE = """\
import os
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
x = np.random.RandomState(0).randn(600, 2).astype(np.float32)
y = (x[:, :1] - x[:, 1:]).astype(np.float32)
"""

SCRIPTS = {
    "custom_step.py": """
class BNN(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.h = tfp.layers.DenseFlipout(8, activation="relu")
        self.o = tfp.layers.DenseFlipout(1)

    def call(self, inputs):
        return self.o(self.h(inputs))

    def train_step(self, data):
        xb, yb = data
        with tf.GradientTape() as tape:
            nll = tf.reduce_mean(tf.square(self(xb, training=True) - yb))
            loss = nll + tf.add_n(self.losses)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss, "nll": nll}


model = BNN()
model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
model.fit(x, y, batch_size=20, epochs=10, verbose=0)
""",
    "on_batch.py": """
model = tf.keras.Sequential([tfp.layers.DenseReparameterization(8, activation="relu"),
                             tfp.layers.DenseReparameterization(1)])
model.compile(optimizer="adam", loss="mse")
for step in range(1000):
    i = np.random.randint(0, 600, 25)
    out = model.train_on_batch(x[i], y[i])
    assert np.ndim(out) == 0, out  # the recorded values never reach the user's result
""",
    "raw_scale.py": """
model = tf.keras.Sequential([
    tf.keras.Input(shape=(2,)),
    tf.keras.layers.Dense(2),
    tfp.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=t[..., 1:])),
])
model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss=lambda y, rv: -rv.log_prob(y))
model.fit(x, y, epochs=20, batch_size=16, verbose=0)
""",
    "fails.py": """
model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), tfp.layers.DenseFlipout(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(x, y, epochs=2)  # 2 features, the model expects 3: the program fails on its own
""",
    "plain.py": """
model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(x, y, epochs=5, verbose=0)
""",
}


@pytest.mark.dynamic
def test_custom_step_train_on_batch_nan_and_the_users_failure(tmp_path):
    paths = []
    for name, body in SCRIPTS.items():
        path = tmp_path / name
        path.write_text(PRELUDE + textwrap.dedent(body))
        paths.append(path)
    custom, on_batch, raw_scale, fails, plain = _run(paths, steps=40)

    assert custom["source"] == "keras" and custom["keras_model"]["custom_train_step"] is True
    assert len(custom["fit"]["loss"]) == 40 and len(custom["fit"]["kl"]) == 40
    assert custom["fit"]["kl_weight"] == pytest.approx(1.0, rel=0.01) and custom["fit"]["dataset_size"] == 600
    assert codes(classify(custom)) == ["ELB109"]  # 8x2 + 8x1 weights, unscaled, next to a tiny MSE

    assert "failure" not in on_batch and "stopped_by" not in on_batch, on_batch
    assert on_batch["keras_model"]["calls"] == ["train_on_batch"] and len(on_batch["fit"]["loss"]) == 40
    assert on_batch["fit"]["batch_size"] == 25 and on_batch["fit"]["dataset_size"] is None

    # a point-estimate DistributionLambda network is no VI: the loop recorder takes it (the Keras
    # driver keeps itself for the variational model a notebook trains next)
    assert raw_scale["source"] == "loop"
    assert codes(classify(raw_scale)) == ["ELB101"]  # confirms ELB013 (raw scale in DistributionLambda)
    assert len(raw_scale["fit"]["loss"]) < 40  # stopped after two NaN losses in a row

    fit_line = paths[3].read_text().splitlines().index("model.fit(x, y, epochs=2)  # 2 features, the model "
                                                       "expects 3: the program fails on its own") + 1
    assert fails["failure"]["kind"] == "exception" and fails["failure"]["line"] == fit_line  # the user's line
    assert fails["failure"]["message"].startswith(f"the program fails on its own at fails.py:{fit_line}: ValueError")
    assert codes(classify(fails)) == ["ELB100"]

    assert plain["source"] == "loop"  # no TFP layer: not claimed, recorded as before


@pytest.mark.dynamic
def test_cli_confirms_elb010_with_elb109_and_leaves_the_scaled_bnn_clean():
    pytest.importorskip("tensorflow_probability")
    pytest.importorskip("tf_keras")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(UNSCALED), str(SCALED_VARIATIONAL), "--dynamic=all",
         "-j", "1", "--output-format", "json", "--exit-zero"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    rows = json.loads(completed.stdout)
    assert [r for r in rows if r["filename"].endswith("/" + SCALED_VARIATIONAL.name)] == []
    mine = [r for r in rows if r["filename"].endswith("/" + UNSCALED.name)]
    assert [(r["location"]["row"], r["code"]) for r in mine] == [(22, "ELB010"), (23, "ELB010"), (24, "ELB010")]
    for row in mine:
        dynamic = row["dynamic"]
        assert dynamic["status"] == "confirmed"
        assert dynamic["evidence"]["codes"] == ["ELB109"]
        evidence = dynamic["evidence"]["findings"][0]["evidence"]
        assert evidence["ratio"] > 100 and evidence["kl"] > 100 and 0 < evidence["data"] < 5
        assert evidence["dataset_size"] == 2000 and evidence["batch_size"] == 32 and evidence["batches"] == 200
        assert evidence["kl_weight"] == pytest.approx(1.0, rel=0.01)
        assert dynamic["evidence"]["keras"].startswith("tf-keras 2.")
        assert dynamic["trace"]["source"] == "keras" and dynamic["trace"]["steps"] == 200
        assert dynamic["summary"].startswith("the KL term is ")


@pytest.mark.dynamic
def test_the_variational_model_is_claimed_not_the_point_estimate_trained_before_it(tmp_path):
    """Notebooks train a DistributionLambda network first and their Bayesian network next: the
    Keras driver records the Bayesian one (its KL is what ELB010/ELB109 are about)."""
    path = tmp_path / "two_models.py"
    path.write_text(PRELUDE + textwrap.dedent("""
        point = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(2),
                                     tfp.layers.DistributionLambda(lambda t: tfd.Normal(t[..., :1], 1.0))])
        point.compile(optimizer="adam", loss=lambda y, rv: -rv.log_prob(y))
        point.fit(x, y, epochs=1, batch_size=100, verbose=0)
        bnn = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tfp.layers.DenseFlipout(1)])
        bnn.compile(optimizer="adam", loss="mse")
        bnn.fit(x, y, epochs=5, batch_size=20, verbose=0)
    """))
    (trace,) = _run([path], steps=20)
    assert trace["source"] == "keras" and trace["keras_model"]["layers"] == ["DenseFlipout"]
    assert len(trace["fit"]["kl"]) == 20

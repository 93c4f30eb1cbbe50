"""Keras flavours: files that use `tfp.layers` or tf_keras run in a worker started with
TF_USE_LEGACY_KERAS=1 (TFP's documented set-up under TF >= 2.16, where `tf.keras` is Keras 3), and
every result says which Keras was used."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from elbolint.dynamic import keras_flavour

FLIPOUT = FIXTURES / "dynamic" / "keras_dense_flipout.py"


def test_flavour_from_the_files_text():
    assert keras_flavour("import tensorflow_probability as tfp\nl = tfp.layers.DenseFlipout(3)") == "tf-keras"
    assert keras_flavour("from tensorflow_probability import layers as tfpl") == "tf-keras"
    assert keras_flavour("import tf_keras as tfk") == "tf-keras"
    assert keras_flavour("import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'") == "tf-keras"
    assert keras_flavour("q = tfd.Normal(0., 1.)\nopt = tf.keras.optimizers.Adam()") == "default"
    assert keras_flavour(FLIPOUT.read_text()) == "tf-keras"


@pytest.mark.dynamic
def test_tfp_layers_model_runs_under_tf_keras_and_failed_under_keras3():
    """The DenseFlipout model runs natively (it sets TF_USE_LEGACY_KERAS itself, before importing TF);
    in a Keras 3 worker (TF already imported) it fails as it used to under elbolint; in the tf-keras
    worker its own `model.fit` runs and the result names the flavour."""
    pytest.importorskip("tensorflow_probability")
    pytest.importorskip("tf_keras")
    from elbolint.dynamic.parent.harness import run_jobs
    from elbolint.dynamic.parent.settings import DynamicSettings

    settings = DynamicSettings(timeout=60).to_json()
    legacy, keras3 = run_jobs([{"path": str(FLIPOUT), "settings": settings, "keras": "tf-keras"},
                               {"path": str(FLIPOUT), "settings": settings, "keras": "default"}],
                              settings["python"], 1)
    assert "failure" not in legacy, legacy["failure"]
    assert legacy["keras"].startswith("tf-keras 2.") and "TF_USE_LEGACY_KERAS=1" in legacy["keras"]
    assert len(legacy["fit"]["loss"]) == 12  # 64 examples, batches of 16, 3 epochs: the user's own fit
    assert legacy["seconds"] < 20
    assert keras3["keras"].startswith("Keras 3.")
    assert "Only instances of `keras.Layer` can be added" in keras3["failure"]["message"]

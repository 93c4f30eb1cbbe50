"""Every seam of dynamic mode (elbolint/dynamic/child/seams.py) names a target that exists in the pinned
TF/TFP/Keras, and installing every driver (and a replay's variant) wraps each target exactly once per
declared seam — with Keras 3 as tf.keras and with tf-keras (TF_USE_LEGACY_KERAS=1). Runs in a fresh
interpreter: the seams are never installed in the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

pytestmark = pytest.mark.dynamic

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow, tensorflow_probability
    try:
        import tf_keras
    except ImportError:
        pass
    from elbolint.dynamic.child.drivers import Context, modules
    from elbolint.dynamic.child.seams import TARGETS, resolve, seams_of
    from elbolint.dynamic.parent.settings import DynamicSettings
    from elbolint.dynamic.child.variants import Variant

    found = {}
    for target in TARGETS:  # before anything is installed: each target exists
        key = f"{target.owner} {target.attribute}"
        try:
            pairs = resolve(target)
        except Exception as error:
            found[key] = {"error": f"{type(error).__name__}: {error}"}
            continue
        found[key] = {"count": len(pairs), "missing": [getattr(o, "__name__", str(o)) for o, a in pairs
                                                       if not hasattr(o, a)]}
    settings = dict(DynamicSettings().to_json(), flagged_spans=None, flagged_names=[])
    context = Context(sys.argv[1], "", settings)
    Variant({"seed": 1, "clip": 1.0, "rate_factor": 10.0}).install()
    for driver in modules():
        if hasattr(driver, "install"):
            driver.install(context)
    for target in TARGETS:
        key = f"{target.owner} {target.attribute}"
        if "error" in found[key]:
            continue
        wrapped = []
        for owner, attribute in resolve(target):
            value = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute)
            wrapped.append([getattr(owner, "__name__", "?"), sorted(seams_of(value))])
        found[key]["wrapped"] = wrapped
        found[key]["expected"] = sorted(target.seams)
    print(json.dumps(found))
""")


@pytest.mark.parametrize("legacy", ["0", "1"])
def test_every_seam_target_exists_and_is_wrapped_exactly_once(legacy, tmp_path):
    model = tmp_path / "model.py"
    model.write_text("x = 1\n")
    env = dict(os.environ, TF_USE_LEGACY_KERAS=legacy, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(model)], capture_output=True, text=True,
                               env=env, cwd=ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    for key, entry in found.items():
        assert "error" not in entry, (key, entry)
        assert entry["count"] >= 1 and not entry["missing"], (key, entry)
        for owner, seams in entry["wrapped"]:
            assert seams == entry["expected"], (key, owner, seams)

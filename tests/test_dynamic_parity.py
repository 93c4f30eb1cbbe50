"""Dynamic mode never changes a program's meaning: every runnable fixture of fixtures/dynamic (not the
`sandbox_*` ones, which crash on purpose) is run natively and under `elbolint --dynamic=all`; a file
that runs natively never gets an ELB100 (nor a "fails on its own" status), and a file that fails
natively is said to fail on its own (or is not-run for a missing package).

Cost: the native runs are grouped by Keras flavour (TF_USE_LEGACY_KERAS is fixed when TensorFlow is
imported, as each file sets it itself): one interpreter per flavour imports TensorFlow once and runs
each file as `__main__` in a forked child (fresh state, its own directory, a timeout), so the natives
cost two TF imports, not one per file. One elbolint run covers every fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES, ROOT
from elbolint.dynamic import keras_flavour

pytestmark = pytest.mark.dynamic

DYNAMIC = FIXTURES / "dynamic"
#: `slow_*` fixtures sleep in every step on purpose (a slow model): natively they outlast NATIVE_TIMEOUT,
#: so they would be skipped here after costing a minute; their own tests run them.
RUNNABLE = sorted(p for p in DYNAMIC.glob("*.py") if not p.name.startswith(("sandbox_", "slow_")))
#: Seconds per file natively. custom_loop_raw_scale.py retraces its `tf.function` on every step (a
#: Python int argument) and needs over a minute natively: it is skipped here, not waited for.
NATIVE_TIMEOUT = 20

#: Runs each path as `__main__` in a forked child of one interpreter that imported TF once; prints one
#: JSON line {path: "ok" | "error: ..." | "timeout"}.
_NATIVE = textwrap.dedent("""\
    import json, os, runpy, signal, sys, tempfile, traceback
    import tensorflow as tf, tensorflow_probability as tfp
    try:
        import tf_keras
    except ImportError:
        pass
    timeout, paths = int(sys.argv[1]), sys.argv[2:]
    outcome = {}
    for path in paths:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.chdir(tempfile.mkdtemp())
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            signal.alarm(timeout)
            sys.argv = [path]
            sys.path.insert(0, os.path.dirname(path))
            try:
                runpy.run_path(path, run_name="__main__")
                message = "ok"
            except SystemExit as error:
                message = "ok" if error.code in (None, 0) else f"error: exit {error.code}"
            except BaseException as error:
                message = "error: " + "".join(traceback.format_exception_only(type(error), error))[-500:]
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        chunks = []
        while True:
            data = os.read(read, 65536)
            if not data:
                break
            chunks.append(data)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        text = b"".join(chunks).decode()
        outcome[path] = text or ("timeout" if os.WIFSIGNALED(status) else f"died: {status}")
    print(json.dumps(outcome))
    """)


def _native(paths, legacy: bool) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)
    if legacy:
        env["TF_USE_LEGACY_KERAS"] = "1"
    return subprocess.Popen([sys.executable, "-c", _NATIVE, str(NATIVE_TIMEOUT), *map(str, paths)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def outcomes():
    """The natives (one interpreter per Keras flavour, one after the other) run while elbolint runs."""
    pytest.importorskip("tensorflow_probability")
    groups = {True: [], False: []}
    for path in RUNNABLE:
        groups[keras_flavour(path.read_text()) == "tf-keras"].append(path)
    elbolint = subprocess.Popen(
        [sys.executable, "-m", "elbolint", "check", *map(str, RUNNABLE), "--dynamic=all", "-j", "1",
         "--dynamic-seeds", "1",  # whether a program fails on its own: one run each, no seed replays
         "--output-format", "json", "--exit-zero", "--no-cache"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    native = {}
    try:
        for legacy, paths in groups.items():
            if paths:
                process = _native(paths, legacy)
                stdout, stderr = process.communicate(timeout=NATIVE_TIMEOUT * len(paths) + 120)
                assert process.returncode == 0, stderr[-2000:]
                native.update(json.loads(stdout.strip().splitlines()[-1]))
        stdout, stderr = elbolint.communicate(timeout=900)
    finally:
        if elbolint.poll() is None:
            elbolint.kill()
    assert elbolint.returncode == 0, stderr
    assert "Traceback" not in stderr
    return native, json.loads(stdout)


def test_there_are_runnable_fixtures_including_the_vectorized_map_target():
    names = {p.name for p in RUNNABLE}
    assert {"vectorized_map_target.py", "two_fits.py", "raw_scale_high_lr.py"} <= names
    assert not any(name.startswith("sandbox_") for name in names)


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.name)
def test_native_and_dynamic_agree(outcomes, path):
    native, rows = outcomes
    outcome = native[str(path)]
    mine = [r for r in rows if r["filename"].endswith("/" + path.name)]
    errors = [r for r in mine if r["code"] == "ELB100"]
    says_fails = [r for r in mine if "fails on its own" in r["message"]
                  or "fails on its own" in ((r.get("dynamic") or {}).get("summary") or "")]
    if outcome == "ok":
        assert errors == [], f"{path.name} runs natively but got ELB100: {errors[0]['message']}"
        assert says_fails == [], f"{path.name} runs natively but elbolint says it fails on its own"
    elif outcome.startswith("error: ModuleNotFoundError"):
        assert errors == []
    elif outcome.startswith("error: "):
        assert says_fails or errors, f"{path.name} fails natively ({outcome}) but elbolint did not say so"
    else:
        pytest.skip(f"{path.name}: native run {outcome}")


def test_vectorized_map_target_runs_unchanged(outcomes):
    """The target maps over the fit's sample dimension: every call elbolint makes uses the user's
    sample shape ([4, 3]), so the fit, the shape check and the estimates all run, over 4 seeds."""
    native, rows = outcomes
    assert native[str(DYNAMIC / "vectorized_map_target.py")] == "ok"
    mine = [r for r in rows if r["filename"].endswith("/vectorized_map_target.py")]
    assert mine == []  # a correct, clipped, converging program: nothing to report

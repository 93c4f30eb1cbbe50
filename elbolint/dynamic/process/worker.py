"""The dynamic worker: `python -m elbolint.dynamic.process.worker`, started by elbolint with the user's interpreter.

Why a separate process: elbolint itself never imports TensorFlow or executes user code. The worker
imports TF and TFP once (the expensive part), then serves jobs: one JSON line per model file on stdin,
one JSON line per result on stdout. Each job runs in a forked child (see sandbox.py), so crashes,
hangs and memory blow-ups stay in the child and the worker serves the next file.

The environment is set before TensorFlow is imported: CPU only (`CUDA_VISIBLE_DEVICES=""`), quiet
(`TF_CPP_MIN_LOG_LEVEL=3`), few malloc arenas (so the address-space cap measures the model).
A worker serves one Keras flavour: `tf.keras` is fixed when TensorFlow (and TFP, which looks at it)
is imported, so elbolint starts the worker with TF_USE_LEGACY_KERAS=1 for files that use `tfp.layers`
or tf_keras (see harness.py), and every result says which Keras was used (`keras`).
tf_keras is imported here too when installed, so the training-loop recorder can patch its optimizer
classes without each model paying for the import. SIGTERM, or elbolint dying, stops the worker and the
model it is running (see sandbox.py).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _configure_environment() -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")


def _stop_with_elbolint() -> None:
    """elbolint stops a worker with SIGTERM (or dies): take the running model's process group along."""
    import signal

    from elbolint.sandbox import die_with_parent, kill_current_child

    def terminate(number, frame):
        kill_current_child()
        os._exit(128 + number)

    signal.signal(signal.SIGTERM, terminate)
    die_with_parent(signal.SIGTERM)


def keras_description(tf) -> str:
    """Which Keras `tf.keras` is in this worker, for the evidence: tf-keras (TF_USE_LEGACY_KERAS=1,
    TFP's set-up for `tfp.layers`) or Keras 3 (TF >= 2.16's default)."""
    try:
        version = tf.keras.version() if callable(getattr(tf.keras, "version", None)) else \
            getattr(tf.keras, "__version__", "?")
    except Exception:
        version = "?"
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    if version == "?" or version is None:
        try:
            import tf_keras

            version = tf_keras.__version__ if legacy else version
        except ImportError:
            pass
    if str(version).startswith("3."):
        return f"Keras {version} as tf.keras"
    return f"tf-keras {version} as tf.keras" + (" (TF_USE_LEGACY_KERAS=1)" if legacy else "")


def main() -> int:
    _configure_environment()
    _stop_with_elbolint()
    protocol = sys.stdout
    # User code and TF logging must never write into the protocol stream.
    sys.stdout = sys.stderr
    started = time.monotonic()
    try:
        import tensorflow as tf  # noqa: F401
        import tensorflow_probability as tfp  # noqa: F401
        import logging

        tf.get_logger().setLevel(logging.ERROR)
        try:
            import tf_keras  # noqa: F401
        except ImportError:
            pass
        import warnings

        warnings.filterwarnings("ignore")
        from elbolint.dynamic.child.drivers import modules
        from elbolint.dynamic.process.replays import run_with_replays
        from elbolint.dynamic.process.site_runs import run_each_site
        from elbolint.dynamic.child.execute import run_file

        modules()  # the drivers, imported once before the forks
        from elbolint.sandbox import run_in_child
    except BaseException as error:  # missing TF, broken install: one clear line to the parent
        protocol.write(json.dumps({"fatal": f"cannot import TensorFlow Probability with {sys.executable}: "
                                            f"{type(error).__name__}: {error}"}) + "\n")
        protocol.flush()
        return 1
    keras = keras_description(tf)
    protocol.write(json.dumps({"ready": True, "import_seconds": time.monotonic() - started,
                               "versions": {"tensorflow": tf.__version__,
                                            "tensorflow_probability": tfp.__version__},
                               "keras": keras}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        settings = job["settings"]
        # The model runs in a temporary working directory (see sandbox.py): resolve its path here.
        def run(one: dict, timeout: float, settings=settings) -> dict:
            return at_hanging_line(run_in_child(run_file, one, timeout=timeout, memory_mib=int(settings["memory_mib"]),
                                              output_limit=int(settings["output_limit_kib"]) * 1024), one["path"])

        # each flagged training site's run, then its replays (several seeds, the findings' fixes), all
        # within the file's timeout
        result = run_each_site(dict(job, path=os.path.abspath(job["path"])),
                               lambda one: run_with_replays(one, run))
        result["path"] = job["path"]
        result.setdefault("keras", keras)
        protocol.write(json.dumps(result) + "\n")
        protocol.flush()
    return 0


def at_hanging_line(result: dict, path: str) -> dict:
    """A run killed for its timeout, at the line of the user's file it was running (the innermost frame
    of `path` in the stacks the sandbox asked for, sandbox._ask_where and split_stack_dump): its ELB100 row goes there
    instead of line 1, and says so."""
    failure = result.get("failure") or {}
    frames = failure.pop("frames", None) or []
    if failure.get("kind") != "timeout" or failure.get("line"):
        return result
    line = next((at for name, at in frames if os.path.abspath(name) == path), None)
    if line is not None:
        failure["line"] = line
        from elbolint.dynamic.child.failures import NOTEBOOK_MODULE

        if not NOTEBOOK_MODULE.match(os.path.basename(path)):  # a notebook's row says its cell:line itself
            failure["message"] = failure["message"].replace(" (the model", f", running line {line} (the model", 1)
    return result


if __name__ == "__main__":
    sys.exit(main())

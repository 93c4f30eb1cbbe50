"""The dynamic worker: `python -m elbolint.dynamic.worker`, started by elbolint with the user's interpreter.

Why a separate process: elbolint itself never imports TensorFlow or executes user code. The worker
imports TF and TFP once (the expensive part), then serves jobs: one JSON line per model file on stdin,
one JSON line per result on stdout. Each job runs in a forked child (see sandbox.py), so crashes,
hangs and memory blow-ups stay in the child and the worker serves the next file.

The environment is set before TensorFlow is imported: CPU only (`CUDA_VISIBLE_DEVICES=""`), quiet
(`TF_CPP_MIN_LOG_LEVEL=3`), few malloc arenas (so the address-space cap measures the model).
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

    from elbolint.dynamic.sandbox import die_with_parent, kill_current_child

    def terminate(number, frame):
        kill_current_child()
        os._exit(128 + number)

    signal.signal(signal.SIGTERM, terminate)
    die_with_parent(signal.SIGTERM)


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
        from elbolint.dynamic.runner import run_file
        from elbolint.dynamic.sandbox import run_in_child
    except BaseException as error:  # missing TF, broken install: one clear line to the parent
        protocol.write(json.dumps({"fatal": f"cannot import TensorFlow Probability with {sys.executable}: "
                                            f"{type(error).__name__}: {error}"}) + "\n")
        protocol.flush()
        return 1
    protocol.write(json.dumps({"ready": True, "import_seconds": time.monotonic() - started,
                               "versions": {"tensorflow": tf.__version__,
                                            "tensorflow_probability": tfp.__version__}}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        settings = job["settings"]
        # The model runs in a temporary working directory (see sandbox.py): resolve its path here.
        result = run_in_child(run_file, dict(job, path=os.path.abspath(job["path"])),
                              timeout=float(settings["timeout"]),
                              memory_mib=int(settings["memory_mib"]),
                              output_limit=int(settings["output_limit_kib"]) * 1024)
        result["path"] = job["path"]
        protocol.write(json.dumps(result) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

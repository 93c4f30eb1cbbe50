"""`--dynamic-logdir DIR`: the dynamic runs as TensorBoard event files, so `tensorboard --logdir DIR`
shows every brief fit beside its counterfactuals.

One TensorBoard run (a folder under DIR) per model file, training site, seed and variant:

    DIR/<file>/<site>/seed<k>/user          the user's run of seed k (a replay's seeds too)
    DIR/<file>/<site>/seed<k>/clipped       the clipped re-run / replay (ELB110)
    DIR/<file>/<site>/seed<k>/smaller-rate  the 10x smaller learning rate (ELB112)
    DIR/<file>/<site>/reference             the reference fit (a default surrogate on the same target)
    DIR/<file>/<site>/richer/seed<k>, .../richer/yours   ELB111's full-rank reference and the user's ELBO

(<file> is the file's path below the folder the run's files share: its name when one file ran) with
the scalars `loss`, `grad_norm`, `kl`, `data` (a Keras fit's loss split), `min/<parameter>` (a
watched positive parameter's minimum; step 0 is its value before the first step, step i after i
steps), `posterior_scale/min|mean`, and, for a re-run that recorded only its end, `final_loss` and
`max_grad_norm` at the last step of the user's run (a re-run that diverged has final_loss NaN), and
ELB111's `elbo`, `elbo_se`, `mean_field_elbo`. Values are the trace's own (html_curves.runs reads it
for the HTML report too); a step that recorded nothing is not written.

Why a child process (`python -m elbolint.tensorboard_logs DIR`, fed the series as JSON on stdin)
rather than importing TensorFlow here: elbolint's own process never imports TensorFlow (the
dynamic mode's rule, elbolint/dynamic/__init__.py) — importing it costs seconds and hundreds of MB,
prints its own logging, may crash natively, and may not even be installed in the interpreter that
runs elbolint; the child runs in the interpreter that ran the models (`--python`), where it is. The
scalars are written with `tf.summary.write` and the scalars plugin's metadata (what
`tf.summary.scalar` writes), because `tf.summary.scalar` itself needs the `tensorboard` package,
which TensorFlow 2.21 no longer installs.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from elbolint.reporters.html_curves import Evidence, runs, site_name

#: Seconds the writer may take (it imports TensorFlow, ~3-5 s, then writes a few thousand scalars).
TIMEOUT = 300


def prepare(logdir: Path) -> Optional[str]:
    """Create `logdir` when missing; a sentence saying why it cannot be written to, or None."""
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=logdir, prefix=".elbolint-probe-"):
            pass
    except FileExistsError:
        return f"{logdir} exists and is not a directory"
    except OSError as error:
        return f"cannot write to {logdir}: {error.strerror or error}"
    return None


def _component(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "_"


def _file_part(path: str, root: str) -> str:
    """The file's path below the folder all the logged files share (its name alone for one file)."""
    parts = Path(os.path.relpath(os.path.abspath(path), root)).parts
    return "/".join("__" if p == ".." else _component(p) for p in parts if p != ".")


def _tag(name: str) -> str:
    if name.startswith("min "):
        return "min/" + _component(name[4:])
    if name.startswith("posterior scale "):
        return "posterior_scale/" + name.split()[-1]
    return name


def _clean(value: Optional[float]) -> Optional[float | str]:
    """JSON for the child: NaN and the infinities as strings (the child turns them back into floats)."""
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


def log_runs(evidence: Evidence) -> list[dict]:
    """What the event files hold, as plain data: [{"run": "<file>/<site>/seed0/user", "scalars":
    {tag: [[step, value], ...]}}] (value a float, or "nan"/"inf"/"-inf")."""
    out: list[dict] = []
    sites = list(evidence.sites())
    folders = {os.path.dirname(os.path.abspath(path)) for path, _, _ in sites}
    root = os.path.commonpath(sorted(folders)) if folders else "."
    for path, index, part in sites:
        site = _component(site_name(part, evidence.locate(path)).replace(" at line ", "_line")
                          .replace(" at cell ", "_cell"))  # a notebook's site in cells, as the report says
        if sum(other == path for other, _, _ in sites) > 1:
            site = f"{site}_fit{index + 1}"
        found = runs(part)
        last = max((len(r.series.get("loss") or []) for r in found if r.variant in ("user", "replay")), default=1)
        for r in found:
            if r.variant == "reference":
                name = "reference"
            elif r.variant == "richer":
                name = f"richer/{'yours' if r.seed is None else f'seed{r.seed}'}"
            else:
                name = f"seed{r.seed}/{'user' if r.variant in ('user', 'replay') else r.variant}"
            scalars: dict[str, list] = {}
            for tag, values in r.series.items():
                scalars[_tag(tag)] = [[i, _clean(v)] for i, v in enumerate(values) if v is not None]
            at = max(0, last - 1)
            if r.variant == "richer":
                at = int((part.get("richer") or {}).get("steps") or 0)
            for tag, value in r.points.items():
                if value is not None:
                    scalars[tag] = [[at, _clean(value)]]
            scalars = {tag: values for tag, values in scalars.items() if values}
            if scalars:
                out.append({"run": f"{_file_part(path, root)}/{site}/{name}", "scalars": scalars})
    return out


def write_logs(logdir: Path, evidence: Evidence, python: Optional[Path] = None) -> tuple[int, Optional[str]]:
    """Write the event files in a child process; (runs written, a one-line problem or None)."""
    found = log_runs(evidence)
    if not found:
        return 0, None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    command = [str(python or sys.executable), "-m", "elbolint.tensorboard_logs", str(logdir)]
    try:
        done = subprocess.run(command, input=json.dumps(found), capture_output=True, text=True, env=env,
                              timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 0, f"the TensorBoard writer did not run: {error}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return 0, f"the TensorBoard writer failed: {lines[-1] if lines else f'exit {done.returncode}'}"
    return len(found), None


def _write(logdir: Path, found: list[dict]) -> None:  # pragma: no cover - runs in the child
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR)
    for run in found:
        writer = tf.summary.create_file_writer(str(logdir / run["run"]))
        with writer.as_default():
            for tag, values in run["scalars"].items():
                for step, value in values:
                    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=metadata)
        writer.close()


def main() -> None:  # pragma: no cover - runs in the child
    if len(sys.argv) != 2:
        sys.exit("usage: python -m elbolint.tensorboard_logs DIR < runs.json")
    try:
        found = json.load(sys.stdin)
    except ValueError as error:
        sys.exit(f"not JSON on stdin: {error}")
    try:
        _write(Path(sys.argv[1]), found)
    except ImportError as error:
        sys.exit(f"TensorFlow is not importable ({error}); install the [dynamic] extra or pass --python")
    except Exception as error:  # one line, never a traceback: the parent shows it
        sys.exit(f"{type(error).__name__}: {error}")


if __name__ == "__main__":  # pragma: no cover
    main()

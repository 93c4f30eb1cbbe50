"""`--dynamic-logdir DIR` writes TensorBoard event files. What they hold is checked on a
hand-made trace without TensorFlow (`log_runs`), and the files themselves in the one real dynamic run
(the last test): a fixture run end to end, its HTML curves and its event files — read back with
TensorFlow's own `tf.compat.v1.train.summary_iterator`, in a child process: the test process, like
elbolint's, never imports TensorFlow — both checked against the trace the run recorded."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from elbolint.tensorboard_logs import log_runs
from test_html_report import LABEL, MODEL, check_curves, fit_trace, judged

READER = textwrap.dedent("""\
    import json, math, os, sys
    import tensorflow as tf
    found = {}
    for folder, _, files in os.walk(sys.argv[1]):
        for name in files:
            if not name.startswith("events.out.tfevents"):
                continue
            run = os.path.relpath(folder, sys.argv[1])
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                for value in event.summary.value:
                    plugin = value.metadata.plugin_data.plugin_name
                    if plugin:
                        found.setdefault("plugins", {})[run + "/" + value.tag] = plugin
                    number = float(tf.make_ndarray(value.tensor))
                    found.setdefault(run, {}).setdefault(value.tag, []).append([event.step, number])
    print(json.dumps(found))
    """)


def read_logs(logdir: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", READER, str(logdir)], capture_output=True, text=True,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def same(written: list, values: list, start: int = 0) -> None:
    """The event file's (step, value) pairs are the trace's values (as float32), every recorded step."""
    expected = [(i + start, v) for i, v in enumerate(values) if v is not None]
    assert [s for s, _ in written] == [s for s, _ in expected]
    for (_, got), (_, want) in zip(written, expected):
        want = float(np.float32(float(want)))
        assert got == want or (math.isnan(got) and math.isnan(want)), (got, want)


def test_runs_are_one_per_site_seed_and_variant():
    _, evidence = judged()
    found = {run["run"]: run["scalars"] for run in log_runs(evidence)}
    site = "raw_scale_high_lr.py/fit_line22"
    variants = ("user", "clipped", "smaller-rate")
    assert sorted(found) == sorted([f"{site}/seed{s}/{v}" for s in range(4) for v in variants] + [f"{site}/reference"])
    assert sorted(found[f"{site}/seed0/user"]) == ["grad_norm", "loss", "min/scale_of_Normal"]
    assert found[f"{site}/seed1/clipped"] == {"final_loss": [[59, 11.5]], "max_grad_norm": [[59, 401.0]]}
    assert found[f"{site}/seed0/clipped"]["final_loss"] == [[59, "nan"]]  # diverged
    record = fit_trace()["seeds"][2]
    assert found[f"{site}/seed2/user"]["loss"] == [[i, v if math.isfinite(v) else "nan"]
                                                   for i, v in enumerate(record["loss"])]
    assert [v for _, v in found[f"{site}/seed2/user"]["min/scale_of_Normal"]][:16] == record["positive"][LABEL][:16]
    assert found[f"{site}/reference"]["loss"] == [[i, v] for i, v in enumerate(fit_trace()["reference"]["loss"])]


def test_every_tag_and_run_written_is_the_one_the_readme_documents():
    """Item 8: a Keras fit's posterior spreads and ELB111's richer family are written under names the
    README's TensorBoard section lists."""
    from types import SimpleNamespace

    from elbolint.reporters.html_curves import Evidence

    record = {"seed": 0, "loss": [3.0, 2.0], "grad_norm": [1.0, 1.0], "kl": [2.0, 1.5], "data": [1.0, 0.5],
              "positive": {}, "posterior_scale": {"min": [0.1, 0.2], "mean": [0.3, 0.4], "prior": 1.0}}
    part = {"source": "keras", "line": 27, "fit": record, "seeds": [record],
            "site": {"kind": "keras", "line": 27, "stack": [27]},
            "richer": {"latent": 2, "user_elbo": -98.2, "user_se": 0.9, "steps": 100,
                       "reference": [{"seed": 0, "elbo": -76.4, "se": 0.02, "mean_field_elbo": -79.1}]}}
    evidence = Evidence()
    evidence.keep(SimpleNamespace(path=Path("/x/bnn.py"), notebook=None), part)
    found = {run["run"]: run["scalars"] for run in log_runs(evidence)}
    assert sorted(found) == ["bnn.py/keras_fit_line27/richer/seed0", "bnn.py/keras_fit_line27/richer/yours",
                             "bnn.py/keras_fit_line27/seed0/user"]
    assert found["bnn.py/keras_fit_line27/richer/yours"] == {"elbo": [[100, -98.2]], "elbo_se": [[100, 0.9]]}
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("`--dynamic-logdir DIR`"):readme.index("### flake8")]
    for run, scalars in found.items():
        assert f"richer/{run.rsplit('/', 1)[1]}`" in section or run.endswith("/user")
        for tag in scalars:
            assert f"`{tag}`" in section, tag
    assert "`min/<parameter>`" in section
    # a notebook's site is named in cell coordinates, as the verdicts and the HTML report name it
    notebook = SimpleNamespace(spans=[SimpleNamespace(cell=25)], locate=lambda line: (SimpleNamespace(cell=25), 9))
    evidence = Evidence()
    evidence.keep(SimpleNamespace(path=Path("/x/nb.ipynb"), notebook=notebook), part)
    assert {run["run"].split("/")[1] for run in log_runs(evidence)} == {"keras_fit_cell25_9"}


def test_unusable_logdirs_are_refused_in_one_line_before_anything_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, message in (
            (["--dynamic", "--dynamic-logdir", str(blocker / "logs")], "--dynamic-logdir: cannot write to"),
            (["--dynamic", "--dynamic-logdir", str(blocker)], "exists and is not a directory"),
            (["--dynamic-logdir", str(tmp_path / "logs")], "--dynamic-logdir needs --dynamic")):
        done = subprocess.run([sys.executable, "-m", "elbolint", "check", *args, str(MODEL)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and message in done.stderr and "Traceback" not in done.stderr


RECORD = textwrap.dedent("""\
    import json, sys
    import elbolint.dynamic.parent.report as report
    original, traces = report.apply_results, {}
    def recording(selected, outcomes, *args, **kwargs):
        traces.update((str(r.path), o) for r, o in zip(selected, outcomes))
        return original(selected, outcomes, *args, **kwargs)
    report.apply_results = recording
    from elbolint.cli import main
    out, sys.argv = sys.argv[1], ["elbolint", "check", *sys.argv[2:]]
    try:
        main()
    finally:
        with open(out, "w") as handle:
            json.dump(traces, handle)
    """)


@pytest.mark.dynamic
def test_a_real_dynamic_run_has_its_curves_in_the_report_and_in_tensorboard(tmp_path):
    """One fixture run for real: every confirmed or not-reproduced finding has curves, and every curve
    and every event-file series is the trace the run recorded."""
    report, logdir, traces = tmp_path / "report.html", tmp_path / "logs", tmp_path / "traces.json"
    done = subprocess.run([sys.executable, "-c", RECORD, str(traces), "--dynamic", "--dynamic-seeds", "2",
                           "--dynamic-logdir", str(logdir), "--output-format", "html", "-o", str(report),
                           "--exit-zero", str(FIXTURES / "dynamic" / "raw_scale_high_lr.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"TensorBoard logs of \d+ runs in ", done.stderr)
    [trace] = json.loads(traces.read_text()).values()
    page = report.read_text()
    blocks = re.findall(r'<details class="finding".*?</details>', page, re.S)
    judged_blocks = [b for b in blocks if re.search(r'data-status="(confirmed|not-reproduced)"', b)]
    assert judged_blocks and 'data-status="confirmed"' in page
    for block in judged_blocks:
        assert check_curves(block, trace, page) >= 2 * 3  # loss, gradient norm and the minimum of both seeds
    logs = read_logs(logdir)
    for seed, record in enumerate(trace["seeds"]):
        run = logs[f"raw_scale_high_lr.py/fit_line22/seed{seed}/user"]
        same(run["loss"], record["loss"])
        same(run["grad_norm"], record["grad_norm"])
        for label, minima in record["positive"].items():
            same(run["min/" + re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("_")], minima)
    same(logs["raw_scale_high_lr.py/fit_line22/reference"]["loss"], trace["reference"]["loss"])
    # the clipped and smaller-rate re-runs: their final loss (NaN when they diverged) at the last step
    last = len(trace["seeds"][0]["loss"]) - 1
    for variant, key in (("clipped", "counterfactual"), ("smaller-rate", "smaller_rate")):
        for rerun in trace["fit"][key]["runs"]:
            [[step, final]] = logs[f"raw_scale_high_lr.py/fit_line22/seed{rerun['seed']}/{variant}"]["final_loss"]
            assert step == last
            same([[0, final]], [rerun["final"] if rerun["finite"] else math.nan])
    assert any(math.isnan(v) for _, v in logs["raw_scale_high_lr.py/fit_line22/seed0/user"]["loss"])
    assert set(logs["plugins"].values()) == {"scalars"}  # what TensorBoard's scalars dashboard reads

"""Dynamic mode end to end: one `elbolint --dynamic=all` run over fixtures/dynamic (real TF/TFP in
forked children), then one assertion per scenario on the codes observed and their evidence.

Codes observed for a file = its dynamic-only rows plus the codes folded into confirmed static findings,
so these tests do not depend on which static rules exist yet."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.dynamic

DYNAMIC = FIXTURES / "dynamic"
TRULY_FIXED = FIXTURES / "seed" / "example3_truly_fixed.py"
TIMEOUT = 10


@pytest.fixture(scope="module")
def run():
    pytest.importorskip("tensorflow_probability")
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(DYNAMIC), str(TRULY_FIXED), "--dynamic=all", "-j", "2",
         "--dynamic-timeout", str(TIMEOUT), "--dynamic-memory", "1024", "--output-format", "json",
         "--exit-zero"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    seconds = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr and "Traceback" not in completed.stdout
    rows = json.loads(completed.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    return rows, seconds


def observed(rows, name):
    """{code: [evidence or message, ...]} for one fixture file."""
    found: dict[str, list] = {}
    for row in rows:
        if not row["filename"].endswith("/" + name):
            continue
        dynamic = row.get("dynamic") or {}
        if dynamic.get("status") == "observed":
            found.setdefault(row["code"], []).append(row["message"])
        elif dynamic.get("status") == "confirmed":
            for finding in dynamic["evidence"]["findings"]:
                found.setdefault(finding["code"], []).append(finding["message"])
    return found


def statuses(rows, name):
    return {row["code"]: row["dynamic"]["status"] for row in rows
            if row["filename"].endswith("/" + name) and row.get("dynamic") and row["code"] < "ELB100"}


def test_raw_scale_goes_nonpositive_then_nan(run):
    rows, _ = run
    found = observed(rows, "raw_scale_high_lr.py")
    assert "ELB104" in found and "ELB101" in found
    assert "`scale` of Normal reached -" in found["ELB104"][0]
    assert found["ELB101"][0].startswith("loss NaN from step ")
    assert statuses(rows, "raw_scale_high_lr.py")["ELB001"] == "confirmed"


def test_custom_training_loop_is_recorded(run):
    """A GradientTape loop with monte_carlo_variational_loss and apply_gradients: the script's own steps."""
    rows, _ = run
    name = "custom_loop_raw_scale.py"
    found = observed(rows, name)
    assert "ELB104" in found and "ELB101" in found
    assert found["ELB104"][0].startswith("`scale` of Normal (`raw_scale`) reached -")  # the user's name
    assert found["ELB101"][0].startswith("loss NaN from step ")
    assert statuses(rows, name)["ELB001"] == "confirmed"
    elb001 = next(r for r in rows if r["filename"].endswith("/" + name) and r["code"] == "ELB001")
    assert elb001["dynamic"]["trace"]["source"] == "loop"


def test_wrong_signed_loop_objective_diverges(run):
    """`loss = -monte_carlo_variational_loss(...)` maximises the negative ELBO: the loss rises, finitely."""
    rows, _ = run
    found = observed(rows, "custom_loop_wrong_sign.py")
    assert "ELB103" in found and "ELB101" not in found
    assert found["ELB103"][0].startswith("loss rose from ")
    assert "(medians of the first and last quarter of 50 steps)" in found["ELB103"][0]


def test_loc_at_100_gives_huge_initial_loss(run):
    rows, _ = run
    found = observed(rows, "seed_loc_100.py")
    assert "ELB102" in found
    assert "the loss a default mean-field surrogate starts at" in found["ELB102"][0]


def test_eager_softplus_leaves_variable_untrained(run):
    rows, _ = run
    found = observed(rows, "eager_softplus.py")
    assert "ELB105" in found and "`raw_scale`" in found["ELB105"][0]
    assert "ELB101" not in found and "ELB104" not in found


def test_seed_lambda_fails_with_tfps_message(run):
    rows, _ = run
    found = observed(rows, "seed_lambda_inputs.py")
    assert "ELB100" in found
    assert "Too few inputs provided to 2-th distribution maker" in found["ELB100"][0]
    assert "expected: 3, saw: 2" in found["ELB100"][0]
    static = statuses(rows, "seed_lambda_inputs.py")
    if "ELB005" in static:  # the static rule that predicts it
        assert static["ELB005"] == "confirmed"


def test_missing_independent_gives_log_prob_shape(run):
    rows, _ = run
    found = observed(rows, "missing_independent.py")
    assert "ELB106" in found and "shape [30]" in found["ELB106"][0]


def test_truly_fixed_example_is_silent(run):
    rows, _ = run
    assert [r for r in rows if r["filename"].endswith("/example3_truly_fixed.py")] == []


def test_probe_and_pairing(run):
    rows, _ = run
    assert "ELB104" in observed(rows, "probe_raw_scale.py")
    assert "ELB104" in observed(rows, "pair_module_objects.py")


@pytest.mark.parametrize("name, reason", [
    ("sandbox_hang.py", f"timeout after {TIMEOUT} s"),
    ("sandbox_allocate.py", "memory limit exceeded (1024 MiB per file)"),
    ("sandbox_os_exit.py", "exited with code 3"),
    ("sandbox_segfault.py", "killed by signal SIGSEGV"),
    ("sandbox_flood.py", "output truncated"),
    ("sandbox_sys_exit.py", "sys.exit(2)"),
])
def test_sandbox_failures_are_elb100_with_reason(run, name, reason):
    rows, _ = run
    found = observed(rows, name)
    assert list(found) == ["ELB100"] and reason in found["ELB100"][0]


def test_a_timeout_is_reported_at_the_line_the_program_was_running(run):
    """The sandbox asks a timed-out model for its stacks before killing it: the row is at the endless
    loop (`while True:` at line 4 of the fixture, or its body at line 5), not at line 1."""
    rows, _ = run
    [row] = [r for r in rows if r["filename"].endswith("/sandbox_hang.py")]
    line = row["location"]["row"]
    assert row["code"] == "ELB100" and line in (4, 5)
    assert f"timeout after {TIMEOUT} s, running line {line} (the model did not finish" in row["message"]


# ---------------------------------------------------------------- models without a fit
def test_jds_without_fit_is_confirmed_by_sampling(run):
    """The snippet runs natively (it never samples its model); sampling it confirms ELB005 with TFP's
    own message, and never becomes an ELB100 row of its own."""
    rows, _ = run
    name = "jds_no_fit_lambda_args.py"
    mine = [r for r in rows if r["filename"].endswith("/" + name)]
    assert statuses(rows, name) == {"ELB005": "confirmed"}
    assert [r["code"] for r in mine] == ["ELB005"]  # no ELB100 row: the program runs natively
    dynamic = mine[0]["dynamic"]
    assert dynamic["summary"].startswith("sampling `model` fails: ValueError:")
    assert "Too few inputs provided to 2-th distribution maker" in dynamic["summary"]
    assert dynamic["trace"]["source"] == "sample"


def test_builder_model_without_fit_gives_log_prob_shape(run):
    rows, _ = run
    name = "jds_no_fit_missing_independent.py"
    assert statuses(rows, name) == {"ELB006": "confirmed"}
    found = observed(rows, name)
    assert list(found) == ["ELB106"]
    assert "returned by `make_model()` has shape [30]" in found["ELB106"][0]
    assert "without a fit" in found["ELB106"][0]


def test_clean_jds_without_fit_stays_clean(run):
    rows, _ = run
    assert [r for r in rows if r["filename"].endswith("/jds_no_fit_clean.py")] == []


def test_tfp_layers_model_runs_with_tf_keras_and_stays_clean(run):
    """The DenseFlipout BNN is not an ELB100 ("Only instances of `keras.Layer` can be
    added"); run with tf-keras as `tf.keras`, as TFP documents, it is clean."""
    rows, _ = run
    assert [r for r in rows if r["filename"].endswith("/keras_dense_flipout.py")] == []


def test_without_tensorflow_one_install_hint_and_no_error_rows(tmp_path):
    """An interpreter without TF: one hint on stderr, findings not-run, no ELB100 per file; and one
    progress line per model when stderr is not a terminal (CI logs)."""
    import venv

    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    python = bare / "bin" / "python"
    files = [str(FIXTURES / "dynamic" / name) for name in ("probe_raw_scale.py", "eager_softplus.py")]
    result = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--python", str(python),
                             "--output-format", "concise", *files], capture_output=True, text=True, timeout=120)
    assert "ELB100" not in result.stdout
    assert result.stderr.count("pip install -e '.[dynamic]'") == 1
    assert result.stderr.count("elbolint: dynamic 1/2 ") == result.stderr.count("elbolint: dynamic 2/2 ") == 1
    codes = sorted(line.split(": ")[1].split()[0] for line in result.stdout.splitlines() if ": ELB" in line)
    assert codes == ["ELB001", "ELB004"]

"""The command line: exit codes, output formats, config errors, noqa, stdin, and a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, ROOT
from elbolint.cli import main

BAD = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))
"""
GOOD = """\
import tensorflow_probability as tfp

tfd = tfp.distributions
q = tfd.Normal(loc=0.0, scale=1.0)
"""


def run(args, cwd: Path, input=None):
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, args, input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    return tmp_path


def test_findings_exit_1_with_ruff_style_lines(project):
    result = run(["bad.py"], project)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "bad.py:5:31: ELB001 [*] [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; "
        "optimisation can push it to <= 0 (NaN ELBO). Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())"
    ]


def test_clean_file_exits_0(project):
    result = run(["good.py"], project)
    assert result.exit_code == 0
    assert result.stdout == ""


def test_check_subcommand_and_directory_default(project):
    assert run(["check", "."], project).exit_code == 1
    assert run([], project).exit_code == 1


def test_exit_zero(project):
    result = run(["--exit-zero", "bad.py"], project)
    assert result.exit_code == 0
    assert "ELB001" in result.stdout


def test_json_output_has_ruff_fields(project):
    result = run(["--output-format", "json", "bad.py", "good.py"], project)
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    row = rows[0]
    assert {"code", "message", "filename", "location", "end_location", "fix", "noqa_row",
            "name", "severity", "cell"} <= set(row)
    # ruff's `url` is left out: elbolint has no published documentation address to point at
    assert "url" not in row
    assert row["code"] == "ELB001" and row["name"] == "unconstrained-scale" and row["severity"] == "error"
    assert row["location"] == {"row": 5, "column": 31}
    assert row["end_location"] == {"row": 5, "column": 47}
    assert row["noqa_row"] == 5
    assert row["filename"] == "bad.py"
    # The file has no `tfb` alias, so the fix spells the bijector through `tfp`.
    assert row["fix"]["edits"][0]["content"] == "tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus())"


def test_select_and_ignore(project):
    assert run(["--ignore", "ELB001", "bad.py"], project).exit_code == 0
    assert run(["--select", "ELB003", "bad.py"], project).exit_code == 0
    assert run(["--select", "ELB0", "bad.py"], project).exit_code == 1


def test_unknown_code_is_a_usage_error(project):
    result = run(["--select", "ELB777", "bad.py"], project)
    assert result.exit_code == 2
    assert "unknown rule code" in result.output


@pytest.mark.parametrize(
    "table, message",
    [
        ('[tool.elbolint]\nselekt = ["ELB001"]\n', "unknown key 'selekt'"),
        ('[tool.elbolint]\nignore = ["XYZ1"]\n', "unknown rule code"),
        ('[tool.elbolint.extreme-initializer]\nthreshhold = 5.0\n', "unknown option 'threshhold'"),
        ('[tool.elbolint.extreme-initializer]\nthreshold = "big"\n', "must be float"),
        ('[tool.elbolint\n', "invalid TOML"),
    ],
)
def test_config_errors_exit_2(project, table, message):
    (project / "pyproject.toml").write_text(table)
    result = run(["bad.py"], project)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_config_is_found_walking_up_and_applied(project):
    (project / "pyproject.toml").write_text('[tool.elbolint]\nignore = ["ELB001"]\n')
    sub = project / "pkg" / "models"
    sub.mkdir(parents=True)
    (sub / "bad.py").write_text(BAD)
    assert run(["pkg/models/bad.py"], project).exit_code == 0
    assert run(["pkg"], project).exit_code == 0


def test_rule_options_from_config(tmp_path):
    (tmp_path / "init.py").write_text(
        "import tensorflow as tf\ninitial_state = [tf.constant([150.0])]\n"
    )
    assert run(["init.py"], tmp_path).exit_code == 1
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint.extreme-initializer]\nthreshold = 1000\n')
    assert run(["init.py"], tmp_path).exit_code == 0


def test_per_file_ignores(project):
    (project / "pyproject.toml").write_text('[tool.elbolint]\nper-file-ignores = { "bad.py" = ["ELB001"] }\n')
    assert run(["bad.py"], project).exit_code == 0


def test_explicit_config_flag(project):
    (project / "strict.toml").write_text('[tool.elbolint]\nignore = ["ELB001"]\n')
    assert run(["--config", "strict.toml", "bad.py"], project).exit_code == 0
    result = run(["--config", "missing.toml", "bad.py"], project)
    assert result.exit_code == 2 and "config file not found" in result.output


def test_noqa(project):
    lines = BAD.splitlines()
    for suffix, expected in [("  # noqa: ELB001", 0), ("  # noqa", 0), ("  # noqa: ELB002, ELB003", 1),
                             ("  # NOQA:ELB003,ELB001", 0)]:
        (project / "noqa.py").write_text("\n".join(lines[:-1] + [lines[-1] + suffix]) + "\n")
        assert run(["noqa.py"], project).exit_code == expected, suffix


def test_syntax_error_next_to_good_file(project):
    (project / "broken.py").write_text("import tensorflow as tf\ndef f(:\n    pass\n")
    result = run(["broken.py", "bad.py", "good.py"], project)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bad.py:5:31: ELB001")
    grammar = f"Python {sys.version_info.major}.{sys.version_info.minor} grammar"
    assert lines[1] == f"broken.py:2:7: ELB000 [syntax-error] SyntaxError: invalid syntax ({grammar})"


def test_missing_path_is_reported_and_others_still_linted(project):
    result = run(["nope.py", "bad.py"], project)
    assert result.exit_code == 1
    assert "nope.py:1:1: ELB900 [io-error] No such file or directory" in result.stdout
    assert "bad.py:5:31: ELB001" in result.stdout


def test_stdin_filename(project):
    result = run(["--stdin-filename", "models/q.py"], project, input=BAD)
    assert result.exit_code == 1
    assert result.stdout.startswith("models/q.py:5:31: ELB001")
    assert run(["--stdin-filename", "q.py"], project, input=GOOD).exit_code == 0


def test_rule_explanation():
    runner = CliRunner()
    result = runner.invoke(main, ["rule", "ELB001"])
    assert result.exit_code == 0
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert section in result.output
    assert runner.invoke(main, ["rule", "unconstrained-scale"]).output == result.output
    assert runner.invoke(main, ["rule", "ELB777"]).exit_code == 2
    listing = runner.invoke(main, ["rule", "--all"]).output
    assert "ELB001" in listing and "ELB003" in listing


def test_real_subprocess_on_fixtures():
    """The installed console script and `python -m elbolint`, as CI and editors run them."""
    seed = FIXTURES / "seed"
    process = subprocess.run(
        [sys.executable, "-m", "elbolint", "--output-format", "json", str(seed)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert process.returncode == 1, process.stderr
    rows = json.loads(process.stdout)
    example1 = [(r["location"]["row"], r["code"]) for r in rows
                if r["filename"].endswith("example1_poor_initialisation.py")]
    assert (18, "ELB002") in example1 and (21, "ELB001") in example1 and (22, "ELB001") in example1
    assert (25, "ELB003") in example1
    assert not [r for r in rows if r["filename"].endswith("example3_truly_fixed.py")]
    version = subprocess.run(["elbolint", "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "elbolint" in version.stdout


def test_directory_with_gitignore(project):
    (project / ".git").mkdir()
    (project / "generated").mkdir()
    (project / "generated" / "bad_copy.py").write_text(BAD)
    (project / "bad.py").unlink()
    (project / ".gitignore").write_text("generated/\n")
    assert run(["."], project).exit_code == 0
    assert run(["--no-respect-gitignore", "."], project).exit_code == 1
    # An explicitly named file is linted even when ignored.
    assert run(["generated/bad_copy.py"], project).exit_code == 1


def test_many_files_through_the_process_pool(tmp_path):
    for index in range(40):
        (tmp_path / f"m{index:02d}.py").write_text(BAD if index % 2 else GOOD)
    serial = run(["-j", "1", "."], tmp_path)
    parallel = run(["-j", "2", "."], tmp_path)
    assert serial.exit_code == parallel.exit_code == 1
    assert serial.stdout == parallel.stdout
    assert len(parallel.stdout.splitlines()) == 20


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    import signal
    import time

    body = BAD + "".join(f"q{i} = tfd.Normal(loc=0.0, scale=tf.Variable({i}.0 + 1.0))\n" for i in range(150))
    for index in range(600):
        (tmp_path / f"m{index:03d}.py").write_text(body)
    process = subprocess.Popen([sys.executable, "-m", "elbolint", "-j", "2", "-q", "."], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "elbolint: interrupted" in stderr
    assert "Traceback" not in stderr


def test_dynamic_code_explanation_lists_the_rules_it_confirms():
    output = CliRunner().invoke(main, ["rule", "ELB104"]).output
    assert output.startswith("# ELB104 [nonpositive-scale] (error)")
    assert "- ELB001 [unconstrained-scale]" in output
    assert "[tool.elbolint.dynamic]" in output

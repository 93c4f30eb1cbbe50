"""Configuration is validated on every run (dynamic settings included), errors are one line with
exit 2, and --force-exclude / force-exclude keep excludes in force for files named explicitly."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from elbolint.cli import main

BAD = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
       "q = tfp.distributions.Normal(0., tf.Variable(1.))\n")


def run(args, cwd):
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("table, message", [
    ("stepz = 3", "[tool.elbolint.dynamic]: unknown key 'stepz'"),
    ("steps = -5", "steps and timeout must be positive"),
    ("scope = 'some'", "scope must be \"flagged\" or \"all\""),
])
def test_dynamic_settings_are_validated_without_dynamic(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.elbolint.dynamic]\n{table}\n")
    (tmp_path / "model.py").write_text(BAD)
    result = run(["model.py"], tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"elbolint: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message in result.stderr and "Usage:" not in result.stderr


def test_force_exclude_applies_excludes_to_explicit_files(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint]\nextend-exclude = ["legacy/", "gen_*.py"]\n')
    for name in ("legacy/deep/old.py", "gen_model.py", "model.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BAD)
    named = ["legacy/deep/old.py", "gen_model.py", "model.py"]
    assert run(["-q", *named], tmp_path).stdout.count("ELB001") == 3  # explicit files: always linted
    forced = run(["--force-exclude", *named], tmp_path)
    assert [line.split(":")[0] for line in forced.stdout.splitlines()] == ["model.py"]
    assert run(["--force-exclude", "--show-files", "legacy", "legacy/", "./legacy/deep"], tmp_path).stdout == ""
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint]\nextend-exclude = ["legacy/"]\nforce-exclude = true\n')
    assert [line.split(":")[0] for line in run(named, tmp_path).stdout.splitlines()] == ["gen_model.py", "model.py"]


def test_a_tree_without_python_files_warns_and_exits_0(tmp_path):
    (tmp_path / "notes.txt").write_text("tensorflow")
    result = run(["."], tmp_path)
    assert result.exit_code == 0
    assert "elbolint: warning: no Python files found under the given paths" in result.stderr


def test_progress_is_shown_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    import elbolint.cli as cli

    progress = cli._Progress()
    for done in range(1, 61):
        progress(done, 60)
    progress.clear()
    err = capsys.readouterr().err
    assert "\relbolint: 60/60 files" in err and err.endswith("\r")
    assert cli._is_terminal(open(os.devnull)) is False


NOQA = (
    "import tensorflow as tf\nimport tensorflow_probability as tfp\n"
    "q = tfp.distributions.Normal(0., tf.Variable(1.))  # noqa: ELB001\n"
    "r = tfp.distributions.Normal(0., 1.)  # noqa: ELB001, E501\n"
    "s = tfp.distributions.Normal(0., 1.)  # noqa\n"
)


def test_unused_noqa_is_reported_for_elb_codes_only(tmp_path):
    (tmp_path / "m.py").write_text(NOQA)
    result = run(["--output-format", "concise", "m.py"], tmp_path)
    assert result.stdout.splitlines() == [
        "m.py:4:39: ELB902 [unused-noqa] unused noqa: no ELB001 finding on this line"]
    assert result.exit_code == 1
    assert run(["--ignore", "ELB902", "m.py"], tmp_path).exit_code == 0


@pytest.mark.parametrize("directive, left", [
    ("# elbolint: noqa", []),
    ("# elbolint: noqa: ELB001", []),
    ("  #  ELBOLINT: NOQA: ELB003", ["ELB001"]),
    ("x = 1  # elbolint: noqa", ["ELB001"]),  # not on a line of its own: not a file-level directive
])
def test_file_level_noqa(tmp_path, directive, left):
    (tmp_path / "m.py").write_text(directive + "\n" + BAD)
    result = run(["--output-format", "json", "m.py"], tmp_path)
    import json

    assert [d["code"] for d in json.loads(result.stdout)] == left


def test_file_level_noqa_cannot_hide_a_syntax_error(tmp_path):
    (tmp_path / "m.py").write_text("# elbolint: noqa\nimport tensorflow\nx = (\n")
    assert "ELB000" in run(["m.py"], tmp_path).stdout


def test_fix_feedback_and_fixable_marker(tmp_path):
    (tmp_path / "m.py").write_text(BAD)
    result = run(["m.py"], tmp_path)
    assert result.stdout.startswith("m.py:3:34: ELB001 [*] [unconstrained-scale] ")
    assert "[*] 1 fixable with `elbolint --fix`." in result.stderr
    fixed = run(["--fix", "m.py"], tmp_path)
    assert fixed.exit_code == 0 and "Fixed 1 finding (0 remaining)." in fixed.stderr


def test_statistics_show_files_and_show_settings(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nignore = ['ELB002']\nmax-seconds-per-file = 9\n")
    (tmp_path / "a.py").write_text(BAD)
    (tmp_path / "b.py").write_text(BAD.replace("q =", "r ="))
    (tmp_path / "notes.txt").write_text("x")
    stats = run(["--statistics", "."], tmp_path)
    assert stats.stdout == "2\tELB001\t[*] unconstrained-scale (2 fixable)\n" and stats.exit_code == 1
    assert run(["--show-files", "."], tmp_path).stdout.splitlines() == ["a.py", "b.py"]
    settings = run(["--show-settings", "."], tmp_path).stdout
    assert f"config file           {tmp_path / 'pyproject.toml'}" in settings
    assert "ignore                ['ELB002']" in settings and "max-seconds-per-file  9.0" in settings
    assert "ELB002" not in settings.split("enabled codes", 1)[1].splitlines()[0]


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path, monkeypatch):
    import elbolint.cli as cli

    (tmp_path / "m.py").write_text(BAD)
    assert "\x1b[" not in run(["m.py"], tmp_path).stdout  # not a terminal
    monkeypatch.setattr(cli, "_is_terminal", lambda stream: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[1;31mELB001\x1b[0m" in run(["m.py"], tmp_path).stdout
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in run(["m.py"], tmp_path).stdout


OUTPUT_SCALE = (
    "import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\ntfpl = tfp.layers\n"
    "model = tf.keras.Sequential([tf.keras.layers.Dense(2),\n"
    "    tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=t[..., 1:]))])\n"
)


def test_unsafe_fixes_only_with_the_flag(tmp_path):
    import json

    (tmp_path / "m.py").write_text(OUTPUT_SCALE)
    report = run(["--output-format", "json", "m.py"], tmp_path)
    [finding] = [d for d in json.loads(report.stdout) if d["code"] == "ELB013"]
    assert finding["fix"]["applicability"] == "unsafe"
    text = run(["m.py"], tmp_path)
    assert "ELB013 [*]" not in text.stdout and "1 more fix available with `--fix --unsafe-fixes`." in text.stderr
    run(["--fix", "m.py"], tmp_path)
    assert (tmp_path / "m.py").read_text() == OUTPUT_SCALE  # not applied without the flag
    fixed = run(["--fix", "--unsafe-fixes", "m.py"], tmp_path)
    assert "softplus" in (tmp_path / "m.py").read_text() and "Fixed 1 finding" in fixed.stderr


def test_unfixable_codes_are_neither_offered_nor_applied(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nunfixable = ['ELB001']\n")
    (tmp_path / "m.py").write_text(BAD)
    result = run(["--fix", "m.py"], tmp_path)
    assert (tmp_path / "m.py").read_text() == BAD
    assert "ELB001 [*]" not in result.stdout and "Fixed 0 findings (1 remaining)." in result.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\n")
    assert run(["--fix", "--unfixable", "ELB0", "m.py"], tmp_path).exit_code == 1
    assert (tmp_path / "m.py").read_text() == BAD
    run(["--fix", "m.py"], tmp_path)
    assert "TransformedVariable" in (tmp_path / "m.py").read_text()


@pytest.mark.parametrize("args, message", [
    (["--bogus", "."], "elbolint: error: No such option '--bogus'"),
    (["--output-format", "nope", "."], "elbolint: error: Invalid value for '--output-format'"),
    (["-j", "0", "."], "elbolint: error: Invalid value for '-j' / '--jobs'"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, message):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "elbolint", *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert "Usage:" not in result.stderr


def test_report_file_errors_statistics_json_and_config_code_errors(tmp_path):
    import json

    (tmp_path / "m.py").write_text(BAD)
    unwritable = run(["-o", str(tmp_path / "missing" / "x.json"), "m.py"], tmp_path)
    assert unwritable.exit_code == 2 and unwritable.stderr.startswith("elbolint: error: cannot write the report to ")
    stats = json.loads(run(["--statistics", "--output-format", "json", "m.py"], tmp_path).stdout)
    assert stats == [{"code": "ELB001", "name": "unconstrained-scale", "count": 1, "fixable": True, "fixable_count": 1}]
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nignore = ['ELB0001']\n")
    bad_code = run(["m.py"], tmp_path)
    assert bad_code.exit_code == 2 and "pyproject.toml: [tool.elbolint]: unknown rule code" in bad_code.stderr


def test_an_exclude_pattern_that_cannot_be_compiled_is_a_clear_error_and_a_gitignore_line_is_skipped(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint]\nexclude = ["[z-a]"]\n')
    (tmp_path / "bad.py").write_text(BAD)
    result = run(["check", "."], tmp_path)
    assert result.exit_code == 2
    assert "invalid exclude pattern '[z-a]': bad character range z-a" in result.stderr
    (tmp_path / "pyproject.toml").unlink()
    result = run(["check", "--extend-exclude", "[b-a]", "."], tmp_path)
    assert result.exit_code == 2 and "invalid exclude pattern '[b-a]'" in result.stderr
    (tmp_path / ".gitignore").write_text("[z-a]\nbad.py\n")  # git skips the first line; the second still ignores
    (tmp_path / "other.py").write_text(BAD)
    result = run(["check", "--output-format", "concise", "."], tmp_path)
    assert result.exit_code == 1 and "other.py" in result.stdout and "bad.py" not in result.stdout

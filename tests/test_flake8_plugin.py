"""The flake8 plugin, tested by running flake8 itself: `flake8 --select ELB` reports what
`elbolint` reports (same lines and columns, same default rules, same configuration and noqa)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

pytest.importorskip("flake8")

BAD = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))
p = tfd.Normal(loc=0.0, scale=tf.Variable(2.0))
"""
GOOD = """\
import tensorflow_probability as tfp

tfd = tfp.distributions
q = tfd.Normal(loc=0.0, scale=1.0)
"""
MESSAGE = ("`scale` of tfd.Normal is a raw tf.Variable; optimisation can push it to <= 0 (NaN ELBO). "
           "Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())")


def flake8(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flake8", "--isolated", *args], cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=300)


def test_the_entry_point_is_installed(tmp_path):
    version = flake8(tmp_path, "--version")
    assert "elbolint: " in version.stdout, "re-run `pip install -e .` to install the flake8.extension entry point"


def test_buggy_file_reports_exact_lines(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    result = flake8(tmp_path, "--select", "ELB", "bad.py")
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"bad.py:5:31: ELB001 {MESSAGE}",
        f"bad.py:6:31: ELB001 {MESSAGE}",
    ]


def test_clean_file_reports_nothing(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    result = flake8(tmp_path, "--select", "ELB", "good.py")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_noqa_works_through_flake8(tmp_path):
    (tmp_path / "bad.py").write_text(BAD.replace("tf.Variable(1.0))", "tf.Variable(1.0))  # noqa: ELB001"))
    result = flake8(tmp_path, "--select", "ELB", "bad.py")
    assert result.stdout.splitlines() == [f"bad.py:6:31: ELB001 {MESSAGE}"]
    (tmp_path / "other.py").write_text(BAD.replace("tf.Variable(1.0))", "tf.Variable(1.0))  # noqa: ELB003"))
    other = flake8(tmp_path, "--select", "ELB001", "other.py").stdout.splitlines()
    assert other == [f"other.py:5:31: ELB001 {MESSAGE}", f"other.py:6:31: ELB001 {MESSAGE}"]


def test_stdin_with_a_display_name(tmp_path):
    result = flake8(tmp_path, "--select", "ELB", "--stdin-display-name", "model.py", "-", input=BAD)
    assert result.stdout.splitlines() == [f"model.py:5:31: ELB001 {MESSAGE}", f"model.py:6:31: ELB001 {MESSAGE}"]


def _positions(lines: list[str]) -> set[tuple[str, int, int, str]]:
    pattern = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>ELB\d{3}) ")
    found = set()
    for line in lines:
        match = pattern.match(line)
        assert match, line
        found.add((match["path"], int(match["line"]), int(match["col"]), match["code"]))
    return found


def test_same_findings_as_the_cli(tmp_path):
    """Seed fixtures (several rules, several findings) and an opt-in rule's fixture (ELB012, which
    neither reports by default): flake8 and the CLI agree on every path, line, column and code."""
    for source in [*sorted((FIXTURES / "seed").glob("*.py")), FIXTURES / "ELB012" / "bad_deferred_tensor.py"]:
        shutil.copy(source, tmp_path / source.name)
    names = sorted(p.name for p in tmp_path.glob("*.py"))
    ours = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "-q", *names], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    theirs = flake8(tmp_path, "--select", "ELB", *names)
    expected = _positions(ours.stdout.splitlines())
    assert len(expected) >= 5 and not any(code == "ELB012" for *_, code in expected)
    assert _positions(theirs.stdout.splitlines()) == expected


def test_configuration_is_respected(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    shutil.copy(FIXTURES / "ELB012" / "bad_deferred_tensor.py", tmp_path / "exp.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.elbolint]\nextend-select = ["ELB012"]\nper-file-ignores = { "bad.py" = ["ELB001"] }\n')
    result = flake8(tmp_path, "--select", "ELB", "bad.py", "exp.py")
    codes = {line.split()[1] for line in result.stdout.splitlines()}
    assert codes == {"ELB012"}, result.stdout + result.stderr


def test_a_file_without_tensorflow_costs_nothing(tmp_path):
    """flake8 (in this process, one file) runs the plugin, which returns before importing LibCST,
    the rules or the configuration; a file with TF does import them (the check is not vacuous)."""
    (tmp_path / "plain.py").write_text("import numpy as np\n\nx = np.zeros(3)\n" * 200)
    (tmp_path / "bad.py").write_text(BAD)
    probe = (
        "import sys\n"
        "from flake8.main.cli import main\n"
        "code = main(['--isolated', '-j', '1', '--select', 'ELB', sys.argv[1]])\n"
        "print(code, 'elbolint.flake8_plugin' in sys.modules, 'libcst' in sys.modules,"
        " 'elbolint.config' in sys.modules)\n"
    )
    plain = subprocess.run([sys.executable, "-c", probe, "plain.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert plain.stdout.split() == ["0", "True", "False", "False"], plain.stderr
    bad = subprocess.run([sys.executable, "-c", probe, "bad.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert bad.stdout.splitlines()[-1].split() == ["1", "True", "True", "True"], bad.stderr


def test_the_plugin_prefilter_is_the_linters():
    from elbolint.flake8_plugin import PREFILTER
    from elbolint.linter import _PREFILTER

    assert PREFILTER.pattern == _PREFILTER.pattern


def test_latin1_cookie_keeps_positions(tmp_path):
    source = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + BAD
    (tmp_path / "old.py").write_bytes(source.encode("latin-1"))
    result = flake8(tmp_path, "--select", "ELB", "old.py")
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == ["old.py:7:31", "old.py:8:31"]

"""--fix: node replacements applied by one transformer, written atomically, never corrupting a file."""

from __future__ import annotations

import json
import os

import libcst as cst
from click.testing import CliRunner

from elbolint import fixes
from elbolint.cli import main

SOURCE = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(0.5, name="s"))
optimizer = tf.optimizers.Adam(learning_rate=0.01)
losses = tfp.vi.fit_surrogate_posterior(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate, optimizer, num_steps=10)
"""

FIXED = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tfp.util.TransformedVariable(0.5, tfb.Softplus(), name="s"))
optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)
losses = tfp.vi.fit_surrogate_posterior(lambda z: tfd.Normal(0., 1.).log_prob(z), surrogate, optimizer, num_steps=10)
"""


def invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_fix_rewrites_and_reports_nothing_left(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(SOURCE)
    path.chmod(0o640)
    result = invoke(["--fix", "model.py"], tmp_path)
    assert result.exit_code == 0, result.output
    assert path.read_text() == FIXED
    assert path.stat().st_mode & 0o777 == 0o640
    # no temporary files left
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".elbolint_cache") == ["model.py"]
    # Idempotent: a second run changes nothing.
    assert invoke(["--fix", "model.py"], tmp_path).exit_code == 0
    assert path.read_text() == FIXED


def test_unfixable_findings_remain_and_file_is_untouched(tmp_path):
    path = tmp_path / "model.py"
    source = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
              "v = tf.Variable(-1.0)\nq = tfp.distributions.Normal(0., v)\n")
    path.write_text(source)
    result = invoke(["--fix", "model.py"], tmp_path)
    assert result.exit_code == 1
    assert "ELB001" in result.stdout
    assert path.read_text() == source


def test_failed_write_leaves_the_original_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text(SOURCE)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixes.os, "replace", refuse)
    result = invoke(["--fix", "model.py"], tmp_path)
    assert result.exit_code == 1
    assert "ELB900 [io-error] cannot write fixes: No space left on device" in result.stdout
    assert path.read_text() == SOURCE
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".elbolint_cache") == ["model.py"]


def test_fix_keeps_the_file_encoding(tmp_path):
    path = tmp_path / "latin.py"
    data = ("# -*- coding: latin-1 -*-\n# modèle\n" + SOURCE).encode("latin-1")
    path.write_bytes(data)
    assert invoke(["--fix", "latin.py"], tmp_path).exit_code == 0
    assert path.read_bytes() == ("# -*- coding: latin-1 -*-\n# modèle\n" + FIXED).encode("latin-1")


def test_a_fix_that_would_not_parse_is_not_applied():
    module = cst.parse_module("x = f(1)\n")
    call = module.body[0].body[0].value

    class Broken:
        fix = type("F", (), {"node": call, "replacement": cst.Name("lambda")})()

    assert fixes.fixed_module(module, [Broken()]) is None


def test_stdin_fix_prints_the_fixed_source(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--fix", "--stdin-filename", "m.py"], input=SOURCE, catch_exceptions=False)
    assert result.stdout == FIXED
    assert result.exit_code == 0


def test_diff_prints_the_fixes_and_writes_nothing(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(SOURCE)
    result = invoke(["--diff", "model.py"], tmp_path)
    assert result.exit_code == 1
    assert path.read_text() == SOURCE
    removed = [line[1:] for line in result.stdout.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in result.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert result.stdout.startswith("--- a/model.py\n+++ b/model.py\n")
    assert removed == SOURCE.splitlines()[6:8]
    assert added == FIXED.splitlines()[6:8]
    (tmp_path / "model.py").write_text(FIXED)
    clean = invoke(["--diff", "model.py"], tmp_path)
    assert clean.exit_code == 0 and clean.stdout == ""


def test_no_fix_is_offered_where_it_could_not_work(tmp_path):
    """TransformedVariable(1, Softplus()) is an int32 variable that Softplus rejects: an integer
    initial value keeps its ELB001 finding but gets no fix."""
    path = tmp_path / "model.py"
    source = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
              "q = tfp.distributions.Normal(0., tf.Variable(1))\n"
              "r = tfp.distributions.Normal(0., tf.Variable([1, 2]))\n"
              "s = tfp.distributions.Normal(0., tf.Variable(2, dtype=tf.float32))\n")
    path.write_text(source)
    result = invoke(["--output-format", "json", "--no-cache", "model.py"], tmp_path)
    fixes = [(d["location"]["row"], d["fix"] is not None) for d in json.loads(result.stdout) if d["code"] == "ELB001"]
    assert fixes == [(3, False), (4, False), (5, True)]


def test_clipnorm_goes_on_its_own_line_in_a_call_written_one_argument_per_line(tmp_path):
    """A multi-line optimizer call gets `clipnorm=1.0` on a line of its own, indented like the others;
    the last argument keeps its comment; a one-line call stays on one line."""
    path = tmp_path / "model.py"
    path.write_text(
        "import tensorflow as tf\nimport tensorflow_probability as tfp\n"
        "q = tfp.distributions.Normal(tf.Variable(0.), tfp.util.TransformedVariable(1., tfp.bijectors.Softplus()))\n"
        "opt = tf.optimizers.Adam(\n    learning_rate=0.01,  # tuned\n    beta_1=0.8,  # momentum\n)\n"
        "tfp.vi.fit_surrogate_posterior(lambda z: tfp.distributions.Normal(0., 1.).log_prob(z), q, opt, 10)\n")
    result = CliRunner().invoke(main, ["--no-cache", "--fix", "--select", "ELB003", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text().splitlines()[3:8] == [
        "opt = tf.optimizers.Adam(", "    learning_rate=0.01,  # tuned", "    beta_1=0.8,  # momentum",
        "    clipnorm=1.0,", ")"]

"""The CLI guides: a mistyped config key, rule option, rule code, option, choice or command
gets the nearest correct one ("did you mean"), unknown keys with nothing close are listed by kind,
and `--statistics` tells codes whose findings are all fixable (`[*]`) from those only some of which
are (`[-]`), with the fixable count. Every message is asserted exactly, as the user reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from elbolint.cli import main

BAD = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
       "q = tfp.distributions.Normal(0., tf.Variable(1.))\n")
#: ELB001 twice (both fixable) and ELB003 twice: a Keras optimizer (fixable: clipnorm=1.0) and a TF1
#: optimizer (no fix: TF1 optimizers take no clipnorm).
FIXABLE = """\
import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
q = tfd.Normal(0., tf.Variable(1.))
r = tfd.Normal(0., tf.Variable(2.))
opt = tf.optimizers.Adam(0.1)
losses = tfp.vi.fit_surrogate_posterior(f, q, opt, 10)
"""
TF1 = """\
import tensorflow as tf
import tensorflow_probability as tfp
opt = tf.compat.v1.train.AdamOptimizer(0.1)
q = tfp.distributions.Normal(tf.Variable(0.), 1.)
loss = tfp.vi.monte_carlo_variational_loss(f, q)
train = opt.minimize(loss)
"""


def run(args, cwd):
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        options = [] if args[0] in ("rul", "chek", "rule") else ["--no-cache"]  # a command comes first
        return CliRunner().invoke(main, [*options, *args], catch_exceptions=False)
    finally:
        os.chdir(previous)


def error_of(result) -> str:
    """The one line on stderr, without its `elbolint: error: ` prefix; exit code 2."""
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("elbolint: error: ")
    return line[len("elbolint: error: "):]


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize("toml, message", [
    ('[tool.elbolint]\nignores = ["ELB003"]\n',
     "[tool.elbolint]: unknown key 'ignores'; did you mean `ignore`?"),
    ('[tool.elbolint]\nextend_select = ["ELB012"]\n',
     "[tool.elbolint]: unknown key 'extend_select'; did you mean `extend-select`?"),
    ('[tool.elbolint.extreme-initialiser]\nthreshold = 5.0\n',
     "[tool.elbolint]: unknown key 'extreme-initialiser'; did you mean `extreme-initializer`?"),
    ('[tool.elbolint.ELB002]\nthreshold = 5.0\n',
     "[tool.elbolint]: unknown key 'ELB002'; a rule's options go under its name: did you mean "
     "`[tool.elbolint.extreme-initializer]`?"),
    ('[tool.elbolint]\nthreshold = 5.0\n',
     "[tool.elbolint]: unknown key 'threshold'; it is an option of a rule: put it under "
     "`[tool.elbolint.extreme-initializer]` or `[tool.elbolint.high-learning-rate]`"),
    ('[tool.elbolint.extreme-initializer]\ntreshold = 5.0\n',
     "[tool.elbolint.extreme-initializer]: unknown option 'treshold'; did you mean `threshold`?"),
    ('[tool.elbolint.extreme-initializer]\nlimit = 5.0\n',
     "[tool.elbolint.extreme-initializer]: unknown option 'limit' (known: threshold)"),
    ('[tool.elbolint.dynamic]\nstepz = 3\n',
     "[tool.elbolint.dynamic]: unknown key 'stepz'; did you mean `steps`?"),
    ('[tool.elbolint]\nignore = ["ELB0003"]\n',
     "[tool.elbolint]: unknown rule code or prefix 'ELB0003'; did you mean `ELB003` (missing-gradient-clipping)? "
     "(see `elbolint rule --all`)"),
    ('[tool.elbolint]\nselect = ["unconstrained-scale"]\n',
     "[tool.elbolint]: unknown rule code or prefix 'unconstrained-scale'; did you mean `ELB001` "
     "(unconstrained-scale)? (see `elbolint rule --all`)"),
    ('[tool.elbolint]\nper-file-ignores = { "tests/*" = ["ELB02"] }\n',
     "[tool.elbolint]: per-file-ignores['tests/*']: unknown rule code or prefix 'ELB02'; did you mean `ELB002` "
     "(extreme-initializer)? (see `elbolint rule --all`)"),
    ('[tool.elbolint]\nignore = ["XYZ1"]\n',
     "[tool.elbolint]: unknown rule code or prefix 'XYZ1' (see `elbolint rule --all`)"),
])
def test_config_mistakes_get_the_nearest_key_or_code(tmp_path, toml, message):
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "m.py").write_text(BAD)
    assert error_of(run(["m.py"], tmp_path)) == f"{tmp_path / 'pyproject.toml'}: {message}"


def test_an_unknown_key_with_nothing_close_lists_the_known_keys_by_kind(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\ncolour = true\n")
    (tmp_path / "m.py").write_text(BAD)
    assert error_of(run(["m.py"], tmp_path)) == (
        f"{tmp_path / 'pyproject.toml'}: [tool.elbolint]: unknown key 'colour' ("
        "options: cache-dir, exclude, extend-exclude, extend-select, fixable, force-exclude, ignore, "
        "max-file-size-kib, max-memory-mib, max-seconds-per-file, per-file-ignores, respect-gitignore, select, "
        "unfixable; "
        "tables: [tool.elbolint.dynamic]; "
        "rule sections: [tool.elbolint.extreme-initializer], [tool.elbolint.high-learning-rate])"
    )


# ------------------------------------------------------------------------ command line
@pytest.mark.parametrize("args, message", [
    (["--select", "ELB0001", "m.py"],
     "--select: unknown rule code or prefix 'ELB0001'; did you mean `ELB001` (unconstrained-scale)? "
     "(see `elbolint rule --all`)"),
    (["--ignore", "ELB001,ELB3", "m.py"],
     "--ignore: unknown rule code or prefix 'ELB3'; did you mean `ELB003` (missing-gradient-clipping)? "
     "(see `elbolint rule --all`)"),
    (["--extend-select", "high-learning-rates", "m.py"],
     "--extend-select: unknown rule code or prefix 'high-learning-rates'; did you mean `ELB009` "
     "(high-learning-rate)? (see `elbolint rule --all`)"),
    (["--unfixable", "ELB9999", "m.py"],
     "--unfixable: unknown rule code or prefix 'ELB9999'; did you mean `ELB999` (internal-error)? "
     "(see `elbolint rule --all`)"),
    (["--selct", "ELB001", "m.py"], "No such option '--selct'; did you mean `--select`?"),
    (["--stats", "m.py"], "No such option '--stats'; did you mean `--statistics`?"),
    (["--bogus", "m.py"], "No such option '--bogus'"),
    (["--output-format", "jsn", "m.py"],
     "Invalid value for '--output-format': 'jsn' is not one of 'text', 'concise', 'full', 'json', 'sarif', "
     "'github', 'gitlab', 'junit', 'html'. Did you mean `json`?"),
    (["rul", "ELB001"], "'rul' is neither a file nor a command; did you mean `elbolint rule`?"),
    (["chek", "m.py"], "'chek' is neither a file nor a command; did you mean `elbolint check`?"),
    (["rule", "ELB0001"], "unknown rule 'ELB0001'; did you mean `ELB001` (unconstrained-scale)? "
                          "(see `elbolint rule --all`)"),
    (["rule", "unconstrained-scal"], "unknown rule 'unconstrained-scal'; did you mean `ELB001` "
                                     "(unconstrained-scale)? (see `elbolint rule --all`)"),
])
def test_command_line_mistakes_get_the_nearest_option_code_or_command(tmp_path, args, message):
    (tmp_path / "m.py").write_text(BAD)
    assert error_of(run(args, tmp_path)) == message


def test_unknown_options_are_one_line_through_the_real_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "elbolint", "--selct", "ELB001", "."], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "elbolint: error: No such option '--selct'; did you mean `--select`?\n"


def test_a_missing_file_that_is_no_command_stays_a_finding(tmp_path):
    result = run(["nothing_here.py"], tmp_path)
    assert result.exit_code == 1
    assert result.stdout == "nothing_here.py:1:1: ELB900 [io-error] No such file or directory\n"


# -------------------------------------------------------------------------- statistics
def test_statistics_tell_all_fixable_from_some_fixable(tmp_path):
    (tmp_path / "a.py").write_text(FIXABLE)
    (tmp_path / "b.py").write_text(TF1)
    result = run(["--statistics", "."], tmp_path)
    assert result.exit_code == 1
    assert result.stdout == (
        "2\tELB001\t[*] unconstrained-scale (2 fixable)\n"
        "2\tELB003\t[-] missing-gradient-clipping (1 fixable)\n"
    )
    assert result.stderr.splitlines() == ["Found 4 findings (2 errors, 2 warnings) in 2 files.",
                                          "[*] 3 fixable with `elbolint --fix`."]
    rows = json.loads(run(["--statistics", "--output-format", "json", "."], tmp_path).stdout)
    assert rows == [
        {"code": "ELB001", "name": "unconstrained-scale", "count": 2, "fixable": True, "fixable_count": 2},
        {"code": "ELB003", "name": "missing-gradient-clipping", "count": 2, "fixable": True, "fixable_count": 1},
    ]


def test_statistics_mark_unfixable_codes_and_count_unsafe_fixes_only_when_allowed(tmp_path):
    (tmp_path / "b.py").write_text(TF1)
    assert run(["--statistics", "--select", "ELB003", "b.py"], tmp_path).stdout == \
        "1\tELB003\t[ ] missing-gradient-clipping\n"
    (tmp_path / "m.py").write_text(
        "import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
        "tfpl = tfp.layers\nmodel = tf.keras.Sequential([tf.keras.layers.Dense(2),\n"
        "    tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., :1], scale=t[..., 1:]))])\n")
    safe = run(["--statistics", "--select", "ELB013", "m.py"], tmp_path).stdout
    assert safe == "1\tELB013\t[ ] unconstrained-output-scale\n"
    unsafe = run(["--statistics", "--unsafe-fixes", "--select", "ELB013", "m.py"], tmp_path).stdout
    assert unsafe == "1\tELB013\t[*] unconstrained-output-scale (1 fixable)\n"

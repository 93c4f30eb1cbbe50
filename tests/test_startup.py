"""A run imports only what it needs: no LibCST, no rule module, no package metadata, no worker
machinery and no reporter but the chosen one when the cache or the prefilter answers every file
(elbolint/rule_index.py says why and how). Measured with `python -X importtime`; checked here by
the modules a real run leaves in sys.modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from elbolint import rule_index
from elbolint.cli import main

BAD = """import tensorflow as tf
import tensorflow_probability as tfp
tfd = tfp.distributions
q = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))
"""

#: Runs the CLI in this interpreter, then prints which of the heavy modules it imported.
PROBE = """
import json, sys
from elbolint.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("libcst", "elbolint.rules", "elbolint.rule", "importlib.metadata", "multiprocessing",
         "elbolint.isolation", "elbolint.dynamic", "elbolint.sandbox")
loaded = {name: name in sys.modules for name in heavy}
loaded["reporters"] = sorted(m for m in sys.modules if m.startswith("elbolint.reporters."))
print(json.dumps(loaded), file=sys.stderr)
"""


def probe(args: list[str], cwd: Path, xdg: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_a_run_the_cache_answers_imports_no_rule_and_one_reporter(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "plain.py").write_text("x = 1\n")
    xdg = tmp_path / "xdg"
    first = probe(["check", "-q", "--output-format", "json", "."], tmp_path, xdg)
    assert first["libcst"] and first["elbolint.rules"]  # bad.py was parsed, the cache filled
    assert first["reporters"] == ["elbolint.reporters.json"]
    warm = probe(["check", "-q", "--output-format", "json", "."], tmp_path, xdg)
    assert not any(warm[name] for name in warm if name != "reporters"), warm
    assert warm["reporters"] == ["elbolint.reporters.json"]


def test_a_file_without_tensorflow_needs_no_rule_even_without_the_cache(tmp_path):
    (tmp_path / "plain.py").write_text("import numpy as np\nx = np.zeros(3)\n")
    xdg = tmp_path / "xdg"
    probe(["check", "-q", "--no-cache", "."], tmp_path, xdg)  # makes the rule index
    cold = probe(["check", "-q", "--no-cache", "--select", "ELB0", "."], tmp_path, xdg)
    assert not any(cold[name] for name in cold if name != "reporters"), cold
    assert cold["reporters"] == ["elbolint.reporters.text"]


def test_the_stored_index_is_the_registry_s(tmp_path, monkeypatch):
    from elbolint.registry import ENGINE_CODES, all_rules, extra_codes

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rule_index._stored.cache_clear()
    try:
        built = rule_index._stored()  # written
        [written] = (tmp_path / "elbolint").glob("rules-*.json")
        read = rule_index._read(written)
        assert read == built == rule_index._from_registry()
        assert {e.code for e in read.rules} == {r.code for r in all_rules()}
        assert read.opt_in == {r.code for r in all_rules() if not r.default_enabled}
        assert {e.code for e in read.entries if not e.rule} == {c.code for c in extra_codes()}
        assert {c.code for c in ENGINE_CODES} <= read.defaults
        written.write_text("{not json")  # damaged: ignored, and made again
        assert rule_index._read(written) is None
        rule_index._stored.cache_clear()
        assert rule_index._stored() == built
        assert rule_index._read(written) == built
    finally:
        rule_index._stored.cache_clear()


def test_codes_prefixes_and_names_are_known_without_the_rules(tmp_path):
    (tmp_path / "m.py").write_text(BAD)
    runner = CliRunner()
    for args in (["--select", "ELB0"], ["--ignore", "ELB9"], ["--extend-select", "ALL"]):
        result = runner.invoke(main, ["check", "--no-cache", "-q", *args, str(tmp_path / "m.py")])
        assert result.exit_code in (0, 1), (args, result.output)
    for wrong in ("ELB0001", "unconstrained-scale"):  # a code mistyped, a rule's name: the code is named
        result = runner.invoke(main, ["check", "--no-cache", "--select", wrong, str(tmp_path / "m.py")])
        assert result.exit_code == 2 and "did you mean `ELB001` (unconstrained-scale)" in result.stderr


def test_the_top_level_help_shows_the_lint_options_and_the_commands():
    text = CliRunner().invoke(main, ["--help"]).output
    assert "[PATHS]... | COMMAND [ARGS]..." in text
    lint = text.index("Lint options")
    for option in ("--select", "--fix", "--output-format", "--no-cache", "--statistics", "--jobs"):
        assert text.index(option) > lint, option
    assert text.index("Commands:") > text.index("--jobs")
    assert "check" in text and "rule" in text

"""Triage (elbolint/triage.py): a file in which no selected rule can fire is not parsed with LibCST,
and the findings are exactly those of the full parse (the fixtures, hand-written tricky cases)."""

from __future__ import annotations

import json
from pathlib import Path

import libcst
import pytest

from conftest import FIXTURES
from elbolint import triage
from elbolint.cache import encode
from elbolint.linter import lint_file
from elbolint.registry import ENGINE_CODES, all_rules
from elbolint.rule import Rule

ALL = {r.code for r in all_rules()} | {c.code for c in ENGINE_CODES}
FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".py", ".ipynb"))


def _lint(path: Path, data: bytes | None = None, rules=None, enabled=ALL):
    return lint_file(path, list(rules if rules is not None else all_rules()), {}, set(enabled), data=data)


def _both(monkeypatch, path: Path, data: bytes | None = None, rules=None, enabled=ALL):
    """(findings with triage, findings with the full parse), as the cache stores them (plain values)."""
    monkeypatch.delenv(triage.DISABLE_VARIABLE, raising=False)
    fast = _lint(path, data, rules, enabled)
    monkeypatch.setenv(triage.DISABLE_VARIABLE, "1")
    full = _lint(path, data, rules, enabled)
    monkeypatch.delenv(triage.DISABLE_VARIABLE)
    return (encode(fast.diagnostics), fast.parsed), (encode(full.diagnostics), full.parsed)


def _never_parsed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("triaged-away file parsed with LibCST")

    monkeypatch.setattr(libcst, "parse_module", refuse)


def test_every_rule_declares_what_it_starts_from():
    # not a requirement of the engine (a rule without one always runs), but every built-in rule has one
    assert [r.code for r in all_rules() if r.starts_from is None] == []


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_parity(monkeypatch, path):
    fast, full = _both(monkeypatch, path)
    assert fast == full


TRAINED = """
import tensorflow as tf
{imports}
loc = tf.Variable(0.)
q = {normal}(loc, {scale})
opt = tf.keras.optimizers.Adam(clipnorm=1.0)
for _ in range(10):
    with tf.GradientTape() as tape:
        loss = -q.log_prob(1.)
    opt.apply_gradients(zip(tape.gradient(loss, [loc]), [loc]))
"""

CASES = {
    "module alias": ("import tensorflow_probability as tfp", "tfp.distributions.Normal", "tf.Variable(1.)"),
    "tfd alias": ("import tensorflow_probability as tfp\ntfd = tfp.distributions", "tfd.Normal", "tf.Variable(1.)"),
    "from-import alias": ("from tensorflow_probability import distributions as d", "d.Normal", "tf.Variable(1.)"),
    "member alias": ("from tensorflow_probability.distributions import Normal as N\n"
                     "from tensorflow import Variable as V", "N", "V(1.)"),
    "star import": ("from tensorflow_probability.distributions import *\nfrom tensorflow import *", "Normal",
                    "Variable(1.)"),
    "constant scale": ("import tensorflow_probability as tfp", "tfp.distributions.Normal", "1."),
}


@pytest.mark.parametrize("name", CASES)
def test_aliases_parity(monkeypatch, tmp_path, name):
    imports, normal, scale = CASES[name]
    path = tmp_path / "model.py"
    path.write_text(TRAINED.format(imports=imports, normal=normal, scale=scale))
    fast, full = _both(monkeypatch, path)
    assert fast == full
    codes = {item["code"] for item in json.loads(json.dumps(fast[0]))}
    assert ("ELB001" in codes) == (name != "constant scale")


# Mentions TensorFlow (passes the prefilter) but nothing any rule starts from.
NOTHING = "import tensorflow as tf\n\ndef double(x):\n    return tf.constant(2.) * x\n"


def test_triaged_away_file_is_never_parsed_by_libcst(monkeypatch, tmp_path):
    path = tmp_path / "util.py"
    path.write_text(NOTHING)
    _never_parsed(monkeypatch)
    result = _lint(path)
    assert result.diagnostics == [] and result.parsed and result.module is None


def test_a_file_a_rule_can_fire_in_is_parsed(monkeypatch, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(NOTHING + "v = tf.Variable(1.)\n")
    _never_parsed(monkeypatch)
    with pytest.raises(AssertionError, match="parsed with LibCST"):
        _lint(path)


def test_words_only_in_comments_or_docstrings_do_not_count(monkeypatch, tmp_path):
    path = tmp_path / "util.py"
    path.write_text('"""Never a tf.Variable here."""\n' + NOTHING + "# a tf.Variable would be wrong here\n"
                    "def f():\n    'Variable, Adam, exp.'\n")
    _never_parsed(monkeypatch)
    assert _lint(path).diagnostics == []


def test_words_in_strings_count(monkeypatch, tmp_path):
    path = tmp_path / "util.py"
    path.write_text(NOTHING + 'optimizer = "ADAM"\n')
    _never_parsed(monkeypatch)
    with pytest.raises(AssertionError, match="parsed with LibCST"):
        _lint(path)


def test_code_words():
    import ast

    tree = ast.parse('"""doc Variable"""\nimport a.b as c\nfrom d.e import f\ndef g(h, *i, j=1, **k):\n'
                     '    global l\n    m.n(o=p, q="r s")\n    f"{t}u"\nclass V: pass\n'
                     'try:\n    pass\nexcept E as w:\n    pass\n# Variable\n')
    assert triage.code_words(tree) == set("abcdefghijklmnopqrstuwE") | {"V", "keyword:o", "keyword:q"}


def test_only_the_selected_rules_count(monkeypatch, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(NOTHING + "v = tf.Variable(1.)\n")
    _never_parsed(monkeypatch)
    only_joint = [r for r in all_rules() if r.code == "ELB005"]
    assert _lint(path, rules=only_joint, enabled={"ELB005"}).diagnostics == []


def test_syntax_error_comes_from_cpython(monkeypatch, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(NOTHING + "def broken(:\n    pass\n")
    fast, full = _both(monkeypatch, path)
    assert fast == full
    assert [item["code"] for item in fast[0]] == ["ELB000"]


def test_nesting_limit_parity(monkeypatch, tmp_path):
    path = tmp_path / "deep.py"
    path.write_text(NOTHING + "x = " + "(" * 250 + "1" + ")" * 250 + "\n")
    fast, full = _both(monkeypatch, path)
    assert fast == full and [item["code"] for item in fast[0]] == ["ELB000"]


def test_unused_noqa_is_reported_as_after_a_parse(monkeypatch, tmp_path):
    path = tmp_path / "util.py"
    path.write_text(NOTHING + "y = double(1.)  # noqa: ELB001\nz = 1  # noqa\n")
    fast, full = _both(monkeypatch, path)
    assert fast == full
    assert [item["code"] for item in fast[0]] == ["ELB902"]
    _never_parsed(monkeypatch)
    assert [d.code for d in _lint(path).diagnostics] == ["ELB902"]


def test_suppressed_finding_parity(monkeypatch, tmp_path):
    path = tmp_path / "model.py"
    source = TRAINED.format(imports="import tensorflow_probability as tfp", normal="tfp.distributions.Normal",
                            scale="tf.Variable(1.)")
    path.write_text(source.replace("tf.Variable(1.))", "tf.Variable(1.))  # noqa: ELB001, ELB005"))
    fast, full = _both(monkeypatch, path)
    assert fast == full
    assert [item["code"] for item in fast[0]] == ["ELB902"]


def _notebook(*cells: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                  "source": cell.splitlines(keepends=True)} for cell in cells],
                       "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 5})


def test_notebook_parity(monkeypatch, tmp_path):
    trained = TRAINED.format(imports="import tensorflow_probability as tfp", normal="tfp.distributions.Normal",
                             scale="tf.Variable(1.)")
    for name, cells in {"bad": ("%matplotlib inline\n" + trained, "print(1)"),
                        "nothing": ("%matplotlib inline\n" + NOTHING, "double(2.)  # noqa: ELB003"),
                        "broken": (NOTHING, "def broken(:\n    pass\n")}.items():
        path = tmp_path / f"{name}.ipynb"
        path.write_text(_notebook(*cells))
        fast, full = _both(monkeypatch, path)
        assert fast == full, name
        assert fast[0], name


def test_notebook_with_nothing_is_not_parsed(monkeypatch, tmp_path):
    path = tmp_path / "nothing.ipynb"
    path.write_text(_notebook("%matplotlib inline\n" + NOTHING, "double(2.)"))
    _never_parsed(monkeypatch)
    assert _lint(path).diagnostics == []


class _Undeclared(Rule):
    """A plugin's rule with no `starts_from`: always run."""

    code = "ELB950"
    name = "undeclared"

    def visit_Module(self, node) -> None:
        self.report(node, "ran")


def test_a_rule_without_declaration_always_runs(tmp_path):
    path = tmp_path / "util.py"
    path.write_text(NOTHING)
    result = _lint(path, rules=[*all_rules(), _Undeclared], enabled=ALL | {"ELB950"})
    assert [d.code for d in result.diagnostics] == ["ELB950"]


def test_can_fire_needs_every_group():
    declaration = (("Variable", "add_weight"), ("softplus", "exp"))
    assert triage.can_fire("v = tf.Variable(0.); s = tf.nn.softplus(v)", declaration)
    assert not triage.can_fire("v = tf.Variable(0.)", declaration)
    assert not triage.can_fire("TransformedVariable softplus", declaration)  # whole words only
    assert triage.can_fire("anything", None)
    case_free = (("(?i:adam|sgd)",),)
    assert triage.can_fire('model.compile(optimizer="ADAM")', case_free)
    assert not triage.can_fire('model.compile(optimizer="adamant")', case_free)


def test_last_parts():
    assert triage.last_parts({"tensorflow.Variable", "tensorflow.compat.v1.Variable", "a.b"}) == ("Variable", "b")


def test_the_parent_answers_files_without_a_tf_word(monkeypatch, tmp_path):
    from elbolint import runner
    from elbolint.config import Config

    (tmp_path / "plain.py").write_text("x = 1  # noqa: ELB001\n")
    (tmp_path / "model.py").write_text(NOTHING + "v = tf.Variable(1.)\n")
    (tmp_path / "latin.py").write_bytes(b"s = '\xe9'\n")  # undecodable: the worker says so (ELB000)
    sent = []
    real = runner._run

    def spy(job, tasks, jobs, progress=None):
        sent.extend(path.name for path, _ in tasks)
        return real(job, tasks, jobs, progress)

    monkeypatch.setattr(runner, "_run", spy)
    fast = runner.lint_paths([tmp_path], Config(root=tmp_path), ALL)
    assert sorted(sent) == ["latin.py", "model.py"]
    sent.clear()
    monkeypatch.setenv(triage.DISABLE_VARIABLE, "1")
    full = runner.lint_paths([tmp_path], Config(root=tmp_path), ALL)
    assert sorted(sent) == ["latin.py", "model.py", "plain.py"]
    assert [(r.path, encode(r.diagnostics), r.content_hash) for r in fast] == \
        [(r.path, encode(r.diagnostics), r.content_hash) for r in full]
    assert [d.code for r in fast for d in r.diagnostics] == ["ELB000"]


def test_the_fast_prefilter_is_the_regular_expression():
    import random

    from elbolint.linter import _PREFILTER, mentions_tf

    rng = random.Random(21)
    samples = ["x tfp.y", "atfp.y", "import keras", "tf_keras", "tfpl.x", "_tfpl.x", "tfd", " tfb.", "TFP.", "é tfd."]
    samples += ["".join(rng.choice("tfpdblkeras._ \nonw") for _ in range(rng.randint(0, 14))) for _ in range(20000)]
    for text in samples:
        assert mentions_tf(text) == bool(_PREFILTER.search(text)), text


def test_the_cache_fingerprint_reads_the_rule_files_without_importing_them():
    import subprocess
    import sys

    from elbolint.cache import _rule_files

    assert {"_tfp.py", "_trained_parameter.py", "unconstrained_scale.py"} <= {p.name for p in _rule_files()}
    code = ("import sys\nfrom elbolint.cache import code_fingerprint\nfrom elbolint import linter, runner\n"
            "code_fingerprint()\nassert 'libcst' not in sys.modules and 'elbolint.rules' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_words_of_a_kind():
    import ast

    declaration = (("keyword:current_state", "target:init_(?:state|loc)"),)

    def code(source):
        return triage.can_fire(source, declaration, triage.Words(triage.code_words(ast.parse(source)), code=True))

    assert triage.can_fire("def step(current_state): pass", declaration)  # the text: any word
    assert not code("def step(current_state): return current_state.x")  # a parameter, an attribute
    assert code("sample_chain(current_state=x)")
    assert code("init_loc = [1e3]") and code("a = init_state = 0")
    assert not code("init_loc, b = 1, 2") and not code("init_loc: float = 1.") and not code("x.init_loc = 1")

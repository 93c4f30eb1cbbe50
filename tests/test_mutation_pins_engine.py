"""Engine behaviour that the fixtures pass over: file-level `# elbolint: noqa`, the ELB901 skip of a
file LibCST cannot parse, finding equality across runs, test classes, the project-module builder
switch, the registry's look for installed plugins in the current folder, the prefilter and the
conventional aliases (`tfd.`, `tfb`), a `minimize` judged by its own loss, whether a value leaves its
def (an attribute's list, a tape reading it), gradients collected in a list the file never binds,
the nested calls value flow follows, and the bytes fixes are checked against.

Why: the mutation score of tools/mutation.py counts a changed condition no test notices as a
survivor. Each test lints a short source (or calls the engine helper that decides) and asserts what
the unchanged engine produces, so losing that condition fails a test.
"""

from __future__ import annotations

import importlib.machinery
import shutil
import sys
from pathlib import Path

import libcst as cst

from conftest import lint
from elbolint import registry
from elbolint.analyses.test_code import in_test_code, is_test_class
from elbolint.config import Config
from elbolint.fixes import original_bytes
from elbolint.linter import lint_file
from elbolint.registry import all_rules

ROOT = Path(__file__).resolve().parent.parent
TFP = "import tensorflow as tf\nimport tensorflow_probability as tfp\n"
RAW_SCALE = "q = tfp.distributions.Normal(0., tf.Variable(1.))\n"  # ELB001 at line 3 (after TFP)


def found(path: Path) -> list[tuple[int, str]]:
    return [(d.line, d.code) for d in lint(path)]


# ------------------------------------------------------------------ suppression
def test_a_bare_file_noqa_suppresses_every_finding(tmp_path):
    path = tmp_path / "q.py"
    path.write_text(TFP + RAW_SCALE, encoding="utf-8")
    assert found(path) == [(3, "ELB001")]
    path.write_text("# elbolint: noqa\n" + TFP + RAW_SCALE, encoding="utf-8")
    assert found(path) == []
    path.write_text(TFP + RAW_SCALE + "# elbolint: noqa: ELB002\n# elbolint: noqa\n", encoding="utf-8")
    assert found(path) == []
    path.write_text(TFP + RAW_SCALE + "# elbolint: noqa: ELB002\n", encoding="utf-8")
    assert found(path) == [(3, "ELB001")]


def test_a_noqa_in_a_file_that_cannot_be_parsed_is_not_reported_as_unused(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(TFP + "x = 1  # noqa: ELB001\ny = (1,\n", encoding="utf-8")
    assert found(path) == [(4, "ELB000")]
    path.write_text(TFP + "x = 1  # noqa: ELB001\n", encoding="utf-8")
    assert found(path) == [(3, "ELB902")]


# ------------------------------------------------------------------ files LibCST refuses
def test_valid_python_that_libcst_refuses_is_skipped_with_elb901(tmp_path):
    path = tmp_path / "mixed_tabs.py"
    path.write_text(TFP + "if a:\n  if b:\n\t  x = 1\n  y = 2\n", encoding="utf-8")
    (diagnostic,) = lint(path)
    assert (diagnostic.line, diagnostic.code) == (1, "ELB901")
    assert diagnostic.message.startswith("file skipped: Python accepts this file but LibCST")


# ------------------------------------------------------------------ findings as values
def test_the_same_finding_from_two_runs_is_equal_fix_included(tmp_path):
    """A fix carries the LibCST node it replaces; two parses give two nodes, and the findings (and
    the cache's copies, which have no node) must still compare equal."""
    path = tmp_path / "q.py"
    path.write_text(TFP + RAW_SCALE, encoding="utf-8")
    first, second = lint(path), lint(path)
    assert first[0].fix is not None and first[0].fix.node is not second[0].fix.node
    assert first == second


# ------------------------------------------------------------------ test code
def test_classes_named_like_tests_are_test_code():
    for name in ("TestModel", "ModelTest", "ModelTests", "ModelTestCase"):
        node = cst.parse_statement(f"class {name}:\n    pass\n")
        assert isinstance(node, cst.ClassDef)
        assert is_test_class(node), name
        assert in_test_code([node]), name
    node = cst.parse_statement("class Model(tf.test.TestCase):\n    pass\n")
    assert isinstance(node, cst.ClassDef) and is_test_class(node)
    node = cst.parse_statement("class Testing:\n    pass\n")
    assert isinstance(node, cst.ClassDef) and is_test_class(node)  # `Test*`, as pytest collects
    node = cst.parse_statement("class Contest:\n    pass\n")
    assert isinstance(node, cst.ClassDef) and not is_test_class(node)


# ------------------------------------------------------------------ builders of the project
BASELINE = '''import numpy as np
import tensorflow as tf

from good_flipout_project_model import build_classifier

images = np.random.RandomState(0).rand(256, 28, 28).astype(np.float32)
labels = np.random.RandomState(1).randint(0, 10, size=256)

network = build_classifier({arguments})
network.compile(
    optimizer=tf.keras.optimizers.Adam(1e-3),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
network.fit(images, labels, batch_size=32, epochs=2)
'''


def test_only_a_variational_switch_set_to_false_asks_a_project_builder_for_its_baseline(tmp_path):
    shutil.copy(ROOT / "fixtures" / "ELB003" / "good_flipout_project_model.py", tmp_path)
    path = tmp_path / "train.py"
    for arguments in ("variational=False", "bayesian=False", "stochastic=False", "probabilistic=False",
                      "use_probabilistic_layers=False", "deterministic=True"):
        path.write_text(BASELINE.format(arguments=arguments), encoding="utf-8")
        assert [c for c in found(path) if c[1] == "ELB003"] == [], arguments
    for arguments in ("", "classes=10", "dropout=False", "variational=True", "deterministic=False"):
        path.write_text(BASELINE.format(arguments=arguments), encoding="utf-8")
        assert [c for c in found(path) if c[1] == "ELB003"] == [(11, "ELB003")], arguments


# ------------------------------------------------------------------ plugins
def test_an_empty_path_entry_is_the_current_folder_when_looking_for_plugins(tmp_path, monkeypatch):
    info = tmp_path / "some_plugin-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[elbolint.rules]\nmine = some_plugin:Rule\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "meta_path", [importlib.machinery.PathFinder])
    monkeypatch.setattr(sys, "path", [""])
    assert registry._may_declare(b"elbolint.rules")
    assert not registry._may_declare(b"another.group")


# ------------------------------------------------------------------ value flow
def test_an_element_past_the_end_of_a_literal_tuple_is_not_read(tmp_path):
    path = tmp_path / "q.py"
    source = TFP + "pair = (0.0, tf.Variable(1.0))\nq = tfp.distributions.Normal(0.0, pair[{index}])\n"
    for index, expected in (("1", [(4, "ELB001")]), ("-1", [(4, "ELB001")]), ("0", []), ("2", []), ("-3", [])):
        path.write_text(source.format(index=index), encoding="utf-8")
        assert found(path) == expected, index


# ------------------------------------------------------------------ file prefilter and conventional names
def test_a_file_that_only_writes_tfd_is_linted(tmp_path):
    """No import, no `tensorflow`: the `tfd.` prefix alone lets the file past the prefilter (and
    the conventional aliases resolve `tfd` and `tf`)."""
    path = tmp_path / "snippet.py"
    path.write_text("q = tfd.Normal(0.0, tf.Variable(1.0))\n", encoding="utf-8")
    assert found(path) == [(1, "ELB001")]


def test_an_unbound_tfb_is_the_bijectors_module(tmp_path):
    path = tmp_path / "q.py"
    path.write_text(TFP + "q = tfp.distributions.Normal(tf.Variable(0.0), "
                    "tfp.util.TransformedVariable(1.0, tfb.Exp()))\n", encoding="utf-8")
    assert [(d.line, d.code) for d in lint(path, {"ELB012"})] == [(3, "ELB012")]


# ------------------------------------------------------------------ optimizer roles: a minimize judged by its loss
MAP_NEXT_TO_VI = TFP + '''tfd = tfp.distributions
w = tf.Variable(0.0)


def map_loss():
    return -tfd.Normal(0.0, 1.0).log_prob(w)


opt = tf.optimizers.Adam(0.1)
{use}
q = tfd.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus()))
losses = tfp.vi.fit_surrogate_posterior(lambda z: -z**2, q, tf.optimizers.Adam(0.01, clipnorm=1.0), num_steps=10)
'''


def test_a_minimize_given_its_loss_by_keyword_is_judged_by_that_loss(tmp_path):
    """A MAP fit next to a VI fit: the optimizer minimising the MAP loss does not drive VI, whether
    the loss is positional or `loss=`, and whether `make_fit_op` gets the optimizer by keyword."""
    path = tmp_path / "fits.py"
    for use in ("opt.minimize(map_loss, var_list=[w])", "opt.minimize(loss=map_loss, var_list=[w])",
                "opt.minimize(var_list=[w], loss=map_loss)",
                "fit_op = tfp.experimental.nn.util.make_fit_op(map_loss, opt, [w])",
                "fit_op = tfp.experimental.nn.util.make_fit_op(map_loss, optimizer=opt, trainable_variables=[w])"):
        path.write_text(MAP_NEXT_TO_VI.format(use=use), encoding="utf-8")
        assert [c for c in found(path) if c[1] == "ELB003"] == [], use
    elbo = "opt.minimize(loss=lambda: tfp.vi.monte_carlo_variational_loss(lambda z: -z**2, q), var_list=[w])"
    path.write_text(MAP_NEXT_TO_VI.format(use=elbo), encoding="utf-8")
    assert [c for c in found(path) if c[1] == "ELB003"] == [(11, "ELB003")]


# ------------------------------------------------------------------ training: does a value leave its def
def test_a_value_appended_to_an_attribute_leaves_its_def_and_a_local_list_does_not(tmp_path):
    path = tmp_path / "q.py"
    path.write_text(TFP + '''

def collect(registry):
    q = tfp.distributions.Normal(0.0, tf.Variable(1.0))
    registry.surrogates.append(q)


def collect_locally():
    surrogates = []
    q = tfp.distributions.Normal(0.0, tf.Variable(1.0))
    surrogates.append(q)
    print(len(surrogates))
''', encoding="utf-8")
    assert found(path) == [(6, "ELB001")]


def test_a_tape_reading_the_distribution_does_not_keep_it(tmp_path):
    path = tmp_path / "q.py"
    source = TFP + '''

def sensitivity(x):
    q = tfp.distributions.Normal(0.0, tf.Variable(1.0))
    with tf.GradientTape(persistent=True) as tape:
        log_prob = q.log_prob(x)
    slope = tape.{method}(log_prob, q)
    print(slope)
'''
    for method in ("gradient", "jacobian", "batch_jacobian"):
        path.write_text(source.format(method=method), encoding="utf-8")
        assert found(path) == [], method
    path.write_text(source.format(method="keep"), encoding="utf-8")
    assert found(path) == [(6, "ELB001")]


# ------------------------------------------------------------------ gradients collected in a list the file never binds
def test_gradients_appended_to_an_imported_list_are_followed_to_apply_gradients(tmp_path):
    path = tmp_path / "loop.py"
    source = TFP + '''from training_state import collected

q = tfp.distributions.Normal(tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus()))
optimizer = tf.optimizers.Adam(0.01)
with tf.GradientTape() as tape:
    loss = tfp.vi.monte_carlo_variational_loss(lambda z: -z**2, q)
collected.append({gradient})
optimizer.apply_gradients(zip(collected, q.trainable_variables))
'''
    gradient = "tape.gradient(loss, q.trainable_variables[0])"
    path.write_text(source.format(gradient=f"tf.clip_by_norm({gradient}, 1.0)"), encoding="utf-8")
    assert found(path) == []
    path.write_text(source.format(gradient=gradient), encoding="utf-8")
    assert found(path) == [(6, "ELB003")]


# ------------------------------------------------------------------ the bytes fixes are checked against
def test_the_original_bytes_of_a_python_file_are_the_bytes_read(tmp_path):
    path = tmp_path / "q.py"
    data = ("\ufeff" + TFP + RAW_SCALE).replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(data)
    result = lint_file(path, all_rules(), {}, Config().enabled_codes())
    assert [(d.line, d.code) for d in result.diagnostics] == [(3, "ELB001")]
    assert original_bytes(result) == data


# ------------------------------------------------------------------ value flow through the file's functions
def test_a_value_is_followed_through_two_nested_calls_of_the_file_and_no_more(tmp_path):
    path = tmp_path / "q.py"
    path.write_text(TFP + '''

def make_scale():
    return tf.Variable(1.0)


def make_parameters():
    return make_scale()


def make_more():
    return make_parameters()


q = tfp.distributions.Normal(0.0, make_scale())
r = tfp.distributions.Normal(0.0, make_parameters())
s = tfp.distributions.Normal(0.0, make_more())
''', encoding="utf-8")
    assert found(path) == [(17, "ELB001"), (18, "ELB001")]

"""Jupyter notebooks: code cells linted as one module, findings at (cell, line, column), magics
ignored, bad notebooks reported as ELB000, and --fix rewriting only the fixed cells' sources."""

from __future__ import annotations

import json
import sys
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import lint
from elbolint.cli import main
from elbolint.config import Config
from elbolint.linter import lint_file
from elbolint.registry import all_rules

METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "version": "3.11.0"},
}
IMPORTS = "import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
USES = "q = tfd.Normal(0., tf.Variable(1.))\n"


def code(source: str, outputs=(), count=1) -> dict:
    return {"cell_type": "code", "execution_count": count, "id": f"c{count}", "metadata": {},
            "outputs": list(outputs), "source": source.splitlines(keepends=True)}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "id": "md", "metadata": {}, "source": source.splitlines(keepends=True)}


def notebook(*cells, metadata=METADATA) -> dict:
    return {"cells": list(cells), "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def write(path: Path, nb: dict, **dumps) -> Path:
    """As Jupyter writes it: indent 1, non-ASCII kept, final newline."""
    options = {"indent": 1, "ensure_ascii": False, **dumps}
    path.write_text(json.dumps(nb, **options) + "\n", encoding="utf-8")
    return path


def found(path: Path, enabled=None):
    return [(d.cell, d.line, d.column, d.code) for d in lint(path, enabled)]


def invoke(args, cwd: Path, input=None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_names_from_earlier_cells_resolve_and_positions_are_cell_relative(tmp_path):
    path = write(tmp_path / "model.ipynb", notebook(code(IMPORTS), markdown("# The model\n"), code(USES, count=2)))
    assert found(path) == [(3, 1, 20, "ELB001")]
    [d] = lint(path)
    assert (d.end.line, d.end.column) == (1, 35)
    assert d.fix.edits[0].start.line == 1


def test_magics_shell_help_and_foreign_cell_magics_are_not_python(tmp_path):
    cells = [
        code("%matplotlib inline\n%load_ext autoreload\n!pip install -q tensorflow-probability\n" + IMPORTS),
        code("%%R\nlibrary(ggplot2)\nx <- c(1, 2)\n"),
        code("%%bash\necho $HOME | tr a-z A-Z\n"),
        code("%%time\nfor i in range(2):\n    %time print(i)\ntfd.Normal?\n??tfd\nfiles = !ls\n"
             "ratio = (10\n         % 3)\n"),
        code("%%capture captured\n" + USES),
    ]
    path = write(tmp_path / "magics.ipynb", notebook(*cells))
    assert found(path) == [(5, 2, 20, "ELB001")]


def test_a_syntax_error_costs_only_its_own_cell(tmp_path):
    """Jupyter compiles each cell alone: a scratch cell that does not parse fails alone, and the
    other cells' findings are still reported (they used to be hidden)."""
    cells = (code(IMPORTS), code("def f(:\n    pass\n"), code("  y_pred.\n"), code(USES))
    path = write(tmp_path / "broken.ipynb", notebook(*cells))
    [first, second, finding] = lint(path)
    assert (first.cell, first.line, first.column, first.code) == (2, 1, 7, "ELB000")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert first.message == f"SyntaxError: invalid syntax (Python {version} grammar)"
    assert (second.cell, second.line, second.column, second.code) == (3, 1, 10, "ELB000")
    assert (finding.cell, finding.line, finding.column, finding.code) == (4, 1, 20, "ELB001")


def test_invalid_json_and_non_notebooks_are_elb000(tmp_path):
    # Each mentions TensorFlow: a notebook that never does is skipped before it is validated.
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"about": "tensorflow", "cells": [\n  {"cell_type": "code",,}\n]}\n')
    [d] = lint(broken)
    assert d.code == "ELB000" and d.cell is None
    assert d.message.startswith("not a valid notebook: invalid JSON: ") and (d.line, d.column) == (2, 24)
    for content, reason in [
        ('["tensorflow", 2]', "the JSON is not an object"),
        ('{"about": "tensorflow", "nbformat": 3, "worksheets": []}', "nbformat 3 is not supported"),
        ('{"about": "tensorflow", "nbformat": 4, "metadata": {}}', "no `cells` list"),
        ('{"about": "tensorflow", "nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}',
         "cell 1: `source` is not a string"),
    ]:
        broken.write_text(content)
        [d] = lint(broken)
        assert d.code == "ELB000" and reason in d.message, content


def test_notebooks_of_other_languages_are_skipped(tmp_path):
    r_kernel = {"kernelspec": {"name": "ir", "language": "R"}, "language_info": {"name": "R"}}
    path = write(tmp_path / "r.ipynb", notebook(code(IMPORTS + USES), metadata=r_kernel))
    assert found(path) == []


def test_noqa_on_the_cell_line(tmp_path):
    path = write(tmp_path / "noqa.ipynb", notebook(code(IMPORTS), code(USES.rstrip() + "  # noqa: ELB001\n")))
    assert found(path) == []
    path = write(tmp_path / "noqa.ipynb", notebook(code(IMPORTS), code(USES.rstrip() + "  # noqa: ELB003\n")))
    # ELB001 stays; the noqa for ELB003, which has no finding there, is reported as unused (ELB902)
    assert found(path) == [(2, 1, 20, "ELB001"), (2, 1, 38, "ELB902")]


def test_text_and_json_output_through_the_cli(tmp_path):
    write(tmp_path / "model.ipynb", notebook(code(IMPORTS), markdown("text"), code(USES)))
    result = invoke(["model.ipynb"], tmp_path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "model.ipynb:cell 3:1:20: ELB001 [*] [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; "
        "optimisation can push it to <= 0 (NaN ELBO). Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())"
    ]
    [row] = json.loads(invoke(["--output-format", "json", "model.ipynb"], tmp_path).stdout)
    assert row["cell"] == 3 and row["filename"] == "model.ipynb"
    assert row["location"] == {"row": 1, "column": 20} and row["end_location"] == {"row": 1, "column": 35}
    assert row["noqa_row"] == 1
    assert row["fix"]["edits"][0]["location"] == {"row": 1, "column": 20}
    sarif = json.loads(invoke(["--output-format", "sarif", "model.ipynb"], tmp_path).stdout)
    [sarif_result] = sarif["runs"][0]["results"]
    # SARIF and GitHub point into the JSON (the line holding the cell's code; tests/test_notebook_positions.py)
    assert sarif_result["message"]["text"].endswith("(cell 3, line 1, column 20)")
    assert sarif_result["locations"][0]["logicalLocations"][0]["name"] == "cell 3"
    json_line = (tmp_path / "model.ipynb").read_text().split("\n")[
        sarif_result["locations"][0]["physicalLocation"]["region"]["startLine"] - 1]
    assert "tf.Variable(1.)" in json_line
    github = invoke(["--output-format", "github", "model.ipynb"], tmp_path).stdout
    assert github.rstrip().endswith("(cell 3, line 1, column 20)")


def test_directories_include_notebooks_but_not_checkpoints_or_ignored_ones(tmp_path):
    nb = notebook(code(IMPORTS + USES))
    write(tmp_path / "model.ipynb", nb)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write(tmp_path / ".ipynb_checkpoints" / "model-checkpoint.ipynb", nb)
    (tmp_path / "scratch").mkdir()
    write(tmp_path / "scratch" / "old.ipynb", nb)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("scratch/\n")
    lines = invoke(["."], tmp_path).stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == ["model.ipynb:cell 1:4:20"]


def test_per_file_ignores_apply_to_notebooks(tmp_path):
    write(tmp_path / "model.ipynb", notebook(code(IMPORTS + USES)))
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint]\nper-file-ignores = { "*.ipynb" = ["ELB001"] }\n')
    assert invoke(["model.ipynb"], tmp_path).exit_code == 0


FIT = ("opt = tf.optimizers.Adam(0.01)\n"
       "losses = tfp.vi.fit_surrogate_posterior(lambda z: q.log_prob(z), q, opt, num_steps=10)\n")


def test_fix_rewrites_only_the_fixed_cells_and_keeps_outputs_and_metadata(tmp_path):
    outputs = [{"output_type": "stream", "name": "stdout", "text": ["loss: 1.5 — é\n"]},
               {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                "data": {"text/plain": ["<tf.Tensor: 1.0>"]}}]
    original = notebook(
        code("%matplotlib inline\n" + IMPORTS, count=1),
        markdown("Fitting: **note** the é\n"),
        code(USES + "%time x = 1\n", outputs=outputs, count=2),
        code(FIT, count=3),
        code("%%bash\necho tf.Variable\n", count=4),
    )
    path = write(tmp_path / "model.ipynb", original)
    result = invoke(["--fix", "model.ipynb"], tmp_path)
    assert result.exit_code == 0, result.stdout
    after = json.loads(path.read_text(encoding="utf-8"))
    expected = json.loads(json.dumps(original))
    expected["cells"][2]["source"] = [
        "q = tfd.Normal(0., tfp.util.TransformedVariable(1., tfp.bijectors.Softplus()))\n", "%time x = 1\n"]
    expected["cells"][3]["source"] = [
        "opt = tf.optimizers.Adam(0.01, clipnorm=1.0)\n",
        "losses = tfp.vi.fit_surrogate_posterior(lambda z: q.log_prob(z), q, opt, num_steps=10)\n"]
    assert after == expected
    # The file is written as Jupyter writes it: only the two source lines differ.
    assert path.read_text(encoding="utf-8") == json.dumps(expected, indent=1, ensure_ascii=False) + "\n"


def test_fix_keeps_a_notebook_whose_layout_cannot_be_reproduced_byte_identical(tmp_path):
    nb = notebook(code(IMPORTS), code(USES + FIT))
    path = tmp_path / "compact.ipynb"
    path.write_text(json.dumps(nb, separators=(",", ":"), sort_keys=True))  # not what Jupyter writes
    before = path.read_bytes()
    result = invoke(["--fix", "compact.ipynb"], tmp_path)
    assert result.exit_code == 1 and "compact.ipynb:cell 2:1:20: ELB001" in result.stdout
    assert path.read_bytes() == before


def test_fix_detects_the_indent_and_leaves_a_clean_notebook_alone(tmp_path):
    path = write(tmp_path / "two.ipynb", notebook(code(IMPORTS), code(USES)), indent=2)
    assert invoke(["--fix", "two.ipynb"], tmp_path).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "cells"') and "TransformedVariable" in text
    before = path.read_bytes()
    assert invoke(["--fix", "two.ipynb"], tmp_path).exit_code == 0
    assert path.read_bytes() == before


def test_stdin_notebook_fix_prints_the_notebook(tmp_path):
    nb = notebook(code(IMPORTS), code(USES))
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    result = invoke(["--fix", "--stdin-filename", "model.ipynb", "-"], tmp_path, input=text)
    fixed = json.loads(result.stdout)
    assert "TransformedVariable" in "".join(fixed["cells"][1]["source"])
    assert fixed["metadata"] == nb["metadata"]


def test_dynamic_mode_runs_a_notebook_that_trains_nothing_to_its_end(tmp_path):
    """The notebook runs (as one program) and trains nothing: the raw scale never met an optimizer."""
    from elbolint.dynamic import run_dynamic

    path = write(tmp_path / "model.ipynb", notebook(code(IMPORTS), code(USES)))
    enabled = Config().enabled_codes()
    result = lint_file(path, all_rules(), {}, enabled)
    assert run_dynamic([result], Config(), {}, enabled=enabled, show_progress=False) == []
    [d] = result.diagnostics
    assert d.dynamic["status"] == "not-reproduced"
    assert d.dynamic["summary"].startswith("the program ran to its end and trained nothing")


def test_diff_of_a_notebook_is_a_diff_of_its_json(tmp_path):
    path = write(tmp_path / "model.ipynb", notebook(code(IMPORTS), code(USES, count=2)))
    before = path.read_bytes()
    result = invoke(["--diff", "model.ipynb"], tmp_path)
    assert result.exit_code == 1
    assert path.read_bytes() == before
    changed = [line for line in result.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        '-    "q = tfd.Normal(0., tf.Variable(1.))\\n"',
        '+    "q = tfd.Normal(0., tfp.util.TransformedVariable(1., tfp.bijectors.Softplus()))\\n"',
    ]


def test_a_continued_shell_escape_is_all_comment(tmp_path):
    cell = "x = 1\n! curl -s http://localhost:4040/api | python3 -c \\\n    \"import sys\"\nif x:\n    %time y = 2\n"
    path = write(tmp_path / "shell.ipynb", notebook(code(IMPORTS), code(cell, count=2), code(USES, count=3)))
    assert found(path) == [(3, 1, 20, "ELB001")]


def test_notebooks_that_never_mention_tensorflow_are_not_read(tmp_path):
    old = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": ["import pymc\n"]}]}]}
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(old))
    assert found(path) == []
    path.write_text(json.dumps(old).replace("pymc", "tensorflow_probability"))
    assert [code for *_, code in found(path)] == ["ELB000"]


def test_a_cell_typed_with_a_leading_indent_is_dedented_as_ipython_does(tmp_path):
    cell = "  q = tfd.Normal(0., tf.Variable(1.))\n  print(q)\n"
    path = write(tmp_path / "indented.ipynb", notebook(code(IMPORTS), code(cell, count=2)))
    assert found(path) == [(2, 1, 22, "ELB001")]
    result = invoke(["--fix", "indented.ipynb"], tmp_path)
    fixed = json.loads(path.read_text())["cells"][1]["source"]
    assert fixed == ["  q = tfd.Normal(0., tfp.util.TransformedVariable(1., tfp.bijectors.Softplus()))\n",
                     "  print(q)\n"]
    assert result.exit_code == 0


# ------------------------------------------------------------- cells and notebooks that are not Python
def skipped(path: Path) -> list[tuple]:
    from elbolint.notebook import read_notebook
    from elbolint.source import read_source

    _, nb = read_notebook(read_source(path))
    return [(part.cell, part.reason) for part in nb.skipped]


FOREIGN_MAGICS = ["%%R -i df", "%%bash", "%%sh", "%%html", "%%javascript", "%%js", "%%latex", "%%markdown",
                  "%%writefile model.py", "%%script bash", "%%perl", "%%ruby", "%%svg", "%%sql", "%%shell"]


def test_foreign_cell_magics_are_skipped_and_python_cell_magics_are_linted(tmp_path):
    # Each foreign body is both invalid Python and a finding if it were read as Python.
    body = "x <- c(1, 2) {\n" + USES
    cells = [code(IMPORTS)] + [code(f"\n{magic}\n{body}", count=n) for n, magic in enumerate(FOREIGN_MAGICS, 2)]
    python_magics = ["%%time", "%%timeit -n1", "%%capture out", "%%prun -s cumulative"]
    cells += [code(f"{magic}\n{USES}") for magic in python_magics]
    path = write(tmp_path / "magics.ipynb", notebook(*cells))
    first = len(FOREIGN_MAGICS) + 2
    assert found(path) == [(cell, 2, 20, "ELB001") for cell in range(first, first + len(python_magics))]
    names = ["R", "bash", "sh", "html", "javascript", "js", "latex", "markdown", "writefile", "script", "perl",
             "ruby", "svg", "sql", "shell"]
    assert skipped(path) == [(n, f"`%%{name}` cell, not Python") for n, name in enumerate(names, 2)]


def test_notebooks_whose_kernel_is_not_python_are_skipped_entirely(tmp_path):
    cells = (code(IMPORTS + USES), code('data_dir <- "/tmp/x"\nprintln("hi")\n'), code("def f(:\n"))
    for metadata, reason in [
        ({"kernelspec": {"name": "ir", "display_name": "R"}},
         "its kernel is ir (metadata.kernelspec.name), not Python"),
        ({"kernelspec": {"name": "julia-1.10", "display_name": "Julia 1.10.0"}},
         "its kernel is julia-1.10 (metadata.kernelspec.name), not Python"),
        ({"kernelspec": {"name": "python3", "language": "R"}},
         "its kernel language is R (metadata.kernelspec.language)"),
        ({"language_info": {"name": "julia"}, "kernelspec": {"name": "python3"}},
         "its kernel language is julia (metadata.language_info.name)"),
    ]:
        path = write(tmp_path / "other.ipynb", notebook(*cells, metadata=metadata))
        assert found(path) == [], metadata
        assert skipped(path) == [(None, reason)]
    # Kernel names that are not a known other language are Python (`tf2`, a conda env, no metadata).
    for metadata in ({"kernelspec": {"name": "tf2"}}, {"kernelspec": {"name": "conda-env-tfp-py"}}, {},
                     {"kernelspec": {"name": "ir", "language": "python"}}, {"language_info": {"name": "python3"}}):
        path = write(tmp_path / "python.ipynb", notebook(code(IMPORTS), code(USES), metadata=metadata))
        assert found(path) == [(2, 1, 20, "ELB001")], metadata
        assert skipped(path) == []


# A Colab notebook that switches to an R runtime for a section, as TFP's Generalized_Linear_Models
# and HLM_TFP_R_Stan notebooks do (their cells, abridged): no magic, no metadata says it is R.
COLAB_R = [
    code(IMPORTS),                                                                         # 1
    markdown("#### NOTE: To execute this section, you must switch to an R colab runtime.\n"),  # 2
    code("suppressMessages({\n  library('glmnet')\n})\n"),                                 # 3 parses
    code("data_dir <- '/tmp/glm_example'\nx <- as.matrix(read.csv(paste(data_dir, '/x.csv', sep=''),\n"
         "                        header=FALSE))\n"),                                      # 4
    code("head(data)\n"),                                                                  # 5 parses
    code("fit <- glmnet(\nx = x,\ntype.logistic = \"Newton\"\n)\n"),                       # 6
    code("summary(radon.model)\n"),                                                        # 7 parses
    code("qqmath(ranef(radon.model, condVar=TRUE))\n"),                                    # 8 parses
    code("data = read_csv(gfile::GFile('/tmp/radon/radon.csv'))\n"),                       # 9
    code("color_scheme_set(\"red\")\nppc_dens_overlay(y = fit$y,\n"
         "                 yrep = posterior_predict(fit, draws = 50))\n"),                 # 10
    code("fit\n"),                                                                         # 11 parses
    code('write.csv(tidy(as.matrix(fit)), "/tmp/radon/stan_fit.csv")\n'),                  # 12
    markdown("**Note: Switch back to the Python TF kernel runtime.**\n"),                  # 13
    code("fit = 1\n" + USES),                                                              # 14
    code("with tf.GradientTape() as tape\n    loss = f(x, TRUE)\n"),                       # 15 broken Python
    code("result <- 3\n"),                                                                 # 16 parses: Python
]


def test_r_cells_of_a_colab_runtime_switch_are_skipped_and_broken_python_stays_elb000(tmp_path):
    path = write(tmp_path / "glm.ipynb", notebook(*COLAB_R))
    # No ELB000 for the R section; the Python after it is linted (its finding at its own cell), and
    # a broken Python cell is still ELB000 even with an R-looking `TRUE`: it has `tf.` and a block.
    assert found(path) == [(14, 2, 20, "ELB001"), (15, 1, 31, "ELB000")]
    reasons = dict(skipped(path))
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert reasons[3] == "looks like R, not Python (it has `library(...)`, next to R cells)"
    assert reasons[4].startswith("looks like R, not Python (it does not parse as Python and has `x <- ...`")
    assert reasons[5] == "looks like R, not Python (between R cells, with no Python syntax)"
    assert "`pkg::fn(...)`" in reasons[9] and "`x$name`" in reasons[10] and "`as.matrix(...)`" in reasons[12]


def test_broken_python_cells_without_r_syntax_stay_elb000_at_their_cell(tmp_path):
    cells = (code(IMPORTS), code("x = [1, 2\ny = 3\n"), markdown("text"), code("  y_pred.\n"),
             code('print "ELBO", x\n'), code("if x <- 1\n    pass\n"), code(USES))
    path = write(tmp_path / "broken.ipynb", notebook(*cells))
    assert found(path) == [(2, 1, 5, "ELB000"), (4, 1, 10, "ELB000"), (5, 1, 1, "ELB000"),
                           (6, 1, 10, "ELB000"), (7, 1, 20, "ELB001")]
    assert skipped(path) == []


def test_cells_whose_own_metadata_names_another_language_are_skipped(tmp_path):
    def cell(source, metadata):
        return {**code(source), "metadata": metadata}

    cells = (code(IMPORTS),
             cell("x <- c(1, 2)\nq = tfd.Normal(0., tf.Variable(1.))\n", {"vscode": {"languageId": "r"}}),
             cell("let x = 1;\n", {"polyglot_notebook": {"kernelName": "javascript"}}),
             cell(USES, {"vscode": {"languageId": "python"}}))
    path = write(tmp_path / "polyglot.ipynb", notebook(*cells))
    assert found(path) == [(4, 1, 20, "ELB001")]
    assert skipped(path) == [(2, "its language is r (metadata.vscode.languageId)"),
                             (3, "its language is javascript (metadata.polyglot_notebook.kernelName)")]


def test_julia_cells_of_a_runtime_switch_are_skipped(tmp_path):
    cells = (code(IMPORTS), code("using Turing, Plots\n@time chain = sample(model, NUTS(), 1000)\n"),
             code("function f(x)\n    x + 1\nend\n"), code('println("done")\n'), code(USES))
    path = write(tmp_path / "julia.ipynb", notebook(*cells))
    assert found(path) == [(5, 1, 20, "ELB001")]
    reasons = dict(skipped(path))
    assert sorted(reasons) == [2, 3, 4]
    assert reasons[2] == ("looks like Julia, not Python (it does not parse as Python and has `using ...`, "
                          "a macro `@time ...`)")
    assert reasons[4] == "looks like Julia, not Python (it has `println(...)`, next to Julia cells)"


def test_fix_leaves_the_r_cells_alone(tmp_path):
    path = write(tmp_path / "glm.ipynb", notebook(*COLAB_R))
    invoke(["--fix", "glm.ipynb"], tmp_path)
    after = json.loads(path.read_text(encoding="utf-8"))
    assert [c["source"] for c in after["cells"][:13]] == [c["source"] for c in COLAB_R[:13]]
    assert "TransformedVariable" in "".join(after["cells"][13]["source"])
    assert found(path) == [(15, 1, 31, "ELB000")]


def test_show_files_says_on_stderr_what_is_not_linted(tmp_path):
    write(tmp_path / "glm.ipynb", notebook(*COLAB_R[:5]))
    write(tmp_path / "r.ipynb", notebook(code(USES), metadata={"kernelspec": {"name": "ir"}}))
    (tmp_path / "model.py").write_text(IMPORTS)
    result = invoke(["--show-files", "."], tmp_path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["glm.ipynb", "model.py", "r.ipynb"]
    assert result.stderr.splitlines() == [
        "glm.ipynb: cell 3 not linted: looks like R, not Python (it has `library(...)`, next to R cells)",
        "glm.ipynb: cell 4 not linted: looks like R, not Python (it does not parse as Python and has "
        "`x <- ...`, `TRUE`/`FALSE`/`NULL`, `as.matrix(...)`)",
        "r.ipynb: notebook not linted: its kernel is ir (metadata.kernelspec.name), not Python",
    ]
    assert invoke(["--show-files", "-q", "."], tmp_path).stderr == ""


TFP_NOTEBOOKS = Path("/tmp/corpus/tfp/tensorflow_probability/examples/jupyter_notebooks")


@pytest.mark.skipif(not TFP_NOTEBOOKS.is_dir(), reason="needs the TFP corpus in /tmp/corpus")
def test_tfp_notebooks_with_an_r_section_have_no_elb000():
    """They had 8 and 3 ELB000, one for each R cell that does not parse as Python."""
    hlm, glm = TFP_NOTEBOOKS / "HLM_TFP_R_Stan.ipynb", TFP_NOTEBOOKS / "Generalized_Linear_Models.ipynb"
    assert found(hlm) == [] and found(glm) == []
    assert [cell for cell, _ in skipped(hlm)] == [27, 28, 29, 30, 31, 32, 33, 37, 39, 40, 41, 42]
    assert [cell for cell, _ in skipped(glm)] == [25, 26, 27, 28]

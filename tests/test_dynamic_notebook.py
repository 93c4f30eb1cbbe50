"""Dynamic mode runs notebooks: the code cells in order as one program (magics commented out,
as static mode reads them), through the same workers and sandbox; findings are reported at `cell N:line`.

One `elbolint --dynamic` run over the notebook fixture (a probe with a raw scale, split over three code
cells, a markdown cell and a `%matplotlib inline` magic) and a notebook whose third cell fails."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.dynamic

NOTEBOOK = FIXTURES / "dynamic" / "notebook_probe_raw_scale.ipynb"


def _code(source: str, count: int) -> dict:
    return {"cell_type": "code", "execution_count": count, "id": f"c{count}", "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    pytest.importorskip("tensorflow_probability")
    failing = tmp_path_factory.mktemp("nb") / "fails.ipynb"
    cells = [_code("%matplotlib inline\nimport tensorflow as tf\nimport tensorflow_probability as tfp\n"
                   "tfd = tfp.distributions\n", 1),
             {"cell_type": "markdown", "id": "md", "metadata": {}, "source": ["# Model\n"]},
             _code("q = tfd.Normal(0., tf.Variable(1.))\n\nprint(undefined_name)\n", 2)]
    failing.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)
                       + "\n", encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", str(NOTEBOOK), str(failing), "--dynamic", "-j", "2",
         "--no-cache", "--dynamic-timeout", "30", "--dynamic-memory", "2048", "--output-format", "json",
         "--exit-zero"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr and "Traceback" not in completed.stdout
    assert "elbolint_notebook_" not in completed.stderr + completed.stdout  # the scratch module never shows
    return json.loads(completed.stdout)


def test_notebook_static_finding_is_confirmed_at_its_cell(rows):
    mine = [r for r in rows if r["filename"].endswith("/" + NOTEBOOK.name)]
    [row] = [r for r in mine if r["code"] == "ELB001"]
    assert (row["cell"], row["location"]["row"], row["location"]["column"]) == (3, 2, 51)
    assert row["dynamic"]["status"] == "confirmed"
    assert "ELB104" in row["dynamic"]["evidence"]["codes"]
    assert row["dynamic"]["summary"] != "notebooks are not run by dynamic mode"


def test_notebook_failure_is_reported_at_the_cell_line(rows):
    mine = [r for r in rows if r["filename"].endswith("/fails.ipynb")]
    [failure] = [r for r in mine if r["code"] == "ELB100"]
    assert (failure["cell"], failure["location"]["row"]) == (3, 3)
    assert "undefined_name" in failure["message"]
    assert failure["dynamic"]["evidence"]["evidence"]["cell"] == 3
    assert failure["dynamic"]["evidence"]["evidence"]["line"] == 3

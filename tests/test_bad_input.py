"""The bad-input matrix: every kind of odd file gets its exact expected outcome, in one run
next to a healthy file whose finding is still reported, with no traceback and the usual exit code.

Each case is (file name, bytes, expected [(line, column, code, message start)]). The run goes through
the real CLI (JSON output, parsed), so discovery, isolation and reporting are all in the loop.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from elbolint.cli import main

TFP = b"import tensorflow as tf\nimport tensorflow_probability as tfp\n"
BAD_LINE = b"q = tfp.distributions.Normal(0., tf.Variable(1.))\n"
GOOD = TFP + BAD_LINE  # ELB001 at 3:34
GRAMMAR = f"Python {sys.version_info.major}.{sys.version_info.minor} grammar"
ELB001 = "`scale` of tfp.distributions.Normal is a raw tf.Variable"

CASES = [
    # syntax errors of several kinds, with CPython's wording and position
    ("unclosed.py", TFP + b"x = (1,\n", [(3, 5, "ELB000", "SyntaxError: '(' was never closed")]),
    ("bad_token.py", TFP + b"x = = 1\n", [(3, 5, "ELB000", "SyntaxError: invalid syntax")]),
    ("bad_indent.py", TFP + b"def f():\nreturn 1\n",
     [(4, 1, "ELB000", "SyntaxError: expected an indented block after function definition on line 3")]),
    ("unterminated.py", TFP + b"s = 'abc\n",
     [(3, 5, "ELB000", "SyntaxError: unterminated string literal (detected at line 3)")]),
    ("noqa_cannot_hide.py", TFP + b"x = (1,  # noqa\n", [(3, 5, "ELB000", "SyntaxError: '(' was never closed")]),
    # valid Python that LibCST's tokenizer refuses (found by the fuzz tests): skipped, and said so
    ("mixed_tabs.py", TFP + b"if a:\n  if b:\n\t  x = 1\n  y = 2\n",
     [(1, 1, "ELB901", "file skipped: Python accepts this file but LibCST, elbolint's parser, cannot parse it")]),
    ("python2.py", TFP + b'print "hello"\n',
     [(3, 1, "ELB000", "SyntaxError: Missing parentheses in call to 'print'")]),
    # bytes that are not Python text
    ("null_byte.py", TFP + b"x = 1\x00\n", [(1, 1, "ELB000", "not a text file (contains NUL bytes)")]),
    ("binary.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRtensorflow",
     [(1, 1, "ELB000", "not a text file (contains NUL bytes)")]),
    ("latin1_no_cookie.py", TFP + b"name = 'caf\xe9'\n",
     [(3, 12, "ELB000", "cannot decode file as utf-8: invalid continuation byte")]),
    # encodings and layouts that are valid: the finding is on the right line
    ("latin1_cookie.py", b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + GOOD, [(5, 34, "ELB001", ELB001)]),
    ("bom.py", b"\xef\xbb\xbf" + GOOD, [(3, 34, "ELB001", ELB001)]),
    ("crlf.py", GOOD.replace(b"\n", b"\r\n"), [(3, 34, "ELB001", ELB001)]),
    ("mixed_newlines.py", TFP.replace(b"\n", b"\r\n", 1) + b"x = 1\r" + BAD_LINE, [(4, 34, "ELB001", ELB001)]),
    ("tabs.py", TFP + b"if True:\n\tq = tfp.distributions.Normal(0., tf.Variable(1.))\n",
     [(4, 35, "ELB001", ELB001)]),
    ("long_line.py", TFP + b"x = [" + b", ".join([b"1"] * 20000) + b"]\n" + BAD_LINE, [(4, 34, "ELB001", ELB001)]),
    # async code next to VI (a rule once crashed on `await` in a gradient-flow expression)
    ("async_vi.py", GOOD + b"opt = tf.optimizers.Adam(0.01, clipnorm=1.0)\n"
     b"async def step(fetch):\n    grads = await fetch()\n    opt.apply_gradients(zip(await fetch(), []))\n"
     b"tfp.vi.fit_surrogate_posterior(lambda: 0., q, opt, 10)\n", [(3, 34, "ELB001", ELB001)]),
    ("empty.py", b"", []),
    ("comments_only.py", b"# tensorflow\n# import tensorflow_probability as tfp\n", []),
    # nesting: what CPython refuses is a syntax error; deep but valid code is analysed
    ("parens.py", TFP + b"x = " + b"(" * 2000 + b"1" + b")" * 2000 + b"\n",
     [(3, 205, "ELB000", "Python cannot parse this file: too many nested parentheses; not analysed")]),
    ("brackets.py", TFP + b"x = " + b"[" * 1000 + b"]" * 1000 + b"\n",
     [(3, 205, "ELB000", "Python cannot parse this file: too many nested parentheses; not analysed")]),
    ("long_sum.py", TFP + b"x = " + b" + ".join([b"1"] * 10000) + b"\n",
     [(1, 1, "ELB000", "Python cannot parse this file: too deeply nested: CPython's parser gives up")]),
    ("deep_valid.py", TFP + b"x = " + b" + ".join([b"1"] * 1500) + b"\n" + b"y = a" + b".b" * 1500 + b"\n"
     + BAD_LINE, [(5, 34, "ELB001", ELB001)]),
    ("deep_elif.py", TFP + b"if a == 0:\n    pass\n"
     + b"".join(b"elif a == %d:\n    pass\n" % i for i in range(1, 600)) + BAD_LINE,
     [(1203, 34, "ELB001", ELB001)]),
    # notebooks
    ("broken.ipynb", b'{"cells": [{"source": "import tensorflow"',
     [(1, 42, "ELB000", "not a valid notebook: invalid JSON")]),
    ("old.ipynb", b'{"nbformat": 3, "worksheets": [], "metadata": {"tensorflow": 1}}',
     [(1, 1, "ELB000", "not a valid notebook: nbformat 3 is not supported")]),
]


def run(args, cwd):
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["--output-format", "json", *args], catch_exceptions=False)
    finally:
        os.chdir(previous)


def findings(output: str) -> dict[str, list[tuple]]:
    by_file: dict[str, list[tuple]] = {}
    for item in json.loads(output):
        location = item["location"]
        by_file.setdefault(Path(item["filename"]).name, []).append(
            (location["row"], location["column"], item["code"], item["message"]))
    return by_file


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_every_bad_input_has_its_exact_outcome_and_the_healthy_file_is_still_linted(tmp_path, jobs):
    for name, data, _ in CASES:
        (tmp_path / name).write_bytes(data)
    (tmp_path / "healthy.py").write_bytes(GOOD)
    result = run(["-j", jobs, "."], tmp_path)
    assert result.exit_code == 1
    found = findings(result.stdout)
    assert found.pop("healthy.py")[0][:3] == (3, 34, "ELB001")
    for name, _, expected in CASES:
        got = found.pop(name, [])
        assert [g[:3] for g in got] == [e[:3] for e in expected], name
        for (*_, message), (*_, start) in zip(got, expected):
            assert message.startswith(start), (name, message)
    assert found == {}


def test_paths_that_cannot_be_read(tmp_path, monkeypatch):
    """Missing paths, a permission-denied file, a file deleted between discovery and reading, a
    directory symlink loop and a non-Python file named explicitly, next to a healthy file."""
    (tmp_path / "healthy.py").write_bytes(GOOD)
    (tmp_path / "denied.py").write_bytes(GOOD)
    (tmp_path / "vanishing.py").write_bytes(GOOD)
    (tmp_path / "notes.txt").write_text("install tensorflow first\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "up").symlink_to("..")  # a loop: pkg/up/pkg/up/...
    (tmp_path / "pkg" / "inner.py").write_bytes(GOOD)

    real_read_bytes = Path.read_bytes

    def read_bytes(path):  # tests run as root, where chmod 000 denies nothing
        if path.name == "denied.py":
            raise PermissionError(13, "Permission denied")
        return real_read_bytes(path)

    import elbolint.runner as runner

    real_discover = runner.discover

    def discover(paths, config):
        items = list(real_discover(paths, config))
        (tmp_path / "vanishing.py").unlink()
        return items

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(runner, "discover", discover)
    result = run([".", "missing.py", "missing_dir/", "notes.txt"], tmp_path)
    assert result.exit_code == 1
    found = findings(result.stdout)
    assert found == {
        "denied.py": [(1, 1, "ELB900", "cannot read file: Permission denied")],
        "healthy.py": [(3, 34, "ELB001", found["healthy.py"][0][3])],
        "inner.py": [(3, 34, "ELB001", found["inner.py"][0][3])],
        "missing.py": [(1, 1, "ELB900", "No such file or directory")],
        "missing_dir": [(1, 1, "ELB900", "No such file or directory")],
        "notes.txt": [(1, 9, "ELB000", f"SyntaxError: invalid syntax ({GRAMMAR})")],
        "vanishing.py": [(1, 1, "ELB900", "cannot read file: No such file or directory")],
    }


@pytest.mark.parametrize("table, message", [
    ("select = 'ELB001'", "select must be a list of strings"),
    ("selec = ['ELB001']", "unknown key 'selec'"),
    ("select = ['ELB777']", "unknown rule code or prefix 'ELB777'"),
    ("max-file-size-kib = -1", "max-file-size-kib must be a positive integer, got -1"),
    ("max-seconds-per-file = 'soon'", "max-seconds-per-file must be a positive number, got 'soon'"),
    ("[[broken", "invalid TOML"),
])
def test_an_invalid_configuration_is_one_line_and_exit_2(tmp_path, table, message):
    header = "" if table.startswith("[[") else "[tool.elbolint]\n"
    (tmp_path / "pyproject.toml").write_text(header + table + "\n")
    (tmp_path / "healthy.py").write_bytes(GOOD)
    result = run(["healthy.py"], tmp_path)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_limits_are_configurable(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nmax-file-size-kib = 1\n")
    (tmp_path / "big.py").write_bytes(GOOD + b"x = 1\n" * 400)
    (tmp_path / "small.py").write_bytes(GOOD)
    found = findings(run(["."], tmp_path).stdout)
    assert found["big.py"] == [(1, 1, "ELB901", "file skipped: this file is 2.5 KiB, over the 1 KiB limit "
                                "(max-file-size-kib in [tool.elbolint]); likely generated code. Exclude it "
                                "or raise the limit")]
    assert found["small.py"][0][2] == "ELB001"


def test_the_fifty_thousand_line_file_is_skipped_quickly(tmp_path):
    """A generated file of 1.8 MiB of distributions. LibCST would need ~1.4 GB and ~18 s; the
    size limit skips it before reading (the benchmark measures the time and memory)."""
    (tmp_path / "generated.py").write_bytes(
        b"import tensorflow_probability as tfp\n" + b"v0 = tfp.distributions.Normal(0., 1.)\n" * 50000)
    [(line, column, code, message)] = findings(run(["generated.py"], tmp_path).stdout)["generated.py"]
    assert code == "ELB901" and "1.8 MiB, over the 1 MiB limit" in message


def test_a_file_that_outruns_its_time_is_skipped(tmp_path):
    # 2.5 s, not less: on a loaded machine a fine file's first analysis (LibCST and the rules imported
    # in a fresh worker) took over 0.5 s
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nmax-seconds-per-file = 2.5\n")
    # valid, and slow for LibCST (~7 s): 2,500 chained subscripts (and a word a rule starts from, so
    # the triage cannot answer without LibCST: elbolint/triage.py)
    (tmp_path / "slow.py").write_bytes(TFP + b"v = tf.Variable(1.)\nx = a" + b"[0]" * 2500 + b"\n")
    (tmp_path / "fine.py").write_bytes(GOOD)
    found = findings(run(["-j", "1", "."], tmp_path).stdout)
    assert found["slow.py"] == [(1, 1, "ELB901", "file skipped: analysing it took longer than 2.5 s "
                                 "(max-seconds-per-file); every other file was still linted")]
    assert found["fine.py"][0][2] == "ELB001"


def test_a_file_that_outgrows_its_memory_is_skipped(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\nmax-memory-mib = 200\n")
    # valid, and ~1.5 GB for LibCST: 2,500 nested conditional expressions (and a word a rule starts
    # from, so the triage cannot answer without LibCST)
    (tmp_path / "hungry.py").write_bytes(TFP + b"v = tf.Variable(1.)\nx = " + b"1 if a else " * 2500 + b"1\n")
    (tmp_path / "fine.py").write_bytes(GOOD)
    found = findings(run(["-j", "1", "."], tmp_path).stdout)
    [(line, column, code, message)] = found["hungry.py"]
    assert code == "ELB901" and ("ran out of memory" in message or "memory limit" in message), message
    assert found["fine.py"][0][2] == "ELB001"

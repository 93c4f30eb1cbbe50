"""Static mode never executes code: proven on a file whose execution leaves three kinds of trace.

fixtures/engine/never_executed.py, when run, writes a marker file, starts a child process that
writes a second marker, and connects to a local port. Every way of invoking static elbolint (each
output format, --output-file, --fix, --diff, stdin, the worker pool, a notebook) runs on a copy
with the variables pointing at paths and a listening socket this test owns, and must leave no
trace. The first test runs the file directly and sees all three traces, so the check can fail:
a lint that imported the file would be caught, not silently pass.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from elbolint.reporters import FORMATS

FIXTURE = FIXTURES / "engine" / "never_executed.py"


class Traces:
    """The paths and the listening socket the fixture's side effects would touch."""

    def __init__(self, directory: Path) -> None:
        self.marker = directory / "executed.marker"
        self.child_marker = directory / "spawned.marker"
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)  # a connection completes in the backlog even though nobody accepts yet
        self.listener.setblocking(False)
        self.env = {
            **os.environ,
            "ELBOLINT_MARKER": str(self.marker),
            "ELBOLINT_MARKER_CHILD": str(self.child_marker),
            "ELBOLINT_MARKER_PORT": str(self.listener.getsockname()[1]),
            "ELBOLINT_MARKER_STOP": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }

    def connected(self) -> bool:
        try:
            connection, _ = self.listener.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True

    def left(self) -> list[str]:
        found = [path.name for path in (self.marker, self.child_marker) if path.exists()]
        return found + (["a socket connection"] if self.connected() else [])


@pytest.fixture
def traces(tmp_path):
    traces = Traces(tmp_path / "traces")
    (tmp_path / "traces").mkdir()
    yield traces
    traces.listener.close()


@pytest.fixture
def model(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return Path(shutil.copy(FIXTURE, work / "model.py"))


def elbolint(args, traces: Traces, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "elbolint", *args], input=stdin, capture_output=True,
        env=traces.env, cwd=cwd, timeout=60,
    )


def test_running_the_fixture_does_leave_every_trace(model, traces):
    """The control: executing the file leaves all three traces, so their absence below means something."""
    process = subprocess.run([sys.executable, str(model)], env=traces.env, capture_output=True, timeout=60)
    assert process.returncode == 0, process.stderr
    assert traces.marker.read_text() == "executed\n"
    assert traces.child_marker.read_text() == "spawned"
    assert traces.connected()
    assert traces.left() == ["executed.marker", "spawned.marker"]  # the one connection was consumed


@pytest.mark.parametrize("output_format", FORMATS)
def test_every_output_format_leaves_no_trace(model, traces, output_format):
    process = elbolint(["--output-format", output_format, "model.py"], traces, model.parent)
    assert process.returncode == 1, process.stderr  # it did lint: the findings are reported
    assert b"ELB001" in process.stdout
    assert traces.left() == []


def test_output_file_leaves_no_trace(model, traces):
    process = elbolint(["--output-format", "json", "-o", "report.json", "model.py"], traces, model.parent)
    assert process.returncode == 1, process.stderr
    assert {row["code"] for row in json.loads((model.parent / "report.json").read_text())} == {"ELB001", "ELB003"}
    assert traces.left() == []


def test_fix_leaves_no_trace_and_fixes(model, traces):
    """--fix re-lints the rewritten file: that second pass must not execute it either."""
    process = elbolint(["--fix", "model.py"], traces, model.parent)
    assert process.returncode == 0, process.stderr
    assert "TransformedVariable(0.5, tfb.Softplus()" in model.read_text()
    assert traces.left() == []


def test_diff_leaves_no_trace_and_no_change(model, traces):
    process = elbolint(["--diff", "model.py"], traces, model.parent)
    assert process.returncode == 1, process.stderr
    assert b"+optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)" in process.stdout
    assert model.read_bytes() == FIXTURE.read_bytes()
    assert traces.left() == []


@pytest.mark.parametrize(
    "extra, exit_code, expected",
    [([], 1, b"model.py:35:52: ELB001"),
     (["--fix"], 0, b"TransformedVariable(0.5, tfb.Softplus(), name=\"s\")"),
     (["--diff"], 1, b"+optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)")],
    ids=["check", "fix", "diff"],
)
def test_stdin_leaves_no_trace(model, traces, extra, exit_code, expected):
    """Also with the name of an existing file: the name is only a label, the file is not opened as code."""
    process = elbolint([*extra, "--stdin-filename", "model.py"], traces, model.parent, stdin=model.read_bytes())
    assert process.returncode == exit_code, process.stderr
    assert expected in process.stdout
    assert model.read_bytes() == FIXTURE.read_bytes()
    assert traces.left() == []


def test_the_worker_pool_leaves_no_trace(tmp_path, traces):
    """Many files over two forked workers (-j 2): the children lint, and must not run anything either."""
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(20):
        shutil.copy(FIXTURE, folder / f"model_{number}.py")
    process = elbolint(["--output-format", "json", "-j", "2", "many"], traces, tmp_path)
    assert process.returncode == 1, process.stderr
    assert len({row["filename"] for row in json.loads(process.stdout)}) == 20
    assert traces.left() == []


def test_a_notebook_is_not_run_either(tmp_path, traces):
    """A notebook is a program too; its cells are linted as text, never sent to a kernel."""
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                   "source": FIXTURE.read_text().splitlines(keepends=True)}],
        "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "model.ipynb"
    path.write_text(json.dumps(notebook, indent=1) + "\n")
    expected = {
        "check": b"model.ipynb:cell 1:35:52: ELB001",
        "--diff": b'+    "optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)',
    }
    for flag, line in expected.items():
        process = elbolint([flag, "model.ipynb"], traces, tmp_path)
        assert process.returncode == 1, process.stderr
        assert line in process.stdout, flag
        assert traces.left() == [], flag
    process = elbolint(["--fix", "model.ipynb"], traces, tmp_path)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "clipnorm=1.0" in "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert traces.left() == []

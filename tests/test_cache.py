"""The content cache: a warm run analyses nothing and reports exactly what the cold run did; content,
configuration and elbolint's own code invalidate; corruption and concurrent runs are survived."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import elbolint.cache as cache_module
import elbolint.runner as runner
from elbolint.cache import Cache
from elbolint.cli import main

BAD = (b"import tensorflow as tf\nimport tensorflow_probability as tfp\n"
       b"q = tfp.distributions.Normal(0., tf.Variable(1.))\n")
OPTIMIZER = b"import tensorflow as tf\nimport tensorflow_probability as tfp\nopt = tf.optimizers.Adam(0.1)\n" \
            b"tfp.vi.fit_surrogate_posterior(f, q, opt, 10)\n"
PLAIN = b"x = 1\n"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "bad.py").write_bytes(BAD)
    (root / "pkg" / "opt.py").write_bytes(OPTIMIZER)
    (root / "plain.py").write_bytes(PLAIN)
    (root / "broken.py").write_bytes(b"import tensorflow\nx = (\n")
    return root


@pytest.fixture
def analysed(monkeypatch):
    """The paths that reached a worker (i.e. were read and parsed), per run."""
    runs: list[list[str]] = []
    real = runner._run

    def counting(job, tasks, jobs, progress=None):
        runs.append(sorted(Path(path).name for path, _ in tasks))
        return real(job, tasks, jobs, progress)

    monkeypatch.setattr(runner, "_run", counting)
    return runs


def cli(args, cwd):
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["--output-format", "json", *args], catch_exceptions=False)
    finally:
        os.chdir(previous)


def test_warm_run_analyses_nothing_and_reports_the_same(tree, analysed):
    cold = cli(["."], tree)
    warm = cli(["."], tree)
    # plain.py mentions no TF word: the parent answers it, no worker analyses it (runner._prefiltered)
    assert analysed == [["bad.py", "broken.py", "opt.py"], []]
    assert warm.stdout == cold.stdout and warm.exit_code == cold.exit_code == 1
    codes = sorted(d["code"] for d in json.loads(warm.stdout))
    assert codes == ["ELB000", "ELB001", "ELB003"]
    assert (tree / ".elbolint_cache" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_changed_file_alone_is_analysed_again(tree, analysed):
    cli(["."], tree)
    (tree / "pkg" / "bad.py").write_bytes(BAD.replace(b"tf.Variable(1.)", b"1."))
    result = cli(["."], tree)
    assert analysed[1] == ["bad.py"]
    assert sorted(d["code"] for d in json.loads(result.stdout)) == ["ELB000", "ELB003"]


def test_same_content_and_same_stat_is_not_even_read(tree, analysed, monkeypatch):
    cli(["."], tree)
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: (tree in self.absolute().parents and read.append(self.name)) or real(self))
    cli(["."], tree)
    assert read == [] and analysed[1] == []


@pytest.mark.parametrize("change", [
    "[tool.elbolint]\nignore = ['ELB003']\n",
    "[tool.elbolint]\nper-file-ignores = { 'pkg/opt.py' = ['ELB003'] }\n",
    "[tool.elbolint.extreme-initializer]\nthreshold = 5.0\n",
    "[tool.elbolint]\nmax-file-size-kib = 512\n",
])
def test_a_changed_configuration_invalidates(tree, analysed, change):
    (tree / "pyproject.toml").write_text("[tool.elbolint]\n")
    cli(["."], tree)
    (tree / "pyproject.toml").write_text(change)
    result = cli(["."], tree)
    assert analysed[1] != []
    if "ELB003" in change:
        assert "ELB003" not in {d["code"] for d in json.loads(result.stdout)}


def test_a_new_elbolint_version_or_code_invalidates(tree, analysed, monkeypatch):
    cli(["."], tree)
    monkeypatch.setattr(cache_module, "__version__", "99.0")
    cli(["."], tree)
    assert analysed[1] == ["bad.py", "broken.py", "opt.py"]  # plain.py: answered by the parent


@pytest.mark.parametrize("damage", ["garbage", "foreign", "bad-entry"])
def test_a_corrupt_or_foreign_cache_is_ignored_and_rewritten(tree, analysed, damage):
    cold = cli(["."], tree)
    database = tree / ".elbolint_cache" / f"results-v{cache_module.SCHEMA}.sqlite"
    if damage == "garbage":
        for extra in database.parent.glob("*.sqlite-*"):
            extra.unlink()
        database.write_bytes(b"\x00not a database at all" * 100)
    elif damage == "foreign":
        database.unlink()
        with sqlite3.connect(database) as connection:
            connection.execute("CREATE TABLE results (something TEXT)")
    else:
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE results SET diagnostics = '{not json'")
            connection.execute("UPDATE results SET diagnostics = '[{\"start\": 1}]' WHERE rowid = 1")
    damaged = cli(["."], tree)
    assert damaged.stdout == cold.stdout and damaged.exit_code == 1
    assert "Traceback" not in damaged.stderr
    assert analysed[1] == ["bad.py", "broken.py", "opt.py"]  # plain.py: answered by the parent
    cli(["."], tree)
    assert analysed[2] == []  # rewritten: warm again


def test_an_unusable_cache_directory_warns_once_and_lints_anyway(tree):
    (tree / "blocker").write_text("a file where the cache directory should be")
    result = CliRunner().invoke(main, ["--cache-dir", str(tree / "blocker"), str(tree)], catch_exceptions=False)
    assert result.exit_code == 1 and result.stdout.count("ELB001") == 1
    assert result.stderr.count("cache in") == 1 and "not used this run" in result.stderr


def test_no_cache_and_cache_dir(tree, tmp_path):
    cli(["--no-cache", "."], tree)
    assert not (tree / ".elbolint_cache").exists()
    elsewhere = tmp_path / "somewhere"
    cli(["--cache-dir", str(elsewhere), "."], tree)
    assert not (tree / ".elbolint_cache").exists() and (elsewhere / ".gitignore").exists()
    (tree / "pyproject.toml").write_text("[tool.elbolint]\ncache-dir = 'build/lint-cache'\n")
    cli(["."], tree)
    assert (tree / "build" / "lint-cache" / ".gitignore").exists()


def test_fix_uses_the_cache_only_where_there_is_nothing_to_fix(tree, analysed):
    cli(["."], tree)
    cli(["--fix", "."], tree)
    assert analysed[1] == ["bad.py", "opt.py"]  # both have fixable findings; the rest are hits
    assert b"TransformedVariable" in (tree / "pkg" / "bad.py").read_bytes()
    again = cli(["."], tree)
    assert analysed[2] == []
    assert sorted(d["code"] for d in json.loads(again.stdout)) == ["ELB000"]


def test_two_runs_at_once_share_the_cache_safely(tree):
    for index in range(40):
        (tree / "pkg" / f"model{index}.py").write_bytes(BAD + f"# {index}\n".encode())
    command = [sys.executable, "-m", "elbolint", "--output-format", "json", "."]
    runs = [subprocess.Popen(command, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [1, 1, 1]
    assert all(b"cache" not in stderr for _, stderr in outputs)
    assert outputs[0][0] == outputs[1][0] == outputs[2][0]
    assert len(json.loads(outputs[0][0])) == 43
    warm = subprocess.run(command, cwd=tree, capture_output=True, timeout=120)
    assert warm.stdout == outputs[0][0]


def test_the_cache_never_grows_without_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_ENTRIES", 10)
    cache = Cache(tmp_path / "cache", "fingerprint")
    cache.put([(f"key{i}", True, []) for i in range(25)], [])
    cache.prune()
    (count,) = cache.connection.execute("SELECT COUNT(*) FROM results").fetchone()
    assert count == 10
    cache.close()


def test_results_that_depend_on_the_machine_are_not_cached(tree, analysed):
    (tree / "pyproject.toml").write_text("[tool.elbolint]\nmax-file-size-kib = 1\n")
    (tree / "big.py").write_bytes(BAD + b"x = 1\n" * 400)
    cli(["."], tree)
    cli(["."], tree)
    assert analysed[1] == ["big.py"]  # ELB901 (skipped) is asked again each run

"""The pre-commit hook, run by the real pre-commit: it respects the configured excludes although
pre-commit names files one by one, and it lints notebooks.

The hook's `entry` and `types_or` are read from this repository's `.pre-commit-hooks.yaml`; the test
runs them as a `repo: local` hook with `language: system` (the installed elbolint), so no network is
needed — pre-commit's own installation of a `language: python` hook is not what is under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

yaml = pytest.importorskip("yaml")  # pre-commit depends on PyYAML

BAD = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
       "q = tfp.distributions.Normal(0., tf.Variable(1.))\n")
CLEAN = "import tensorflow_probability as tfp\nq = tfp.distributions.Normal(0., 1.)\n"


def notebook(source: str) -> str:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    return json.dumps({"cells": [cell], "metadata": {"language_info": {"name": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    local = {key: hook[key] for key in ("id", "name", "entry", "types_or", "require_serial")}
    local["language"] = "system"
    (tmp_path / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}))
    (tmp_path / "pyproject.toml").write_text('[tool.elbolint]\nextend-exclude = ["legacy/"]\n')
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(BAD)
    (tmp_path / "model.py").write_text(CLEAN)
    (tmp_path / "analysis.ipynb").write_text(notebook(BAD))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    return tmp_path


def run_hook(repo: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PRE_COMMIT_HOME=str(repo.parent / "pre-commit-home"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    return subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=repo,
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_hook_respects_excludes_and_lints_notebooks(repo):
    result = run_hook(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "analysis.ipynb:cell 1:3:34: ELB001" in result.stdout
    assert "legacy/old.py" not in result.stdout  # excluded in pyproject.toml, though named by pre-commit
    (repo / "analysis.ipynb").write_text(notebook(CLEAN))
    git(repo, "add", "-A")
    result = run_hook(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout

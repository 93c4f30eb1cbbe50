"""The README's editor snippets, run against real elbolint output: the VS Code problem matcher's
pattern on every line, and Vim's errorformat through Vim itself (where Vim is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

BAD = "import tensorflow as tf\nimport tensorflow_probability as tfp\n" \
      "q = tfp.distributions.Normal(0., tf.Variable(1.))\n" \
      "opt = tf.optimizers.Adam(0.1)\nlosses = tfp.vi.fit_surrogate_posterior(f, q, opt, 10)\n"


def readme_block(language: str, containing: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", readme, re.S)
    [block] = [b for b in blocks if containing in b]
    return block


def concise_output(tmp_path) -> list[str]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.py").write_text(BAD)
    result = subprocess.run([sys.executable, "-m", "elbolint", "--output-format", "concise", "--quiet",
                             "--no-cache", "."],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    return result.stdout.splitlines()


def test_vscode_problem_matcher_matches_every_line(tmp_path):
    """The `.py` matcher (the last one; the first is for notebook cells, see
    test_notebook_positions.py) reads every line of a `.py` file's output, and the notebook one none."""
    task = json.loads(readme_block("json", "problemMatcher"))["tasks"][0]
    notebook_matcher, python_matcher = task["problemMatcher"]
    pattern = python_matcher["pattern"]
    lines = concise_output(tmp_path)
    assert len(lines) == 2
    for line in lines:
        assert not re.match(notebook_matcher["pattern"]["regexp"], line)
        match = re.match(pattern["regexp"], line)
        assert match, line
        assert match.group(pattern["file"]) == "pkg/model.py"
        assert match.group(pattern["code"]) in ("ELB001", "ELB003")
    first = re.match(pattern["regexp"], lines[0])
    assert (first.group(pattern["line"]), first.group(pattern["column"])) == ("3", "34")


@pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")
def test_vim_errorformat_fills_the_quickfix_list(tmp_path):
    settings = [line for line in readme_block("vim", "errorformat").splitlines() if line.strip()]
    (tmp_path / "out.txt").write_text("\n".join(concise_output(tmp_path)) + "\n")
    script = tmp_path / "check.vim"
    script.write_text("\n".join(settings + [
        "cfile out.txt",
        "call writefile(map(getqflist(), "
        "'bufname(v:val.bufnr) . \"|\" . v:val.lnum . \"|\" . v:val.col . \"|\" . v:val.valid'), 'qf.txt')",
        "qall!",
    ]) + "\n")
    subprocess.run(["vim", "-N", "-u", "NONE", "-es", "-S", str(script)], cwd=tmp_path, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    entries = (tmp_path / "qf.txt").read_text().splitlines()
    assert entries == ["pkg/model.py|3|34|1", "pkg/model.py|4|7|1"]

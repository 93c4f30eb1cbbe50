"""The README's sample outputs are what the commands print.

A user's first contact with elbolint is the README's first sample; when it shows a line the command never
prints, the README is wrong before the user has run anything. So every fenced block in README.md whose first
line is `$ elbolint ...` is a sample: the test runs that command from the repository root (the packaged
examples) and compares the rest of the block with the real output. A static sample must match exactly. A
dynamic sample must show the same rows with the same verdicts; its figures (seconds, steps, losses) and
sparklines are normalised, because a run's time budget and the machine's load decide how far a fit gets.

To regenerate the blocks after a deliberate change of output: `ELBOLINT_UPDATE_README=1 python -m pytest
tests/test_readme_samples.py` (then read the diff of README.md before committing it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(\$ elbolint [^\n]*)\n(.*?)^```$", re.S | re.M)
#: A number as dynamic mode prints it (`-0.00099`, `3.8e+07`, `117`, `38.4 s`).
NUMBER = re.compile(r"(?<![A-Za-z\d.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
#: Where a finding is (`path:line:col: `): compared as is.
LOCATION = re.compile(r"^\S+:\d+:\d+: ")
#: A loss sparkline (`█▇▆▅▅▄▃▃▂▂▁▁`).
SPARKLINE = re.compile(r"[\u2581-\u2588]+")


def _samples() -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(README.read_text(encoding="utf-8"))]


def _normalise(command: str, text: str) -> str:
    text = text.rstrip("\n")
    if "--dynamic" not in command:
        return text
    lines = []
    for line in text.splitlines():
        location = LOCATION.match(line)
        head, rest = (location.group(0), line[location.end():]) if location else ("", line)
        lines.append(head + NUMBER.sub("N", SPARKLINE.sub("~", rest)))
    return "\n".join(lines)


def _run(command: str) -> str:
    argv = shlex.split(command[2:])
    assert argv[0] == "elbolint"
    env = dict(os.environ, NO_COLOR="1")
    completed = subprocess.run([sys.executable, "-m", "elbolint", *argv[1:]], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode in (0, 1), completed.stderr
    # The summary goes to stderr and the findings to stdout, as a terminal shows them: findings first.
    return completed.stdout + completed.stderr


def _params():
    for command, _ in _samples():
        marks = [pytest.mark.dynamic] if "--dynamic" in command else []
        yield pytest.param(command, marks=marks, id=command[2:])


def test_the_readme_has_samples():
    commands = [command for command, _ in _samples()]
    assert "$ elbolint examples/" in commands
    assert any("--dynamic" in command for command in commands)


@pytest.mark.parametrize("command", list(_params()))
def test_sample_is_what_the_command_prints(command):
    output = _run(command)
    expected = dict(_samples())[command]
    differs = _normalise(command, output) != _normalise(command, expected)
    if os.environ.get("ELBOLINT_UPDATE_README") == "1" and differs:
        text = README.read_text(encoding="utf-8")
        README.write_text(text.replace(f"{command}\n{expected}", f"{command}\n{output.rstrip(chr(10))}\n", 1),
                          encoding="utf-8")
        return
    assert not differs, (
        "README sample differs from the real output; regenerate with ELBOLINT_UPDATE_README=1")

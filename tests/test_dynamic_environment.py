"""Dynamic mode tells the environment from the program: a file that downloads its data cannot run
in the offline sandbox; that is `not-run` with the reason, never an ELB100 error row."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.dynamic

DOWNLOADS = """\
import urllib.request

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
surrogate = tfd.Normal(tf.Variable(0.0), tf.Variable(1.0))
data = urllib.request.urlopen("http://data.invalid/train.csv", timeout=5).read()
"""


def test_a_download_in_the_offline_sandbox_is_not_run_not_an_error(tmp_path):
    path = tmp_path / "downloads.py"
    path.write_text(DOWNLOADS)
    result = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--output-format", "json",
                             str(path)], capture_output=True, text=True, timeout=300)
    rows = json.loads(result.stdout)
    assert [row["code"] for row in rows] == ["ELB001"]
    dynamic = rows[0]["dynamic"]
    assert dynamic["status"] == "not-run"
    assert "a download failed at line 8" in dynamic["summary"] and "`__file__`" in dynamic["summary"]
    text = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", str(path)],
                          capture_output=True, text=True, timeout=300).stdout
    assert "  not-run: a download failed" in text  # the status is not repeated

"""A raw variable the *model* uses as a constrained parameter (a Bernoulli's `probs`, a Poisson's
`rate` built inside a hand-written loop's tape) is no surrogate parameter, so watching the surrogate
never sees it. The parent hands the child the variables ELB001/007/008 findings name (`raw_parameters`
in the job), and the loop watches those variables directly: the finding is confirmed or not by its
own variable's values, never by a NaN that another parameter caused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES
from elbolint.config import Config
from elbolint.dynamic import raw_parameters
from elbolint.linter import lint_file
from elbolint.registry import all_rules

HURDLE = FIXTURES / "dynamic" / "loop_model_raw_probs.py"


def test_the_parent_names_each_raw_variable_with_its_parameter_and_distribution():
    config = Config()
    result = lint_file(HURDLE, all_rules(), {}, config.enabled_codes())
    assert raw_parameters(result) == [
        {"parameter": "probs", "distribution": "Bernoulli", "component": None, "variable": "zero_prob"},
        {"parameter": "rate", "distribution": "Poisson", "component": None, "variable": "count_rate"},
    ]


@pytest.mark.dynamic
def test_the_models_raw_probs_is_confirmed_by_its_own_values_and_the_rate_is_not():
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--dynamic-seeds", "1",
                                "--output-format", "json", str(HURDLE)], capture_output=True, text=True, timeout=600)
    rows = {row["code"]: row for row in json.loads(completed.stdout)}
    probs, rate = rows["ELB007"]["dynamic"], rows["ELB001"]["dynamic"]
    assert probs["status"] == "confirmed", probs["summary"]
    assert probs["summary"].startswith("`probs` of Bernoulli (`zero_prob`): a probability left [0, 1]")
    assert rate["status"] == "not-reproduced", rate["summary"]
    # watched (a parameter nothing watched would be "not a surrogate parameter elbolint could identify")
    assert "nothing of this line's own (`rate` of Poisson (`count_rate`))" in rate["summary"]
    assert "could identify" not in rate["summary"]

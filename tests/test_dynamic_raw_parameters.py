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
NOISE = FIXTURES / "dynamic" / "fit_model_raw_noise_scale.py"


def test_the_parent_names_each_raw_variable_with_its_parameter_and_distribution():
    config = Config()
    result = lint_file(HURDLE, all_rules(), {}, config.enabled_codes())
    assert raw_parameters(result) == [
        {"parameter": "probs", "distribution": "Bernoulli", "component": None, "variable": "zero_prob"},
        {"parameter": "rate", "distribution": "Poisson", "component": None, "variable": "count_rate"},
    ]


@pytest.fixture(scope="module")
def rows():
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--dynamic-seeds", "2",
                                "--output-format", "json", str(HURDLE), str(NOISE)],
                               capture_output=True, text=True, timeout=600)
    found: dict = {}
    for row in json.loads(completed.stdout):
        found.setdefault(row["filename"].rsplit("/", 1)[-1], {}).setdefault(row["code"], []).append(row)
    return found


@pytest.mark.dynamic
def test_the_models_raw_probs_is_confirmed_by_its_own_values_and_the_rate_is_not(rows):
    mine = rows[HURDLE.name]
    probs, rate = mine["ELB007"][0]["dynamic"], mine["ELB001"][0]["dynamic"]
    assert probs["status"] == "confirmed", probs["summary"]
    assert probs["summary"].startswith("`probs` of Bernoulli (`zero_prob`): a probability left [0, 1]")
    assert rate["status"] == "not-reproduced", rate["summary"]
    # watched (a parameter nothing watched would be "not a surrogate parameter elbolint could identify")
    assert "nothing of this line's own (`rate` of Poisson (`count_rate`))" in rate["summary"]
    assert "could identify" not in rate["summary"]


@pytest.mark.dynamic
def test_a_likelihoods_raw_noise_scale_trained_by_the_fit_is_confirmed_by_its_own_values(rows):
    mine = rows[NOISE.name]
    noise = mine["ELB001"][0]["dynamic"]
    assert noise["status"] == "confirmed", noise["summary"]
    assert noise["summary"].startswith("`scale` of Normal (`noise_scale`) reached -")
    # the fit trains it (fit_surrogate_posterior trains every variable the loss reads): no ELB105 claims
    # it "stayed at its initial value"
    assert "ELB105" not in mine

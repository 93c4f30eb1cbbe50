"""ELB014's dynamic confirmation (elbolint/dynamic/verdicts/support.py): the finding travels to the child as a
check on its own surrogate component; only that component's draws outside its prior's support
(ELB113, for the finding's line) confirm it; a surrogate that stays inside is not-reproduced with the
measured shares. Pure parts here; TensorFlow runs in the marked test at the end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import FIXTURES
from elbolint.dynamic.verdicts.support import DRAWS, check_of, findings, not_reproduced

HALF_NORMAL = ("surrogate component 'sigma' is tfd.Normal, supported on the whole real line, but its prior "
               "tfd.HalfNormal has density only on positive values (0, inf): the prior's log_prob is -inf ...")


def test_a_finding_becomes_a_check_on_its_own_component_with_numeric_bounds():
    assert check_of(HALF_NORMAL, 23) == {"line": 23, "name": "sigma", "position": None, "whole": False,
                                         "low": 0.0, "high": math.inf}
    unit = ("surrogate component at position 2 is tfd.Normal, supported on the whole real line, but its prior "
            "tfd.Beta has density only on the unit interval (0, 1): ...")
    assert check_of(unit, 7)["position"] == 2 and (check_of(unit, 7)["low"], check_of(unit, 7)["high"]) == (0.0, 1.0)
    bounded = ("the surrogate is tfd.Normal, supported on the whole real line, but its prior tfd.Uniform has "
               "density only on (-2, 5): ...")
    assert check_of(bounded, 3)["whole"] and (check_of(bounded, 3)["low"], check_of(bounded, 3)["high"]) == (-2.0, 5.0)
    # bounds that are other parameters, or supports that are no interval, are not measured
    assert check_of("surrogate component 'u' is tfd.Normal ... has density only on (low, high): ...", 3) is None
    assert check_of("surrogate component 'p' is tfd.Normal ... has density only on the probability simplex", 3) is None


def _measured(line, share, nan=0.0, minimum=-0.4):
    return {"line": line, "component": "component 'sigma'", "share": share, "nan": nan, "min": minimum, "max": 2.0}


def test_draws_outside_confirm_only_the_finding_at_their_line_and_say_so():
    trace = {"fit": {"loss": [5.0, float("nan"), 4.0, float("inf")]},
             "support": {"start": [_measured(23, 0.171), _measured(30, 0.0, minimum=0.2)],
                         "end": [_measured(23, 0.0), _measured(30, 0.0, minimum=0.3)]}}
    [found] = findings(trace)
    assert found["code"] == "ELB113" and found["evidence"]["for_line"] == 23
    assert found["message"] == ("component 'sigma': surrogate draws of this component outside its prior's support "
                                f"(of {DRAWS}): 17.1 % at the start of the fit, none at its end; in the same run the "
                                "loss is non-finite at 2 of 4 steps, from step 1")
    assert not_reproduced(trace, 30) == (f"0 of {DRAWS} surrogate draws of this component fall outside its prior's "
                                         "support at the start of the fit and at its end (smallest draw 0.2)")
    assert not_reproduced(trace, 99) is None


def test_a_single_draw_outside_counts_and_nan_draws_are_not_called_outside():
    trace = {"support": {"end": [_measured(5, 1 / DRAWS, nan=0.0)]}}
    assert "1 draws at the end of the run" in findings(trace)[0]["message"]
    assert findings({"support": {"end": [_measured(5, 0.0, nan=1.0)]}}) == []


@pytest.mark.dynamic
def test_the_components_own_draws_confirm_and_a_surrogate_far_from_the_boundary_is_not_reproduced():
    files = [FIXTURES / "dynamic" / "support_normal_for_halfnormal.py",
             FIXTURES / "dynamic" / "support_far_from_boundary.py"]
    completed = subprocess.run([sys.executable, "-m", "elbolint", "--no-cache", "--dynamic", "--output-format", "json",
                                *map(str, files)], capture_output=True, text=True, timeout=600)
    rows = {(r["filename"].rsplit("/", 1)[-1], r["code"]): r for r in json.loads(completed.stdout)}
    confirmed = rows[("support_normal_for_halfnormal.py", "ELB014")]["dynamic"]
    assert confirmed["status"] == "confirmed" and confirmed["evidence"]["codes"] == ["ELB113"]
    assert confirmed["summary"].startswith("component 'sigma': surrogate draws of this component outside its prior's "
                                           "support (of 1000): ")
    share = confirmed["evidence"]["findings"][0]["evidence"]["start"]["share"]
    assert 0.05 < share < 0.5  # Normal(0.5, 0.5): about 16 % below 0
    quiet = rows[("support_far_from_boundary.py", "ELB014")]["dynamic"]
    assert quiet["status"] == "not-reproduced"
    assert "0 of 1000 surrogate draws of this component fall outside its prior's support" in quiet["summary"]
    assert not [key for key in rows if key[0] == "support_far_from_boundary.py" and key[1] != "ELB014"]

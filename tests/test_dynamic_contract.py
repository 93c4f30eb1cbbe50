"""The child/parent contract (elbolint/dynamic/verdicts/contract.py): declared records, checked generically.
Every dynamic test checks its real traces and verdicts too (conftest sets ELBOLINT_CHECK_TRACES=1 and
report.apply_results enforces it); these tests show the checker bites."""

from __future__ import annotations

import pytest

from elbolint.dynamic.verdicts.contract import Trace, problems, verdict_problems


def _trace(**extra):
    trace = {"source": "loop", "line": 12, "budget": 200, "seconds": 1.5,
             "site": {"kind": "loop", "line": 12, "stack": [12, 30]},
             "fit": {"loss": [3.0, float("nan"), "nan"], "grad_norm": [1.0, None, 2.0],
                     "positive": {"`scale`": [0.5, -0.1]},
                     "watched": {"`scale`": {"parameter": "scale", "distribution": "Normal", "component": None,
                                             "variable": "raw", "kind": "scale", "strict": True}},
                     "counterfactual": {"clipnorm": 1.0, "runs": [{"seed": 0, "finite": True, "final": 2.0,
                                                                   "max_grad_norm": 5e6}]}},
             "replays": {"ran": 2, "seconds": 3.0, "skipped": []}}
    trace.update(extra)
    return trace


def test_a_well_formed_trace_holds_and_nested_records_are_checked():
    assert problems(_trace()) == []
    assert problems({"fits": [_trace(), _trace()], "source": "fit_surrogate_posterior"}) == []


@pytest.mark.parametrize("change, expected", [
    (dict(sedes=[]), "trace.sedes: not declared in Trace"),
    (dict(seeds=None), "trace.seeds: expected a list, got NoneType"),
    (dict(line="12"), "trace.line: '12' is none of int, NoneType"),
    (dict(replays={"ran": 1, "seconds": 1.0}), "trace.replays.skipped: missing"),
    (dict(site={"kind": "loop", "stack": ["12"]}), "trace.site.stack[0]: expected an integer"),
    (dict(fits=[{"fit": {"loss": [True]}}]), "trace.fits[0].fit.loss[0]: expected a number, got True"),
])
def test_undeclared_keys_missing_keys_and_wrong_types_are_named_with_their_path(change, expected):
    found = problems(_trace(**change))
    assert any(p.startswith(expected) for p in found), found


def test_verdicts_and_observations_are_declared_records():
    verdict = {"status": "confirmed", "summary": "s", "evidence": {"codes": ["ELB110"], "findings": []}, "trace": {}}
    assert verdict_problems(verdict) == [] and verdict_problems(None) == []
    assert verdict_problems(dict(verdict, status="maybe"))[0].startswith("dynamic.status: 'maybe' is not one of")
    assert verdict_problems({"status": "observed", "evidence": {}, "trace": {}}) == []
    assert verdict_problems({"status": "not-run", "summary": "s", "evidence": {}})[0] == "dynamic.trace: missing"


def test_every_trace_key_has_a_declared_type():
    from typing import get_type_hints

    assert set(get_type_hints(Trace)) >= {"source", "fit", "fits", "seeds", "site", "failure", "nothing", "replays",
                                          "support", "richer", "reference"}

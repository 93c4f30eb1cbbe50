"""Replays (elbolint/dynamic/process/replays.py): a hand-written loop or a Keras fit is the program's own code,
so its extra seeds and its counterfactuals (clipped for ELB003, a 10x smaller rate for ELB009) are
the whole program run again as a variant. The decisions are tested here with a fake child (no
TensorFlow); the end-to-end runs are in test_dynamic_replays_run.py."""

from __future__ import annotations

import math

from elbolint.dynamic.process.replays import MIN_COUNTERFACTUAL_STEPS, run_with_replays
from elbolint.dynamic.verdicts.seeds import classify_seeds, coverage

NAN = float("nan")


def _settings(**extra):
    return dict({"timeout": 60.0, "seeds": 4, "steps": 200, "flagged_codes": [], "thresholds": {}}, **extra)


def _trace(loss, norm=1.0, source="loop", line=30, rate=None, clipping=None, variant=None):
    fit = {"loss": list(loss), "grad_norm": [norm] * len(loss), "positive": {}, "learning_rate": rate,
           "clipping": clipping or {}}
    trace = {"source": source, "line": line, "site": {"kind": source, "line": line}, "budget": 200, "fit": fit,
             "seconds": 0.01}
    if variant is not None:
        trace["variant"] = variant
    return trace


class FakeChild:
    """Answers each job like the sandboxed child would, from `behaviour(variant) -> trace`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.jobs = []

    def __call__(self, job, timeout):
        self.jobs.append(job)
        return self.behaviour(job.get("variant") or {}, job["settings"])


def _noisy(seed, n=200, start=50.0):
    return [start - 0.1 * i + 0.01 * seed for i in range(n)]


def test_every_seed_of_a_loop_is_a_replay_and_its_runs_are_aggregated():
    child = FakeChild(lambda v, s: _trace(_noisy(v.get("seed", 0))))
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB001"])}, child)
    assert [j.get("variant") for j in child.jobs] == [None, {"seed": 1}, {"seed": 2}, {"seed": 3}]
    assert [r["seed"] for r in trace["seeds"]] == [0, 1, 2, 3]
    assert all(j["settings"]["reference"] is False for j in child.jobs[1:])  # only the first run has one
    assert "4 runs of the program, seeds 0-3" in coverage(trace)
    assert trace["replays"]["ran"] == 3


def test_a_program_that_fixes_its_own_draws_is_one_seed_not_four():
    child = FakeChild(lambda v, s: _trace(_noisy(0)[:5] + [NAN, NAN]))  # the same NaN run each time
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB001"])}, child)
    assert "seeds" not in trace and len(child.jobs) == 2  # the first identical replay stops the seeds
    assert "one run: the program fixes its own random draws" in coverage(trace)


def test_clipped_counterfactual_only_for_a_flagged_unclipped_unstable_run_and_it_confirms():
    def behaviour(v, s):
        if v.get("clip"):  # clipped: finite, and the variant says steps were clipped
            return _trace(_noisy(v["seed"], n=s["steps"]), variant={"seed": v["seed"], "clipped_steps": 7})
        return _trace([9e6 + v.get("seed", 0), NAN, NAN], norm=5e6, variant=v or None)

    child = FakeChild(behaviour)
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, child)
    clipped = [j for j in child.jobs if (j.get("variant") or {}).get("clip")]
    assert [j["variant"]["seed"] for j in clipped] == [0, 1, 2, 3]
    assert all(j["settings"]["steps"] == MIN_COUNTERFACTUAL_STEPS for j in clipped)  # broke at step 2: 50 steps
    counterfactual = trace["fit"]["counterfactual"]
    assert counterfactual["clipnorm"] == 1.0 and [r["finite"] for r in counterfactual["runs"]] == [True] * 4
    [elb110] = [f for f in classify_seeds(trace) if f["code"] == "ELB110"]
    assert "the loss goes non-finite in 0 of 4 seeds (unclipped: 4 of 4)" in elb110["message"]

    for settings in (_settings(flagged_codes=["ELB001"]),  # no ELB003 finding: nothing to confirm
                     _settings(flagged_codes=["ELB003"])):
        quiet = FakeChild(lambda v, s: _trace(_noisy(v.get("seed", 0))))  # stable: no counterfactual
        run_with_replays({"path": "m.py", "settings": settings}, quiet)
        assert not [j for j in quiet.jobs if (j.get("variant") or {}).get("clip")]
    clips_itself = FakeChild(lambda v, s: _trace([9e6, NAN, NAN], clipping={"clipnorm": 1.0}))
    run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, clips_itself)
    assert not [j for j in clips_itself.jobs if (j.get("variant") or {}).get("clip")]


def test_a_clip_that_touched_no_step_is_no_counterfactual():
    def behaviour(v, s):
        if v.get("clip"):
            return _trace(_noisy(v["seed"]), variant={"seed": v["seed"], "clipped_steps": 0})
        return _trace([9e6 + v.get("seed", 0), NAN, NAN], norm=5e6)

    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, FakeChild(behaviour))
    assert "counterfactual" not in trace["fit"]
    assert any("no step of the run went through the clipping" in n for n in trace["replays"]["skipped"])


def test_smaller_rate_counterfactual_needs_a_constant_rate_of_at_least_0_1_and_is_judged_like_a_fits():
    def behaviour(v, s, rate=1.0):
        seed = v.get("seed", 0)
        if v.get("rate_factor"):
            return _trace([20.0 - 0.05 * i for i in range(s["steps"])], rate=rate,
                          variant={"seed": seed, "rates": [{"from": rate, "to": rate / 10}]})
        return _trace([30.0 + 0.5 * i + seed for i in range(200)], rate=rate)  # rising: what ELB009 claims

    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, FakeChild(behaviour))
    rerun = trace["fit"]["smaller_rate"]
    assert (rerun["learning_rate"], rerun["smaller"], len(rerun["runs"])) == (1.0, 0.1, 4)
    [elb112] = [f for f in classify_seeds(trace) if f["code"] == "ELB112"]
    assert elb112["message"].startswith("re-run at learning rate 0.1 (10x smaller than 1): the final loss is")

    low = FakeChild(lambda v, s: behaviour(v, s, rate=0.05))
    run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, low)
    assert not [j for j in low.jobs if (j.get("variant") or {}).get("rate_factor")]

    def schedule(v, s):  # the child could not set the rate: the re-run is not the fix, not used
        if v.get("rate_factor"):
            return _trace(_noisy(v["seed"]), rate=1.0,
                          variant={"seed": v["seed"], "rates": [{"error": "the learning rate could not be set"}]})
        return behaviour(v, s)

    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, FakeChild(schedule))
    assert "smaller_rate" not in trace["fit"]
    assert any("could not be set" in n for n in trace["replays"]["skipped"])


def test_a_replay_that_records_another_run_or_fails_is_not_used():
    def behaviour(v, s):
        if v.get("seed") == 1:
            return _trace(_noisy(1), line=12)  # another loop was recorded this time
        if v.get("seed") == 2:
            return {"failure": {"kind": "timeout", "message": "timed out after 3 s"}}
        return _trace(_noisy(v.get("seed", 0)))

    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB001"])}, FakeChild(behaviour))
    assert [r["seed"] for r in trace["seeds"]] == [0, 3]
    skipped = trace["replays"]["skipped"]
    assert any(n.startswith("seed 1: the replay recorded another run (loop at line 12)") for n in skipped)
    assert any(n.startswith("seed 2: the replay failed (timed out") for n in skipped)


def test_replays_stay_inside_the_per_file_timeout(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("elbolint.dynamic.process.replays.time.monotonic", lambda: clock[0])

    def behaviour(v, s):
        clock[0] += 20.0  # every run of the program takes 20 s of a 60 s timeout
        return _trace([9e6 + v.get("seed", 0), NAN, NAN], norm=5e6, variant=dict(v, clipped_steps=3) if v else None)

    child = FakeChild(behaviour)
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, child)
    # half the time left is the seeds' and a seed would not fit in it: the fix's re-run goes first
    assert [j.get("variant") for j in child.jobs] == [None, {"clip": 1.0, "seed": 0}]
    skipped = trace["replays"]["skipped"]
    # the re-run needs three seeds to show anything (seeds.MIN_COUNTERFACTUAL_SEEDS): with only one run in the
    # time left it is not kept, and the note says which seed did not fit
    assert [n.split(" not run")[0] for n in skipped] == ["seed 1", "seed 2", "seed 3", "clipped re-run of seed 1"]
    assert "per-file timeout left 20 s for it, the first run took 20 s" in skipped[0]
    assert "counterfactual" not in trace["fit"] and "seeds" not in trace


def test_fits_failures_and_empty_runs_are_never_replayed():
    for first in ({"source": "fit_surrogate_posterior", "fit": {"loss": [1.0]}, "seeds": [{}, {}]},
                  {"failure": {"kind": "exception", "message": "boom"}},
                  {"nothing": "no fit"},
                  _trace([])):
        child = FakeChild(lambda v, s, first=first: first)
        assert run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, child) is first
        assert len(child.jobs) == 1


def test_the_unconfirmed_verdict_says_when_the_fix_replay_did_not_fit_in_the_timeout():
    from pathlib import Path

    from elbolint.config import Config
    from elbolint.dynamic.parent.report import apply_results
    from elbolint.dynamic.parent.settings import DynamicSettings
    from elbolint.linter import lint_file
    from elbolint.registry import all_rules

    path = Path(__file__).resolve().parents[1] / "fixtures" / "dynamic" / "loop_unclipped_sgd_explodes.py"
    result = lint_file(path, all_rules(), {}, Config().enabled_codes())
    trace = _trace([9e6, NAN, NAN], norm=5e6, line=29)
    trace["replays"] = {"ran": 1, "seconds": 40.0,
                        "skipped": ["clipped re-run of seed 0 not run: the per-file timeout left 2 s for it, "
                                    "the first run took 20 s"]}
    apply_results([result], [trace], DynamicSettings(), Config().enabled_codes())
    [elb003] = [d for d in result.diagnostics if d.code == "ELB003"]
    assert elb003.dynamic["status"] == "unconfirmed"
    assert "; clipped re-run of seed 0 not run: the per-file timeout left 2 s" in elb003.dynamic["summary"]
    assert not math.isnan(elb003.dynamic["trace"]["replays"]["seconds"])


def test_a_flagged_high_rate_is_replayed_at_a_smaller_rate_even_when_the_run_looks_stable():
    """Measured: a Keras BNN at rate 1.0 stays finite and flat, stuck far above where 0.1 ends."""
    def behaviour(v, s):
        seed = v.get("seed", 0)
        if v.get("rate_factor"):
            return _trace([0.5 - 0.002 * i for i in range(s["steps"])], rate=1.0,
                          variant={"seed": seed, "rates": [{"from": 1.0, "to": 0.1}]})
        return _trace([20.0 + 0.01 * seed] * 200, rate=1.0)  # flat: no NaN, no rise, small gradients

    child = FakeChild(behaviour)
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, child)
    assert len(trace["fit"]["smaller_rate"]["runs"]) == 4
    assert "ELB112" in [f["code"] for f in classify_seeds(trace)]


def test_a_keras_fits_per_example_loss_is_judged_in_nats_of_the_whole_elbo():
    """A Keras fit's loss is per example: 0.42 -> 0.014 over 256 examples is ~100 nats, a clear gain."""
    def behaviour(v, s):
        seed = v.get("seed", 0)
        trace = _trace([0.42 + 0.001 * seed] * 200 if not v.get("rate_factor") else [0.014 + 0.001 * seed] * 200,
                       source="keras", rate=1.0,
                       variant={"seed": seed, "rates": [{"from": 1.0, "to": 0.1}]} if v else None)
        trace["fit"]["dataset_size"] = 256
        return trace

    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, FakeChild(behaviour))
    [elb112] = [f for f in classify_seeds(trace) if f["code"] == "ELB112"]
    assert "the final loss is 0.0155 instead of 0.4215" in elb112["message"]


def test_a_counterfactual_takes_three_seeds_even_after_two_runs_and_one_for_fixed_draws():
    """Two re-run seeds staying finite are a 1-in-4 chance for a fix that helps half the time: the
    clipped re-run covers three seeds even when only two runs of the program fitted; a program that
    fixes its own draws is one run natively too, so one re-run is all there is to see."""
    def behaviour(v, s):
        if v.get("clip"):
            return _trace(_noisy(v["seed"], n=s["steps"]), variant={"seed": v["seed"], "clipped_steps": 7})
        return _trace([9e6 + v.get("seed", 0), NAN, NAN], norm=5e6, variant=v or None)

    child = FakeChild(behaviour)
    trace = run_with_replays({"path": "m.py", "settings": _settings(seeds=2, flagged_codes=["ELB003"])}, child)
    clipped = [j["variant"]["seed"] for j in child.jobs if (j.get("variant") or {}).get("clip")]
    assert clipped == [0, 1, 2] and len(trace["seeds"]) == 2
    [elb110] = [f for f in classify_seeds(trace) if f["code"] == "ELB110"]
    assert "the loss goes non-finite in 0 of 3 seeds (unclipped: 2 of 2)" in elb110["message"]

    def fixed(v, s):  # every run of the program is the same run
        if v.get("clip"):
            return _trace(_noisy(0, n=s["steps"]), variant={"seed": v["seed"], "clipped_steps": 7})
        return _trace([9e6, NAN, NAN], norm=5e6, variant=v or None)

    child = FakeChild(fixed)
    trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB003"])}, child)
    assert [j["variant"]["seed"] for j in child.jobs if (j.get("variant") or {}).get("clip")] == [0]
    assert trace["replays"]["fixed_draws"] is True
    assert "ELB110" in [f["code"] for f in classify_seeds(trace)]


def test_a_finite_run_of_one_seed_is_not_re_run_with_the_fix():
    """Comparing where runs end needs two seeds of the program's own: with one, the re-run is not made
    and the reason is noted."""
    clock = [0.0]

    def behaviour(v, s):
        clock[0] += 25.0 if not v else 1.0  # the first run takes 25 s of 60: no seed fits in half the rest
        return _trace([20.0] * 200, rate=1.0, variant={"seed": v.get("seed", 0), "rates": [{"from": 1.0, "to": 0.1}]}
                      if v else None)

    import elbolint.dynamic.process.replays as replays

    original = replays.time.monotonic
    replays.time.monotonic = lambda: clock[0]
    try:
        child = FakeChild(behaviour)
        trace = run_with_replays({"path": "m.py", "settings": _settings(flagged_codes=["ELB009"])}, child)
    finally:
        replays.time.monotonic = original
    assert not [j for j in child.jobs if (j.get("variant") or {}).get("rate_factor")]
    assert "smaller_rate" not in trace["fit"]
    assert any(n.startswith("smaller-rate re-run not made: the program's own run ended finite in 1 seed only")
               for n in trace["replays"]["skipped"])


def test_once_a_replay_ran_the_next_is_expected_to_take_what_it_took(monkeypatch):
    """The first run also fitted the reference (and started cold): 30 s of a 110 s timeout. Judged by it,
    only one more seed would fit in the seeds' half of the time left (40 s); the replays take 5 s each,
    so after the first, every seed fits."""
    clock = [0.0]
    monkeypatch.setattr("elbolint.dynamic.process.replays.time.monotonic", lambda: clock[0])

    def behaviour(v, s):
        clock[0] += 5.0 if v else 30.0
        if v.get("clip"):
            return _trace(_noisy(v["seed"], n=s["steps"]), variant={"seed": v["seed"], "clipped_steps": 7})
        return _trace([9e6 + v.get("seed", 0), NAN, NAN], norm=5e6, variant=v or None)

    child = FakeChild(behaviour)
    trace = run_with_replays({"path": "m.py", "settings": _settings(timeout=110.0, flagged_codes=["ELB003"])}, child)
    assert [r["seed"] for r in trace["seeds"]] == [0, 1, 2, 3]
    assert [j["variant"]["seed"] for j in child.jobs if (j.get("variant") or {}).get("clip")] == [0, 1, 2, 3]
    assert trace["replays"]["skipped"] == []


def test_a_replay_is_expected_to_take_the_first_run_without_its_reference_fits():
    from elbolint.dynamic.process.replays import _own_seconds

    trace = {"fit": {"seconds": 3.0}, "reference": {"seconds": 2.0},
             "richer": {"seconds": 4.0, "flow": {"seconds": 8.0}}}
    assert _own_seconds(trace, 19.0) == 5.0
    assert _own_seconds(trace, 12.0) == 3.0  # never less than the steps themselves took
    assert _own_seconds({"fit": {}}, 7.5) == 7.5

"""The cold path's shortcuts keep the results: rules chosen per file by their triage words, tasks
streamed to the workers while the parent still discovers, the stack-based directory walk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from elbolint import isolation, linter, runner, triage
from elbolint.config import Config
from elbolint.discovery import discover
from elbolint.registry import all_rules

OPTIMIZER_ONLY = b"import tensorflow as tf\nopt = tf.optimizers.Adam(learning_rate=0.5)\n"
RAW_SCALE = (b"import tensorflow as tf\nimport tensorflow_probability as tfp\n"
             b"q = tfp.distributions.Normal(0., tf.Variable(1.))\n"
             b"opt = tf.optimizers.Adam(learning_rate=0.5)\n")
EVERY = frozenset(rule.code for rule in all_rules()) | {"ELB000", "ELB900", "ELB901", "ELB902", "ELB999"}


def _codes(rules) -> set[str]:
    return {rule.code for rule in rules}


def test_firing_keeps_the_rules_whose_words_the_text_has(monkeypatch):
    monkeypatch.delenv(triage.DISABLE_VARIABLE, raising=False)
    rules = list(all_rules())
    chosen = triage.firing(OPTIMIZER_ONLY.decode(), rules)
    assert chosen == [rule for rule in rules if rule in chosen]  # the rules' order is kept
    assert "ELB009" in _codes(chosen) and "ELB001" not in _codes(chosen)
    assert _codes(triage.firing(RAW_SCALE.decode(), rules)) >= {"ELB001", "ELB009"}
    monkeypatch.setenv(triage.DISABLE_VARIABLE, "1")
    assert triage.firing(OPTIMIZER_ONLY.decode(), rules) == rules


@pytest.mark.parametrize("source", [OPTIMIZER_ONLY, RAW_SCALE])
def test_a_worker_runs_only_the_rules_that_can_fire_and_finds_the_same(tmp_path, monkeypatch, source):
    monkeypatch.delenv(triage.DISABLE_VARIABLE, raising=False)
    path = tmp_path / "model.py"
    path.write_bytes(source)
    seen: list[set[str]] = []
    real = linter.lint_file

    def recording(file, rules, *args, **kwargs):
        seen.append(_codes(rules))
        return real(file, rules, *args, **kwargs)

    monkeypatch.setattr(runner, "lint_file", recording)
    job = runner.Job(Config(root=tmp_path), EVERY, hashes=True)
    fast = runner._lint_one(job, (path, None))
    monkeypatch.setenv(triage.DISABLE_VARIABLE, "1")
    full = runner._lint_one(job, (path, None))
    assert seen[0] < seen[1] == {rule.code for rule in all_rules()}
    assert [d.sort_key() for d in fast.diagnostics] == [d.sort_key() for d in full.diagnostics]
    assert fast.content_hash == full.content_hash is not None
    assert fast.diagnostics or source is OPTIMIZER_ONLY


def test_fixing_runs_every_rule(tmp_path, monkeypatch):
    """A fix writes new text, which the re-lint reads with the rules of the original file: all of them."""
    monkeypatch.delenv(triage.DISABLE_VARIABLE, raising=False)
    path = tmp_path / "model.py"
    path.write_bytes(OPTIMIZER_ONLY)
    seen: list[set[str]] = []
    real = linter.lint_file
    monkeypatch.setattr(runner, "lint_file",
                        lambda f, rules, *a, **k: seen.append(_codes(rules)) or real(f, rules, *a, **k))
    runner._lint_one(runner.Job(Config(root=tmp_path), EVERY, diff=True), (path, None))
    assert seen[0] == {rule.code for rule in all_rules()}


def _double(task):
    kind, value = task
    if kind == "segv":
        os.kill(os.getpid(), 11)
    return value * 2


def _died(task, reason):
    return ("died", task[1], reason)


def test_a_stream_of_tasks_gives_what_a_list_gives():
    tasks = [("ok", i) for i in range(30)]
    tasks[11] = ("segv", 11)
    listed = isolation.run_isolated(tasks, _double, _died, jobs=2, seconds=30, memory_mib=512)
    streamed = isolation.run_isolated((task for task in tasks), _double, _died, jobs=2, seconds=30,
                                      memory_mib=512)
    assert streamed == listed
    assert listed[11][:2] == ("died", 11) and listed[12] == 24


def test_an_empty_stream_starts_no_worker(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(isolation, "_Worker", refuse)
    assert isolation.run_isolated(iter(()), _double, _died, jobs=2, seconds=30, memory_mib=512) == []


def test_tasks_can_be_read_twice_and_truth_reads_one():
    taken = []

    def stream():
        for i in range(3):
            taken.append(i)
            yield i

    tasks = runner._Tasks(stream())
    assert tasks and taken == [0]
    assert list(tasks) == [0, 1, 2] and list(tasks) == [0, 1, 2] and len(tasks) == 3
    assert not runner._Tasks(iter(()))


def test_lint_paths_streams_and_reports_every_file_once(tmp_path, monkeypatch):
    monkeypatch.delenv(triage.DISABLE_VARIABLE, raising=False)
    for i in range(12):
        (tmp_path / f"plain_{i:02}.py").write_text("x = 1\n")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "model.py").write_bytes(RAW_SCALE)
    (tmp_path / "zoo" / "opt.py").write_bytes(OPTIMIZER_ONLY)
    shown = []
    results = runner.lint_paths([tmp_path, tmp_path / "missing.py"], Config(root=tmp_path), set(EVERY),
                                progress=lambda done, total: shown.append((done, total)))
    names = [result.path.relative_to(tmp_path).as_posix() for result in results]
    assert names == [f"plain_{i:02}.py" for i in range(12)] + ["zoo/model.py", "zoo/opt.py", "missing.py"]
    assert shown[-1] == (14, 14)
    assert [d.code for d in results[-1].diagnostics] == ["ELB900"]
    assert results[12].diagnostics and results[13].parsed and not results[0].parsed  # (plain: the parent's)


def test_the_walk_is_depth_first_in_name_order_and_enters_a_directory_once(tmp_path):
    for name in ("b.py", "a/z.py", "a/b/c.py", "a_file.py", "c/d.pyi", "c/e.txt", "c/.f.py", "c/..g.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    found = [item.relative_to(tmp_path).as_posix() for item in discover([tmp_path], Config(root=tmp_path))]
    assert found == ["a/b/c.py", "a/z.py", "a_file.py", "b.py", "c/..g.py", "c/.f.py", "c/d.pyi"]
    assert all(isinstance(item, Path) for item in discover([tmp_path], Config(root=tmp_path)))

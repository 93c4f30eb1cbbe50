"""Pytest in a forked child of tools/mutation.py, which never imports elbolint itself.

Why a module of its own: the mutation campaign runs pytest once per mutant; starting Python and
importing pytest's plugins (hypothesis alone takes seconds) and LibCST every time cost more than
most mutants' tests. The campaign imports those once (`preload`) and forks a child per run that
works in the private copy (`in_child`); `Outcome` is the child's pytest plugin (failing tests,
durations, a time limit per test).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest


def child_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env



class Outcome:
    """A pytest plugin for the child: the failing tests, in order, and each test's duration.
    `before_test` runs first in every test (the trace's bookkeeping). `limits`: seconds per test
    id; a test still running then fails (SIGALRM), so a mutant that loops forever is a timeout
    within seconds instead of at the end of the whole run's time limit."""

    def __init__(self, before_test: Optional[Callable[[str], None]] = None,
                 at_end: Optional[Callable[[], None]] = None, limits: Optional[dict[str, float]] = None) -> None:
        self.failed: list[str] = []
        self.seconds: dict[str, float] = {}
        self.before_test = before_test
        self.at_end = at_end
        self.limits = limits or {}
        self.timed_out: Optional[str] = None

    def _alarm(self, signum: int, frame: Any) -> None:
        raise TimeoutError(f"mutation.py: over the time limit of {self.timed_out}")

    def pytest_sessionfinish(self, session: Any) -> None:
        if self.at_end is not None:
            self.at_end()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
        if self.before_test is not None:
            self.before_test(item.nodeid)
        limit = self.limits.get(item.nodeid)
        if limit is not None:
            self.timed_out = item.nodeid
            signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, limit)
        start = time.perf_counter()
        yield
        if limit is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if time.perf_counter() - start < limit:
                self.timed_out = None
        self.seconds[item.nodeid] = round(time.perf_counter() - start, 4)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed and report.nodeid not in self.failed:
            self.failed.append(report.nodeid)

    def pytest_configure(self, config: Any) -> None:
        """Keep the work of the CLI (tests/test_fix.py) in this process: no worker processes to fork
        from a test process, and the trace sees what the CLI ran."""
        import elbolint.isolation

        def in_process(tasks, work, on_death, *, progress=None, **_limits):  # type: ignore[no-untyped-def]
            results = []
            for done, task in enumerate(tasks, start=1):
                results.append(work(task))
                if progress is not None:
                    progress(done, len(tasks))
            return results
        elbolint.isolation.run_isolated = in_process  # type: ignore[assignment]


def preload() -> None:
    """Import, once in this process, what every child would import again: pytest's plugins
    (hypothesis alone takes seconds), LibCST, click. Never elbolint: the children import the copy."""
    import importlib
    from importlib.metadata import entry_points

    plugins = [entry.module for entry in entry_points(group="pytest11")]
    for name in [*plugins, "hypothesis", "libcst", "click", "click.testing"]:
        try:
            importlib.import_module(name)
        except Exception:  # a plugin that cannot load here will not load in the child either
            pass
    assert not any(name.startswith("elbolint") for name in sys.modules), "elbolint imported before the fork"


def in_child(copy: Path, args: list[str], plugin: Outcome, result: Path, log: Path,
             timeout: float, setup: Optional[Callable[[], None]] = None) -> tuple[Optional[int], list[str]]:
    """`pytest args` in a forked child working in `copy` (its own session, output to `log`).
    Returns pytest's exit code (None after `timeout` seconds: the child's session is killed) and the
    failing tests. Forking saves starting Python and importing pytest and LibCST for every mutant."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            os.setsid()
            descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(descriptor, 1)
            os.dup2(descriptor, 2)
            os.chdir(copy)
            sys.path.insert(0, str(copy))
            os.environ.update(child_env(copy))
            sys.dont_write_bytecode = True
            if setup is not None:
                setup()
            code = int(pytest.main(args, plugins=[plugin]))
            result.write_text(json.dumps({"exit": code, "failed": plugin.failed, "seconds": plugin.seconds,
                                          "timed_out": plugin.timed_out}))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)  # the child's own session: only what this run started
            os.waitpid(pid, 0)
            return None, []
        time.sleep(0.2)
    if not result.is_file():
        return os.waitstatus_to_exitcode(status), []
    data = json.loads(result.read_text(encoding="utf-8"))
    result.unlink()
    plugin.seconds.update(data["seconds"])
    plugin.timed_out = data["timed_out"]
    return data["exit"], data["failed"]

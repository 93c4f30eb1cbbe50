"""Run per-file work in supervised worker processes: a file that kills its process costs only itself.

Why: LibCST's parser is native code. On pathological input (thousands of nested operators) it can
overflow its stack or allocate gigabytes; a segfault cannot be caught, and before this module one such
file ended `elbolint src/` with exit 139 and no output at all. So every file is analysed in a forked
worker (also with `-j 1`, also for stdin), and the parent only supervises:

- a worker gets a few files at a time and sends one result per file, so when it dies the parent knows
  the file it was on; that file gets `on_death(task, reason)` (an ELB901 finding) and the files after it
  in the same chunk go back to the queue for a fresh worker;
- each file has a wall-clock budget (`seconds`): a worker past it is killed, with the same accounting;
- each worker's address space is capped (`memory_mib` above what it had when it started), so a file that
  would eat the machine gets a MemoryError (reported by the linter) or dies alone.

Results come back in the order of the tasks, whatever the scheduling. Workers ignore Ctrl-C: the parent
stops them (SIGTERM, then SIGKILL) and re-raises KeyboardInterrupt. Where `fork` is not available the
work runs in this process, without isolation.

Cost, measured on TFP's 1,537 installed sources (benchmarks/static_bench.py): see the README.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

Task = Any
Result = Any

#: Files per message to a worker: enough to amortise the round trip, few enough to balance the load.
MAX_CHUNK = 8
#: How long a stopping worker gets to leave on its own before SIGKILL.
GRACE_SECONDS = 1.0


def run_isolated(
    tasks: Iterable[Task],
    work: Callable[[Task], Result],
    on_death: Callable[[Task, str], Result],
    *,
    jobs: int,
    seconds: float,
    memory_mib: int,
    progress: Optional[Callable[[int, int], None]] = None,
) -> list[Result]:
    """`[work(t) for t in tasks]`, each run in a worker; a task whose worker died or ran out of time
    gets `on_death(task, reason)` instead. `progress(done, total)` is called as results arrive.

    `tasks` may be a stream (any iterable that is not a sequence): the next task is taken whenever
    the parent is not collecting results, so whatever produces it (the runner's discovery and
    prefilter) runs while the workers lint the tasks already taken; `total` is then the number
    taken so far. No worker is started before the first task."""
    if isinstance(tasks, Sequence):
        if not tasks:
            return []
        jobs = min(jobs, len(tasks))
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: no isolation either
        return [work(task) for task in tasks]
    pool = _Pool(context, tasks, work, on_death, jobs, seconds, memory_mib)
    pool.progress = progress
    previous = _raise_on_sigterm()
    try:
        return pool.run()
    finally:
        pool.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_on_sigterm():
    """While the pool runs, SIGTERM (a CI timeout, `timeout --foreground`) becomes SystemExit(143) in
    the parent, so the `finally` above stops the workers instead of leaving them to run on (they held
    the caller's pipes open: found by a new user). Main thread only; returns the previous handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _exit_on_term)


class _Worker:
    def __init__(self, context, work, memory_mib: int) -> None:
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child_end, work, memory_mib), daemon=True)
        self.process.start()
        child_end.close()
        self.in_flight: deque[int] = deque()
        self.deadline = float("inf")

    def send(self, chunk: list[tuple[int, Task]], seconds: float) -> None:
        self.in_flight.extend(index for index, _ in chunk)
        self.deadline = time.monotonic() + seconds
        self.connection.send(chunk)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(GRACE_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(GRACE_SECONDS)
        self.connection.close()


class _Pool:
    def __init__(self, context, tasks, work, on_death, jobs, seconds, memory_mib) -> None:
        self.context, self.work, self.on_death = context, work, on_death
        self.jobs, self.seconds, self.memory_mib = max(1, jobs), seconds, memory_mib
        #: a stream's tasks not taken yet (None: a sequence, or the stream has ended)
        self.source: Optional[Iterator[Task]] = None if isinstance(tasks, Sequence) else iter(tasks)
        self.tasks: Sequence[Task] = tasks if self.source is None else []
        self.pending: deque[int] = deque(range(len(self.tasks)))
        self.results: list[Optional[tuple[Result]]] = [None] * len(self.tasks)
        self.workers: list[_Worker] = []
        self.chunk = max(1, min(MAX_CHUNK, len(self.tasks) // (self.jobs * 4))) if self.source is None else MAX_CHUNK
        self.progress: Optional[Callable[[int, int], None]] = None
        self.done = 0

    def run(self) -> list[Result]:
        while self.source is not None or self.pending or any(w.in_flight for w in self.workers):
            self._take()
            self._dispatch()
            busy = [w for w in self.workers if w.in_flight]
            if not busy:
                continue  # nothing to wait for yet: the stream has more
            # while a stream lasts, only look for results: taking the next task is the parent's work
            timeout = 0.0 if self.source is not None else max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout)
            for worker in busy:
                if worker.connection in ready or worker.process.sentinel in ready:
                    self._collect(worker)
                elif time.monotonic() >= worker.deadline:
                    self._bury(worker, f"took longer than {self.seconds:g} s (max-seconds-per-file)")
        return [entry[0] for entry in self.results]  # type: ignore[index]

    def _take(self) -> None:
        """The next task of a stream, queued; at its end, the chunk size for the tail (as for a sequence
        of what is still pending, so the last files are shared out evenly)."""
        if self.source is None:
            return
        try:
            task = next(self.source)
        except StopIteration:
            self.source = None
            self.chunk = max(1, min(MAX_CHUNK, len(self.pending) // (self.jobs * 4)))
            return
        assert isinstance(self.tasks, list)
        self.tasks.append(task)
        self.results.append(None)
        self.pending.append(len(self.tasks) - 1)

    def _record(self, index: int, result: Result) -> None:
        self.results[index] = (result,)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.tasks))

    def _dispatch(self) -> None:
        for worker in self.workers:
            if self.pending and not worker.in_flight:
                self._send(worker)
        while self.pending and len(self.workers) < self.jobs:
            worker = _Worker(self.context, self.work, self.memory_mib)
            self.workers.append(worker)
            self._send(worker)

    def _send(self, worker: _Worker) -> None:
        count = min(self.chunk, len(self.pending))
        chunk = [(index, self.tasks[index]) for index in (self.pending.popleft() for _ in range(count))]
        worker.send(chunk, self.seconds)

    def _collect(self, worker: _Worker) -> None:
        """Take every result the worker sent; if it has died, its current file is the culprit."""
        try:
            while worker.connection.poll():
                index, result = worker.connection.recv()
                if isinstance(result, _Failed):
                    result = self.on_death(self.tasks[index], result.reason)
                self._record(index, result)
                worker.in_flight.remove(index)
                worker.deadline = time.monotonic() + self.seconds
        except Exception:  # EOF, or a message cut short by the worker's death
            pass
        worker.process.join(0)
        if worker.process.exitcode is not None:
            self._bury(worker, _death(worker.process.exitcode, self.memory_mib))

    def _bury(self, worker: _Worker, reason: str) -> None:
        worker.stop()
        self.workers.remove(worker)
        if worker.in_flight:
            culprit = worker.in_flight.popleft()
            self._record(culprit, self.on_death(self.tasks[culprit], reason))
            self.pending.extendleft(reversed(worker.in_flight))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def _death(exitcode: int, memory_mib: int) -> str:
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        # Native code that cannot allocate under the address-space cap aborts or dereferences NULL,
        # so these signals may mean the limit as well as a real crash: say both.
        hint = f" (possibly the memory limit, max-memory-mib = {memory_mib})" if name in (
            "SIGKILL", "SIGABRT", "SIGBUS", "SIGSEGV") else ""
        return f"crashed the analysis with {name}{hint}"
    return f"ended the analysis process with exit code {exitcode}"


def _serve(connection, work, memory_mib: int) -> None:
    """Worker loop: results one file at a time, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, _exit_on_term)  # so an interrupted --fix still removes its temp file
    from elbolint.prctl import die_with_parent

    die_with_parent(signal.SIGTERM)  # a parent killed outright (SIGKILL) must not leave workers running
    _quiet_stderr()
    _cap_memory(memory_mib)
    gc.freeze()  # what the parent had before the fork (LibCST, the rules) is never collected again
    while True:
        try:
            chunk = connection.recv()
        except (EOFError, OSError):
            return
        for index, task in chunk:
            try:
                result = work(task)
            except Exception as error:  # a bug of ours: this file's finding says so, no traceback
                result = _Failed(f"failed inside elbolint ({type(error).__name__}: {error}); please report "
                                 "this with the file")
            connection.send((index, result))


class _Failed:
    """A worker's message that `work` raised: the parent turns it into `on_death(task, reason)`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _exit_on_term(_signum, _frame) -> None:
    raise SystemExit(143)


def _quiet_stderr() -> None:
    """Native code dying under the memory cap prints allocator noise ("memory allocation of 88 bytes
    failed", a Rust backtrace) on the worker's stderr, which is the user's terminal; the parent
    reports the file as ELB901 instead."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def _cap_memory(memory_mib: int) -> None:
    """RLIMIT_AS = what the worker has now + the budget + the deep-stack thread's reservation."""
    from elbolint.deepstack import STACK_BYTES

    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return  # no /proc: no cap (not Linux)
    cap = size + STACK_BYTES + memory_mib * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or cap <= hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def available() -> bool:
    """Whether work is isolated on this platform (fork is there)."""
    return "fork" in multiprocessing.get_all_start_methods() and os.name == "posix"

"""elbolint's side of dynamic mode: start `--jobs` workers with the user's interpreter, hand them one
model file at a time, collect one result per file.

Why threads and a queue: each worker answers one job at a time over its pipes; a thread per worker
blocks on its own worker, and a shared queue balances files across workers. A worker that dies or
stops answering (its own deadline is the per-file timeout plus a margin) costs only the file it was
running, which becomes an ELB100 failure; a fresh worker is started for the remaining files.

Why an explicit shutdown: workers run in their own sessions (so a terminal's Ctrl-C does not kill a
worker in the middle of a model and lose the report) and every model runs in its own process group
below them, so nothing stops them when elbolint is interrupted. `shutdown_workers` (on
KeyboardInterrupt/SystemExit in `run_jobs`, and at exit) kills each worker's forked children's process
groups, then the worker's own group, and reaps the worker.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Callable, Optional

# Every process below a pid, from /proc: the worker's forked children are process-group leaders, so
# killing their groups also takes the models' own subprocesses.
from elbolint.sandbox import descendants, running

STARTUP_TIMEOUT = 180.0  # importing TF on a cold cache can take a while
MARGIN = 30.0  # beyond the per-file timeout, for the worker's own bookkeeping


class WorkerError(Exception):
    pass


_LIVE: "set[Worker]" = set()  # workers started and not yet closed
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set by shutdown_workers: no new worker may start


#: The Keras flavours a worker can be started with (see keras_flavour in __init__.py): "tf-keras" sets
#: TF_USE_LEGACY_KERAS=1 before TensorFlow is imported (TFP's documented set-up for `tfp.layers`
#: under TF >= 2.16, where `tf.keras` is Keras 3); "default" leaves the user's environment as it is.
LEGACY_KERAS = "tf-keras"


def _pipe(stream: Optional[IO[bytes]]) -> IO[bytes]:
    """One of the worker's pipes: Popen opened it (stdin=PIPE, stdout=PIPE), so it is never None."""
    if stream is None:  # pragma: no cover
        raise WorkerError("the dynamic worker was started without its pipes")
    return stream


class Worker:
    def __init__(self, python: str, keras: str = "default"):
        self.keras = keras
        env = dict(os.environ)
        if keras == LEGACY_KERAS:
            env["TF_USE_LEGACY_KERAS"] = "1"
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # The worker must find this elbolint even when --python is another environment's interpreter.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.log = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [python, "-m", "elbolint.dynamic.process.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.log, env=env, start_new_session=True,
            )
        except OSError as error:
            self.log.close()
            raise WorkerError(f"cannot start the dynamic worker with {python}: "
                              f"{error.strerror or error}") from None
        self.stdin, self.stdout = _pipe(self.process.stdin), _pipe(self.process.stdout)
        with _LIVE_LOCK:
            _LIVE.add(self)
            stopping = _STOPPING.is_set()
        if stopping:  # shutdown_workers ran while this one was starting
            self.kill()
            raise WorkerError("interrupted")
        self.lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        hello = self._read(STARTUP_TIMEOUT)
        if hello.get("fatal"):
            self.close()
            raise WorkerError(hello["fatal"])
        self.info = hello

    def _pump(self) -> None:
        for line in self.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read(self, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise WorkerError(f"the dynamic worker stopped answering after {timeout:g} s") from None
        if line is None:
            self.process.wait()
            raise WorkerError(f"the dynamic worker exited with code {self.process.returncode}: "
                              f"{self._log_tail()}")
        try:
            return json.loads(line)
        except ValueError as error:
            raise WorkerError(f"unreadable answer from the dynamic worker: {error}") from None

    def _log_tail(self) -> str:
        try:
            self.log.seek(0)
            text = self.log.read().decode("utf-8", "replace").strip().splitlines()
            return text[-1][:300] if text else "(no output)"
        except OSError:
            return "(no output)"

    def run(self, job: dict) -> dict:
        self.stdin.write((json.dumps(job) + "\n").encode())
        self.stdin.flush()
        return self._read(float(job["settings"]["timeout"]) + MARGIN)

    def close(self) -> None:
        try:
            self.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self.log.close()

    def kill(self) -> None:
        """SIGKILL the model children's process groups, then the worker's group; reap the worker, and
        wait (a few seconds at most) until the model children have died too: a killed TensorFlow process
        takes a moment to release its memory, and elbolint must not exit while one still runs."""
        models = descendants(self.process.pid)
        for child in models:
            _signal_group(child, signal.SIGKILL)
        _signal_group(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _wait_dead(models, time.monotonic() + 5)
        remove_workdirs(self.process.pid)
        with _LIVE_LOCK:
            _LIVE.discard(self)


def remove_workdirs(worker: int) -> None:
    """Remove the model working directories of a worker that was SIGKILLed (Ctrl-C, SIGTERM): it
    could not clean up itself, and nothing may be left behind once elbolint has exited.
    The directories carry the worker's pid in their name (sandbox._WORKDIR_PREFIX); the worker runs
    with elbolint's environment, so its temporary directory is elbolint's."""
    from elbolint.sandbox import remove_workdirs

    remove_workdirs(lambda owner: owner == worker)


def _wait_dead(pids: list[int], deadline: float) -> None:
    """Until `deadline`, poll until none of `pids` runs any more (gone, or a zombie left for init)."""
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def _signal_group(pid: int, number: int) -> None:
    for target in (lambda: os.killpg(pid, number), lambda: os.kill(pid, number)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def shutdown_workers() -> None:
    """Kill every live worker and the models it is running (Ctrl-C, SIGTERM, interpreter exit)."""
    _STOPPING.set()
    with _LIVE_LOCK:
        workers = list(_LIVE)
    for worker in workers:
        worker.kill()


atexit.register(shutdown_workers)


def run_jobs(jobs: list[dict], python: str, workers: int,
             on_done: Callable[[dict], None] = lambda result: None) -> list[dict]:
    """Run every job; results in the order of `jobs`. Never raises for a model's sake."""
    pending: "queue.Queue[tuple[int, dict]]" = queue.Queue()
    # Jobs of one Keras flavour are served together: TensorFlow fixes `tf.keras` when it is imported,
    # so a worker serves one flavour, and a thread starts a worker of the other flavour at most once.
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].get("keras", "default") == LEGACY_KERAS)
    for index in order:
        pending.put((index, jobs[index]))
    results: list[Optional[dict]] = [None] * len(jobs)
    fatal: list[str] = []
    lock = threading.Lock()

    def serve() -> None:
        worker: Optional[Worker] = None
        while not _STOPPING.is_set():
            try:
                index, job = pending.get_nowait()
            except queue.Empty:
                break
            started = time.monotonic()
            try:
                if fatal:
                    raise WorkerError(fatal[0])
                flavour = job.get("keras", "default")
                if worker is not None and worker.keras != flavour:
                    worker.close()
                    worker = None
                if worker is None:
                    worker = Worker(python, flavour)
                result = worker.run(job)
            except (WorkerError, OSError) as error:
                unavailable = worker is None  # no worker could start: the environment, not the model
                if unavailable and not fatal:
                    fatal.append(str(error))
                elif worker is not None:
                    worker.close()
                worker = None
                result = {"failure": {"kind": "unavailable" if unavailable else "internal", "message": str(error)},
                          "seconds": time.monotonic() - started}
            result["path"] = job["path"]
            with lock:
                results[index] = result
                if not _STOPPING.is_set():
                    on_done(result)
        if worker is not None:
            worker.close()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, min(workers, len(jobs))))]
    _STOPPING.clear()
    with _terminate_as_exit():
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # KeyboardInterrupt, SystemExit from SIGTERM: leave nothing running
            shutdown_workers()
            raise
    return [r if r is not None else {"failure": {"kind": "internal", "message": "not run"}} for r in results]


class _terminate_as_exit:
    """While jobs run, SIGTERM raises SystemExit(143) in the main thread so the workers are shut down
    (the default action would kill elbolint and leave them running). Only from the main thread."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc_info):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False

    @staticmethod
    def _raise(number, frame):
        raise SystemExit(128 + number)

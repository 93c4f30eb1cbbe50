"""Run one function in a forked child with a memory cap, a wall-clock limit and bounded output.

Why fork: the worker imports TensorFlow once (4-8 s) and every model file runs in a fresh copy of
that process (copy-on-write, no import cost), so a file that segfaults, hangs, exhausts memory,
calls `os._exit` or floods its output only takes down its own child. Stdlib only, so the sandbox can
be tested without TensorFlow.

The child: becomes its own process group (so a model's own subprocesses are killed with it), gets
stdin from /dev/null, stdout+stderr into a pipe the parent reads, and `RLIMIT_AS` set to the address
space it already has plus the per-file budget (TensorFlow maps ~1.5 GiB of address space just by
being imported, so an absolute cap would measure TF rather than the model). It sends its result as
one JSON document over a second pipe and leaves with `os._exit`, skipping the user's atexit hooks.

The parent (the worker): reads both pipes with `select`, kills the process group at the deadline or
when the output exceeds the limit, and turns every other way of dying into a failure dict:
`{"kind": "timeout"|"memory"|"signal"|"exit"|"output"|"internal", "message": ...}`.

Nobody else enforces the deadline, so a child must not outlive its worker: on Linux it asks for
SIGKILL when the worker dies (`PR_SET_PDEATHSIG`), and `kill_current_child` lets the worker's SIGTERM
handler take the running child's group down with it (elbolint's Ctrl-C path, see harness.py).
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any, Callable, Optional

KEEP_OUTPUT = 4096  # bytes of the child's output kept (the tail) for reports
_PR_SET_PDEATHSIG = 1
_current_child: Optional[int] = None  # pid (= process group) of the child being run, in the parent


def die_with_parent(number: int) -> None:
    """Linux: deliver signal `number` to this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_current_child() -> None:
    """SIGKILL the process group of the child being run, if any (safe from a signal handler)."""
    if _current_child is not None:
        _kill(_current_child)


def address_space() -> int:
    """The current process's virtual memory size in bytes (0 when /proc is unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_in_child(
    function: Callable[[Any], dict],
    argument: Any,
    *,
    timeout: float,
    memory_mib: int,
    output_limit: int,
) -> dict:
    """`function(argument)` in a forked child; its dict result, or {"failure": {...}} on any death."""
    global _current_child
    result_read, result_write = os.pipe()
    output_read, output_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # ------------------------------------------------------------------ child
        status = 0
        try:
            os.close(result_read)
            os.close(output_read)
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the worker's handler
            die_with_parent(signal.SIGKILL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(output_write, 1)
            os.dup2(output_write, 2)
            os.close(output_write)
            # Python-level streams may point elsewhere (a test runner's capture, the worker's protocol).
            sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            # A crash report goes to the captured output, not to a descriptor inherited from the
            # parent (pytest points faulthandler at its own copy of the terminal).
            faulthandler.enable(file=sys.stderr)
            cap = address_space() + memory_mib * 1024 * 1024
            _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard == resource.RLIM_INFINITY or cap <= hard:
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            try:
                result = function(argument)
            except MemoryError:
                result = {"failure": {"kind": "memory",
                                      "message": f"memory limit exceeded ({memory_mib} MiB per file)"}}
            except BaseException as error:  # the function reports user errors itself; this is ours
                result = {"failure": {"kind": "internal", "message": f"elbolint's runner failed: "
                                      f"{type(error).__name__}: {error}",
                                      "detail": traceback.format_exc()[-2000:]}}
            try:
                data = json.dumps(result).encode()
            except (TypeError, ValueError) as error:
                data = json.dumps({"failure": {"kind": "internal",
                                               "message": f"unserialisable result: {error}"}}).encode()
            view = memoryview(data)
            while view:
                written = os.write(result_write, view)
                view = view[written:]
        except BaseException:
            status = 70
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os._exit(status)
    # -------------------------------------------------------------------------------- parent
    _current_child = pid
    os.close(result_write)
    os.close(output_write)
    chunks: list[bytes] = []
    tail = bytearray()
    output_bytes = 0
    killed_for = None
    open_fds = {result_read, output_read}
    deadline = started + timeout
    try:
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed_for = "timeout"
                break
            ready, _, _ = select.select(list(open_fds), [], [], min(remaining, 1.0))
            for fd in ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    open_fds.discard(fd)
                elif fd == result_read:
                    chunks.append(data)
                else:
                    output_bytes += len(data)
                    tail += data
                    del tail[:-KEEP_OUTPUT]
            if output_bytes > output_limit:
                killed_for = "output"
                break
        if killed_for:
            _kill(pid)
        _, status = _wait(pid, deadline + 5)
    finally:
        _current_child = None
        os.close(result_read)
        os.close(output_read)
    elapsed = time.monotonic() - started
    output_tail = tail.decode("utf-8", "replace")
    if killed_for == "timeout":
        return _failed("timeout", f"timeout after {timeout:g} s (the model did not finish; "
                                  "raise --dynamic-timeout if it is just slow)", output_tail, elapsed)
    if killed_for == "output":
        return _failed("output", f"output truncated: the model wrote more than {output_limit // 1024} KiB "
                                 "to stdout/stderr and was stopped", output_tail, elapsed)
    if chunks:
        try:
            result = json.loads(b"".join(chunks))
        except ValueError:
            result = None
        if isinstance(result, dict):
            result.setdefault("output_tail", output_tail)
            result.setdefault("seconds", elapsed)
            return result
    if status is None:
        return _failed("internal", "the child process could not be reaped", output_tail, elapsed)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = ""
        if name in ("SIGKILL", "SIGABRT", "SIGBUS"):
            hint = f" (possibly the memory limit of {memory_mib} MiB)"
        return _failed("signal", f"killed by signal {name}{hint}", output_tail, elapsed)
    code = os.WEXITSTATUS(status)
    last = output_tail.strip().splitlines()[-1:] if output_tail.strip() else []
    if (last and "MemoryError" in last[0]) or "std::bad_alloc" in output_tail:
        return _failed("memory", f"memory limit exceeded ({memory_mib} MiB per file)", output_tail, elapsed)
    return _failed("exit", f"the model exited with code {code} (os._exit or a native exit) before "
                           "elbolint could record a result", output_tail, elapsed)


def _failed(kind: str, message: str, output_tail: str, seconds: float) -> dict:
    return {"failure": {"kind": kind, "message": message, "output_tail": output_tail[-2000:]},
            "seconds": seconds}


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _wait(pid: int, deadline: float):
    """waitpid with a deadline: a child that will not die after SIGKILL is reported, not waited on."""
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return pid, None
        if done:
            return done, status
        if time.monotonic() > deadline:
            _kill(pid)
            if time.monotonic() > deadline + 5:
                return pid, None
        time.sleep(0.01)

"""Run one function in a forked child with a memory cap, a wall-clock limit and bounded output.

Why fork: the worker imports TensorFlow once (4-8 s) and every model file runs in a fresh copy of
that process (copy-on-write, no import cost), so a file that segfaults, hangs, exhausts memory,
calls `os._exit` or floods its output only takes down its own child. Stdlib only, so the sandbox can
be tested without TensorFlow.

Two processes per run: a *keeper*, forked from the worker, and below it the *model* process that
calls the function. Why the keeper: a model can start processes that outlive it (a double-forked
daemon, a `multiprocessing` pool) and that leave its process group with `setsid`/`setpgid`, so
killing the model's process group, or walking the process tree after the model has died (its
orphans have been handed to init by then), both miss them. The keeper is a Linux *child subreaper*
(`PR_SET_CHILD_SUBREAPER`): every orphan below it is re-parented to it instead of to init, so
"everything the model started" stays exactly "every process below the keeper" for as long as the
keeper lives. The keeper runs no user code: it tells the worker the model's pid and, when the model
has exited, its wait status (over a status pipe), and reaps until it has no children left. The worker
then SIGKILLs everything below the keeper (read from /proc, round after round, so a fork bomb's
newest processes are caught too) and the keeper exits. Nothing is left running after
`run_in_child` returns, whether the model finished, failed or timed out. (A cgroup would be the
alternative, but needs privileges and setup that a linter's worker cannot count on.)

The model process: its own process group, stdin from /dev/null, stdout+stderr into a pipe the worker
reads, `RLIMIT_AS` set to the address space it already has plus the per-file budget (TensorFlow maps
~1.5 GiB of address space just by being imported, so an absolute cap would measure TF rather than the
model), `RLIMIT_FSIZE` of `FILE_SIZE_MIB` (no single file it writes may grow beyond that, so a runaway
writer cannot fill the disk with one file; SIGXFSZ is ignored, so the write raises `OSError` EFBIG,
which is reported as "file size limit exceeded"), and as working directory and `TMPDIR` a fresh
temporary directory that is removed afterwards (or by the next worker, when elbolint's Ctrl-C
SIGKILLed this one), so relative writes (`open("out.txt", "w")`, a
checkpoint, a log) never land in the user's tree. Bytecode is not written either (no `__pycache__`
next to the user's modules). The model still runs the user's file in place, by its absolute path
with the file's folder on `sys.path`, so data read relative to `__file__` and sibling imports work
(and a write aimed next to `__file__` would still land there; only reads relative to the directory
elbolint was started in stop working). The result goes to the worker as one
JSON document over a second pipe, and the process leaves with `os._exit`, skipping the user's atexit
hooks.

The worker: reads the pipes with `select`, kills the tree at the deadline or when the output exceeds
the limit, and turns every other way of dying into a failure dict:
`{"kind": "timeout"|"memory"|"signal"|"exit"|"output"|"internal", "message": ...}`. There is no
SIGTERM and grace period at the deadline: the model's result is lost either way, a SIGTERM handler
could only stall, so it is SIGKILL straight away and the wall time is the timeout plus milliseconds.
Fork bombs: `RLIMIT_NPROC` is not enforced for root and counts all of the user's processes, so
elbolint does not rely on it; a fork bomb runs until the deadline (or the machine's pid limit) and
is then killed as a whole.

Nobody else enforces the deadline, so nothing may outlive its worker: on Linux the keeper and the
model ask for SIGKILL when their parent dies (`PR_SET_PDEATHSIG`), and `kill_current_child` lets the
worker's SIGTERM handler take the running tree down with it (elbolint's Ctrl-C path, see harness.py).
"""

from __future__ import annotations

import errno
import faulthandler
import json
import os
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from elbolint.prctl import PR_SET_CHILD_SUBREAPER, die_with_parent, prctl

KEEP_OUTPUT = 4096  # bytes of the child's output kept (the tail) for reports
#: RLIMIT_FSIZE of the model: the largest single file (MiB) it may write. Big enough for checkpoints
#: and logs of the small models dynamic mode runs; `run_in_child(file_size_mib=...)` overrides it.
FILE_SIZE_MIB = 1024
#: The signal that makes a model write its Python stacks (faulthandler), and how long the worker waits
#: for them before it kills a model that timed out.
WHERE_SIGNAL, WHERE_SECONDS = signal.SIGUSR1, 0.5
_STACK_START = b"(most recent call first):"
WHERE_QUIET = 0.1  # seconds without output after the dump began: it is complete
_FRAME = re.compile(r'^\s*File "([^"]*)", line (\d+) in ', re.M)
KILL_SECONDS = 5.0  # how long the worker keeps killing a tree that keeps producing processes
_FILE_TOO_LARGE = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}"
# In the worker, while a file runs: [keeper pid, model pid (None until the keeper says), workdir].
_current: Optional[list] = None
_WORKDIR_PREFIX = "elbolint-model-"  # then the worker's pid: see _remove_orphaned_workdirs
_swept = False

def kill_current_child() -> None:
    """SIGKILL the processes of the file being run, if any, and remove its directory (safe from a
    signal handler: the worker's SIGTERM handler calls it before exiting)."""
    if _current is not None:
        keeper, model, workdir = _current
        _kill_tree(keeper, model)
        _kill(keeper)
        shutil.rmtree(workdir, ignore_errors=True)


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
    file_size_mib: int = FILE_SIZE_MIB,
) -> dict:
    """`function(argument)` in a forked child; its dict result, or {"failure": {...}} on any death.
    When it returns, every process the function started is gone and its working directory removed.

    Three steps: spawn (the keeper and, below it, the model process), supervise (read the pipes until
    the child is done, the deadline passes or the output overflows; kill and reap), collect (the
    result, or a failure saying how the child died)."""
    _remove_orphaned_workdirs()
    try:
        workdir = tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-")
    except OSError as error:
        return _failed("internal", f"cannot create the model's working directory: {error}", "", 0.0)
    child = _spawn(function, argument, memory_mib, file_size_mib, workdir)
    watched = _supervise(child, timeout, output_limit)
    elapsed = time.monotonic() - child.started
    return _collect(watched, elapsed, timeout=timeout, memory_mib=memory_mib, output_limit=output_limit,
                    file_size_mib=file_size_mib)


@dataclass
class _Child:
    """A forked keeper as the worker sees it: its pid, the worker's ends of the three pipes, and
    `tracked`, the list `_current` holds while it runs ([keeper pid, model pid once told, workdir])."""

    keeper: int
    workdir: str
    started: float
    result_read: int  # the model's JSON result
    output_read: int  # the model's stdout and stderr
    status_read: int  # the keeper's "<model pid>\n" and then "<wait status>\n"
    tracked: list


@dataclass
class _Watched:
    """What the worker read from a child until the child was gone or stopped (`_supervise`)."""

    chunks: list[bytes] = field(default_factory=list)  # the result document, as read
    tail: bytearray = field(default_factory=bytearray)  # the last KEEP_OUTPUT bytes of output
    status_text: bytes = b""
    model_status: Optional[int] = None  # the model's wait status, once the keeper reported it
    output_bytes: int = 0
    killed_for: Optional[str] = None  # "timeout" or "output" when the worker stopped it


def _spawn(function: Callable[[Any], dict], argument: Any, memory_mib: int, file_size_mib: int,
           workdir: str) -> _Child:
    """Fork the keeper (which forks the model process running `function(argument)`) and keep the
    worker's ends of the result, output and status pipes. The child never returns from here."""
    global _current
    result_read, result_write = os.pipe()
    output_read, output_write = os.pipe()
    status_read, status_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    keeper = os.fork()
    if keeper == 0:
        os.close(result_read)
        os.close(output_read)
        os.close(status_read)
        _keeper(lambda: _model(function, argument, memory_mib, file_size_mib, workdir,
                               result_write, output_write),
                status_write, (result_write, output_write))
    # -------------------------------------------------------------------------------- worker
    tracked: list = [keeper, None, workdir]
    _current = tracked
    os.close(result_write)
    os.close(output_write)
    os.close(status_write)
    return _Child(keeper=keeper, workdir=workdir, started=started, result_read=result_read,
                  output_read=output_read, status_read=status_read, tracked=tracked)


def _supervise(child: _Child, timeout: float, output_limit: int) -> _Watched:
    """Read the child's pipes with `select` until all are closed, the deadline passes or the output
    exceeds `output_limit` (then SIGKILL the whole tree below the keeper); reap the keeper, close the
    pipes and remove the working directory whatever happens."""
    global _current
    watched = _Watched()
    open_fds = {child.result_read, child.output_read, child.status_read}
    deadline = child.started + timeout
    try:
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                watched.killed_for = "timeout"
                break
            ready, _, _ = select.select(list(open_fds), [], [], min(remaining, 1.0))
            for fd in ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    open_fds.discard(fd)
                else:
                    _take(child, watched, fd, data)
            if watched.output_bytes > output_limit:
                watched.killed_for = "output"
                break
        if watched.killed_for == "timeout":
            _ask_where(child, watched)
        if watched.killed_for:
            _kill_tree(child.keeper, child.tracked[1])
        _wait(child.keeper, max(deadline, time.monotonic()) + KILL_SECONDS)
    finally:
        _current = None
        for fd in (child.result_read, child.output_read, child.status_read):
            os.close(fd)
        shutil.rmtree(child.workdir, ignore_errors=True)
    return watched


def _ask_where(child: _Child, watched: _Watched) -> None:
    """Before a timed-out model is killed: WHERE_SIGNAL makes it write its Python stacks (faulthandler,
    registered in `_model`) to its output, read here for at most WHERE_SECONDS."""
    model = child.tracked[1]
    if model is None:
        return
    try:
        os.kill(model, WHERE_SIGNAL)
    except (ProcessLookupError, PermissionError):
        return
    until, started = time.monotonic() + WHERE_SECONDS, False
    while time.monotonic() < until:  # until the dump has been written (quiet for a moment) or time is up
        wait = min(WHERE_QUIET, until - time.monotonic()) if started else until - time.monotonic()
        ready, _, _ = select.select([child.output_read], [], [], max(0.0, wait))
        if not ready:
            if started:
                break
            continue
        data = os.read(child.output_read, 1 << 16)
        if not data:
            break
        _take(child, watched, child.output_read, data)
        started = started or _STACK_START in bytes(watched.tail)


def split_stack_dump(output_tail: str) -> tuple[str, list[tuple[str, int]]]:
    """The output without the stack dump `_ask_where` asked for, and the dump's frames ([(file, line)],
    innermost first, every thread's), [] when there is none."""
    start = output_tail.find(_STACK_START.decode())
    if start < 0:
        return output_tail, []
    head = output_tail.rfind("\n", 0, start) + 1  # the dump's first line ("Current thread 0x... (most ...")
    frames = [(name, int(line)) for name, line in _FRAME.findall(output_tail[head:])]
    return output_tail[:head], frames


def _take(child: _Child, watched: _Watched, fd: int, data: bytes) -> None:
    """One read from one of the child's pipes: a piece of the result, of the keeper's status (the
    model's pid, then its wait status: whatever the model left running is killed then), or output
    (counted, its tail kept)."""
    if fd == child.result_read:
        watched.chunks.append(data)
    elif fd == child.status_read:  # "<model pid>\n", then "<wait status>\n" when it has exited
        watched.status_text += data
        lines = watched.status_text.split(b"\n")[:-1]
        child.tracked[1] = int(lines[0]) if lines else None
        if len(lines) > 1 and watched.model_status is None:
            watched.model_status = int(lines[1])
            _kill_tree(child.keeper, None)  # whatever the model left running
    else:
        watched.output_bytes += len(data)
        watched.tail += data
        del watched.tail[:-KEEP_OUTPUT]


def _collect(watched: _Watched, elapsed: float, *, timeout: float, memory_mib: int, output_limit: int,
             file_size_mib: int) -> dict:
    """The run's outcome from what was read: the failure the worker stopped it for, else the model's
    result (with its output tail and time), else a failure saying how the model process died."""
    output_tail = watched.tail.decode("utf-8", "replace")
    if watched.killed_for == "timeout":
        output_tail, frames = split_stack_dump(output_tail)
        failed = _failed("timeout", f"timeout after {timeout:g} s (the model did not finish; "
                                    "raise --dynamic-timeout if it is just slow)", output_tail, elapsed)
        if frames:
            failed["failure"]["frames"] = frames
        return failed
    if watched.killed_for == "output":
        return _failed("output", f"output truncated: the model wrote more than {output_limit // 1024} KiB "
                                 "to stdout/stderr and was stopped", output_tail, elapsed)
    result = _result(watched.chunks, output_tail, elapsed, file_size_mib)
    if result is not None:
        return result
    return _death(watched.model_status, output_tail, elapsed, memory_mib, file_size_mib)


def _result(chunks: list[bytes], output_tail: str, elapsed: float, file_size_mib: int) -> Optional[dict]:
    """The model's JSON result document, or None when it wrote none (or not a JSON object); a write
    past the file size limit is said to be one."""
    if not chunks:
        return None
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if not isinstance(result, dict):
        return None
    result.setdefault("output_tail", output_tail)
    result.setdefault("seconds", elapsed)
    failure = result.get("failure")
    if isinstance(failure, dict) and _FILE_TOO_LARGE in str(failure.get("message")):
        failure["message"] = f"file size limit exceeded ({file_size_mib} MiB per file): " \
                             f"{failure['message']}"
    return result


def _death(status: Optional[int], output_tail: str, elapsed: float, memory_mib: int, file_size_mib: int) -> dict:
    """How a model process that left no result died: a signal (with the limit it may mean), a
    MemoryError or C++ bad_alloc in its last output, or an exit code."""
    if status is None:
        return _failed("internal", "the child process could not be reaped", output_tail, elapsed)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = ""
        if name in ("SIGKILL", "SIGABRT", "SIGBUS"):
            hint = f" (possibly the memory limit of {memory_mib} MiB)"
        elif name == "SIGXFSZ":
            hint = f" (file size limit exceeded: {file_size_mib} MiB per file)"
        return _failed("signal", f"killed by signal {name}{hint}", output_tail, elapsed)
    code = os.WEXITSTATUS(status)
    last = output_tail.strip().splitlines()[-1:] if output_tail.strip() else []
    if (last and "MemoryError" in last[0]) or "std::bad_alloc" in output_tail:
        return _failed("memory", f"memory limit exceeded ({memory_mib} MiB per file)", output_tail, elapsed)
    return _failed("exit", f"the model exited with code {code} (os._exit or a native exit) before "
                           "elbolint could record a result", output_tail, elapsed)


def _keeper(model: Callable[[], None], status_write: int, model_fds: tuple[int, ...]) -> None:
    """The subreaper between the worker and the model (see the module docstring). Never returns."""
    code = 70
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the worker's handler
        die_with_parent(signal.SIGKILL)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # not the worker's protocol pipes
        os.dup2(null, 1)
        os.close(null)
        pid = os.fork()
        if pid == 0:
            os.close(status_write)
            model()
        for fd in model_fds:
            os.close(fd)
        _write_all(status_write, b"%d\n" % pid)
        while True:  # until no process is left below the keeper
            try:
                done, status = os.wait()
            except ChildProcessError:
                break
            if done == pid:
                _write_all(status_write, b"%d\n" % status)
        code = 0
    finally:
        os._exit(code)


def _model(function, argument, memory_mib: int, file_size_mib: int, workdir: str,
           result_write: int, output_write: int) -> None:
    """The model process: limits, captured output, `function(argument)`, its result. Never returns."""
    status = 0
    try:
        os.setpgid(0, 0)
        die_with_parent(signal.SIGKILL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises EFBIG instead
        os.chdir(workdir)
        os.environ["TMPDIR"] = tempfile.tempdir = workdir
        sys.dont_write_bytecode = True
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(output_write, 1)
        os.dup2(output_write, 2)
        os.close(output_write)
        # Python-level streams may point elsewhere (a test runner's capture, the worker's protocol).
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        # A crash report goes to the captured output, not to a descriptor inherited from the
        # parent (pytest points faulthandler at its own copy of the terminal).
        faulthandler.enable(file=sys.stderr)
        # On a timeout the worker asks for the Python stacks before it kills the model (_ask_where):
        # the report can then say which line of the program was running instead of pointing at line 1.
        faulthandler.register(WHERE_SIGNAL, file=sys.stderr, all_threads=True)
        cap = address_space() + memory_mib * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or cap <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        size = file_size_mib * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if hard == resource.RLIM_INFINITY or size <= hard:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
        try:
            result = function(argument)
        except MemoryError:
            result = {"failure": {"kind": "memory",
                                  "message": f"memory limit exceeded ({memory_mib} MiB per file)"}}
        except BaseException as error:  # the function reports user errors itself; this is ours
            too_large = isinstance(error, OSError) and error.errno == errno.EFBIG
            result = {"failure": {"kind": "exception" if too_large else "internal",
                                  "message": f"{type(error).__name__}: {error}" if too_large else
                                  f"elbolint's runner failed: {type(error).__name__}: {error}",
                                  "detail": traceback.format_exc()[-2000:]}}
        try:
            data = json.dumps(result).encode()
        except (TypeError, ValueError) as error:
            data = json.dumps({"failure": {"kind": "internal",
                                           "message": f"unserialisable result: {error}"}}).encode()
        _write_all(result_write, data)
    except BaseException:
        status = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(status)


def _remove_orphaned_workdirs() -> None:
    """Once per worker: remove the working directories of workers that were SIGKILLed (elbolint's
    Ctrl-C path kills them outright, so they could not clean up; their pid is in the name)."""
    global _swept
    if _swept:
        return
    _swept = True
    remove_workdirs(lambda owner: not _exists(owner))


def remove_workdirs(of_owner) -> None:
    """Remove the model working directories (in the temporary directory, named with their worker's
    pid) whose worker `of_owner(pid)` says to remove."""
    base = tempfile.gettempdir()
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        owner = entry[len(_WORKDIR_PREFIX):].split("-")[0]
        if entry.startswith(_WORKDIR_PREFIX) and owner.isdigit() and of_owner(int(owner)):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _failed(kind: str, message: str, output_tail: str, seconds: float) -> dict:
    return {"failure": {"kind": kind, "message": message, "output_tail": output_tail[-2000:]},
            "seconds": seconds}


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _kill_tree(keeper: int, model: Optional[int]) -> None:
    """SIGKILL every live process below the keeper, until there is none (or KILL_SECONDS have passed).
    The keeper itself is spared: as the subreaper it collects the orphans of each round."""
    if model is not None:
        _kill(model)  # its process group at once: without /proc this is all there is
    give_up = time.monotonic() + KILL_SECONDS
    while time.monotonic() < give_up:
        alive = descendants(keeper)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def running(pid: int) -> bool:
    """`pid` is a live process, not gone and not a zombie left for init to reap (/proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def descendants(root: int) -> list[int]:
    """Pids of the live (not zombie) processes below `root`, from /proc ([] without /proc)."""
    children: dict[int, list[int]] = {}
    zombies = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
            children.setdefault(int(fields[1]), []).append(int(entry))
            if fields[0] in (b"Z", b"X"):
                zombies.add(int(entry))
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return [pid for pid in found if pid not in zombies]


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
        time.sleep(0.002)

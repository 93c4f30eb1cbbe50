"""The sandbox at its extremes: models that leave processes behind, ignore SIGTERM, fork in a
loop, fill the disk or write into the user's tree. Plain functions through `run_in_child` (no
TensorFlow), plus one real `elbolint --dynamic` run over twenty failing files.

Every process a test model starts renames itself (via /proc/self/comm, inherited by its children) to a
name unique to the test, so "nothing survived" is checked over the whole machine, not just over the
pids the model managed to report; the `name` fixture kills any survivor, so a failing test leaves
nothing behind either. The fork bomb is bounded (at most 200 processes, all sleeping)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT
from elbolint.sandbox import run_in_child

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc") or sys.platform != "linux",
                                reason="needs Linux and /proc")


def run(function, argument=None, timeout=5.0, **limits):
    limits = {"memory_mib": 512, "output_limit": 64 * 1024, **limits}
    started = time.monotonic()
    result = run_in_child(function, argument, timeout=timeout, **limits)
    return result, time.monotonic() - started


def survivors(name: str) -> list[int]:
    """Live (not zombie) processes called `name`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1:stat.rfind(b")")].decode(errors="replace")
        if comm == name and stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def alive(pid: int, name: str) -> bool:
    """`pid` still runs as one of the test's processes (not a zombie, not a reused pid)."""
    return pid in survivors(name)


@pytest.fixture
def name():
    """A process name for this test's model; afterwards, SIGKILL whatever still carries it."""
    unique = f"elx{os.getpid() % 100000}{time.monotonic_ns() % 1000}"[:15]
    yield unique
    for pid in survivors(unique):
        os.kill(pid, signal.SIGKILL)


def rename(name: str) -> None:
    with open("/proc/self/comm", "w", encoding="utf-8") as handle:
        handle.write(name)


def sleep_forever():
    while True:
        time.sleep(1)


# ---------------------------------------------------------------------------- 1. processes outliving the model
def leave_a_grandchild(setup):
    """A model that double-forks a grandchild which sleeps forever, reports its pid and returns."""
    name, escape = setup
    rename(name)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        if escape == "setsid":
            os.setsid()
        elif escape == "setpgid":
            os.setpgid(0, 0)
        if os.fork() == 0:
            if escape == "daemon":  # a proper daemon: own session, no inherited descriptors
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, 1024)
            else:
                os.write(write, b"%d\n" % os.getpid())
            sleep_forever()
        os._exit(0)
    os.waitpid(child, 0)  # the grandchild is an orphan now
    os.close(write)
    reported = os.read(read, 32)
    return {"grandchild": int(reported) if reported else None}


@pytest.mark.parametrize("escape", ["same-group", "setpgid", "setsid", "daemon"])
def test_no_descendant_outlives_the_model(name, escape):
    """The model returns at once while its grandchild sleeps on (in its process group, its own group,
    its own session, or as a daemon with no inherited pipes): the result comes back without waiting
    for the timeout, and no process the model started is alive afterwards."""
    result, seconds = run(leave_a_grandchild, (name, escape), timeout=5.0)
    assert "failure" not in result, result
    assert seconds < 2.0
    if escape != "daemon":
        assert result["grandchild"] and not alive(result["grandchild"], name)
    assert survivors(name) == []


# ------------------------------------------------------------------------------- 2. ignoring SIGTERM
def ignore_sigterm_and_hang(name):
    rename(name)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.fork() == 0:  # a child that ignores SIGTERM too (inherited), in its own session
        os.setsid()
        sleep_forever()
    sleep_forever()


def test_model_ignoring_sigterm_is_killed_at_the_timeout(name):
    """No SIGTERM handler can stall the sandbox: SIGKILL at the deadline, wall time = timeout + ms."""
    result, seconds = run(ignore_sigterm_and_hang, name, timeout=1.0)
    assert result["failure"]["kind"] == "timeout"
    assert "timeout after 1 s" in result["failure"]["message"]
    assert seconds < 2.0
    assert survivors(name) == []


# ---------------------------------------------------------------------------------------- 3. fork bomb
def fork_bomb(setup):
    """100 children forked in a loop (one every 10 ms, so the loop is still going at the timeout),
    each forking a grandchild; every other child in its own session. At most 200 processes, all
    sleeping; each records its pid."""
    name, pid_file = setup
    rename(name)

    def record():
        fd = os.open(pid_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)

    for index in range(100):
        if os.fork() == 0:
            if index % 2:
                os.setsid()
            os.fork()  # child and grandchild both go on
            record()
            sleep_forever()
        time.sleep(0.01)
    sleep_forever()


def test_fork_bomb_is_killed_whole_at_the_timeout(name, tmp_path):
    pid_file = tmp_path / "pids"
    result, seconds = run(fork_bomb, (name, str(pid_file)), timeout=0.5)
    assert result["failure"]["kind"] == "timeout"
    assert seconds < 3.0
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) > 5  # the bomb did go off (how far it got in 0.5 s depends on the machine's load)
    assert survivors(name) == []
    assert [pid for pid in pids if alive(pid, name)] == []


# ------------------------------------------------------------------------------------ 4. filling the disk
def write_megabytes(megabytes):
    with open("big.bin", "wb") as handle:  # relative: the model's own temporary directory
        for _ in range(megabytes):
            handle.write(b"\0" * (1 << 20))
    return {"written": os.path.getsize("big.bin")}


def test_a_file_beyond_the_size_limit_fails_clearly():
    result, _ = run(write_megabytes, 3, file_size_mib=2)
    failure = result["failure"]
    assert failure["message"].startswith("file size limit exceeded (2 MiB per file): OSError: [Errno 27]")
    result, _ = run(write_megabytes, 1, file_size_mib=2)  # below the limit: fine
    assert "failure" not in result and result["written"] == 1 << 20


def test_a_model_restoring_sigxfsz_is_reported_as_over_the_size_limit():
    def restore_and_write(_):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        return write_megabytes(3)

    result, _ = run(restore_and_write, file_size_mib=2)
    assert result["failure"]["message"] == ("killed by signal SIGXFSZ (file size limit exceeded: "
                                            "2 MiB per file)")


def test_model_runs_in_a_fresh_directory_that_is_removed(tmp_path):
    """cwd and TMPDIR are a new empty directory, removed afterwards, even when the model timed out."""
    def where(_):
        import tempfile

        open("marker.txt", "w").close()
        return {"cwd": os.getcwd(), "listing": os.listdir("."), "tmp": tempfile.gettempdir(),
                "TMPDIR": os.environ["TMPDIR"]}

    result, _ = run(where)
    assert result["listing"] == ["marker.txt"]
    assert result["cwd"] == result["tmp"] == result["TMPDIR"] != os.getcwd()
    assert not os.path.exists(result["cwd"])

    def where_then_hang(_):
        print(os.getcwd(), flush=True)
        open("marker.txt", "w").close()
        sleep_forever()

    result, _ = run(where_then_hang, timeout=0.5)
    assert result["failure"]["kind"] == "timeout"
    assert not os.path.exists(result["failure"]["output_tail"].strip())


def test_directories_of_killed_workers_are_removed(monkeypatch):
    """A worker SIGKILLed mid-file (elbolint's Ctrl-C) leaves its directory; the next worker removes
    it, and only it: a live worker's directory stays."""
    import tempfile

    from elbolint import sandbox

    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    orphaned = tempfile.mkdtemp(prefix=f"elbolint-model-{dead}-")
    open(os.path.join(orphaned, "checkpoint"), "w").close()
    live = tempfile.mkdtemp(prefix=f"elbolint-model-{os.getpid()}-")
    try:
        monkeypatch.setattr(sandbox, "_swept", False)
        assert run(lambda _: {})[0]["seconds"] >= 0
        assert not os.path.exists(orphaned) and os.path.isdir(live)
    finally:
        os.rmdir(live)


# ------------------------------------------------------- 5 + 6. twenty failing files through elbolint --dynamic
TIMEOUT = 3
KINDS = {  # what a file does after writing its marker -> what its ELB100 message must contain
    "raise": "ValueError: boom {i}",
    "os_exit": "exited with code 3",
    "segfault": "killed by signal SIGSEGV",
    "daemon": "RuntimeError: left a daemon {i}",
}
BODIES = {
    "raise": 'raise ValueError(f"boom {I} {helper.GREETING} {DATA}")',
    "os_exit": "os._exit(3)",
    "segfault": "import ctypes\nctypes.string_at(0)",
    "daemon": textwrap.dedent("""\
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    time.sleep(1)
            os._exit(0)
        raise RuntimeError(f"left a daemon {I}")"""),
    "hang": textwrap.dedent("""\
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.1)"""),
}
HEADER = textwrap.dedent("""\
    import os
    import signal
    import time

    import tensorflow_probability as tfp

    import helper  # a sibling module: no __pycache__ may appear next to it

    I = {i}
    with open(os.path.join(os.path.dirname(__file__), "data.txt")) as handle:  # data next to the file
        DATA = handle.read().strip()
    with open("marker_{i}.txt", "w") as handle:  # relative to the working directory
        handle.write("written by the model")
    with open("/proc/self/comm", "w") as handle:
        handle.write(os.environ["ELX_NAME"])
    """)


def kind_of(index: int) -> str:
    return "hang" if index == 13 else list(KINDS)[index % len(KINDS)]


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """`elbolint --dynamic=all .` in a project of twenty failing models, from inside the project."""
    pytest.importorskip("tensorflow_probability")
    project = tmp_path_factory.mktemp("project")
    (project / "helper.py").write_text('GREETING = "hello"\n')
    (project / "data.txt").write_text("from-data-file\n")
    for index in range(20):
        (project / f"model_{index:02d}.py").write_text(
            HEADER.format(i=index) + BODIES[kind_of(index)] + "\n")
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    name = f"elx{os.getpid() % 100000}dyn"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "elbolint", "check", ".", "--dynamic=all", "-j", "1",
         "--dynamic-timeout", str(TIMEOUT), "--output-format", "json", "--exit-zero"],
        capture_output=True, text=True, cwd=project, timeout=300,
        env={**os.environ, "ELX_NAME": name, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.monotonic() - started
    left = survivors(name)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    after = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    return completed, seconds, left, before, after


@pytest.mark.dynamic
def test_twenty_failing_files_in_a_row(twenty):
    """Each file is its own ELB100 with its own reason, the run finishes, nothing survives, and the
    wall time is one worker start-up plus the one timeout plus little per file."""
    completed, seconds, left, _, _ = twenty
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    rows = json.loads(completed.stdout)
    reasons = {}
    for row in rows:
        assert row["code"] == "ELB100", row
        assert row["dynamic"]["trace"]["seconds"] < TIMEOUT + 1  # no file overran its limit
        reasons.setdefault(Path(row["filename"]).name, []).append(row["message"])
    assert sorted(reasons) == [f"model_{index:02d}.py" for index in range(20)]
    for index in range(20):
        kind = kind_of(index)
        expected = f"timeout after {TIMEOUT} s" if kind == "hang" else KINDS[kind].format(i=index)
        [message] = reasons[f"model_{index:02d}.py"]
        assert expected in message, (index, message)
    assert "boom 0 hello from-data-file" in reasons["model_00.py"][0]  # sibling import, data by __file__
    assert left == []
    assert seconds < 60  # measured ~15 s: TF import ~6 s, the timeout 3 s, ~0.2 s a file


@pytest.mark.dynamic
def test_dynamic_run_leaves_the_project_untouched(twenty):
    """Twenty models wrote `marker_N.txt` relative to their working directory and imported a sibling
    module: the project holds exactly the files it had before (no marker, no __pycache__)."""
    _, _, _, before, after = twenty
    assert after == before

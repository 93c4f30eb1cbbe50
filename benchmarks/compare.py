"""elbolint against Fixit 2, flake8 and ruff on the same corpora: how fast, how much memory, the same findings.

Why: elbolint is a LibCST linter, so it can never be as fast as ruff (Rust); this script answers how
far from that ceiling it is, and how it compares with the other LibCST linter (Fixit 2, running a
rule that detects exactly what ELB001 detects: benchmarks/fixit_rules/elb001.py) and with flake8,
the usual Python linter. It prints a Markdown table and checks the goals:

    TFP sources        elbolint cold  <= 50 x ruff
    monorepo           elbolint cold  <= 10 x ruff
    monorepo           elbolint warm  <=  2 x ruff (ruff is always cold: --no-cache)
    one file           elbolint       <= 0.2 s cold, <= 0.1 s warm (the pre-commit case)
    every elbolint run peak RSS       <  500 MB

Corpora:
    tfp       the installed tensorflow_probability package's sources (found with
              importlib.util.find_spec, TF is not imported)
    monorepo  a deterministic synthetic monorepo of 10,000 .py files (seed 10): nested packages,
              plain modules of varied sizes (a log-normal number of functions and classes), ~5 %
              TFP modules (models, surrogates, training; about a third carry an ELB001 pattern:
              inline, through a name, through `self.`) and ~2 % plain TensorFlow/Keras modules
    file      examples/bayesian_regression.py (one small file: the pre-commit case)

Rows: elbolint cold (`--no-cache`), elbolint warm (`--cache-dir D`, primed by the warm-up run),
elbolint `-j 1 --no-cache`, Fixit 2 (`fixit --rules .fixit_rules.elb001 lint`), flake8 (default
plugins: pyflakes, pycodestyle, mccabe), ruff (`check --no-cache --select E,F`). Until elbolint has
`--no-cache`/`--cache-dir` (detected from `elbolint check --help`) the cold rows run without the
flag and the warm row is skipped, with a note.

Method: a light warm-up (each tool runs once on the small file, so its imports and .pyc files are
warm; the script reads every corpus file once, so the page cache is warm; `--warmup N` adds N full
unmeasured runs per tool and corpus), elbolint warm's cache is primed by one run, then each tool
runs `--repeat` times, round-robin over the tools so that background load hits all of them alike;
a tool whose measured runs on a corpus exceed `--budget` seconds gets fewer runs (Fixit needs
minutes for the monorepo). Each run is a fresh wrapper process that starts the tool's CLI (stdout to a
file, where the findings are counted, as a CI log would be), times it with perf_counter and reads
getrusage(RUSAGE_CHILDREN).ru_maxrss: the peak RSS of the largest single process of the run (the
parent or one worker; parallel workers' memory is not summed). Reported: the median wall time.

Installed state: every tool runs as a real install runs it, from compiled bytecode. A `pip install`
of a wheel compiles .pyc files, but a development checkout on a machine that sets
PYTHONDONTWRITEBYTECODE=1 (or a read-only one) would compile elbolint's own modules from source on
every run (~0.17 s of each elbolint run, measured). So the measured runs get an environment of their
own: PYTHONDONTWRITEBYTECODE unset, PYTHONPYCACHEPREFIX a private folder in the scratch directory
(nothing is written beside the sources), elbolint and its rules compiled into it with `compileall`
before the warm-up (which compiles the rest: LibCST, click, the standard library), and
XDG_CACHE_HOME a private folder too, so elbolint's rule index (elbolint/rule_index.py: what a run
knows about the codes without importing the rules, kept like a .pyc) is made by the warm-up run and
never read from the user's own cache.

Reproduce (Python 3.11, from the repository root):
    pip install -e '.[dev]' -r benchmarks/requirements.txt
    python benchmarks/compare.py --quick                      # smoke run, about a minute
    python benchmarks/compare.py | tee benchmarks/results/compare-$(date +%F).md
Fixit and flake8 run from the benchmark's own venv (~/.cache/elbolint-bench/venv, created on first
use from benchmarks/requirements-isolated.txt): Fixit 2.2 pins click<8.2 while elbolint's tests
need click>=8.2, and flake8 installed next to elbolint also loads elbolint's flake8 plugin.
Check `uptime` first: on a shared machine, run when the 1-minute load is below ~1.5.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ONE_FILE = ROOT / "examples" / "bayesian_regression.py"
VENV_REQUIREMENTS = HERE / "requirements-isolated.txt"
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "elbolint-bench" / "venv"
MONOREPO_MARKER = ".elbolint-bench.json"
GENERATOR_VERSION = 3
SEED = 10
TIMEOUT = 3600  # seconds per run

TOOLS = ("elbolint-cold", "elbolint-warm", "elbolint-j1", "fixit", "flake8", "ruff", "python")
LINTERS = TOOLS[:-1]  # (the `python -c pass` floor is measured on the one file only)


# --------------------------------------------------------------------------------------------
# Running and measuring one command
# --------------------------------------------------------------------------------------------

# Runs in a fresh interpreter per measured run, so RUSAGE_CHILDREN covers that run only.
WRAPPER = r"""
import json, resource, subprocess, sys, time
command, cwd, timeout = json.loads(sys.argv[1]), sys.argv[2] or None, float(sys.argv[3])
with open(sys.argv[4], "wb") as stdout:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=timeout)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "rc": done.returncode, "rss_kib": peak,
                  "stderr": done.stderr[-600:].decode(errors="replace")}))
"""


#: The environment of every measured run (installed_state); None: this process's own.
ENV: Optional[dict[str, str]] = None


def installed_state(scratch: Path) -> dict[str, str]:
    """The measured runs' environment (see "Installed state" above): bytecode written to and read
    from a private prefix, elbolint and its rules compiled into it now."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["XDG_CACHE_HOME"] = str(scratch / "xdg-cache")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "elbolint"), str(ROOT / "rules")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return env


@dataclass
class Run:
    wall: float
    rss_mib: float
    rc: int
    stderr: str


def measure(command: list[str], cwd: Optional[Path], stdout: Path) -> Run:
    """One run of `command` in a fresh wrapper process (its stdout to a file, as in CI logs):
    wall seconds and peak RSS."""
    wrapper = [sys.executable, "-c", WRAPPER, json.dumps(command), str(cwd or ""), str(TIMEOUT), str(stdout)]
    out = subprocess.run(wrapper, capture_output=True, text=True, check=True, env=ENV).stdout
    data = json.loads(out)
    return Run(data["wall"], data["rss_kib"] / 1024, data["rc"], data["stderr"])


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------

@dataclass
class Tool:
    name: str
    command: Callable[[list[Path]], list[str]]
    count: Callable[[str], int]           # findings in a run's stdout
    ok_codes: tuple[int, ...] = (0, 1)
    cwd: Optional[Path] = None
    label: str = ""


FINDING_LINE = re.compile(r"^\S.*:\d+:\d+:? ", re.M)


def count_lines(pattern: str) -> Callable[[str], int]:
    regex = re.compile(pattern, re.M)
    return lambda out: len(regex.findall(out))


def elbolint_flags() -> set[str]:
    """Which of the cache flags this elbolint has (read from `elbolint check --help`)."""
    text = subprocess.run([sys.executable, "-m", "elbolint", "check", "--help"],
                          capture_output=True, text=True, cwd=ROOT).stdout
    return {flag for flag in ("--no-cache", "--cache-dir") if flag in text}


def elbolint_tools(flags: set[str], cache_root: Path, notes: list[str]) -> dict[str, Tool]:
    base = [sys.executable, "-m", "elbolint", "check", "--exit-zero", "-q"]
    no_cache = ["--no-cache"] if "--no-cache" in flags else []
    if not no_cache:
        notes.append("elbolint has no `--no-cache` yet: the cold rows run without it (no cache exists to skip).")
    count = count_lines(r"^\S.*: ELB001 ")
    tools = {
        "elbolint-cold": Tool("elbolint-cold", lambda p: base + no_cache + list(map(str, p)), count, (0,),
                              label=f"elbolint {' '.join(no_cache) or '(default)'}".strip()),
        "elbolint-j1": Tool("elbolint-j1", lambda p: base + ["-j", "1"] + no_cache + list(map(str, p)), count, (0,),
                            label=f"elbolint -j 1 {' '.join(no_cache)}".strip()),
    }
    if "--cache-dir" in flags:
        def warm(paths: list[Path]) -> list[str]:
            key = hashlib.sha1("\0".join(map(str, paths)).encode()).hexdigest()[:12]
            cache = cache_root / f"cache-{key}"   # one primed cache per corpus
            return base + ["--cache-dir", str(cache)] + list(map(str, paths))
        tools["elbolint-warm"] = Tool("elbolint-warm", warm, count, (0,), label="elbolint warm (--cache-dir, primed)")
    else:
        notes.append("elbolint has no `--cache-dir` yet: the warm row is skipped.")
    return tools


def ruff_binary() -> str:
    try:
        from ruff.__main__ import find_ruff_bin
        return str(find_ruff_bin())
    except Exception:
        return shutil.which("ruff") or "ruff"


def isolated_venv(notes: list[str]) -> Optional[Path]:
    """The benchmark's own venv with Fixit and flake8 (requirements-isolated.txt says why),
    created or completed on first use; None if that fails."""
    if all((VENV / "bin" / tool).exists() for tool in ("fixit", "flake8")):
        return VENV
    print(f"installing Fixit and flake8 into {VENV} ...", file=sys.stderr, flush=True)
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(VENV_REQUIREMENTS)],
                       check=True)
    except (subprocess.CalledProcessError, OSError) as error:
        notes.append(f"the isolated venv could not be set up ({error}): no Fixit row; flake8 runs in this env.")
        return None
    return VENV


def other_tools(fixit: Optional[str], venv: Optional[Path]) -> dict[str, Tool]:
    python = str(venv / "bin" / "python") if venv else sys.executable
    tools = {
        # -I: not even the working directory's elbolint.egg-info may register elbolint's plugin.
        "flake8": Tool("flake8", lambda p: [python, "-I", "-m", "flake8", "--isolated", *map(str, p)],
                       lambda out: len(FINDING_LINE.findall(out)), label="flake8 (default plugins)"),
        "ruff": Tool("ruff", lambda p: [ruff_binary(), "check", "--isolated", "--no-cache", "--select", "E,F",
                                        "--output-format", "concise", *map(str, p)],
                     lambda out: len(FINDING_LINE.findall(out)), label="ruff check --no-cache --select E,F"),
        # The floor of any Python tool, in the same run: the one-file goals are absolute times, and this
        # 2-core VM runs ~1.6x slower in some hours than in others (Python's own start: 35 ms or 59 ms).
        "python": Tool("python", lambda p: [sys.executable, "-c", "pass"], lambda out: 0,
                       label="python -c pass (the interpreter's start alone)"),
    }
    if fixit:
        # `.fixit_rules.elb001` is a local rule, resolved against the working directory.
        tools["fixit"] = Tool("fixit", lambda p: [fixit, "--rules", ".fixit_rules.elb001", "lint", *map(str, p)],
                              count_lines(r"UnconstrainedScale: "), cwd=HERE, label="Fixit 2 (ELB001 rule)")
    return tools


def tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# --------------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    name: str
    paths: list[Path]
    files: int
    description: str
    tools: tuple[str, ...]
    planted: Optional[int] = None   # ELB001 patterns the generator put in


def count_py(path: Path) -> int:
    if path.is_file():
        return 1
    return sum(1 for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def tfp_corpus(quick: bool, scratch: Path) -> Optional[Corpus]:
    """A copy of the installed package's .py files. Not linted in place: Fixit's file walker
    (trailrunner) takes the nearest folder with a .git as the project root and applies its
    .gitignore, and pyenv's (~/.pyenv/.gitignore: `/versions`) hides all of site-packages."""
    spec = importlib.util.find_spec("tensorflow_probability")   # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(list(spec.submodule_search_locations)[0])
    version = importlib.metadata.version("tensorflow-probability")
    source = package / "python" / "bijectors" if quick else package
    copy = scratch / "tfp" / "tensorflow_probability"
    for path in source.rglob("*.py"):
        if "__pycache__" not in path.parts:
            target = copy / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    what = "`tensorflow_probability/python/bijectors`" if quick else "`tensorflow_probability`"
    return Corpus("tfp", [copy], count_py(copy), f"installed {what} {version} sources (a copy, .py only; "
                  f"{corpus_size(copy)})", LINTERS)


def corpus_size(path: Path) -> str:
    """Lines and MiB; reading every file also puts the corpus in the page cache."""
    data = [p.read_bytes() for p in path.rglob("*.py")]
    lines = sum(d.count(b"\n") for d in data)
    return f"{lines:,} lines, {sum(map(len, data)) / 2**20:.1f} MiB"


def one_file_corpus() -> Corpus:
    lines = len(ONE_FILE.read_text().splitlines())
    return Corpus("file", [ONE_FILE], 1, f"one file, `{ONE_FILE.relative_to(ROOT)}` ({lines} lines)",
                  ("elbolint-cold", "elbolint-warm", "fixit", "flake8", "ruff", "python"))


def monorepo_corpus(directory: Optional[Path], files: int, scratch: Path) -> Corpus:
    target = directory or scratch / "monorepo"
    planted = ensure_monorepo(target, files)
    return Corpus("monorepo", [target], files,
                  f"synthetic monorepo, seed {SEED}: {files} files, {corpus_size(target)}", LINTERS, planted)


def ensure_monorepo(target: Path, files: int) -> int:
    """Generate the monorepo into `target` unless the same one is already there; the planted count."""
    marker = target / MONOREPO_MARKER
    wanted = {"seed": SEED, "files": files, "version": GENERATOR_VERSION}
    if marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            return found["planted"]
    if target.exists() and any(target.iterdir()):
        if not marker.exists():
            sys.exit(f"{target} is not empty and was not generated by this script; choose another --monorepo-dir")
        shutil.rmtree(target)
    planted = Monorepo(random.Random(SEED)).write(target, files)
    marker.write_text(json.dumps({**wanted, "planted": planted}))
    return planted


# The synthetic monorepo: benchmarks/monorepo_gen.py (generated from SEED, see ensure_monorepo).
from monorepo_gen import Monorepo  # noqa: E402  (the folder of this script is on sys.path)


# --------------------------------------------------------------------------------------------
# Benchmark loop and report
# --------------------------------------------------------------------------------------------

@dataclass
class Row:
    corpus: Corpus
    tool: Tool
    runs: list[Run] = field(default_factory=list)
    findings: Optional[int] = None
    failure: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.rss_mib for r in self.runs)


def warm_up_tools(tools: dict[str, Tool], scratch: Path) -> None:
    """Each tool once on the small file: its imports and .pyc files are then warm."""
    for tool in tools.values():
        print(f"  warm-up {tool.name} (one file)", file=sys.stderr, flush=True)
        measure(tool.command([ONE_FILE]), tool.cwd, scratch / "stdout.txt")


def bench_corpus(corpus: Corpus, tools: dict[str, Tool], args: argparse.Namespace, scratch: Path) -> list[Row]:
    rows = [Row(corpus, tools[name]) for name in TOOLS if name in tools and name in corpus.tools]
    output = scratch / "stdout.txt"
    for row in rows:      # full warm-ups (--warmup); elbolint warm always primes its cache once
        for i in range(max(args.warmup, 1 if row.tool.name == "elbolint-warm" else 0)):
            print(f"  warm-up {i + 1} {corpus.name} / {row.tool.name}", file=sys.stderr, flush=True)
            check(row, measure(row.tool.command(corpus.paths), row.tool.cwd, output), "warm-up ")
    for i in range(args.repeat):   # round-robin, so background load hits every tool alike
        for row in rows:
            if row.runs and sum(r.wall for r in row.runs) >= args.budget:
                continue   # a slow tool: fewer runs (the table says how many)
            print(f"  run {i + 1}/{args.repeat} {corpus.name} / {row.tool.name}", file=sys.stderr, flush=True)
            run = measure(row.tool.command(corpus.paths), row.tool.cwd, output)
            row.runs.append(run)
            row.findings = row.tool.count(output.read_text(errors="replace"))
            check(row, run, "")
    return rows


def check(row: Row, run: Run, when: str) -> None:
    if run.rc not in row.tool.ok_codes and not row.failure:
        row.failure = f"{when}exit {run.rc}: {run.stderr.strip()[-300:]}"


def ruff_wall(rows: list[Row], corpus: str) -> Optional[float]:
    return next((r.wall for r in rows if r.corpus.name == corpus and r.tool.name == "ruff" and r.runs), None)


def table(rows: list[Row]) -> str:
    lines = ["| corpus | tool | files | runs | median wall (s) | min-max (s) | files/s | peak RSS (MiB) | x ruff | findings |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ruff = ruff_wall(rows, row.corpus.name)
        ratio = f"{row.wall / ruff:.1f}" if ruff else "n/a"
        spread = f"{min(r.wall for r in row.runs):.2f}-{max(r.wall for r in row.runs):.2f}"
        flag = " (!)" if row.failure else ""
        lines.append(f"| {row.corpus.name} | {row.tool.label}{flag} | {row.corpus.files} | {len(row.runs)} | {row.wall:.2f} | {spread} "
                     f"| {row.corpus.files / row.wall:,.0f} | {row.rss:.0f} | {ratio} | {row.findings} |")
    return "\n".join(lines)


_README_CORPUS = {"tfp": "installed `tensorflow_probability` ({files:,} files)", "monorepo": "monorepo ({files:,} files)",
                  "file": "one file (`examples/bayesian_regression.py`)"}
_README_RUN = {"elbolint-cold": "elbolint cold (`--no-cache`)", "elbolint-warm": "elbolint warm (cache)",
               "elbolint-j1": "elbolint `-j 1`", "ruff": "ruff `check --no-cache --select E,F`",
               "fixit": "Fixit 2 (one rule, ELB001)", "flake8": "flake8", "python": "`python -c pass` (the floor)"}


def readme_table(rows: list[Row]) -> str:
    """The README's speed table (section "Speed and precision"), generated here so that its figures
    come from this script only: paste it as is."""
    lines = ["| corpus | run | median wall (s) | files/s | × ruff | peak RSS (MiB) |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.corpus.name for r in rows):
        mine = [r for r in rows if r.corpus.name == name and r.runs]
        ruff = ruff_wall(rows, name)
        first = True
        for row in mine:
            corpus = _README_CORPUS.get(name, name).format(files=row.corpus.files) if first else ""
            first = False
            ratio = f"{row.wall / ruff:.1f}" if ruff else "n/a"
            rate = f"{row.corpus.files / row.wall:,.0f}" if row.corpus.files > 1 else ""
            lines.append(f"| {corpus} | {_README_RUN.get(row.tool.name, row.tool.label)} | {row.wall:.2f} | {rate} "
                         f"| {ratio} | {row.rss:.0f} |")
    return "\n".join(lines)


def find_row(rows: list[Row], corpus: str, tool: str) -> Optional[Row]:
    return next((r for r in rows if r.corpus.name == corpus and r.tool.name == tool and r.runs), None)


def goals(rows: list[Row]) -> str:
    lines = ["| goal | measured | target | status |", "|---|---|---|---|"]

    def ratio_goal(title: str, corpus: str, tool: str, limit: float) -> None:
        row, ruff = find_row(rows, corpus, tool), ruff_wall(rows, corpus)
        if row is None or ruff is None:
            lines.append(f"| {title} | not measured | <= {limit:g}x ruff | n/a |")
            return
        value = row.wall / ruff
        lines.append(f"| {title} | {row.wall:.2f} s / {ruff:.2f} s = {value:.1f}x | <= {limit:g}x "
                     f"| {'met' if value <= limit else 'NOT met'} |")

    ratio_goal("TFP sources, elbolint cold vs ruff", "tfp", "elbolint-cold", 50)
    ratio_goal("monorepo, elbolint cold vs ruff", "monorepo", "elbolint-cold", 10)
    ratio_goal("monorepo, elbolint warm vs ruff (cold)", "monorepo", "elbolint-warm", 2)
    one = find_row(rows, "file", "elbolint-cold")
    if one is None:
        lines.append("| one file, elbolint | not measured | <= 0.2 s | n/a |")
    else:
        floor = find_row(rows, "file", "python")
        start = f" (Python's own start, same run: {floor.wall:.3f} s)" if floor is not None and floor.runs else ""
        lines.append(f"| one file, elbolint cold{start} | {one.wall:.3f} s | <= 0.2 s "
                     f"| {'met' if one.wall <= 0.2 else 'NOT met'} |")
    warm_one = find_row(rows, "file", "elbolint-warm")
    if warm_one is not None:
        lines.append(f"| one file, elbolint warm (the cache answers) | {warm_one.wall:.3f} s | <= 0.1 s "
                     f"| {'met' if warm_one.wall <= 0.1 else 'NOT met'} |")
    ours = [r for r in rows if r.tool.name.startswith("elbolint") and r.runs]
    if ours:
        worst = max(ours, key=lambda r: r.rss)
        mb = worst.rss * 2**20 / 1e6
        lines.append(f"| peak RSS, every elbolint run | {mb:.0f} MB ({worst.corpus.name}, {worst.tool.label}) "
                     f"| < 500 MB | {'met' if mb < 500 else 'NOT met'} |")
    return "\n".join(lines)


def source_state() -> str:
    """The git commit plus a digest of elbolint's sources (elbolint/, rules/), so a report can
    say when they changed during the run (a shared checkout being edited)."""
    digest = hashlib.sha1()
    for path in sorted([*(ROOT / "elbolint").rglob("*.py"), *(ROOT / "rules").rglob("*.py")]):
        digest.update(path.as_posix().encode() + path.read_bytes())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return f"{commit or 'no git'}, sources {digest.hexdigest()[:10]}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def versions(fixit: Optional[str]) -> str:
    def pkg(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    fixit_v = tool_version([fixit, "--version"]).split()[-1] if fixit else "not available"
    return (f"Python {platform.python_version()}, elbolint {pkg('elbolint')}, LibCST {pkg('libcst')}, "
            f"ruff {tool_version([ruff_binary(), '--version']).split()[-1]}, "
            f"flake8 {tool_version([str(VENV / 'bin' / 'flake8'), '--version'])}, Fixit {fixit_v}")


def report(rows: list[Row], corpora: list[Corpus], notes: list[str], args, fixit, load_before: str, source_before: str) -> str:
    source_after = source_state()
    if source_after != source_before:
        notes.append(f"elbolint's sources changed during the run ({source_before} -> {source_after}): "
                     "its rows mix versions and a warm cache may have been invalidated; measure again.")
    out = [f"# elbolint vs Fixit, flake8, ruff ({datetime.date.today().isoformat()})", "",
           f"`python benchmarks/compare.py {' '.join(sys.argv[1:])}`".replace("compare.py `", "compare.py`"), "",
           f"Machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}); "
           f"load average (1, 5, 15 min) before: {load_before}; after: {load_average()}.", "",
           f"Versions: {versions(fixit)}; elbolint at {source_before}.", "",
           f"Median of {args.repeat} run(s) (fewer for a tool whose runs exceed the {args.budget:g} s budget: "
           f"`runs`), after the light warm-up (each tool once on one file; every corpus file read once) "
           f"and {args.warmup} full warm-up run(s); elbolint warm's cache primed by one run; "
           "tools run round-robin.", "",
           "Corpora:"]
    out += [f"- **{c.name}**: {c.description}" + (f" ({c.planted} ELB001 patterns planted)" if c.planted is not None else "")
            for c in corpora]
    out += ["", table(rows), "",
            "`findings`: ELB001 findings for elbolint and the Fixit rule, E/F findings for ruff and flake8 "
            "(counted in the last run's output). `peak RSS`: largest single process of a run "
            "(ru_maxrss of children; workers are not summed), the maximum over the measured runs. "
            "`x ruff`: median wall time over ruff's on the same corpus.", "",
            "## Goals", "", goals(rows), "",
            "## README table", "", "The README's speed table, from the rows above (paste it as is):", "",
            readme_table(rows)]
    failures = [f"- {r.corpus.name} / {r.tool.label}: {r.failure}" for r in rows if r.failure]
    if notes or failures:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes] + failures
    return "\n".join(out) + "\n"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=None, help="measured runs per tool and corpus (default 3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="full unmeasured runs per tool and corpus (default 0: the light warm-up only)")
    parser.add_argument("--budget", type=float, default=300,
                        help="seconds of measured runs per tool and corpus; a slower tool gets fewer runs (default 300)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: TFP's bijectors only, a 500-file monorepo, 1 repeat")
    parser.add_argument("--monorepo-dir", type=Path, help="generate (or reuse) the monorepo here instead of a temp dir")
    parser.add_argument("--files", type=int, default=None, help="monorepo size (default 10000; 500 with --quick)")
    parser.add_argument("--only", nargs="+", metavar="TOOL", help=f"only these tools ({', '.join(TOOLS)}; "
                        "'elbolint' means all its rows); ruff always runs, as the reference")
    parser.add_argument("--corpus", nargs="+", choices=("tfp", "monorepo", "file"), default=["tfp", "monorepo", "file"])
    parser.add_argument("--fixit", help="Fixit 2 executable (default: the one in the benchmark's own venv)")
    parser.add_argument("-o", "--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.files = args.files or (500 if args.quick else 10_000)
    return args


def selected(only: Optional[list[str]]) -> set[str]:
    if not only:
        return set(TOOLS)
    chosen = {t for t in TOOLS for o in only if t == o or t.startswith(o + "-") or t == o.replace(" ", "-")}
    unknown = [o for o in only if not any(t == o or t.startswith(o + "-") for t in TOOLS)]
    if unknown:
        sys.exit(f"unknown tool(s) {unknown}; choose from {', '.join(TOOLS)} or 'elbolint'")
    return chosen | {"ruff", "python"}


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    notes: list[str] = []
    load_before, source_before = load_average(), source_state()
    wanted = selected(args.only)
    global ENV
    with tempfile.TemporaryDirectory(prefix="elbolint-bench-") as scratch_name:
        scratch = Path(scratch_name)
        ENV = installed_state(scratch)
        notes.append("Installed state: bytecode compiled into a private PYTHONPYCACHEPREFIX (elbolint and its rules "
                     "by compileall, the rest by the warm-up run), PYTHONDONTWRITEBYTECODE unset, a private "
                     "XDG_CACHE_HOME for elbolint's rule index (made by the warm-up run, as a .pyc is).")
        venv = isolated_venv(notes) if wanted & {"fixit", "flake8"} else None
        fixit = args.fixit or (str(venv / "bin" / "fixit") if venv and "fixit" in wanted else None)
        tools = {**elbolint_tools(elbolint_flags(), scratch, notes), **other_tools(fixit, venv)}
        tools = {name: tool for name, tool in tools.items() if name in wanted}
        corpora = build_corpora(args, scratch, notes)
        warm_up_tools(tools, scratch)
        rows: list[Row] = []
        for corpus in corpora:
            print(f"{corpus.name}: {corpus.description}", file=sys.stderr, flush=True)
            rows += bench_corpus(corpus, tools, args, scratch)
        text = report(rows, corpora, notes, args, fixit, load_before, source_before)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


def build_corpora(args: argparse.Namespace, scratch: Path, notes: list[str]) -> list[Corpus]:
    corpora = []
    if "tfp" in args.corpus:
        tfp = tfp_corpus(args.quick, scratch)
        if tfp is None:
            notes.append("tensorflow_probability is not installed (pip install 'elbolint[dynamic]'): no TFP corpus.")
        else:
            corpora.append(tfp)
    if "monorepo" in args.corpus:
        print(f"generating/locating the {args.files}-file monorepo ...", file=sys.stderr, flush=True)
        corpora.append(monorepo_corpus(args.monorepo_dir, args.files, scratch))
    if "file" in args.corpus:
        corpora.append(one_file_corpus())
    return corpora


if __name__ == "__main__":
    main()

"""Long fuzzing run (issue 7): the properties of tests/test_fuzz.py over 10,000+ generated programs.

Usage:
    nohup python benchmarks/fuzz_long.py --programs 10000 > fuzz.log 2>&1 &
    python benchmarks/fuzz_long.py --programs 500 --seed 7 --out /tmp/fuzz-quick

Why a script and not a bigger test: CI runs a few hundred examples (tests/test_fuzz.py); a
10,000-program run takes minutes, wants figures (how much parsed, what was found, how slow) and
must survive a native crash on one program. It imports `check_properties` and the generators from
tests/test_fuzz.py, so the long run and CI check exactly the same properties.

The mix (weights with --mix): fixture mutations (1-3 seeded mutations of a random fixture), the
TFP-flavoured grammar, mutated TFP-flavoured programs, `hypothesmith.from_grammar()` and
`hypothesmith.from_node()` (the last two with TFP imports prepended so the prefilter lets them in).
The work is cut into chunks of --chunk programs (source, seed); a pool of worker processes generates
and checks each chunk, because hypothesis's generation costs more than the linting and would
otherwise run on one core. Before checking a program a worker writes it to OUT/inflight-<pid>.py,
so if LibCST's native parser segfaults (or the OOM killer strikes) the culprit is on disk: it is
renamed worker-died-<n>.py, the pool is rebuilt and the run goes on (that chunk's other programs
are counted as lost).

Each violation is saved as OUT/<kind>-<n>.py plus OUT/<kind>-<n>.txt (what broke, how the program
was made; a fixture mutation replays exactly with `replay`). The slowest programs and a few
parser-disagreement samples are saved too, for the record. Figures are printed every
--report-every programs and at the end; the exit status is 1 if any property was violated.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import hashlib
import heapq
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz as fuzz  # tests/ is not a package; it holds the shared properties

#: A program whose checks (3-5 lints) take longer than this is reported as a `slow` violation.
SLOW_SECONDS = 10.0
SOURCES = ("fixture-mutation", "tfp", "tfp-mutation", "hypothesmith-grammar", "hypothesmith-node")


# --------------------------------------------------------------------------- generation
def _steps(rng: random.Random) -> list[tuple[str, int]]:
    """1-3 (mutation, seed) steps, mostly one: every extra step roughly halves the chance that the
    result still parses, and parsed programs are the ones that reach the rules."""
    count = rng.choices([1, 2, 3], weights=[0.6, 0.25, 0.15])[0]
    return [(rng.choice(sorted(fuzz.MUTATIONS)), rng.randrange(2**32)) for _ in range(count)]


def _hypothesis_examples(strategy, count: int, seed: int, consume) -> None:
    """Feed `count` examples of `strategy` to `consume`, driven by hypothesis's own engine
    (`.example()` is for interactive use and skips the engine's generation heuristics)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    @hypothesis_seed(seed)
    @settings(max_examples=count, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(strategy)
    def sink(value):
        consume(value)

    sink()


def _programs(source: str, count: int, seed: int, consume) -> None:
    """Call consume(data, recipe) for `count` programs of one source; (source, seed) replays it."""
    rng = random.Random(f"{source}:{seed}")
    if source == "fixture-mutation":
        for _ in range(count):
            fixture = rng.choice(fuzz.FIXTURE_FILES)
            steps = _steps(rng)
            consume(fuzz.mutate(fuzz.fixture_bytes(fixture), steps),
                    {"source": source, "fixture": str(fixture.relative_to(ROOT)), "steps": steps})
    elif source == "tfp":
        _hypothesis_examples(fuzz.tfp_programs, count, seed,
                             lambda program: consume(program.encode(), {"source": source}))
    elif source == "tfp-mutation":
        def mutated(program: str) -> None:
            steps = _steps(rng)
            consume(fuzz.mutate(program.encode(), steps), {"source": source, "steps": steps})
        _hypothesis_examples(fuzz.tfp_programs, count, seed, mutated)
    else:
        import hypothesmith

        strategy = hypothesmith.from_grammar() if source == "hypothesmith-grammar" else hypothesmith.from_node()
        _hypothesis_examples(strategy, count, seed, lambda program: consume(
            (fuzz.PREFIX + program).encode("utf-8", "surrogatepass"), {"source": source}))


def replay(recipe: dict) -> bytes:
    """The bytes of a fixture-mutation case from its recipe (the other sources are saved whole)."""
    return fuzz.mutate((ROOT / recipe["fixture"]).read_bytes(), [tuple(s) for s in recipe["steps"]])


# --------------------------------------------------------------------------- checking (in workers)
def check(data: bytes) -> dict:
    """Run the properties on one program; a small picklable summary (FileResults hold CST nodes)."""
    start = time.perf_counter()
    try:
        checked = fuzz.check_properties(data)
    except fuzz.PropertyViolation as violation:
        return {"violation": violation.kind, "detail": violation.detail[:2000],
                "seconds": time.perf_counter() - start}
    except BaseException as error:  # a bug in the properties themselves: still a finding
        return {"violation": "checker-error", "detail": f"{type(error).__name__}: {error}"[:2000],
                "seconds": time.perf_counter() - start}
    return {
        "violation": None,
        "seconds": time.perf_counter() - start,
        "parsed": checked.result.parsed,
        "codes": checked.codes,
        "fixed": checked.fixed is not None,
        "disagreement": checked.parser_disagreement,
        "noqa_hid": checked.noqa_hid_engine_code,
    }


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def run_chunk(source: str, count: int, seed: int, out: str) -> list[tuple[dict, dict, bytes | None]]:
    """Generate and check one chunk in a worker: (recipe, summary, data or None) per program. The
    bytes travel back only when the main process may save them (violations, disagreements, slow)."""
    warnings.simplefilter("ignore")  # SyntaxWarnings of generated code (`1.()`)
    inflight = Path(out) / f"inflight-{os.getpid()}.py"
    results = []

    def consume(data: bytes, recipe: dict) -> None:
        inflight.write_bytes(data)
        summary = check(data)
        summary["digest"] = _digest(data)
        keep = summary["violation"] or summary.get("disagreement") or summary["seconds"] > 1.0
        results.append((recipe, summary, data if keep else None))

    _programs(source, count, seed, consume)
    inflight.unlink(missing_ok=True)
    return results


def chunks(total: int, mix: dict[str, float], chunk: int, seed: int) -> list[tuple[str, int, int]]:
    """(source, count, seed) work items, interleaved so progress reports see the whole mix."""
    weight = sum(mix.values())
    counts = {name: int(total * share / weight) for name, share in mix.items()}
    counts["fixture-mutation"] += total - sum(counts.values())
    items = []
    for name, count in counts.items():
        for index, start in enumerate(range(0, count, chunk)):
            items.append((name, min(chunk, count - start), seed * 100_003 + index))
    random.Random(seed).shuffle(items)
    return items


# --------------------------------------------------------------------------- figures
class Figures:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.tried = 0
        self.distinct: set[bytes] = set()  # hypothesis repeats its favourite small examples
        self.lost = 0
        self.parsed = 0
        self.by_source: collections.Counter = collections.Counter()
        self.parsed_by_source: collections.Counter = collections.Counter()
        self.findings: collections.Counter = collections.Counter()  # diagnostics by code
        self.files_with: collections.Counter = collections.Counter()  # programs with >= 1 of a code
        self.fixed = 0
        self.disagreements: collections.Counter = collections.Counter()
        self.noqa_hid = 0
        self.violations: collections.Counter = collections.Counter()
        self.saved: list[str] = []
        self.seconds: list[float] = []
        self.noted: set[bytes] = set()
        self.slowest: list[tuple[float, int, bytes, dict]] = []  # min-heap of the 5 slowest

    def add(self, recipe: dict, summary: dict, data: bytes | None) -> None:
        self.tried += 1
        self.distinct.add(summary["digest"])
        self.by_source[recipe["source"]] += 1
        self.seconds.append(summary["seconds"])
        kind = summary["violation"]
        if kind is None and summary["seconds"] > SLOW_SECONDS:
            kind, summary = "slow", {**summary, "detail": f"checks took {summary['seconds']:.1f} s"}
        if data is not None and summary["seconds"] > 1.0:  # the worker sends the bytes of slow ones
            heapq.heappush(self.slowest, (summary["seconds"], self.tried, data, recipe))
            if len(self.slowest) > 5:
                heapq.heappop(self.slowest)
        if kind is not None:
            self.violations[kind] += 1
            self.save(f"{kind}-{self.violations[kind]:04d}", data or b"", recipe, summary.get("detail", ""))
            return
        if summary["parsed"]:
            self.parsed += 1
            self.parsed_by_source[recipe["source"]] += 1
        self.findings.update(summary["codes"])
        self.files_with.update(set(summary["codes"]))
        self.fixed += summary["fixed"]
        if summary["disagreement"]:
            label = summary["disagreement"].split(" (")[0]
            self.disagreements[label] += 1
            if data is not None and _digest(data) not in self.noted and len(self.noted) < 20:
                self.noted.add(_digest(data))
                self.save(f"note-{label.replace(' ', '-').replace(',', '')}-{len(self.noted)}",
                          data or b"", recipe, summary["disagreement"], violation=False)
        self.noqa_hid += summary["noqa_hid"]

    def save(self, stem: str, data: bytes, recipe: dict, detail: str, violation: bool = True) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{stem}.py"
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(f"{stem}: {detail}\nrecipe: {json.dumps(recipe)}\n", encoding="utf-8")
        if violation:
            self.saved.append(path.name)

    def save_slowest(self) -> None:
        for rank, (seconds, _, data, recipe) in enumerate(sorted(self.slowest, reverse=True), start=1):
            self.save(f"slowest-{rank}", data, recipe, f"checks took {seconds:.2f} s", violation=False)

    def report(self, wall: float, final: bool = False) -> str:
        per = sorted(self.seconds)
        lines = [
            f"{'FINAL' if final else 'progress'}: {self.tried} programs checked in {wall:.1f} s wall "
            f"({self.tried / wall if wall else 0:.1f}/s), {len(self.distinct)} distinct"
            + (f", {self.lost} lost to dead workers" if self.lost else ""),
            "  by source (parsed): " + ", ".join(
                f"{s} {n} ({self.parsed_by_source[s]})" for s, n in sorted(self.by_source.items())),
            f"  parsed by LibCST: {self.parsed} ({100 * self.parsed / max(self.tried, 1):.1f}%)",
            "  findings by code (diagnostics / programs): " + ", ".join(
                f"{c} {self.findings[c]}/{self.files_with[c]}" for c in sorted(self.findings)),
            f"  programs with a fix applied (fixed output re-linted and re-fixed): {self.fixed}",
            "  parser disagreements (not violations): " + (", ".join(
                f"{k}: {n}" for k, n in sorted(self.disagreements.items())) or "none"),
            f"  engine code hidden by `# noqa` (file silently unlinted): {self.noqa_hid}",
            "  check time per program (3-5 lints): " + (
                f"median {1000 * statistics.median(per):.1f} ms, p99 {1000 * per[int(0.99 * (len(per) - 1))]:.1f} ms, "
                f"max {1000 * per[-1]:.1f} ms" if per else "-"),
            "  VIOLATIONS: " + (", ".join(f"{k} {n}" for k, n in sorted(self.violations.items())) or "none"),
        ]
        if final and self.saved:
            lines.append(f"  saved to {self.out}: " + ", ".join(self.saved[:20]) + (" ..." if len(self.saved) > 20 else ""))
        return "\n".join(lines)


def _dead_worker_culprits(out: Path, figures: Figures) -> None:
    """After a worker died: its in-flight program is the culprit (the live ones' files are
    overwritten or removed as they go on, and the pool is rebuilt, so every file left is one)."""
    for inflight in sorted(out.glob("inflight-*.py")):
        figures.violations["worker-died"] += 1
        target = out / f"worker-died-{figures.violations['worker-died']:04d}.py"
        inflight.rename(target)
        target.with_suffix(".txt").write_text(
            "worker-died: the worker process died (native crash, out of memory or killed) on this program\n")
        figures.saved.append(target.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=100, help="programs per work item")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "elbolint-fuzz",
                        help="folder for the programs that break a property (and notes)")
    parser.add_argument("--mix", default="fixture-mutation=0.45,tfp=0.2,tfp-mutation=0.1,"
                        "hypothesmith-grammar=0.2,hypothesmith-node=0.05")
    parser.add_argument("--report-every", type=int, default=2000)
    args = parser.parse_args(argv)
    mix = dict.fromkeys(SOURCES, 0.0)
    for item in args.mix.split(","):
        name, share = item.split("=")
        if name not in mix:
            parser.error(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")
        mix[name] = float(share)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("inflight-*.py"):
        stale.unlink()

    started = time.perf_counter()
    items = chunks(args.programs, mix, args.chunk, args.seed)
    print(f"{args.programs} programs in {len(items)} chunks (seed {args.seed}), {args.jobs} workers; "
          f"saving to {args.out}", flush=True)
    figures = Figures(args.out)
    next_report = args.report_every
    pending = collections.deque(items)
    while pending:
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            running = {}
            try:
                while pending or running:
                    while pending and len(running) < 2 * args.jobs:  # bounded: a crash loses little
                        item = pending.popleft()
                        running[pool.submit(run_chunk, *item, str(args.out))] = item
                    done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        item = running.pop(future)
                        for recipe, summary, data in future.result():
                            figures.add(recipe, summary, data)
                    if figures.tried >= next_report:
                        print(figures.report(time.perf_counter() - started), flush=True)
                        next_report += args.report_every
            except BrokenProcessPool:
                figures.lost += sum(count for _, count, _ in running.values())
                _dead_worker_culprits(args.out, figures)
                print(f"a worker died; {len(running)} chunks lost, culprit saved; rebuilding the pool", flush=True)
    wall = time.perf_counter() - started
    figures.save_slowest()
    print(figures.report(wall, final=True))
    return 1 if figures.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""Static-mode speed and memory: wall time, files per second and peak RSS of `elbolint` runs.

Usage:
    python benchmarks/static_bench.py                 # this repository's fixtures/
    python benchmarks/static_bench.py --tfp           # also the installed tensorflow_probability package
    python benchmarks/static_bench.py PATH [PATH...]  # any corpus

Each corpus is linted by the real CLI in a subprocess (`python -m elbolint --exit-zero -q`), with one
worker and with all cores, `--repeat` times; the best wall time is reported (least disturbed by
other load). Peak RSS is the largest resident set of the run's processes (ru_maxrss of children).
Targets: the fixtures in well under a second of linting; TFP's ~1,500 sources in under a minute on
2 cores with a bounded peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*.py") if "__pycache__" not in p.parts) if path.is_dir() else 1


def run_once(path: Path, jobs: int) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one CLI run in a fresh process."""
    command = [sys.executable, "-c",
               "import resource, subprocess, sys, time; t = time.perf_counter();"
               f"subprocess.run([sys.executable, '-m', 'elbolint', '--exit-zero', '-q', '-j', '{jobs}', {str(path)!r}],"
               " stdout=subprocess.DEVNULL, check=True);"
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    return float(output[0]), int(output[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--tfp", action="store_true", help="also lint the installed tensorflow_probability")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpora = args.paths or [ROOT / "fixtures"]
    if args.tfp:
        import importlib.util

        spec = importlib.util.find_spec("tensorflow_probability")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("tensorflow_probability is not installed (pip install 'elbolint[dynamic]')")
        corpora.append(Path(list(spec.submodule_search_locations)[0]))
    cores = os.cpu_count() or 1
    print(f"| corpus | files | jobs | best wall (s) | files/s | ms/file | peak RSS (MiB) |")
    print(f"|---|---|---|---|---|---|---|")
    for corpus in corpora:
        files = count_files(corpus)
        for jobs in sorted({1, cores}):
            runs = [run_once(corpus, jobs) for _ in range(args.repeat)]
            wall = min(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            name = corpus.name if corpus.is_relative_to(ROOT) else corpus.as_posix().rsplit("site-packages/", 1)[-1]
            print(f"| {name} | {files} | {jobs} | {wall:.2f} | {files / wall:.0f} | {1000 * wall / files:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()

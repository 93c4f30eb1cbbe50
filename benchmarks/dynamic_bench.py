"""Benchmark dynamic mode: seconds per model for the seed scenarios, and the whole
`elbolint --dynamic=all fixtures/dynamic` run. Prints Markdown tables (pasted into README.md).

    python benchmarks/dynamic_bench.py [--steps 200] [--jobs 2]

Per-model numbers come from one worker (TF imported once, each file in a forked child), so they are
what a file costs once the import is amortised; "fit" is the user's fit alone, "reference" the
default surrogate's fit, "total" the child's whole life (executing the file, both fits, estimates).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elbolint.dynamic import strategy_for  # noqa: E402
from elbolint.dynamic.verdicts.seeds import classify_seeds as classify  # noqa: E402  (every seed of a fit)
from elbolint.dynamic.parent.harness import Worker  # noqa: E402
from elbolint.dynamic.parent.settings import DynamicSettings  # noqa: E402

SEED_SCENARIOS = [
    "fixtures/seed/example1_poor_initialisation.py",
    "fixtures/seed/example2_restrictive_family.py",
    "fixtures/seed/example3_article_fix.py",
    "fixtures/seed/example3_truly_fixed.py",
    "fixtures/dynamic/seed_loc_100.py",
    "fixtures/dynamic/seed_lambda_inputs.py",
    "fixtures/dynamic/raw_scale_high_lr.py",
    "fixtures/dynamic/eager_softplus.py",
    "fixtures/dynamic/missing_independent.py",
    "fixtures/dynamic/custom_loop_raw_scale.py",
    "fixtures/dynamic/custom_loop_wrong_sign.py",
    "examples/bayesian_regression.py",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    settings = DynamicSettings(steps=args.steps).to_json()

    started = time.monotonic()
    worker = Worker(sys.executable)
    startup = time.monotonic() - started
    print(f"worker start-up (imports TF + TFP once): {startup:.1f} s "
          f"(TF {worker.info['versions']['tensorflow']}, TFP {worker.info['versions']['tensorflow_probability']})")
    print()
    print("| scenario | steps run | fit s | reference s | total s | codes observed |")
    print("|---|---|---|---|---|---|")
    totals = []
    for name in SEED_SCENARIOS:
        path = ROOT / name
        strategy = strategy_for(path.read_text())
        t0 = time.monotonic()
        result = worker.run({"path": str(path), "strategy": strategy, "settings": settings})
        wall = time.monotonic() - t0
        totals.append(wall)
        fit = result.get("fit") or {}
        reference = result.get("reference") or {}
        codes = sorted({f["code"] for f in classify(result)}) or ["none"]
        print(f"| {name} | {len(fit.get('loss', []))} | {fit.get('seconds', 0):.2f} | "
              f"{reference.get('seconds', 0):.2f} | {wall:.2f} | {', '.join(codes)} |")
    worker.close()
    print()
    print(f"mean {sum(totals) / len(totals):.2f} s per model, max {max(totals):.2f} s (import amortised)")
    print()
    for jobs in sorted({1, args.jobs}):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "elbolint", "check", "fixtures/dynamic", "--dynamic=all",
                        "-j", str(jobs), "--dynamic-timeout", "10", "--dynamic-memory", "1024",
                        "--dynamic-steps", str(args.steps), "--exit-zero", "-q"],
                       cwd=ROOT, capture_output=True, check=True)
        files = len(list((ROOT / "fixtures/dynamic").glob("*.py")))
        print(f"`elbolint --dynamic=all fixtures/dynamic -j {jobs} --dynamic-timeout 10`: "
              f"{time.monotonic() - t0:.1f} s wall for {files} files (one hangs until the 10 s timeout)")


if __name__ == "__main__":
    main()

"""Triage parity: the findings with triage (elbolint/triage.py) must be byte-identical to the full parse.

Runs the real CLI twice per corpus, `--no-cache --output-format json --exit-zero --select ELB` (every
rule, the opt-in ones too), once as is and once with ELBOLINT_NO_TRIAGE=1 (every file that passes the
prefilter parsed with LibCST), and compares the two outputs byte for byte. Prints one row per corpus
(files, findings, whether the outputs differ, both wall times) and the first differing lines.

    python benchmarks/triage_parity.py fixtures "$(python -c 'import tensorflow_probability,os;print(os.path.dirname(tensorflow_probability.__file__))')" /tmp/corpus

Exit status 1 when any corpus differs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run(path: str, triage: bool, extra: list[str]) -> tuple[bytes, float]:
    env = dict(os.environ)
    env.pop("ELBOLINT_NO_TRIAGE", None)
    if not triage:
        env["ELBOLINT_NO_TRIAGE"] = "1"
    command = [sys.executable, "-m", "elbolint", "check", "--no-cache", "--output-format", "json", "--exit-zero",
               "--quiet", "--select", "ELB", *extra, path]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return done.stdout, elapsed


def files(path: str, extra: list[str]) -> int:
    done = subprocess.run([sys.executable, "-m", "elbolint", "check", "--show-files", *extra, path],
                          capture_output=True, check=False, text=True)
    return len([line for line in done.stdout.splitlines() if line.strip()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--extra", default="", help="more CLI arguments, space-separated (e.g. --no-respect-gitignore)")
    args = parser.parse_args()
    extra = args.extra.split()
    print("| corpus | files | findings | diff | triage (s) | full parse (s) |")
    print("|---|---|---|---|---|---|")
    failed = False
    for path in args.paths:
        with_triage, fast = run(path, True, extra)
        without, slow = run(path, False, extra)
        same = with_triage == without
        findings = len(json.loads(with_triage or b"[]"))
        print(f"| {path} | {files(path, extra)} | {findings} | {'0' if same else 'DIFFERS'} | {fast:.1f} | {slow:.1f} |",
              flush=True)
        if not same:
            failed = True
            a = json.dumps(json.loads(without), indent=1).splitlines()
            b = json.dumps(json.loads(with_triage), indent=1).splitlines()
            for line in list(difflib.unified_diff(a, b, "full parse", "triage", lineterm="", n=2))[:60]:
                print("    " + line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

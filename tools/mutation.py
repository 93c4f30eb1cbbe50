"""Sampled mutation testing of the rules and the static engine: how hard do the fast rule tests bite?

Why: the rule tests (fixtures, message snapshots, resolver, value flow, VI context, fixes, registry)
can all pass while a rule has lost a condition. A *mutant* is the code with one small change; the
tests *kill* it when one of them fails. A surviving mutant is behaviour no test pins down, or an
equivalent change (no observable difference). The kill rate of a fixed-seed sample of mutants is a
measure of the tests that line coverage is not.

Mutation operators (stdlib `ast`, one change per mutant, spliced into the source text so every other
line keeps its number): a comparison swapped (`<`/`<=`, `>`/`>=`, `==`/`!=`, `in`/`not in`,
`is`/`is not`), `and`/`or` swapped, a `not` dropped, a constant changed (True/False flipped, an int
plus one, a float doubled, a string emptied), a returned value replaced (`None`, or the negation of
a returned comparison). Docstrings, annotations, f-strings and `__all__` are not mutated.

What is mutated: every module of the rules (`rules/`) and of the per-file static engine
(`elbolint/*.py` on the lint path and `elbolint/analyses/`). The dynamic mode, the reporters and the
front ends (CLI, language server, cache, discovery, process isolation, notebooks) are left out:
their own test files (test_cli, test_cache, test_isolation, ...) are not part of the fast kill set.

The source tree is never touched: the repository (without .git and caches) is copied to a private
directory (`--work`), the rules are put where the installed package has them (`elbolint/rules`), the
copy is checked to be what `import elbolint` finds (the editable install must not win), and every
mutant is written into the copy and undone afterwards. Steps:

1. enumerate every mutation site of the target modules, shuffle them with a fixed seed, keep the
   first N that compile;
2. one run of the tests on a second copy in which every sampled expression `e` is wrapped as
   `__mutation_probe__(k, e)` records which tests evaluate it (an expression evaluated at import
   time counts for every test; the engine's lru caches are cleared before each test so a cached
   computation is attributed to every test that needs it; the CLI's work runs in-process);
3. per mutant, pytest runs only the tests that evaluate the mutated expression, `-x`, fastest
   first, in a child forked from this process (mutation_runs.py), each test within ten times its
   unmutated duration (a timeout counts as killed). Tests that existed at `--new-since` run first,
   so "killed before the new tests" is exact; for a table evaluated at import time the new tests
   run first, and the old tests alone are tried afterwards to settle it (`--settle-until`).

A mutant no test executes is a survivor without a run. The JSON report (`--report`) lists every
mutant: file, line, operator, original and mutated text, status, the test that killed it.

    python tools/mutation.py -n 120 --seed 17 --new-since <commit> --report /tmp/mut/report.json
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from mutation_runs import Outcome, child_env, in_child, preload

REPO = Path(__file__).resolve().parent.parent
KILL_TESTS = ("tests/test_fixtures.py", "tests/test_message_snapshots.py", "tests/test_resolver.py",
              "tests/test_value_flow.py", "tests/test_vi_context.py", "tests/test_fix.py", "tests/test_registry.py")
NEW_TEST_PATTERNS = ("test_mutation_*.py", "test_rules_edge_*.py")
# Front ends and process machinery: not on the per-file lint path, tested by their own (slower) files.
ENGINE_LEFT_OUT = frozenset({
    "__init__.py", "__main__.py", "cache.py", "cli.py", "config.py", "deepstack.py", "discovery.py", "docs.py",
    "flake8_plugin.py", "gitignore.py", "isolation.py", "notebook.py", "notebook_json.py",
    "notebook_languages.py", "options.py", "rule_index.py", "runner.py", "sandbox.py", "server.py",
    "server_state.py", "tensorboard_logs.py",
    "triage.py",
})
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".elbolint_cache", "*.egg-info", "corpus", "*.new",
                                     ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", ".benchmarks")
PYTEST_FLAGS = ("-q", "-p", "no:cacheprovider", "-m", "not dynamic")


@dataclass(frozen=True)
class Mutant:
    """One change: the source range [line:col, end_line:end_col) (UTF-8 byte columns, as `ast` gives
    them) of `file` (a path inside the copy) replaced by `replacement`."""

    file: str
    line: int
    end_line: int
    col: int
    end_col: int
    operator: str
    original: str
    replacement: str

    @property
    def shown_file(self) -> str:
        """The path in the source tree (the rules are at rules/, not elbolint/rules/)."""
        return self.file.removeprefix("elbolint/") if self.file.startswith("elbolint/rules/") else self.file


# ---------------------------------------------------------------------------------------------
# The private copy


def make_copy(source: Path, dest: Path) -> Path:
    """A copy of the repository at `dest` whose package `elbolint.rules` is a real folder."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=COPY_IGNORE)
    shutil.move(str(dest / "rules"), str(dest / "elbolint" / "rules"))
    (dest / "rules").symlink_to("elbolint/rules")  # tests and docs that read rules/ see the same files
    return dest


def check_imports(copy: Path) -> None:
    """Stop unless `import elbolint` (and its rules and analyses) in a child finds the copy."""
    code = ("import elbolint, elbolint.rules, elbolint.analyses as a; "
            "print(elbolint.__file__, elbolint.rules.__file__, a.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=child_env(copy), capture_output=True,
                         text=True, check=True).stdout.split()
    stray = [p for p in out if not Path(p).resolve().is_relative_to(copy.resolve())]
    if stray:
        raise SystemExit(f"the copy is not what `import elbolint` finds: {stray}")


def target_files(copy: Path) -> list[str]:
    """The modules to mutate, as paths inside the copy."""
    found = sorted((copy / "elbolint" / "rules").rglob("*.py"))
    found += sorted(p for p in (copy / "elbolint").glob("*.py") if p.name not in ENGINE_LEFT_OUT)
    found += sorted((copy / "elbolint" / "analyses").rglob("*.py"))
    return [str(p.relative_to(copy)) for p in found if p.name != "__init__.py"]


# ---------------------------------------------------------------------------------------------
# Mutation sites

_SWAPPED = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


def _left_alone(tree: ast.AST) -> set[int]:
    """ids of the nodes never mutated: docstrings and other bare strings, annotations, f-strings,
    match patterns, `__all__` (a change there is a change of documentation, of types, of nothing
    the linter does, or not valid syntax)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            roots.append(node)
        elif isinstance(node, (ast.JoinedStr, ast.pattern)):
            roots.append(node)
        elif isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            roots.append(node.value)  # only `from module import *` reads it, and no module does
    return {id(inner) for root in roots for inner in ast.walk(root)}


def _constant_changes(node: ast.Constant) -> Iterator[tuple[str, str]]:
    value = node.value
    if isinstance(value, bool):
        yield f"{value}->{not value}", repr(not value)
    elif isinstance(value, int):
        yield "int+1", repr(value + 1)
    elif isinstance(value, float):
        yield "float*2", repr(value * 2 if value else 1.0)
    elif isinstance(value, str) and value:
        yield "string emptied", '""'


def _changes(node: ast.AST) -> Iterator[tuple[ast.AST, str, str]]:
    """(node whose text is replaced, operator name, replacement text) for every mutant of `node`."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            new = _SWAPPED[type(op)]()
            ops = node.ops[:index] + [new] + node.ops[index + 1:]
            changed = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            yield node, f"{type(op).__name__}->{type(new).__name__}", ast.unparse(changed)
    elif isinstance(node, ast.BoolOp):
        swapped = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        name = "and->or" if isinstance(node.op, ast.And) else "or->and"
        yield node, name, ast.unparse(ast.BoolOp(op=swapped, values=node.values))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node, "not dropped", ast.unparse(node.operand)
    elif isinstance(node, ast.Constant):
        for name, text in _constant_changes(node):
            yield node, name, text
    elif isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, bool)):
            return  # returning None already; a returned True/False is a constant's mutant
        if isinstance(value, (ast.Compare, ast.BoolOp)) or (
                isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not)):
            yield value, "return negated", f"not ({ast.unparse(value)})"
        else:
            yield value, "return None", "None"


def splice(source: str, mutant: Mutant) -> str:
    """`source` with the mutant's range replaced by `(replacement)`; the parentheses keep the
    precedence and hold the newlines that keep every later line at its number."""
    lines = source.splitlines(keepends=True)
    head = lines[mutant.line - 1].encode()[:mutant.col].decode()
    tail = lines[mutant.end_line - 1].encode()[mutant.end_col:].decode()
    middle = "(" + mutant.replacement + "\n" * (mutant.end_line - mutant.line) + ")"
    return "".join(lines[:mutant.line - 1]) + head + middle + tail + "".join(lines[mutant.end_line:])


def mutants_of(copy: Path, file: str) -> list[Mutant]:
    """Every mutant of one module (not yet checked to compile: see `sample`)."""
    source = (copy / file).read_text(encoding="utf-8")
    tree = ast.parse(source)
    skipped = _left_alone(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        for target, operator, replacement in _changes(node):
            original = ast.get_source_segment(source, target) or ""
            assert isinstance(target, ast.expr) and target.end_lineno is not None and target.end_col_offset is not None
            found.append(Mutant(file, target.lineno, target.end_lineno, target.col_offset, target.end_col_offset,
                                operator, " ".join(original.split())[:120], replacement))
    return sorted(found, key=lambda m: (m.file, m.line, m.col, m.operator))


def compiles(copy: Path, mutant: Mutant) -> bool:
    try:
        compile(splice((copy / mutant.file).read_text(encoding="utf-8"), mutant), mutant.file, "exec")
    except SyntaxError:
        return False
    return True


def sample(copy: Path, count: int, seed: int) -> tuple[list[Mutant], int]:
    """The first `count` mutants that compile, in an order shuffled with `seed`; and how many
    mutants there were in all."""
    every = [m for file in target_files(copy) for m in mutants_of(copy, file)]
    shuffled = every[:]
    random.Random(seed).shuffle(shuffled)
    chosen: list[Mutant] = []
    for mutant in shuffled:
        if len(chosen) == count:
            break
        if compiles(copy, mutant):
            chosen.append(mutant)
    return sorted(chosen, key=lambda m: (m.file, m.line, m.col, m.operator)), len(every)


# ---------------------------------------------------------------------------------------------
# Which test reaches which mutated expression


#: Use-site probes are numbered from here: `USES + k` is a read of a module-level name whose value
#: holds mutated expression k (a vocabulary table is evaluated once, at import, for every test).
USES = 1_000_000


class _Probes(ast.NodeTransformer):
    """Wraps each sampled mutant's expression `e` as `__mutation_probe__(k, e)`, and each read of a
    module-level name bound to one as `__mutation_probe__((USES + k, ...), name)`: same value, and
    the probe records that the current test evaluated it."""

    def __init__(self, keys: dict[tuple[int, int, int, int], int], uses: dict[str, set[int]]) -> None:
        self.keys = keys
        self.uses = uses

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if not isinstance(node, ast.expr):
            return node
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.uses:
            numbers = ast.Tuple([ast.Constant(USES + k) for k in sorted(self.uses[node.id])], ast.Load())
            node = ast.copy_location(ast.Call(ast.Name("__mutation_probe__", ast.Load()), [numbers, node], []), node)
        key = self.keys.get((node.lineno, node.col_offset, node.end_lineno or 0, node.end_col_offset or 0))
        if key is None:
            return node
        probe = ast.Call(func=ast.Name("__mutation_probe__", ast.Load()), args=[ast.Constant(key), node], keywords=[])
        return ast.copy_location(probe, node)


def probe_key(mutant: Mutant) -> tuple[str, int, int, int, int]:
    return (mutant.file, mutant.line, mutant.col, mutant.end_line, mutant.end_col)


def _module_level_names(trees: dict[str, ast.Module], keys: dict[tuple[str, int, int, int, int], int]
                        ) -> dict[str, set[int]]:
    """name -> probe numbers: the module-level names whose value holds a mutated expression, and
    (a few rounds) the module-level names computed from those (`ANY = OPTIMIZERS | TF1`)."""
    names: dict[str, set[int]] = {}
    for (file, line, *_), number in keys.items():
        for statement in trees[file].body:
            if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.lineno <= line <= (
                    statement.end_lineno or 0):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            names.setdefault(name.id, set()).add(number)
    for _ in range(4):
        before = sum(map(len, names.values()))
        for tree in trees.values():
            for statement in tree.body:
                if not isinstance(statement, ast.Assign):
                    continue
                read = {n.id for n in ast.walk(statement.value) if isinstance(n, ast.Name) and n.id in names}
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        for source in read:
                            names.setdefault(target.id, set()).update(names[source])
        if sum(map(len, names.values())) == before:
            break
    return names


def add_probes(copy: Path, mutants: list[Mutant]) -> dict[tuple[str, int, int, int, int], int]:
    """Rewrite the copy's target modules with probes (ast.unparse: line numbers move, which the
    probes do not mind); returns the probe number of each mutated expression."""
    keys = {key: number for number, key in enumerate(sorted({probe_key(m) for m in mutants}))}
    trees = {file: ast.parse((copy / file).read_text(encoding="utf-8")) for file in target_files(copy)}
    uses = _module_level_names(trees, keys)
    for file, tree in trees.items():
        mine = {key[1:]: number for key, number in keys.items() if key[0] == file}
        tree = ast.fix_missing_locations(_Probes(mine, uses).visit(tree))
        (copy / file).write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    return keys


def trace(copy: Path, work: Path, mutants: list[Mutant], tests: list[str]) -> Coverage:
    """Run the tests once on a copy with probes: which tests evaluate which mutated expression
    (-1: evaluated at import time, outside any test)."""
    keys = add_probes(copy, mutants)
    reached: dict[int, set[int]] = {}
    current: dict[str, Any] = {"test": -1}
    order: list[str] = []

    def before_test(test: str) -> None:
        for name, module in list(sys.modules.items()):  # a cached computation counts for every test
            if name.startswith("elbolint"):
                for value in list(vars(module).values()):
                    if callable(getattr(value, "cache_clear", None)):
                        value.cache_clear()
        current["test"] = len(order)
        order.append(test)

    def probe(key: Any, value: Any) -> Any:
        for number in key if isinstance(key, tuple) else (key,):
            reached.setdefault(number, set()).add(current["test"])
        return value

    def setup() -> None:
        import builtins
        builtins.__mutation_probe__ = probe  # type: ignore[attr-defined]

    def at_end() -> None:
        (work / "reached.json").write_text(json.dumps({"order": order, "reached": {
            k: sorted(v) for k, v in reached.items()}}), encoding="utf-8")

    plugin = Outcome(before_test, at_end)
    code, failed = in_child(copy, [*tests, *PYTEST_FLAGS, "-W", "ignore"], plugin, work / "trace-result.json",
                            work / "trace.log", 3600, setup)
    data = json.loads((work / "reached.json").read_text(encoding="utf-8"))
    tests_run = [{"id": t, "seconds": plugin.seconds.get(t, 0.0), "failed": t in failed} for t in data["order"]]
    by_key = {int(k): v for k, v in data["reached"].items()}
    return Coverage(tests_run, {key: by_key.get(number, []) for key, number in keys.items()}, set(), code,
                    {key: [t for t in by_key.get(USES + number, []) if t != -1] for key, number in keys.items()})


# ---------------------------------------------------------------------------------------------
# Running the mutants


@dataclass
class Coverage:
    """The traced run: tests in run order (id, seconds, failed), and for each mutated expression the
    indexes of the tests that evaluate it (-1: at import time)."""

    tests: list[dict[str, Any]]
    reached: dict[tuple[str, int, int, int, int], list[int]]
    new: set[int]
    exit: Optional[int] = None
    #: the tests that read a module-level name holding the mutated expression, at run time
    uses: dict[tuple[str, int, int, int, int], list[int]] = field(default_factory=dict)

    def tests_for(self, mutant: Mutant) -> tuple[list[str], bool]:
        """Test ids to run against `mutant`, fastest first, and whether the new tests come first.

        Old tests first, so that a kill by an old test is seen as such. But an expression evaluated
        at import time (a vocabulary table) may change any test, and which one is not known: then
        every test runs, and the new tests go first (they are where such tables are pinned one
        word at a time); whether an old test would also kill it is settled afterwards (`settle`)."""
        hit = set(self.reached.get(probe_key(mutant), ()))
        uses = self.uses.get(probe_key(mutant), [])
        if -1 in hit and uses:  # a table built at import: the tests that read it
            hit = set(uses)
        everything = -1 in hit
        chosen = [i for i, t in enumerate(self.tests) if not t["failed"] and (everything or i in hit)]

        def key(i: int) -> tuple[bool, float]:
            return ((i not in self.new) if everything else (i in self.new), self.tests[i]["seconds"])
        return [self.tests[i]["id"] for i in sorted(chosen, key=key)], everything

    def old_tests_for(self, mutant: Mutant) -> list[str]:
        return [t for t in self.tests_for(mutant)[0] if t not in {self.tests[i]["id"] for i in self.new}]


def new_tests(tests: list[dict[str, Any]], since: Optional[str]) -> set[int]:
    """Indexes of the tests added after commit `since`: a test file, or a fixture a parametrized
    test runs on, that was not in that commit."""
    if since is None:
        return set()
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", since], capture_output=True,
                            text=True, check=True).stdout.split("\n")
    old = set(listed)
    found = set()
    for index, test in enumerate(tests):
        file, _, rest = test["id"].partition("::")
        param = rest.partition("[")[2].rstrip("]")
        if file not in old or (param.endswith(".py") and f"fixtures/{param}" not in old):
            found.add(index)
    return found


def run_one(copy: Path, work: Path, mutant: Mutant, tests: list[str], timeout: float,
            limits: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """Run `tests` against the copy with `mutant` applied (each test within its `limits`); the copy
    is restored afterwards."""
    path = copy / mutant.file
    original = path.read_text(encoding="utf-8")
    path.write_text(splice(original, mutant), encoding="utf-8")
    start = time.monotonic()
    try:
        plugin = Outcome(limits=limits)
        code, failed = in_child(copy, [*tests, "-x", *PYTEST_FLAGS, "-W", "ignore"], plugin,
                                work / "mutant-result.json", work / "mutant.log", timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = round(time.monotonic() - start, 1)
    if code is None:
        return {"status": "killed", "by": "timeout", "seconds": seconds}
    if plugin.timed_out is not None:
        return {"status": "killed", "by": "timeout", "test": plugin.timed_out, "seconds": seconds}
    if code == 0:
        return {"status": "survived", "by": None, "seconds": seconds}
    if code in (1, 2):  # a test failed, or collection failed (the mutant breaks an import)
        return {"status": "killed", "by": failed[0] if failed else f"pytest exit {code}", "seconds": seconds}
    return {"status": "error", "by": (work / "mutant.log").read_text(encoding="utf-8")[-2000:], "seconds": seconds}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if r.get("status") in ("killed", "survived")]
    killed = [r for r in done if r["status"] == "killed"]
    before = [r for r in killed if r.get("by_new_test") is False]
    return {"mutants": len(rows), "run": len(done), "killed": len(killed),
            "killed_without_new_tests": len(before),
            "killed_by_a_new_test_old_tests_not_run": sum(1 for r in killed if r.get("by_new_test") is None),
            "survived": len(done) - len(killed),
            "not_executed": sum(1 for r in rows if r.get("by") == NOT_REACHED),
            "timeouts": sum(1 for r in killed if r["by"] == "timeout"),
            "errors": sum(1 for r in rows if r.get("status") == "error"),
            "score": round(len(killed) / len(done), 3) if done else None,
            "score_without_new_tests": round(len(before) / len(done), 3) if done else None}


NOT_REACHED = "not evaluated by any test"


def _kill_tests(source: Path) -> list[str]:
    extra = sorted({str(p.relative_to(source)) for pattern in NEW_TEST_PATTERNS
                    for p in (source / "tests").glob(pattern)})
    return [*KILL_TESTS, *extra]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-n", type=int, default=120, help="mutants to sample (default 120)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mut/run"), help="private directory for the copies")
    parser.add_argument("--report", type=Path, default=None, help="JSON report (default WORK/report.json)")
    parser.add_argument("--new-since", default=None, help="commit: tests and fixtures added after it are 'new'")
    parser.add_argument("--timeout", type=float, default=600.0, help="upper bound of a mutant's time limit (s)")
    parser.add_argument("--settle-until", type=float, default=24.0,
                        help="minutes into the run after which a mutant a new test killed first is not re-run "
                             "on the old tests alone (default 24)")
    parser.add_argument("--list", action="store_true", help="only print the sampled mutants")
    parser.add_argument("--only", default=None, help="only mutants whose file:line contains this text")
    return _campaign(parser.parse_args(argv))


def _campaign(args: argparse.Namespace) -> int:
    work = args.work.resolve()
    report_path = args.report or work / "report.json"
    started = time.monotonic()
    copy = make_copy(REPO, work / "copy")
    check_imports(copy)
    preload()
    mutants, total = sample(copy, args.n, args.seed)
    if args.only:
        mutants = [m for m in mutants if args.only in f"{m.shown_file}:{m.line}"]
    print(f"{total} mutants in {len(target_files(copy))} modules; {len(mutants)} sampled (seed {args.seed})")
    if args.list:
        for m in mutants:
            print(f"{m.shown_file}:{m.line} {m.operator}: {m.original} -> {m.replacement}")
        return 0
    traced = work / "traced"  # the same files as the run's copy (the tree may change meanwhile)
    if traced.exists():
        shutil.rmtree(traced)
    shutil.copytree(copy, traced, symlinks=True)
    coverage = trace(traced, work, mutants, _kill_tests(copy))
    coverage.new = new_tests(coverage.tests, args.new_since)
    broken = [t["id"] for t in coverage.tests if t["failed"]]
    print(f"traced {len(coverage.tests)} tests ({len(coverage.new)} new) in {time.monotonic() - started:.0f} s"
          + (f"; failing without a mutant, left out: {broken}" if broken else ""), flush=True)
    rows: list[dict[str, Any]] = [asdict(m) | {"file": m.shown_file} for m in mutants]
    header = {"command": " ".join([sys.executable, *sys.argv]), "seed": args.seed, "n": len(mutants),
              "population": total, "new_since": args.new_since, "kill_tests": _kill_tests(copy),
              "left_out_tests": broken}
    new_ids = {coverage.tests[i]["id"] for i in coverage.new}
    def record(index: int, result: dict[str, Any], tests: int) -> None:
        rows[index].update(result)
        mutant = mutants[index]
        done = sum("status" in r for r in rows)
        seconds = result.get("seconds", rows[index].get("seconds", 0.0))  # a settle result has none
        print(f"[{done:3}/{len(rows)}] {rows[index]['status']:8} {mutant.shown_file}:{mutant.line} "
              f"{mutant.operator} ({tests} tests, {seconds} s)", flush=True)
        report_path.write_text(json.dumps(header | {"summary": summary(rows), "mutants": rows}, indent=1),
                               encoding="utf-8")

    # A test more than ten times slower than unmutated (and over 20 s) is looping: a timeout, killed.
    limits = {t["id"]: 20 + 10 * t["seconds"] for t in coverage.tests}
    unsettled = []
    order = list(range(len(mutants)))
    random.Random(args.seed).shuffle(order)  # a run stopped early has still measured a random subsample
    for index in order:
        mutant = mutants[index]
        tests, new_first = coverage.tests_for(mutant)
        if not tests:
            result: dict[str, Any] = {"status": "survived", "by": NOT_REACHED, "seconds": 0.0}
        else:
            budget = sum(t["seconds"] for t in coverage.tests if t["id"] in set(tests))
            result = run_one(copy, work, mutant, tests, min(args.timeout, 120 + 3 * budget), limits)
        killed_by_new = result["by"] in new_ids
        result |= {"tests": len(tests), "by_new_test": None if killed_by_new and new_first else killed_by_new}
        if result["by_new_test"] is None:
            unsettled.append(index)
        record(index, result, len(tests))
    for index in unsettled:  # killed by a new test that ran first: would the old tests kill it too?
        if time.monotonic() - started > args.settle_until * 60:
            print(f"not settled (time): {mutants[index].shown_file}:{mutants[index].line}")
            continue
        tests = coverage.old_tests_for(mutants[index])
        old = run_one(copy, work, mutants[index], tests, args.timeout, limits)
        record(index, {"by_new_test": old["status"] == "survived", "old_tests": old}, len(tests))
    print(json.dumps(summary(rows) | {"minutes": round((time.monotonic() - started) / 60, 1)}, indent=1))
    for row in rows:
        if row.get("status") == "survived":
            print(f"survived: {row['file']}:{row['line']} {row['operator']}: {row['original']} -> {row['replacement']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Property tests (fuzzing): whatever bytes the linter is given, it must not raise, no
rule may crash (ELB999), every reported position must lie inside the file, two runs must agree,
`--fix` must produce code that parses and that a second `--fix` leaves alone, and a `# noqa` on a
reported line must suppress exactly that line's findings (see `check_properties`).

Why fuzz at all: the fixtures show the rules what TFP code looks like, but editors hand the linter
half-typed files, and real code uses every corner of the grammar (`*args`, `**kwargs`, walrus,
decorators, odd literals). A rule that assumes `call.args[0].keyword` exists, or a position that
points past the end of the file, only shows up on such input. The inputs:

* `hypothesmith.from_grammar()` / `from_node()`: arbitrary valid Python, with TFP imports
  prepended so the text prefilter (files not mentioning tensorflow/keras are not parsed) lets
  it through; it exercises the resolver and the rules' fallbacks on unfamiliar syntax.
* a TFP-flavoured program generator: nested calls of `tfd.*`, `tf.Variable`, optimizers,
  `fit_surrogate_posterior`, lambdas and `*`/`**` arguments, so the rules actually reach their
  deep paths (hypothesmith's programs almost never mention `tfd.Normal`).
* seeded mutations of every fixture (delete / duplicate / swap / indent lines, swap or delete
  tokens, truncate at a byte, insert a bracket or a stray token, paste a line of another fixture,
  add a comment with odd characters such as a form feed): realistic TFP code, broken the way
  edits break it; also applied to the TFP-flavoured programs.
* the unmutated fixtures themselves (deterministic, cheap, and the only place the fixes reliably
  fire).

Every generated case is a hypothesis example (fixture, [(mutation, seed), ...]) so a failure
shrinks to a small case and replays from the printed example. `derandomize=True` keeps CI
deterministic; set ELBOLINT_FUZZ_EXAMPLES=N to run N examples per test (e.g. 2000 for a long local
run) and ELBOLINT_FUZZ_RANDOM=1 to explore new random sequences instead of the fixed one. The
long-running counterpart (10,000+ programs, figures, saved reproducers) is benchmarks/fuzz_long.py,
which imports `check_properties` and the generators from here so both check the same things.
"""

from __future__ import annotations

import ast
import io
import os
import random
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import libcst as cst
import pytest

from elbolint.config import Config
from elbolint.fixes import fixed_bytes
from elbolint.linter import FileResult, lint_file
from elbolint.registry import all_rules

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")

# Only once importorskip has found hypothesis.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from fuzz_programs import PREFIX, tfp_programs  # noqa: E402  (tests/fuzz_programs.py)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.py") if "__pycache__" not in p.parts)

#: Fuzz with every rule switched on, opt-in ones included: a crash in an opt-in rule is as real,
#: and its positions and fixes must be as valid. (The rules all run anyway; `enabled` only filters.)
ENABLED = Config().enabled_codes() | {rule.code for rule in all_rules()}

#: Engine codes that say "this file was not linted" rather than "here is a finding".
NOT_LINTED = {"ELB000", "ELB900", "ELB901"}

FUZZ_PATH = Path("fuzz_case.py")

#: Generated code calls literals (`1.()`); CPython's parser, run by the engine, warns about that.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")


# --------------------------------------------------------------------------- budgets
def _examples(default: int) -> int:
    """Per-test example count: small for CI, ELBOLINT_FUZZ_EXAMPLES for a long local run."""
    value = os.environ.get("ELBOLINT_FUZZ_EXAMPLES")
    return int(value) if value else default


def fuzz_settings(default_examples: int) -> settings:
    return settings(
        max_examples=_examples(default_examples),
        deadline=None,  # a lint is 5-50 ms, but the first one imports and warms caches
        derandomize=not os.environ.get("ELBOLINT_FUZZ_RANDOM"),
        database=None,  # derandomized runs replay from the printed example, not a local database
        suppress_health_check=[
            HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=True,
    )


# --------------------------------------------------------------------------- properties
class PropertyViolation(AssertionError):
    """A broken property; `kind` groups violations in fuzz_long.py's figures."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Checked:
    """What one program did, for the long run's figures."""

    result: FileResult
    fixed: Optional[bytes] = None
    #: LibCST and CPython disagree about whether the file is Python (not a violation: LibCST's
    #: grammar is its own, and ELB000 follows LibCST); counted so the long run can show it.
    parser_disagreement: Optional[str] = None
    codes: list[str] = field(default_factory=list)
    #: The file was not linted and a noqa comment suppressed the ELB000 that would have said so.
    noqa_hid_engine_code: bool = False


def _lint(data: bytes, path: Path = FUZZ_PATH) -> FileResult:
    try:
        return lint_file(path, all_rules(), {}, ENABLED, data=data)
    except Exception as error:  # the property itself: lint_file never raises
        raise PropertyViolation("raised", f"lint_file raised {type(error).__name__}: {error}") from error


def python_lines(text: str) -> list[str]:
    """The file's lines as Python (and LibCST's positions) count them: only \\n, \\r\\n and \\r
    end a line. `str.splitlines` would also split at \\x0c, \\x1c, \\u2028, ... and miscount."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _key(result: FileResult) -> list[tuple]:
    return [(d.code, d.line, d.column, d.end.line, d.end.column, d.message) for d in result.diagnostics]


def _ast_parses(data: bytes) -> Optional[str]:
    """None if CPython's parser accepts the bytes, else its complaint. Only parses, never runs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `1.()` is a SyntaxWarning, not our concern
            ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _check_positions(data: bytes, result: FileResult) -> None:
    if result.source is not None and result.source.text is not None:
        lines = python_lines(result.source.text)
    else:  # undecodable: positions come from the bytes
        lines = python_lines(data.decode("latin-1"))
    for d in result.diagnostics:
        where = f"{d.code} at {d.line}:{d.column}-{d.end.line}:{d.end.column} in a {len(lines)}-line file"
        for line, column in ((d.line, d.column), (d.end.line, d.end.column)):
            # Line n+1 column 1 is the end of the file (after a final newline), where an
            # end-of-file syntax error or a node's end position may point.
            if not 1 <= line <= len(lines) + 1:
                raise PropertyViolation("position-line", where)
            text = lines[line - 1] if line <= len(lines) else ""
            # Column len+1 is just past the last character (a node ending at the line's end,
            # CPython's "unexpected EOF" offsets).
            if not 1 <= column <= len(text) + 1:
                raise PropertyViolation("position-column", f"{where}; line {line} is {text!r}")
        if (d.end.line, d.end.column) < (d.line, d.column):
            raise PropertyViolation("position-order", where)


def check_properties(data: bytes, path: Path = FUZZ_PATH) -> Checked:
    """Lint `data` and check every property; raise PropertyViolation on the first broken one.

    1. lint_file returns (never raises) and no rule crashed (no ELB999);
    2. every start and end position lies inside the file, and start <= end;
    3. a file LibCST parsed has no ELB000, and one it did not parse says why (ELB000/900/901);
    4. linting the same bytes again gives the same (code, position, message) list;
    5. if a fix applies: the fixed bytes parse with LibCST, and with CPython whenever the input
       did; and fixing the fixed bytes again changes nothing (idempotent);
    6. `# noqa` appended to the reported lines removes exactly those lines' findings.
    """
    result = _lint(data, path)
    checked = Checked(result, codes=[d.code for d in result.diagnostics])
    crashes = [d.message for d in result.diagnostics if d.code == "ELB999"]
    if crashes:
        raise PropertyViolation("rule-crash", crashes[0])
    _check_positions(data, result)
    if result.parsed and "ELB000" in checked.codes:
        raise PropertyViolation("elb000-on-parsed", "ELB000 reported for a file LibCST parsed")
    if not result.parsed and result.source is not None and result.source.text is not None:
        if re.search(r"tensorflow|tf_keras|keras", result.source.text) and not NOT_LINTED & set(checked.codes):
            if not re.search(r"#\s*noqa", result.source.text, re.IGNORECASE):
                raise PropertyViolation("silent-skip", "file not parsed, and no ELB000/ELB900/ELB901 says why")
            # A noqa comment on the broken line suppresses the ELB000 itself, so the file goes
            # unlinted without a word. Questionable (ruff never lets noqa hide a syntax error)
            # but a policy decision, not a crash: counted, not failed.
            checked.noqa_hid_engine_code = True

    cpython = _ast_parses(data)
    if result.parsed and cpython is not None:
        checked.parser_disagreement = f"LibCST parsed, CPython refused ({cpython})"
    elif not result.parsed and "ELB000" in checked.codes and cpython is None and result.source.problem is None:
        checked.parser_disagreement = "CPython parsed, LibCST refused"

    again = _lint(data, path)
    if _key(again) != _key(result):
        raise PropertyViolation("nondeterministic", f"{_key(result)} != {_key(again)}")

    fixed = fixed_bytes(result)
    checked.fixed = fixed
    if fixed is not None:
        try:
            cst.parse_module(fixed)
        except Exception as error:
            raise PropertyViolation("fix-unparsable-libcst", f"{type(error).__name__}: {error}") from error
        if cpython is None:  # a fix cannot repair an input CPython already refused
            problem = _ast_parses(fixed)
            if problem is not None:
                raise PropertyViolation("fix-unparsable-cpython", problem)
        second = _lint(fixed, path)
        if any(d.code == "ELB999" for d in second.diagnostics):
            message = next(d.message for d in second.diagnostics if d.code == "ELB999")
            raise PropertyViolation("rule-crash-after-fix", message)
        refixed = fixed_bytes(second)
        if refixed is not None and refixed != fixed:
            raise PropertyViolation("fix-not-idempotent", _first_difference(fixed, refixed))

    if result.parsed and result.diagnostics:
        _check_noqa(result, path)
    return checked


def _commentable_lines(text: str) -> set[int]:
    """Lines that end outside any string and carry no comment yet: `  # noqa` can be appended
    there without changing the code. Empty when the tokenizer refuses the text."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return set()
    commented = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    return {t.start[0] for t in tokens if t.type in (tokenize.NEWLINE, tokenize.NL) and t.string != ""} - commented


def _check_noqa(result: FileResult, path: Path) -> None:
    """6. a bare `# noqa` appended to the reported lines suppresses exactly their findings: the
    findings on the other lines stay as they were. (A comment changes nothing else.)"""
    text = result.source.text
    if "\r" in text:  # the tokenizer's readline splits at \n only; positions also split at \r
        return
    reported = {d.line for d in result.diagnostics if d.code not in NOT_LINTED}
    targets = reported & _commentable_lines(text)
    if not targets:
        return
    lines = text.split("\n")
    for number in targets:
        lines[number - 1] += "  # noqa"
    commented = _lint("\n".join(lines).encode(result.source.encoding, "surrogatepass"), path)
    expected = [k for d, k in zip(result.diagnostics, _key(result)) if d.line not in targets]
    if _key(commented) != expected:
        raise PropertyViolation(
            "noqa", f"`# noqa` appended to lines {sorted(targets)}: expected {expected}, got {_key(commented)}")


def _first_difference(a: bytes, b: bytes) -> str:
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), start=1):
        if x != y:
            return f"line {number}: {x!r} -> {y!r}"
    return f"length {len(a)} -> {len(b)}"


# --------------------------------------------------------------------------- fixture mutations
_TOKEN = re.compile(rb"[A-Za-z_][A-Za-z_0-9]*|[0-9][0-9.eE_]*|\*\*|==|->|:=|[^\sA-Za-z_0-9]")
#: Stray text an editor leaves behind: brackets, operators, a half-written call, odd whitespace
#: (form feed, lone CR, tab), an unterminated string, a line continuation.
_NOISE = [
    b"(", b")", b"[", b"]", b"{", b"}", b",", b":", b"=", b"*", b"**", b"lambda", b"lambda x:",
    b"tf.Variable(", b"scale=", b"tfd.Normal(", b"\x0c", b"\r", b"\t", b"'''", b'"', b"\\\n",
    b"#", b"# noqa", b"async ", b"yield ", b"@", b"\xc3\xa9", b"\xe9",
]


_FIXTURE_BYTES: dict[Path, bytes] = {}


def fixture_bytes(path: Path) -> bytes:
    if path not in _FIXTURE_BYTES:
        _FIXTURE_BYTES[path] = path.read_bytes()
    return _FIXTURE_BYTES[path]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    if lines:
        del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def _duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    if lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    return b"".join(lines)


def _swap_lines(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    if len(lines) >= 2:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _swap_tokens(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _TOKEN.finditer(data)]
    if len(spans) < 2:
        return data
    (a, b), (c, d) = sorted(rng.sample(spans, 2))
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert_bracket(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(b"()[]{}").to_bytes(1, "big") + data[i:]


def _insert_noise(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(_NOISE) + data[i:]


def _indent_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    if lines:
        i = rng.randrange(len(lines))
        lines[i] = rng.choice([b"    ", b"  ", b"\t"]) + lines[i]
    return b"".join(lines)


def _delete_token(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _TOKEN.finditer(data)]
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + data[b:]


#: Comment text that is legal anywhere but unusual: characters `str.splitlines` treats as line
#: breaks and Python does not (form feed, \x1c, NEL, U+2028), and words the tools read in comments.
_COMMENTS = ["\x0c", "\x1c", "\x85", "\u2028", "\u2029", "noqa", "noqa: ELB001", "type: ignore", "expect: ELB001",
             "tensorflow", "é", "\t"]


def _insert_comment(data: bytes, rng: random.Random) -> bytes:
    """A comment line with unusual (but legal) content, at a line boundary."""
    lines = _lines(data)
    indent = b""
    i = rng.randrange(len(lines) + 1)
    if i < len(lines):
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip(b" \t"))]
    comment = "# " + "".join(rng.choices(_COMMENTS, k=rng.randint(1, 3)))
    lines.insert(i, indent + comment.encode("utf-8") + b"\n")
    return b"".join(lines)


def _splice_line(data: bytes, rng: random.Random) -> bytes:
    """A line of another fixture pasted in: TFP code in a context it was not written for."""
    donor = _lines(fixture_bytes(rng.choice(FIXTURE_FILES))) or [b"\n"]
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(donor))
    return b"".join(lines)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "delete_line": _delete_line,
    "duplicate_line": _duplicate_line,
    "swap_lines": _swap_lines,
    "swap_tokens": _swap_tokens,
    "truncate": _truncate,
    "insert_bracket": _insert_bracket,
    "insert_noise": _insert_noise,
    "indent_line": _indent_line,
    "delete_token": _delete_token,
    "splice_line": _splice_line,
    "insert_comment": _insert_comment,
}


def mutate(data: bytes, steps: list[tuple[str, int]]) -> bytes:
    """Apply the named mutations in order, each with its own seed (so a case replays exactly)."""
    for name, seed in steps:
        data = MUTATIONS[name](data, random.Random(seed))
    return data


mutation_steps = st.lists(
    st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**32 - 1)), min_size=1, max_size=3
)




# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_properties(path):
    """Unmutated fixtures: the only inputs where most fixes fire, so fix idempotence is real here."""
    check_properties(fixture_bytes(path), path)


@fuzz_settings(150)
@given(fixture=st.sampled_from(FIXTURE_FILES), steps=mutation_steps)
def test_mutated_fixtures(fixture, steps):
    check_properties(mutate(fixture_bytes(fixture), steps), FUZZ_PATH)


@fuzz_settings(120)
@given(program=tfp_programs)
def test_tfp_flavoured_programs(program):
    check_properties(program.encode("utf-8"))


@fuzz_settings(40)
@given(program=tfp_programs, steps=mutation_steps)
def test_mutated_tfp_flavoured_programs(program, steps):
    check_properties(mutate(program.encode("utf-8"), steps))


@fuzz_settings(60)
@given(program=st.deferred(hypothesmith.from_grammar))  # its grammar is built at the first draw, not at collection
def test_hypothesmith_grammar_programs(program):
    check_properties((PREFIX + program).encode("utf-8", "surrogatepass"))


@fuzz_settings(15)  # from_node is slow to generate (~75 ms an example)
@given(module=st.deferred(hypothesmith.from_node))
def test_hypothesmith_node_programs(module):
    check_properties((PREFIX + module).encode("utf-8", "surrogatepass"))


def test_noqa_after_a_form_feed():
    """Regression, found by the noqa property: linter.py looked `# noqa` up in str.splitlines(),
    which also breaks at \x0c (an Emacs page break), \x1c-\x1e, \x85, \u2028 and \u2029, so
    after such a character every noqa was looked up one line off and this one was ignored."""
    data = (b"import tensorflow as tf\nimport tensorflow_probability as tfp\n# page\x0cbreak\n"
            b"q = tfp.distributions.Normal(0., tf.Variable(1.))  # noqa\n")
    assert _lint(data).diagnostics == []

"""Lint one file: decode, prefilter, parse once, run every selected rule in one batched traversal."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from elbolint import triage
from elbolint.config import Limits
from elbolint.deepstack import call_deep
from elbolint.diagnostics import Diagnostic, Position
from elbolint.source import Source, read_source
from elbolint.suppression import file_noqa, is_suppressed, noqa_codes, noqa_column

if TYPE_CHECKING:  # LibCST, the rules and notebooks are imported only by a file that needs them
    import libcst as cst

    from elbolint.notebook import Notebook
    from elbolint.rule import Rule

#: A file that never mentions TensorFlow, TFP or Keras cannot contain a finding: it is not parsed.
#: A snippet without its imports still says `tfd.` / `tfp.` (the resolver reads those names).
_PREFILTER = re.compile(r"tensorflow|tf_keras|keras|\btf[pdb]\.|\btfpl\.")
#: A noqa comment on a line cannot hide that the file was not analysed at all (ruff's rule too); use
#: `ignore` or `per-file-ignores` to silence these on purpose.
_UNSUPPRESSIBLE = frozenset({"ELB000"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Indentation with a tab or a form feed: valid Python that LibCST's tokenizer may refuse (ELB901,
#: found by the fuzz tests). Such a file is never triaged away, so it gets the full parse's verdict.
_LIBCST_MAY_REFUSE = re.compile(r"^[ ]*[\t\f]", re.M)
#: A notebook's JSON carries outputs (images, tables) besides code: it may be this much larger.
NOTEBOOK_SIZE_FACTOR = 32
#: CPython's own limits: a file it refuses to parse cannot run, so it is a syntax error (ELB000).
_CPYTHON_RECURSION_LIMIT = 1000  # sys.getrecursionlimit() in a fresh interpreter
_CPYTHON_LIMITS = ("too many nested parentheses", "too many levels of indentation",
                   "too many statically nested blocks")


@dataclass
class FileResult:
    path: Path
    diagnostics: list[Diagnostic] = field(default_factory=list)
    module: Optional["cst.Module"] = None  # kept for --fix
    source: Optional[Source] = None
    parsed: bool = False
    notebook: Optional["Notebook"] = None  # for a .ipynb: the JSON and the cell map
    diff: Optional[str] = None  # with --diff: the unified diff the fixes would make
    fixed: Optional[bytes] = None  # stdin with --fix: the bytes to print
    content_hash: Optional[str] = None  # SHA-256 of the bytes linted (the cache's key)
    fixed_count: int = 0  # with --fix: findings the written fixes removed


def engine_diagnostic(path: Path, code: str, message: str, line: int = 1, column: int = 1) -> Diagnostic:
    from elbolint.registry import ENGINE_CODES

    known = next(c for c in ENGINE_CODES if c.code == code)
    position = Position(line, column)
    return Diagnostic(path, position, position, code, known.name, message, known.severity)


def lint_file(
    path: Path,
    rules: Sequence[type["Rule"]],
    options: Mapping[str, Mapping[str, Any]],
    enabled: set[str],
    data: Optional[bytes] = None,
    limits: Limits = Limits(),
) -> FileResult:
    """Lint one file. `options` maps rule code -> configured options; `enabled` filters codes.
    Never raises for bad input; a native crash is isolation.py's business (it runs this in a worker)."""
    oversized = _oversized(path, data, limits)
    if oversized is not None:
        result = FileResult(path)
        result.diagnostics.append(engine_diagnostic(path, "ELB901", oversized))
        return _finish(result, enabled)
    source = read_source(path, data)
    notebook = None
    if not passes_prefilter(source):
        return FileResult(path, source=source)  # nothing TFP-related: not parsed, nor validated
    if is_notebook(path) and source.problem is None:  # lint the code cells as one virtual module
        from elbolint.notebook import read_notebook

        source, notebook = read_notebook(source)
    result = FileResult(path, source=source, notebook=notebook)
    if notebook is not None:
        for line, column, message in notebook.syntax_errors():
            result.diagnostics.append(engine_diagnostic(path, "ELB000", _syntax(message), line, column))
    if source.problem is not None:
        code, message, line, column = source.problem
        result.diagnostics.append(engine_diagnostic(path, code, message, line, column))
    elif notebook is not None and len(_text(source).encode()) > limits.file_size_kib * 1024:
        result.diagnostics.append(engine_diagnostic(path, "ELB901", _too_large(
            len(_text(source).encode()), limits.file_size_kib, "the code cells of this notebook")))
    elif mentions_tf(_text(source)):
        try:
            _lint_text(result, source, rules, options)
        except MemoryError:
            result.module, result.parsed = None, False
            result.diagnostics.append(engine_diagnostic(
                path, "ELB901", f"file skipped: its analysis ran out of memory (max-memory-mib = "
                f"{limits.memory_mib}); the rest of the run went on"))
    return _finish(result, enabled)


def passes_prefilter(source: Source) -> bool:
    """False for a decoded file that never mentions TensorFlow, TFP or Keras: its result is empty,
    it is neither parsed nor validated (the runner asks this in the parent, before any worker)."""
    return source.problem is not None or mentions_tf(_text(source))


def _text(source: Source) -> str:
    """The decoded text (a source without a problem always has one)."""
    return source.text if source.text is not None else ""


def mentions_tf(text: str) -> bool:
    """`_PREFILTER.search(text)`, as fast as substring searches: the regular expression alone cost
    more than reading the file (a monorepo's 10,000 files, profiled)."""
    if "tensorflow" in text or "keras" in text:  # `tf_keras` contains `keras`
        return True
    if "tfp." in text or "tfd." in text or "tfb." in text or "tfpl." in text:
        return _PREFILTER.search(text) is not None  # the word boundary
    return False


def is_notebook(path: Path) -> bool:
    """notebook.is_notebook, without importing notebook.py (and LibCST) for a plain file."""
    return path.suffix == ".ipynb"


def _finish(result: FileResult, enabled: set[str]) -> FileResult:
    """Keep the enabled, unsuppressed findings, in order (reporting `# noqa: ELBxxx` comments that
    suppress nothing); notebook positions become cell positions."""
    source, notebook = result.source, result.notebook
    lines = python_lines(source.text) if source is not None and source.text is not None else []
    whole_file = file_noqa(lines)
    kept = []
    for d in result.diagnostics:
        if d.code not in enabled:
            continue
        if d.code not in _UNSUPPRESSIBLE and (
            is_suppressed(lines, d.line, d.code)
            or whole_file is not None and (not whole_file or d.code in whole_file)
        ):
            continue
        kept.append(d)
    if result.parsed and "ELB902" in enabled:
        kept += _unused_noqa(result.path, lines, result.diagnostics, enabled)
    result.diagnostics = sorted(kept, key=Diagnostic.sort_key)
    if notebook is not None:
        result.diagnostics = notebook.to_cells(result.diagnostics)
    return result


def _unused_noqa(path: Path, lines: list[str], diagnostics, enabled: set[str]) -> list[Diagnostic]:
    """ELB902 for each enabled ELB code a line's `# noqa: ...` names but no finding on that line has.
    Only parsed files (else nothing was checked) and only named ELB codes: a bare `# noqa` may serve
    another tool, and so may its other codes."""
    found = {(d.line, d.code) for d in diagnostics}
    unused = []
    for number, line in enumerate(lines, start=1):
        if "noqa" not in line:
            continue
        codes = noqa_codes(line)
        if not codes:
            continue
        stale = sorted(c for c in codes if c.startswith("ELB") and c in enabled and (number, c) not in found)
        if stale and not is_suppressed(lines, number, "ELB902"):
            names = ", ".join(stale)
            unused.append(engine_diagnostic(path, "ELB902", f"unused noqa: no {names} finding on this line",
                                            number, noqa_column(line)))
    return unused


def python_lines(text: str) -> list[str]:
    """The file's lines as Python (and positions) count them: at \\n, \\r\\n and \\r only. Why not
    str.splitlines: it also breaks at form feeds and other separators, and a `# noqa` after an Emacs
    page break (\\f) was looked up one line off (found by the fuzz tests)."""
    return _LINE_BREAK.split(text)


def _oversized(path: Path, data: Optional[bytes], limits: Limits) -> Optional[str]:
    """Why the file is skipped unread, or None. Checked before reading, so a 2 GB file costs nothing."""
    limit = limits.file_size_kib * (NOTEBOOK_SIZE_FACTOR if is_notebook(path) else 1)
    if data is not None:
        size = len(data)
    else:
        try:
            size = path.stat().st_size if path.is_file() else 0
        except OSError:
            return None  # read_source reports it
    if size <= limit * 1024:
        return None
    return _too_large(size, limit, "this file")


def _too_large(size: int, limit_kib: int, what: str) -> str:
    return (f"file skipped: {what} is {_human(size)}, over the {_human(limit_kib * 1024)} limit "
            "(max-file-size-kib in [tool.elbolint]); likely generated code. Exclude it or raise the limit")


def _human(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def _cpython_verdict(text: str) -> tuple[Optional[tuple[str, int, int, str]], Optional[ast.Module]]:
    """What CPython's own parser says of the file: None if it parses, else (kind, line, column,
    message) with kind "limit" (nesting beyond what CPython accepts: the file can never run) or
    "syntax". Why first: it is ~15x cheaper than LibCST and it refuses, cleanly, the nesting that
    makes LibCST's native parser overflow its stack. `ast.parse` only parses; nothing is executed.
    CPython's nesting limit scales with the recursion limit and the caller's depth, so it runs on a
    fresh thread with CPython's default limit: the verdict is the one `python FILE` would give.
    Returned with the verdict: the tree when the file parses (the triage reads its words)."""
    return call_deep(_ast_verdict, text, recursion_limit=_CPYTHON_RECURSION_LIMIT)


def _ast_verdict(text: str) -> tuple[Optional[tuple[str, int, int, str]], Optional[ast.Module]]:
    try:
        return None, ast.parse(text)
    except SyntaxError as error:
        message = error.msg or "invalid syntax"
        kind = "limit" if any(limit in message for limit in _CPYTHON_LIMITS) else "syntax"
        return (kind, error.lineno or 1, error.offset or 1, message), None
    except RecursionError:
        return ("limit", 1, 1, "too deeply nested: CPython's parser gives up (RecursionError)"), None
    except MemoryError:
        return ("limit", 1, 1, "too deeply nested or too large: CPython's parser gives up (MemoryError)"), None
    except ValueError as error:  # e.g. source code string cannot contain null bytes
        return ("syntax", 1, 1, str(error)), None


def _lint_text(result: FileResult, source: Source, rules, options) -> None:
    text = _text(source)
    verdict, tree = _cpython_verdict(text)
    if verdict is not None and verdict[0] == "limit":
        _, line, column, message = verdict
        result.diagnostics.append(engine_diagnostic(
            result.path, "ELB000", f"Python cannot parse this file: {message}; not analysed", line, column))
        return
    can_fire = triage.any_can_fire(text, (getattr(rule, "starts_from", None) for rule in rules), tree)
    del tree  # CPython's tree is no use to LibCST
    if verdict is None and not can_fire and not _LIBCST_MAY_REFUSE.search(text):
        # Valid Python in which no selected rule can fire (elbolint/triage.py): what the full parse
        # would find is nothing, so it is not made. Counted as parsed: its noqa comments are
        # checked (ELB902) as after a parse that found nothing.
        result.parsed = True
        return
    import libcst as cst

    try:
        module = call_deep(cst.parse_module, source.data)
    except cst.ParserSyntaxError as error:
        if verdict is None:  # valid Python that LibCST's parser refuses (e.g. tabs mixed into spaces)
            reason = " ".join(error.message.split()) or "invalid syntax"
            result.diagnostics.append(engine_diagnostic(
                result.path, "ELB901", f"file skipped: Python accepts this file but LibCST, elbolint's parser, "
                f"cannot parse it ({reason}); not analysed", error.editor_line, error.editor_column))
            return
        _, line, column, message = verdict
        result.diagnostics.append(engine_diagnostic(result.path, "ELB000", _syntax(message), line, column))
        return
    except (RecursionError, ValueError) as error:
        result.diagnostics.append(
            engine_diagnostic(result.path, "ELB000", f"cannot parse: {type(error).__name__}: {error}")
        )
        return
    result.module = module
    result.parsed = True
    try:
        result.diagnostics.extend(call_deep(run_rules, result.path, module, rules, options))
    except RecursionError:  # one clear message, not one crash per rule
        result.diagnostics.append(engine_diagnostic(
            result.path, "ELB901", "file skipped: nested too deeply to analyse (recursion limit "
            "reached); the rest of the run went on"))
    except MemoryError:
        raise
    except Exception:  # one rule crashed: run them one at a time to keep the others' findings
        for rule in rules:
            try:
                result.diagnostics.extend(call_deep(run_rules, result.path, module, [rule], options))
            except MemoryError:
                raise
            except Exception as error:
                where = _crash_location(error)
                result.diagnostics.append(
                    engine_diagnostic(
                        result.path, "ELB999",
                        f"rule {rule.code} [{rule.name}] crashed: {type(error).__name__}: {error}{where}. "
                        "Please report this with the file.",
                    )
                )


def run_rules(path: Path, module: "cst.Module", rules, options) -> list[Diagnostic]:
    from libcst.metadata import MetadataWrapper

    from elbolint import walk
    from elbolint.analysis import create_analyses, needed_analyses
    from elbolint.positions import positions
    from elbolint.resolver import Resolver
    from elbolint.rule import RuleContext

    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    resolver = Resolver()
    analyses = create_analyses(resolver, needed_analyses(rule.analyses for rule in rules), Path(path))
    instances = [
        rule(RuleContext(path, wrapper.module, resolver, options.get(rule.code, {}), analyses)) for rule in rules
    ]
    visitors = [resolver, *analyses.values(), *instances]
    if walk.supports(visitors):
        walk.walk(wrapper.module, visitors)  # read-only: no node is rebuilt (walk.py)
    else:
        wrapper.visit_batched(visitors)
    for instance in instances:
        instance.finalize()
    if not any(instance.findings for instance in instances):
        return []
    # Only the nodes found on get a range: LibCST's PositionProvider without its cost (positions.py).
    ranges = positions(wrapper.module, (finding.node for instance in instances for finding in instance.findings))
    return [d for instance in instances for d in instance.diagnostics(ranges)]


def _syntax(message: str) -> str:
    """Name the grammar: code valid only under an older Python (`print "x"`) is common in old repositories."""
    return f"SyntaxError: {message} (Python {sys.version_info.major}.{sys.version_info.minor} grammar)"


def _crash_location(error: Exception) -> str:
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno})"

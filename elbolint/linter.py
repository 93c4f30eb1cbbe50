"""Lint one file: decode, prefilter, parse once, run every selected rule in one batched traversal."""

from __future__ import annotations

import ast
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.resolver import Resolver
from elbolint.rule import Rule, RuleContext
from elbolint.notebook import Notebook, is_notebook, read_notebook
from elbolint.source import Source, read_source
from elbolint.suppression import is_suppressed

#: A file that never mentions TensorFlow, TFP or Keras cannot contain a finding: it is not parsed.
_PREFILTER = re.compile(r"tensorflow|tf_keras|keras")


@dataclass
class FileResult:
    path: Path
    diagnostics: list[Diagnostic] = field(default_factory=list)
    module: Optional[cst.Module] = None  # kept for --fix
    source: Optional[Source] = None
    parsed: bool = False
    notebook: Optional[Notebook] = None  # for a .ipynb: the JSON and the cell map
    diff: Optional[str] = None  # with --diff: the unified diff the fixes would make


def engine_diagnostic(path: Path, code: str, message: str, line: int = 1, column: int = 1) -> Diagnostic:
    from elbolint.registry import ENGINE_CODES

    name = next(c.name for c in ENGINE_CODES if c.code == code)
    position = Position(line, column)
    return Diagnostic(path, position, position, code, name, message, Severity.ERROR)


def lint_file(
    path: Path,
    rules: Sequence[type[Rule]],
    options: Mapping[str, Mapping[str, Any]],
    enabled: set[str],
    data: Optional[bytes] = None,
) -> FileResult:
    """Lint one file. `options` maps rule code -> configured options; `enabled` filters codes."""
    source = read_source(path, data)
    notebook = None
    if source.problem is None and not _PREFILTER.search(source.text):
        return FileResult(path, source=source)  # nothing TFP-related: not parsed, nor validated
    if is_notebook(path) and source.problem is None:  # lint the code cells as one virtual module
        source, notebook = read_notebook(source)
    result = FileResult(path, source=source, notebook=notebook)
    if source.problem is not None:
        code, message, line, column = source.problem
        result.diagnostics.append(engine_diagnostic(path, code, message, line, column))
    elif _PREFILTER.search(source.text):
        _lint_text(result, source, rules, options)
    lines = source.text.splitlines() if source.text is not None else []
    result.diagnostics = sorted(
        (
            d for d in result.diagnostics
            if d.code in enabled and not is_suppressed(lines, d.line, d.code)
        ),
        key=Diagnostic.sort_key,
    )
    if notebook is not None:
        result.diagnostics = notebook.to_cells(result.diagnostics)
    return result


def _lint_text(result: FileResult, source: Source, rules, options) -> None:
    try:
        module = cst.parse_module(source.data)
    except cst.ParserSyntaxError as error:
        line, column, message = _python_syntax_error(source.text)
        if message is None:  # LibCST is stricter than CPython here: use its own account
            line, column = error.editor_line, error.editor_column
            message = " ".join(error.message.split()) or "invalid syntax"
        result.diagnostics.append(
            engine_diagnostic(result.path, "ELB000", f"SyntaxError: {message}", line, column)
        )
        return
    except (RecursionError, MemoryError, ValueError) as error:
        result.diagnostics.append(
            engine_diagnostic(result.path, "ELB000", f"cannot parse: {type(error).__name__}: {error}")
        )
        return
    result.module = module
    result.parsed = True
    try:
        result.diagnostics.extend(run_rules(result.path, module, rules, options))
    except Exception:  # one rule crashed: run them one at a time to keep the others' findings
        for rule in rules:
            try:
                result.diagnostics.extend(run_rules(result.path, module, [rule], options))
            except Exception as error:
                where = _crash_location(error)
                result.diagnostics.append(
                    engine_diagnostic(
                        result.path, "ELB999",
                        f"rule {rule.code} [{rule.name}] crashed: {type(error).__name__}: {error}{where}. "
                        "Please report this with the file.",
                    )
                )


def _python_syntax_error(text: str) -> tuple[int, int, Optional[str]]:
    """CPython's own position and wording for a syntax error (its positions are exact where the
    LibCST parser's can point a line late). `ast.parse` only parses; nothing is executed."""
    try:
        ast.parse(text)
    except SyntaxError as error:
        return error.lineno or 1, error.offset or 1, error.msg
    except (ValueError, RecursionError, MemoryError):
        pass
    return 1, 1, None


def run_rules(path: Path, module: cst.Module, rules, options) -> list[Diagnostic]:
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    resolver = Resolver()
    instances = [
        rule(RuleContext(path, wrapper.module, resolver, options.get(rule.code, {}))) for rule in rules
    ]
    wrapper.visit_batched([resolver, *instances])
    if not any(instance.findings for instance in instances):
        return []
    positions = wrapper.resolve(PositionProvider)
    return [d for instance in instances for d in instance.diagnostics(positions)]


def _crash_location(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno})"

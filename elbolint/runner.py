"""Lint many files: discovery, per-file selection, fixes, and a process pool on multi-core machines.

Static linting is CPU-bound Python, so files are spread over worker processes (fork) when there
are enough of them to pay for the pool; each worker lints, fixes and returns plain results
(the LibCST module stays in the worker unless the caller asks to keep it).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

from elbolint.config import Config
from elbolint.discovery import Missing, discover
from elbolint.fixes import fixed_bytes, unified_diff, write_atomically
from elbolint.linter import FileResult, engine_diagnostic, lint_file
from elbolint.registry import all_rules

#: Below this many files a pool costs more than it saves.
_POOL_THRESHOLD = 16


def lint_paths(
    paths: list[Path],
    config: Config,
    enabled: set[str],
    *,
    fix: bool = False,
    diff: bool = False,
    jobs: Optional[int] = None,
    keep_modules: bool = False,
) -> list[FileResult]:
    items = list(discover(paths, config))
    files = [item for item in items if not isinstance(item, Missing)]
    jobs = jobs or os.cpu_count() or 1
    tasks = [(path, config, enabled, fix, diff, keep_modules) for path in files]
    if jobs > 1 and len(files) >= _POOL_THRESHOLD and not keep_modules:
        try:
            with ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_interrupts) as pool:
                by_path = dict(zip(files, pool.map(_lint_one, tasks, chunksize=8)))
        except (OSError, RuntimeError):  # no fork/semaphores here: lint in this process
            by_path = {task[0]: _lint_one(task) for task in tasks}
    else:
        by_path = {task[0]: _lint_one(task) for task in tasks}
    results = []
    for item in items:
        if isinstance(item, Missing):
            result = FileResult(item.path)
            result.diagnostics.append(engine_diagnostic(item.path, "ELB900", "No such file or directory"))
            results.append(result)
        else:
            results.append(by_path[item])
    return results


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool and exits 130 (no worker tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _lint_one(task) -> FileResult:
    path, config, enabled, fix, diff, keep_module = task
    rules = [r for r in all_rules() if r.code in enabled]
    file_enabled = enabled - config.ignored_for(path)
    result = lint_file(path, rules, config.rule_options, file_enabled)
    if diff:
        fixed = fixed_bytes(result) if any(d.fix for d in result.diagnostics) else None
        result.diff = unified_diff(result, fixed) if fixed is not None else None
    elif fix:
        result = apply_fixes(result, rules, config.rule_options, file_enabled)
    if not keep_module:
        result.module = None
        result.source = None
        result.notebook = None
        for diagnostic in result.diagnostics:
            if diagnostic.fix is not None:  # drop the LibCST nodes; the text edits remain
                diagnostic.fix = type(diagnostic.fix)(diagnostic.fix.message, diagnostic.fix.edits)
    return result


def apply_fixes(result: FileResult, rules, options, enabled) -> FileResult:
    """Apply every fix of one file atomically and re-lint it; the file is untouched on failure."""
    if not any(d.fix for d in result.diagnostics):
        return result
    data = fixed_bytes(result)
    if data is None:
        return result
    try:
        write_atomically(result.path, data)
    except OSError as error:
        result.diagnostics.append(
            engine_diagnostic(result.path, "ELB900", f"cannot write fixes: {error.strerror or error}")
        )
        return result
    return lint_file(result.path, rules, options, enabled)

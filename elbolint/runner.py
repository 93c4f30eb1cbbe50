"""Lint many files: discovery, per-file selection, fixes, each file analysed in a supervised worker.

Every file (and stdin) is linted in a worker process from isolation.py, so a file that crashes the
native parser, or runs out of its time or memory budget, becomes one ELB901 finding and the others
are linted as usual. The worker lints, fixes and returns plain results (the LibCST module stays in the
worker; with `keep_sources` the decoded source and notebook come back for dynamic mode).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from elbolint import triage
from elbolint.cache import UNCACHEABLE, Cache, content_hash, decode, encode
from elbolint.config import Config
from elbolint.deepstack import call_deep
from elbolint.discovery import Missing, discover
from elbolint.linter import FileResult, engine_diagnostic, lint_file, passes_prefilter
from elbolint.registry import all_rules
from elbolint.source import decode as decode_source


@dataclass(frozen=True)
class Job:
    """What to do with each file; the same for the whole run."""

    config: Config
    enabled: frozenset
    fix: bool = False
    diff: bool = False
    keep_sources: bool = False
    #: stdin: return the fixed bytes instead of writing a file
    fix_to_output: bool = False
    unsafe_fixes: bool = False
    #: The content hashes are wanted (a cache keys results by them); without a cache, no file is hashed.
    hashes: bool = False


def lint_paths(
    paths: list[Path],
    config: Config,
    enabled: set[str],
    *,
    fix: bool = False,
    diff: bool = False,
    jobs: Optional[int] = None,
    keep_modules: bool = False,
    cache: Optional[Cache] = None,
    progress=None,
    unsafe_fixes: bool = False,
) -> list[FileResult]:
    """Lint every file under `paths`. With a `cache` (not used for dynamic runs, which need the
    sources), files whose results are cached are not analysed at all."""
    items = list(discover(paths, config))
    files = [item for item in items if not isinstance(item, Missing)]
    cache = cache if not keep_modules else None
    job = Job(config, frozenset(enabled), fix, diff, keep_modules, unsafe_fixes=unsafe_fixes, hashes=cache is not None)
    by_path: dict[Path, FileResult] = {}
    lookups: dict[Path, _Lookup] = {}
    if cache is not None:
        for path in files:
            lookup = _look_up(cache, job, path)
            if lookup.result is not None:
                by_path[path] = lookup.result
            lookups[path] = lookup
    fresh = [path for path in files if path not in by_path]  # not answered by the cache
    for path in fresh:  # the prefilter, in the parent: a file without a TF word needs no worker
        if not triage.disabled():  # (ELBOLINT_NO_TRIAGE: the full path)
            answered = _prefiltered(job, path, lookups.get(path))
            if answered is not None:
                by_path[path] = answered
    misses = [path for path in files if path not in by_path]
    if misses:  # LibCST and the rules, imported once before the workers fork (never when nothing is left)
        all_rules()
    hits = len(by_path)
    report = (lambda done, total: progress(hits + done, hits + total)) if progress else None
    by_path.update(zip(misses, _run(job, [(path, None) for path in misses], jobs, report)))
    if cache is not None:
        _remember(cache, job, lookups, [by_path[path] for path in fresh])
    results = []
    for item in items:
        if isinstance(item, Missing):
            result = FileResult(item.path)
            result.diagnostics.append(engine_diagnostic(item.path, "ELB900", "No such file or directory"))
            results.append(result)
        else:
            results.append(by_path[item])
    return results


def lint_stdin(name: Path, data: bytes, config: Config, enabled: set[str], *, fix: bool = False,
               diff: bool = False, unsafe_fixes: bool = False) -> FileResult:
    """Lint bytes read from stdin as `name` (also isolated); with `fix`, `result.fixed` holds the
    bytes to print (the input itself when nothing was fixed)."""
    job = Job(config, frozenset(enabled), fix=False, diff=diff, fix_to_output=fix, unsafe_fixes=unsafe_fixes)
    all_rules()
    [result] = _run(job, [(name, data)], 1)
    if fix and result.fixed is None:
        result.fixed = data
    return result


@dataclass
class _Lookup:
    result: Optional[FileResult] = None
    key: Optional[str] = None
    stat: Optional[os.stat_result] = None
    digest: Optional[str] = None
    stat_known: bool = False
    data: Optional[bytes] = None  # the bytes read to hash them (for the prefilter)


def _enabled_for(job: Job, path: Path) -> set[str]:
    return set(job.enabled) - job.config.ignored_for(path)


def _look_up(cache: Cache, job: Job, path: Path) -> _Lookup:
    """The cached result of `path`, if its content, kind and enabled codes were linted before."""
    lookup = _Lookup()
    try:
        stat = path.stat()
        if not path.is_file() or stat.st_size > job.config.limits.file_size_kib * 1024:
            return lookup  # the worker says what is wrong (cheaply)
        lookup.stat = stat
        lookup.digest = cache.known_hash(path, stat)
        lookup.stat_known = lookup.digest is not None
        if lookup.digest is None:
            lookup.data = path.read_bytes()
            lookup.digest = content_hash(lookup.data)
    except OSError:
        return _Lookup()
    lookup.key = cache.key(lookup.digest, path.suffix, _enabled_for(job, path))
    cached = cache.get(lookup.key)
    if cached is None:
        return lookup
    parsed, items = cached
    try:
        diagnostics = decode(path, items)
    except (KeyError, TypeError, ValueError):  # a damaged entry: a miss, rewritten below
        return lookup
    if (job.fix or job.diff) and any(d.fix and (job.unsafe_fixes or not d.fix.unsafe) for d in diagnostics):
        return lookup  # fixing needs the tree
    lookup.result = FileResult(path, diagnostics, parsed=parsed)
    return lookup


def _prefiltered(job: Job, path: Path, lookup: Optional[_Lookup]) -> Optional[FileResult]:
    """What a worker would return for a file that passes no prefilter (lint_file: decoded, no TF
    word), computed here: on a monorepo most files are such, and a worker's round trip costs more
    than reading them. None for anything else (the worker also says what is wrong with a file it
    cannot read, or one over the size limit)."""
    data = lookup.data if lookup is not None else None
    if lookup is not None and data is not None:
        lookup.data = None  # not kept for the whole run
    else:
        try:
            if path.stat().st_size > job.config.limits.file_size_kib * 1024 or not path.is_file():
                return None
            data = path.read_bytes()
        except OSError:
            return None
    source = decode_source(path, data)
    if passes_prefilter(source):
        return None
    result = FileResult(path, source=source if job.keep_sources else None)
    if job.hashes:
        result.content_hash = content_hash(data)
    return result


def _remember(cache: Cache, job: Job, lookups: dict, fresh: list[FileResult]) -> None:
    """Store what the workers found, keyed by the content they read; mark the hits as used."""
    entries, stats = [], []
    for result in fresh:
        if result.content_hash is None or any(d.code in UNCACHEABLE for d in result.diagnostics):
            continue
        key = cache.key(result.content_hash, result.path.suffix, _enabled_for(job, result.path))
        entries.append((key, result.parsed, encode(result.diagnostics)))
        lookup = lookups.get(result.path)
        if lookup is not None and lookup.stat is not None and lookup.digest == result.content_hash:
            stats.append((result.path, lookup.stat, result.content_hash))  # unchanged since the stat
    for path, lookup in lookups.items():
        if lookup.result is not None and not lookup.stat_known and lookup.stat is not None:
            stats.append((path, lookup.stat, lookup.digest))
    hits = [lookup.key for lookup in lookups.values() if lookup.result is not None and lookup.key is not None]
    cache.update(entries, stats, hits)  # one transaction


def _run(job: Job, tasks: list, jobs: Optional[int], progress=None) -> list[FileResult]:
    if not tasks:  # (the cache and the prefilter answered every file: no worker machinery to import)
        return []
    from elbolint.isolation import run_isolated

    limits = job.config.limits
    return run_isolated(
        tasks, lambda task: _lint_one(job, task), lambda task, reason: _skipped(job, task, reason),
        jobs=jobs or os.cpu_count() or 1, seconds=limits.seconds, memory_mib=limits.memory_mib,
        progress=progress,
    )


def _lint_one(job: Job, task) -> FileResult:
    path, data = task
    config = job.config
    rules = [r for r in all_rules() if r.code in job.enabled]
    enabled = set(job.enabled) - config.ignored_for(path)
    result = _only_fixable(lint_file(path, rules, config.rule_options, enabled, data=data, limits=config.limits),
                           config)
    if job.diff:
        from elbolint.fixes import unified_diff

        fixed = _fixed(result, job)
        result.diff = unified_diff(result, fixed) if fixed is not None else None
    elif job.fix_to_output:
        fixed = _fixed(result, job)
        if fixed is not None:
            before = _fixable(result, job)
            result = _only_fixable(
                lint_file(path, rules, config.rule_options, enabled, data=fixed, limits=config.limits), config)
            result.fixed = fixed
            result.fixed_count = max(0, before - _fixable(result, job))
    elif job.fix:
        result = apply_fixes(result, rules, config.rule_options, enabled, config, job)
    if job.hashes and data is None and result.source is not None:  # what was linted, for the cache key
        result.content_hash = content_hash(_original_bytes(result))
    result.module = None  # LibCST trees stay in the worker
    if not job.keep_sources:
        result.source = None
        result.notebook = None
    for diagnostic in result.diagnostics:
        if diagnostic.fix is not None:  # drop the LibCST nodes; the text edits remain
            diagnostic.fix = type(diagnostic.fix)(diagnostic.fix.message, diagnostic.fix.edits,
                                                  unsafe=diagnostic.fix.unsafe)
    return result


def _original_bytes(result: FileResult) -> bytes:
    """fixes.original_bytes, importing fixes.py (and LibCST) only for a notebook (already imported then)."""
    if result.notebook is not None:
        from elbolint.fixes import original_bytes

        return original_bytes(result) or b""  # (a notebook's bytes are always recorded)
    assert result.source is not None  # (a linted file's source is kept until here)
    return result.source.data


def _skipped(job: Job, task, reason: str) -> FileResult:
    path, _ = task
    result = FileResult(path)
    if "ELB901" in set(job.enabled) - job.config.ignored_for(path):
        result.diagnostics.append(engine_diagnostic(
            path, "ELB901", f"file skipped: analysing it {reason}; every other file was still linted"))
    return result


def _only_fixable(result: FileResult, config: Config) -> FileResult:
    """Drop the fixes of codes that `unfixable` names (or `fixable` leaves out): not offered, not applied."""
    for d in result.diagnostics:
        if d.fix is not None and not config.is_fixable(d.code):
            d.fix = None
    return result


def _applicable(result: FileResult, job: Job) -> list:
    return [d for d in result.diagnostics if d.fix is not None and (job.unsafe_fixes or not d.fix.unsafe)]


def _fixed(result: FileResult, job: Job) -> Optional[bytes]:
    chosen = _applicable(result, job)
    if not chosen:
        return None
    from elbolint.fixes import fixed_bytes

    # the fixer walks the tree as deep as the parser did
    return call_deep(fixed_bytes, dataclasses.replace(result, diagnostics=chosen))


def apply_fixes(result: FileResult, rules, options, enabled, config: Config, job: Job) -> FileResult:
    """Apply every fix of one file atomically and re-lint it; the file is untouched on failure
    (including when it changed on disk since it was read: write_atomically compares)."""
    data = _fixed(result, job)
    if data is None:
        return result
    from elbolint.fixes import write_atomically

    try:
        original = result.notebook.data if result.notebook is not None else _source_bytes(result)
        write_atomically(result.path, data, original=original)
    except OSError as error:
        result.diagnostics.append(
            engine_diagnostic(result.path, "ELB900", f"cannot write fixes: {error.strerror or error}")
        )
        return result
    after = _only_fixable(lint_file(result.path, rules, options, enabled, limits=config.limits), config)
    after.fixed_count = max(0, _fixable(result, job) - _fixable(after, job))
    return after


def _source_bytes(result: FileResult) -> bytes:
    return result.source.data if result.source is not None else b""


def _fixable(result: FileResult, job: Job) -> int:
    return len(_applicable(result, job))

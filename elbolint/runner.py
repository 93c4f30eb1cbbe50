"""Lint many files: discovery, per-file selection, fixes, each file analysed in a supervised worker.

Every file (and stdin) is linted in a worker process from isolation.py, so a file that crashes the
native parser, or runs out of its time or memory budget, becomes one ELB901 finding and the others
are linted as usual. The worker lints, fixes and returns plain results (the LibCST module stays in the
worker; with `keep_sources` the decoded source and notebook come back for dynamic mode).

Where a cold run's time goes, and so how it is spent: the parent discovers the files and answers
those the cache or the prefilter can (most of a monorepo) while the workers already lint the files
it has passed on (a stream of tasks: isolation.run_isolated); a worker runs on a file only the
rules that can fire in it (triage.firing).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Iterable, Iterator, Optional, Union

from elbolint import triage
from elbolint.cache import UNCACHEABLE, Cache, content_hash, decode, encode
from elbolint.config import Config
from elbolint.deepstack import call_deep
from elbolint.discovery import Missing, discover
from elbolint.linter import FileResult, engine_diagnostic, is_notebook, lint_file, passes_prefilter
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
    sources), files whose results are cached are not analysed at all. Discovery, the cache's
    answers and the prefilter run in this process while the workers lint the files they leave
    (isolation.run_isolated takes the tasks as a stream)."""
    cache = cache if not keep_modules else None
    job = Job(config, frozenset(enabled), fix, diff, keep_modules, unsafe_fixes=unsafe_fixes, hashes=cache is not None)
    run = _Answers(job, cache)
    tasks = _Tasks(run.tasks(discover(paths, config)))
    report = (lambda done, total: progress(len(run.by_path) + done, len(run.by_path) + total)) if progress else None
    run.by_path.update(zip(run.misses, _run(job, tasks, jobs, report)))
    if cache is not None:
        _remember(cache, job, run.lookups, [run.by_path[path] for path in run.fresh])
    results = []
    for item in run.items:
        if isinstance(item, Missing):
            result = FileResult(item.path)
            result.diagnostics.append(engine_diagnostic(item.path, "ELB900", "No such file or directory"))
            results.append(result)
        else:
            results.append(run.by_path[item])
    return results


class _Answers:
    """What the parent answers itself, file by file as discovery finds them: the cache's results,
    then the prefilter's (a file without a TF word needs no worker); the rest become worker tasks."""

    def __init__(self, job: Job, cache: Optional[Cache]) -> None:
        self.job, self.cache = job, cache
        self.items: list[Union[Path, Missing]] = []  # everything discovered, in order
        self.by_path: dict[Path, FileResult] = {}
        self.lookups: dict[Path, _Lookup] = {}
        self.fresh: list[Path] = []  # not answered by the cache
        self.misses: list[Path] = []  # sent to a worker

    def tasks(self, found: Iterable[Union[Path, Missing]]) -> Iterator[tuple[Path, None]]:
        for item in found:
            self.items.append(item)
            if isinstance(item, Missing):
                continue
            lookup = None
            if self.cache is not None:
                lookup = self.lookups[item] = _look_up(self.cache, self.job, item)
                if lookup.result is not None:
                    self.by_path[item] = lookup.result
                    continue
            self.fresh.append(item)
            if not triage.disabled():  # (ELBOLINT_NO_TRIAGE: the full path)
                answered = _prefiltered(self.job, item, lookup)
                if answered is not None:
                    self.by_path[item] = answered
                    continue
            if not self.misses:  # LibCST and the rules, imported once before the first worker forks
                all_rules()  # (never when no file needs one)
            self.misses.append(item)
            yield item, None


class _Tasks:
    """A stream of tasks that can be read again (what it gave is kept): the pool takes it as it
    comes; a caller that reads it first (a test listing what reaches a worker) still passes it on whole."""

    def __init__(self, stream: Iterator) -> None:
        self._stream: Optional[Iterator] = stream
        self._taken: list = []

    def __iter__(self) -> Iterator:
        index = 0
        while True:
            if index < len(self._taken):
                yield self._taken[index]
                index += 1
                continue
            if self._stream is None:
                return
            try:
                self._taken.append(next(self._stream))
            except StopIteration:
                self._stream = None

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


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
        if not S_ISREG(stat.st_mode) or stat.st_size > job.config.limits.file_size_kib * 1024:
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
            status = path.stat()  # one stat: the size and whether a regular file
            if status.st_size > job.config.limits.file_size_kib * 1024 or not S_ISREG(status.st_mode):
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


def _run(job: Job, tasks: Iterable, jobs: Optional[int], progress=None) -> list[FileResult]:
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
    read = None
    if data is None and not (job.fix or job.diff or job.fix_to_output or job.keep_sources):
        read, rules = _triaged(path, rules, config)
    enabled = set(job.enabled) - config.ignored_for(path)
    result = _only_fixable(lint_file(path, rules, config.rule_options, enabled, data=data if data is not None else read,
                                     limits=config.limits), config)
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


def _triaged(path: Path, rules: list, config: Config) -> tuple[Optional[bytes], list]:
    """(the file's bytes, the rules that could fire in them: triage.firing): each rule that cannot
    is left out of the traversal. The bytes are what lint_file then lints, so both see one content.
    Not for a notebook (its words are those of its code cells, not of the JSON), nor for a file
    over the size limit or unreadable (lint_file says what is wrong with it): (None, rules)."""
    if is_notebook(path):
        return None, rules
    try:
        status = path.stat()
        if not S_ISREG(status.st_mode) or status.st_size > config.limits.file_size_kib * 1024:
            return None, rules
        data = path.read_bytes()
    except OSError:
        return None, rules
    source = decode_source(path, data)
    if source.text is None:
        return data, rules
    return data, triage.firing(source.text, rules)


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

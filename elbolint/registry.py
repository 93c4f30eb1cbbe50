"""Finds the rules: every `Rule` subclass in the modules of `elbolint.rules`, plus modules that
other packages register under the `elbolint.rules` entry-point group. The engine never names a rule.

Importing this module costs nothing (no LibCST, no rule, no package metadata); `all_rules()` imports
them. What a run needs to know about the codes before it lints is in rule_index.py, without the import."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Union

from elbolint.diagnostics import Code, Severity

if TYPE_CHECKING:  # the rule classes import LibCST: imported only by all_rules()
    from elbolint.rule import Rule


#: Codes emitted by the engine itself. Always on unless ignored.
ENGINE_CODES = (
    Code("ELB000", "syntax-error", Severity.ERROR, "The file could not be decoded or parsed as Python."),
    Code("ELB900", "io-error", Severity.ERROR, "The file could not be read."),
    Code("ELB901", "file-skipped", Severity.ERROR,
         "The file was not analysed: over the size limit, or its analysis crashed, ran out of memory or time "
         "(limits under [tool.elbolint]); every other file is still linted."),
    Code("ELB902", "unused-noqa", Severity.WARNING,
         "A `# noqa: ELBxxx` names a code that has no finding on that line (stale after a fix?); "
         "a bare `# noqa` and other tools' codes are left alone."),
    Code("ELB999", "internal-error", Severity.ERROR, "A rule crashed on this file; other rules still ran."),
)


def _rules_in_module(module) -> list[type[Rule]]:
    from elbolint.rule import Rule

    found: list[type[Rule]] = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Rule)
            and value is not Rule
            and value.__module__ == module.__name__
            and value.code
        ):
            found.append(value)
    return found


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    """Every available rule (`Rule` subclasses), sorted by code. Raises if two rules share a code.
    Imported on the first call (with LibCST): importing this module costs nothing."""
    import gc
    import importlib
    import pkgutil

    from elbolint.dataclass_code import generated_code

    rules: list[type[Rule]] = []
    collecting = gc.isenabled()
    gc.disable()  # importing makes ~100,000 objects and no garbage: collecting them cost ~5 ms
    try:
        with generated_code("rules"):  # LibCST's ~200 node classes: elbolint/dataclass_code.py
            import elbolint.rules as package

            for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
                rules.extend(_rules_in_module(importlib.import_module(info.name)))
            for entry in rule_entry_points():
                rules.extend(_rules_in_module(entry.load()))
    finally:
        if collecting:
            gc.enable()
    by_code: dict[str, type[Rule]] = {}
    for rule in rules:
        if rule.code in by_code and by_code[rule.code] is not rule:
            raise RuntimeError(f"two rules share the code {rule.code}: {by_code[rule.code]} and {rule}")
        by_code[rule.code] = rule
    return tuple(sorted(by_code.values(), key=lambda r: r.code))


#: The entry-point group of rule modules from other packages.
GROUP = "elbolint.rules"


@lru_cache(maxsize=1)
def rule_entry_points() -> tuple[Any, ...]:
    """The `elbolint.rules` entry points of the installed packages (importlib.metadata's EntryPoint).

    importlib.metadata costs more to import (email, zipfile, csv: ~20 ms on a quiet machine, more than
    the rest of a run the cache answers) than reading the installed packages' entry_points.txt files
    as bytes, so it is asked only when one of those files names the group (or when a path or finder
    it would search is not a plain folder: then it is always asked). Read once per process (the code
    fingerprint and the rules' import both ask: ~2 ms each with 170 installed distributions)."""
    if not _may_declare(GROUP.encode()):
        return ()
    from importlib.metadata import entry_points

    return tuple(entry_points(group=GROUP))


def _may_declare(group: bytes) -> bool:
    """Whether an installed distribution might declare `group`: the folders importlib.metadata
    searches (each sys.path entry's `*.dist-info` / `*.egg-info`), read without it."""
    import importlib.machinery

    if any(hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder
           for finder in sys.meta_path):
        return True  # a finder with distributions of its own: only importlib.metadata can tell
    for entry in sys.path:
        folder = entry or "."
        try:
            with os.scandir(folder) as listing:
                names = [item.name for item in listing if item.name.endswith((".dist-info", ".egg-info"))]
        except NotADirectoryError:
            return os.path.exists(folder)  # a zip archive on the path
        except OSError:
            continue  # a path entry that does not exist
        for name in names:
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as handle:
                    if group in handle.read():
                        return True
            except OSError:
                continue
    return False


def extra_codes() -> tuple[Code, ...]:
    """Engine codes and dynamic-mode pathology codes (known to `select`, `ignore` and `noqa`)."""
    from elbolint.dynamic.verdicts.pathologies import PATHOLOGIES

    return ENGINE_CODES + tuple(PATHOLOGIES)


def rule_by_code_or_name(key: str) -> Union[type[Rule], Code, None]:
    """A rule class or Code for `ELB001` / `unconstrained-scale`; None if unknown."""
    for rule in all_rules():
        if key.upper() == rule.code or key == rule.name:
            return rule
    for code in extra_codes():
        if key.upper() == code.code or key == code.name:
            return code
    return None


def known_codes() -> list[str]:
    return sorted([r.code for r in all_rules()] + [c.code for c in extra_codes()])

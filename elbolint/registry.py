"""Finds the rules: every `Rule` subclass in the modules of `elbolint.rules`, plus modules that
other packages register under the `elbolint.rules` entry-point group. The engine never names a rule."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points

from elbolint.diagnostics import Code, Severity


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


def _rules_in_module(module) -> list[type]:
    from elbolint.rule import Rule

    found = []
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
def all_rules() -> tuple[type, ...]:
    """Every available rule (`Rule` subclasses), sorted by code. Raises if two rules share a code.
    Imported on the first call (with LibCST): importing this module costs nothing."""
    import elbolint.rules as package

    rules: list[type] = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        rules.extend(_rules_in_module(importlib.import_module(info.name)))
    for entry in entry_points(group="elbolint.rules"):
        rules.extend(_rules_in_module(entry.load()))
    by_code: dict[str, type] = {}
    for rule in rules:
        if rule.code in by_code and by_code[rule.code] is not rule:
            raise RuntimeError(f"two rules share the code {rule.code}: {by_code[rule.code]} and {rule}")
        by_code[rule.code] = rule
    return tuple(sorted(by_code.values(), key=lambda r: r.code))


def extra_codes() -> tuple[Code, ...]:
    """Engine codes and dynamic-mode pathology codes (known to `select`, `ignore` and `noqa`)."""
    from elbolint.dynamic.verdicts.pathologies import PATHOLOGIES

    return ENGINE_CODES + tuple(PATHOLOGIES)


def rule_by_code_or_name(key: str):
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

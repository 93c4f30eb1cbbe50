"""What a run must know about the codes before it lints anything, without importing a single rule.

Why: every run checks `select`, `ignore`, `per-file-ignores`, `fixable` and the command line's codes
against the known codes, and works out which codes are on by default. Asking `registry.all_rules()`
for that imports LibCST and every rule module (about half a second on a quiet machine), which a run
the cache answers, or one whose files the prefilter answers, never needs otherwise.

So the index (each rule's code, name and whether it is on by default, plus the engine's and dynamic
mode's codes) is computed once by importing the rules (registry.all_rules: exact, inherited
attributes and entry-point plugins included), and kept as a small JSON file in the user's cache
directory (`$XDG_CACHE_HOME/elbolint/`, else `~/.cache/elbolint/`), named by the code fingerprint
(cache.code_fingerprint: a hash of elbolint's own sources, of every file of every rule package, of
the plugins' files, and LibCST's and Python's versions). A later run reads that file instead of
importing the rules: a rule edited, added or installed is a new fingerprint, so a new index. Like a
`.pyc` file, the index is written even with `--no-cache` (it holds no result of any project). Where
the directory cannot be written or read, each run imports the rules, as before. Once the rules are
imported anyway (a file must be parsed), the index is taken from them.

A rule's options (their names and defaults) are not in the index: a configuration that sets one
(`[tool.elbolint.<rule-name>]`) needs the rule class itself, and imports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from elbolint.user_cache import directory, save

#: Bumped when the file's layout changes.
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One known code: a rule's (`rule` True) or one the engine or dynamic mode emits."""

    code: str
    name: str
    default_enabled: bool = True
    rule: bool = True


@dataclass(frozen=True)
class Index:
    entries: tuple[Entry, ...]

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(entry.code for entry in self.entries)

    @property
    def rules(self) -> tuple[Entry, ...]:
        return tuple(entry for entry in self.entries if entry.rule)

    @property
    def opt_in(self) -> frozenset[str]:
        """Rules off by default: selected only by their exact code or `ALL`."""
        return frozenset(entry.code for entry in self.entries if entry.rule and not entry.default_enabled)

    @property
    def defaults(self) -> frozenset[str]:
        """What is enabled when nothing is selected: the default rules and every non-rule code."""
        return frozenset(entry.code for entry in self.entries if entry.default_enabled or not entry.rule)

    @property
    def names(self) -> dict[str, str]:
        """code -> name."""
        return {entry.code: entry.name for entry in self.entries}


def index() -> Index:
    """The index of the current code: from the imported rules when they are imported already, else
    from the file of this fingerprint, else by importing them (and writing that file)."""
    from elbolint.registry import all_rules

    info = getattr(all_rules, "cache_info", None)
    if info is not None and info().currsize:  # imported already: nothing to save by reading a file
        return _from_registry()
    return _stored()


@lru_cache(maxsize=1)
def _stored() -> Index:
    from elbolint.cache import code_fingerprint

    path = _path(code_fingerprint())
    found = _read(path) if path is not None else None
    if found is not None:
        return found
    built = _from_registry()
    if path is not None:
        _write(path, built)
    return built


@lru_cache(maxsize=1)
def _from_registry() -> Index:
    from elbolint.registry import all_rules, extra_codes

    entries = [Entry(rule.code, rule.name, bool(rule.default_enabled)) for rule in all_rules()]
    entries += [Entry(code.code, code.name, True, rule=False) for code in extra_codes()]
    return Index(tuple(entries))


def _path(fingerprint: str) -> Optional[Path]:
    folder = directory()
    return None if folder is None else folder / f"rules-{fingerprint[:40]}.json"


def _read(path: Path) -> Optional[Index]:
    try:
        data: Any = json.loads(path.read_bytes())
        if data.get("format") != FORMAT:
            return None
        entries = tuple(Entry(str(code), str(name), bool(default), bool(rule))
                        for code, name, default, rule in data["entries"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent, damaged, another layout
        return None
    return Index(entries) if entries else None


def _write(path: Path, built: Index) -> None:
    """Atomically, keeping the newest few index files (user_cache.save)."""
    text = json.dumps({"format": FORMAT, "entries": [[e.code, e.name, e.default_enabled, e.rule]
                                                     for e in built.entries]})
    save(path, text.encode("utf-8"), "rules-*.json")

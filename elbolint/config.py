"""`[tool.elbolint]` in pyproject.toml, validated strictly: an unknown key or code is an error.

```toml
[tool.elbolint]
select = ["ELB"]                 # codes or prefixes; "ALL" selects opt-in rules too
ignore = ["ELB003"]
extend-select = ["ELB012"]
exclude = ["legacy/"]            # gitignore-style patterns, replacing the defaults' extension
extend-exclude = ["notebooks/"]
respect-gitignore = true
force-exclude = false            # true: excludes apply to files named explicitly (pre-commit)
per-file-ignores = { "tests/*" = ["ELB002"] }
max-file-size-kib = 1024         # per-file budget; a file beyond it is skipped with ELB901
max-seconds-per-file = 60
max-memory-mib = 2048
fixable = ["ALL"]                # codes whose fixes --fix may apply
unfixable = ["ELB003"]           # ...never these
cache-dir = ".elbolint_cache"    # relative to this file; --no-cache / --cache-dir on the command line

[tool.elbolint.extreme-initializer]   # a rule's options, under its name
threshold = 1000.0
```
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from elbolint.rule_index import index


@dataclass(frozen=True)
class Limits:
    """The budget one file may spend in static mode. Why: LibCST builds a Python object per token, so a
    2 MB generated file costs ~1.4 GB and 10 s, and pathological nesting can cost far more or crash the
    native parser. Within these limits every real source file we measured is analysed (TensorFlow's own
    largest generated files are ~660 KiB, ~270 MB, ~1 s); beyond them the file is skipped with one ELB901
    finding and the rest of the run goes on (see isolation.py)."""

    file_size_kib: int = 1024  # source bytes; for a notebook, the code of its cells (the JSON may be 32x)
    seconds: float = 60.0  # wall time to analyse (and fix) one file
    memory_mib: int = 2048  # memory one file's analysis may add to its worker process


LIMIT_KEYS = {"max-file-size-kib": "file_size_kib", "max-seconds-per-file": "seconds", "max-memory-mib": "memory_mib"}

TOP_LEVEL_KEYS = {
    "select", "ignore", "extend-select", "per-file-ignores", "exclude", "extend-exclude",
    "respect-gitignore", "force-exclude", "dynamic", "cache-dir", "fixable", "unfixable", *LIMIT_KEYS,
}


class ConfigError(Exception):
    """A configuration or usage problem: reported in one line, exit code 2."""


# ------------------------------------------------------------ guidance
def did_you_mean(word: str, candidates, display=None) -> str:
    """`; did you mean `X`?` for the nearest candidate (difflib's ratio >= 0.6), or "".
    `display` maps a candidate to what to print (a code with its rule name)."""
    from difflib import SequenceMatcher

    def nearest(word: str, pool: list[str]) -> list[str]:
        # difflib.get_close_matches breaks ties towards the larger string (ELB3 -> ELB103); the
        # first of equals in sorted order reads better (ELB003)
        scored = [(SequenceMatcher(None, word, c).ratio(), c) for c in pool]
        best = max(scored, key=lambda item: item[0], default=(0.0, ""))
        return [best[1]] if best[0] >= 0.6 else []

    candidates = sorted(set(candidates))
    close = nearest(word, candidates)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[m] for m in nearest(word.lower(), sorted(lowered))]
    if not close:
        return ""
    shown = display(close[0]) if display else f"`{close[0]}`"
    return f"; did you mean {shown}?"


def _code_suggestion(selector: str) -> str:
    """The nearest rule code to a mistyped selector, matching rule names too (`unconstrained-scale`,
    `unconstrained-scales` -> `ELB001`)."""
    rules = index().names
    names = {name: code for code, name in rules.items()}
    word = selector.strip()
    numbered = re.fullmatch(r"([A-Za-z]+)0*([0-9]+)", word)  # ELB3, ELB0001: the same number, zero-padded
    if numbered and f"{numbered[1].upper()}{int(numbered[2]):03d}" in rules:
        code = f"{numbered[1].upper()}{int(numbered[2]):03d}"
        return f"; did you mean `{code}` ({rules[code]})?"
    if word.lower() in names:
        code = names[word.lower()]
        return f"; did you mean `{code}` ({word.lower()})?"
    by_name = did_you_mean(word.lower(), names, lambda name: f"`{names[name]}` ({name})")
    by_code = did_you_mean(word.upper(), [*rules, "ALL"],
                           lambda code: f"`{code}` ({rules[code]})" if code in rules else f"`{code}`")
    return by_code or by_name


def unknown_key(key: str, rules_by_name: dict) -> str:
    """What to say about an unknown key of [tool.elbolint]: the nearest key, a rule code used where
    its name belongs, a rule option put at the top level, or else the known keys by kind."""
    if key.upper() in {r.code for r in rules_by_name.values()}:
        [rule] = [r for r in rules_by_name.values() if r.code == key.upper()]
        return (f"unknown key {key!r}; a rule's options go under its name: did you mean "
                f"`[tool.elbolint.{rule.name}]`?")
    owners = sorted(name for name, rule in rules_by_name.items() if key in rule.options)
    if owners:
        sections = " or ".join(f"`[tool.elbolint.{name}]`" for name in owners)
        return f"unknown key {key!r}; it is an option of a rule: put it under {sections}"
    suggestion = did_you_mean(key, TOP_LEVEL_KEYS | set(rules_by_name))
    if suggestion:
        return f"unknown key {key!r}{suggestion}"
    options = ", ".join(sorted(TOP_LEVEL_KEYS - {"dynamic"}))
    sections = ", ".join(f"[tool.elbolint.{name}]" for name in sorted(rules_by_name) if rules_by_name[name].options)
    return f"unknown key {key!r} (options: {options}; tables: [tool.elbolint.dynamic]; rule sections: {sections})"


@dataclass
class Config:
    root: Path = field(default_factory=Path.cwd)
    source: Optional[Path] = None
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    extend_exclude: list[str] = field(default_factory=list)
    respect_gitignore: bool = True
    force_exclude: bool = False  # apply the excludes to files named on the command line too
    rule_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> options
    dynamic: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    cache_dir: Optional[Path] = None  # `cache-dir`, relative to the config's directory
    fixable: list[str] = field(default_factory=lambda: ["ALL"])  # codes whose fixes are offered
    unfixable: list[str] = field(default_factory=list)  # ...minus these

    def is_fixable(self, code: str) -> bool:
        everything = set(index().codes)
        allowed = set().union(*(_expand_all(s, everything) for s in self.fixable)) if self.fixable else set()
        denied = set().union(*(_expand_all(s, everything) for s in self.unfixable)) if self.unfixable else set()
        return code in allowed and code not in denied

    # ------------------------------------------------------------ selection
    def enabled_codes(self) -> set[str]:
        """The codes to report, from select / extend-select / ignore."""
        known = index()
        everything = set(known.codes)
        if self.select:
            chosen = set().union(*(_expand(s, everything) for s in self.select))
        else:
            chosen = set(known.defaults)
        for s in self.extend_select:
            chosen |= _expand(s, everything)
        for s in self.ignore:
            chosen -= _expand(s, everything)
        return chosen

    def ignored_for(self, path: Path) -> set[str]:
        """Codes switched off for one file by `per-file-ignores`."""
        if not self.per_file_ignores:
            return set()
        everything = set(index().codes)
        try:
            relative = PurePosixPath(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            relative = PurePosixPath(path)
        ignored: set[str] = set()
        for pattern, codes in self.per_file_ignores.items():
            if _glob_matches(str(relative), pattern):
                for code in codes:
                    ignored |= _expand(code, everything)
        return ignored


def _glob_matches(relative: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern + "/*"):
        return True
    return "/" not in pattern and fnmatch.fnmatch(relative.rsplit("/", 1)[-1], pattern)


def _expand(selector: str, everything: set[str]) -> set[str]:
    """Codes matched by a code, a prefix ("ELB0") or "ALL". Opt-in rules match only by exact code
    or "ALL", so `select = ["ELB"]` means the default rules plus engine and dynamic codes."""
    original = selector.strip()
    selector = original.upper()
    if selector == "ALL":
        return set(everything)
    if selector in everything:
        return {selector}
    matched = {code for code in everything if code.startswith(selector)}
    if not matched:
        raise ConfigError(f"unknown rule code or prefix {original!r}{_code_suggestion(original)} "
                          "(see `elbolint rule --all`)")
    return matched - index().opt_in


def _expand_all(selector: str, everything: set[str]) -> set[str]:
    """Like _expand, opt-in rules included (a fix policy names codes, it does not enable them)."""
    selector = selector.strip().upper()
    if selector == "ALL":
        return set(everything)
    return {code for code in everything if code.startswith(selector)} or _expand(selector, everything)


def validate_codes(selectors: list[str]) -> None:
    everything = set(index().codes)
    for s in selectors:
        _expand(s, everything)


def find_config_file(start: Path) -> Optional[Path]:
    """The nearest pyproject.toml with a [tool.elbolint] table, walking up from `start`."""
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"invalid TOML in {candidate}: {error}") from None
            if "elbolint" in data.get("tool", {}):
                return candidate
    return None


def load_config(path: Optional[Path]) -> Config:
    """Parse and validate a pyproject.toml (or a standalone elbolint.toml with the same table)."""
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"invalid TOML in {path}: {error}") from None
    table = data.get("tool", {}).get("elbolint")
    if table is None:
        table = data if path.name != "pyproject.toml" else {}
    return parse_table(table, path)


def parse_table(table: dict, path: Path) -> Config:
    config = Config(root=path.parent.resolve(), source=path)
    rule_names = {entry.name for entry in index().rules}
    where = f"{path}: [tool.elbolint]"
    for key, value in table.items():
        if key in rule_names:  # a rule's options: the rule class itself says which (imported now)
            rule = _rules_by_name()[key]
            config.rule_options[rule.code] = _rule_options(rule, value, where)
        elif key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{where}: {unknown_key(key, _rules_by_name())}")
    config.select = _string_list(table, "select", where)
    config.fixable = _string_list(table, "fixable", where) if "fixable" in table else ["ALL"]
    config.unfixable = _string_list(table, "unfixable", where)
    try:
        validate_codes(config.fixable + config.unfixable)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    config.ignore = _string_list(table, "ignore", where)
    config.extend_select = _string_list(table, "extend-select", where)
    config.exclude = _string_list(table, "exclude", where)
    config.extend_exclude = _string_list(table, "extend-exclude", where)
    try:
        validate_codes(config.select + config.ignore + config.extend_select)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    respect = table.get("respect-gitignore", True)
    if not isinstance(respect, bool):
        raise ConfigError(f"{where}: respect-gitignore must be true or false")
    config.respect_gitignore = respect
    force = table.get("force-exclude", False)
    if not isinstance(force, bool):
        raise ConfigError(f"{where}: force-exclude must be true or false")
    config.force_exclude = force
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{where}: per-file-ignores must be a table of pattern = [codes]")
    for pattern, codes in per_file.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(f"{where}: per-file-ignores[{pattern!r}] must be a list of codes")
        try:
            validate_codes(codes)
        except ConfigError as error:
            raise ConfigError(f"{where}: per-file-ignores[{pattern!r}]: {error}") from None
        config.per_file_ignores[pattern] = codes
    dynamic = table.get("dynamic", {})
    if not isinstance(dynamic, dict):
        raise ConfigError(f"{where}: dynamic must be a table")
    # Validated on every run, not only with --dynamic: a typo (`stepz`, `steps = -5`) must fail the
    # static CI job that sees it, not the nightly dynamic job.
    if dynamic:  # (imported only then: a one-file run should not pay for dynamic mode's modules)
        from elbolint.dynamic.parent.settings import build_settings, known_keys

        for key in dynamic:
            if key not in known_keys():
                suggestion = did_you_mean(key, known_keys()) or f" (known: {', '.join(known_keys())})"
                raise ConfigError(f"{path}: [tool.elbolint.dynamic]: unknown key {key!r}{suggestion}")

        build_settings(dynamic, {})
    config.dynamic = dynamic
    config.limits = _limits(table, where)
    cache_dir = table.get("cache-dir")
    if cache_dir is not None:
        if not isinstance(cache_dir, str) or not cache_dir:
            raise ConfigError(f"{where}: cache-dir must be a path (a string)")
        config.cache_dir = config.root / cache_dir
    return config


def _rules_by_name() -> dict[str, Any]:
    from elbolint.registry import all_rules

    return {r.name: r for r in all_rules()}


def _limits(table: dict, where: str) -> Limits:
    values = {}
    for key, attribute in LIMIT_KEYS.items():
        if key not in table:
            continue
        value = table[key]
        kinds = (int, float) if attribute == "seconds" else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            kind = "number" if attribute == "seconds" else "integer"
            raise ConfigError(f"{where}: {key} must be a positive {kind}, got {value!r}")
        values[attribute] = float(value) if attribute == "seconds" else value
    return Limits(**values)  # type: ignore[arg-type]  # (each value checked against its field above)


def _string_list(table: dict, key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return list(value)


def _rule_options(rule, value: Any, where: str) -> dict[str, Any]:
    where = where.replace("[tool.elbolint]", f"[tool.elbolint.{rule.name}]")
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of options")
    options: dict[str, Any] = {}
    for key, setting in value.items():
        if key not in rule.options:
            known = ", ".join(sorted(rule.options)) or "none"
            suggestion = did_you_mean(key, rule.options) or f" (known: {known})"
            raise ConfigError(f"{where}: unknown option {key!r}{suggestion}")
        default = rule.options[key]
        if isinstance(default, float) and isinstance(setting, int) and not isinstance(setting, bool):
            setting = float(setting)
        if type(setting) is not type(default):
            raise ConfigError(f"{where}: {key} must be {type(default).__name__}, got {setting!r}")
        options[key] = setting
    return options

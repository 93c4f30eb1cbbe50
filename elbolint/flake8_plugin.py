"""elbolint as a flake8 plugin (entry point `flake8.extension`, prefix `ELB`), as TorchFix ships one:
`flake8 --select ELB src/` reports elbolint's findings, so set-ups and editors that run flake8 get
them with no new tool.

Same behaviour as the CLI for one file: `lint_file` with the rules and options of the nearest
`[tool.elbolint]` configuration (the default-enabled rules without one), its `per-file-ignores`,
`# noqa` and `max-file-size-kib`. flake8's `--select`/`--extend-ignore` then filter the `ELB` codes
again, and flake8 honours `# noqa: ELB001` itself too. Columns are given to flake8 0-based, so it
prints the same `path:line:col` as `elbolint`.

Caveats (flake8 runs plugins per file, in its own processes):
- no crash isolation: a file that crashes LibCST's native parser, or exhausts memory or time, takes
  the flake8 worker with it (the CLI reports it as ELB901 and goes on); `max-seconds-per-file` and
  `max-memory-mib` are not enforced;
- no cache: every run analyses every file again (flake8 has no result cache);
- no fixes, no `--diff`, no dynamic mode;
- `flake8 --disable-noqa` cannot bring back a finding that elbolint's own `# noqa` handling hid;
- elbolint's `exclude`/`extend-exclude`/`.gitignore` handling does not apply: flake8 decides which
  files it checks;
- the source is the `lines` flake8 read (so `--stdin-display-name` and stdin work), re-encoded with
  the file's PEP 263 cookie;
- a syntax error is flake8's own E999: flake8 runs no AST plugin on a file that does not parse;
- notebooks are linted only if flake8 is told to check `*.ipynb` files; positions are then relative
  to the cell named in the message;
- a `[tool.elbolint]` configuration error stops flake8 (PluginExecutionFailed), as the CLI exits 2.

Cheap for files that never mention TensorFlow: the plugin then returns before importing LibCST or
the rules, or looking for a configuration.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional

from elbolint import __version__

#: The linter's prefilter (elbolint.linter._PREFILTER; a test keeps them equal): a file that does not
#: match cannot contain a finding.
PREFILTER = re.compile(r"tensorflow|tf_keras|keras|\btf[pdb]\.|\btfpl\.")
#: PEP 263: the encoding cookie on one of the first two lines.
_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_STDIN_NAMES = frozenset({"stdin", "-"})


class Plugin:
    """flake8 AST plugin: flake8 passes `tree`, `filename` and `lines` by name."""

    name = "elbolint"
    version = __version__

    def __init__(self, tree: Any, filename: str, lines: list[str]) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        text = "".join(self.lines)
        if not PREFILTER.search(text):
            return
        from elbolint.linter import lint_file
        from elbolint.registry import all_rules
        from elbolint.reporters import with_cell

        path = Path(self.filename)
        config = _config(_start(path))
        enabled = config.enabled_codes() - config.ignored_for(path)
        rules = [rule for rule in all_rules() if rule.code in enabled]
        result = lint_file(path, rules, config.rule_options, enabled, data=_encode(text),
                           limits=config.limits)
        for d in result.diagnostics:
            yield d.line, max(d.column - 1, 0), f"{d.code} {with_cell(d)}", type(self)


def _start(path: Path) -> Path:
    """Where to look for the configuration: the file's directory, or the working directory."""
    if str(path) in _STDIN_NAMES:
        return Path(".").resolve()
    directory = path.parent if path.parent != Path("") else Path(".")
    return directory.resolve() if directory.exists() else Path(".").resolve()


@lru_cache(maxsize=None)
def _config(directory: Path):
    """The configuration for files in `directory` (looked up once per directory and process)."""
    from elbolint.config import find_config_file, load_config

    return load_config(find_config_file(directory))  # None: the defaults, as the CLI


def _encode(text: str) -> bytes:
    """Bytes that decode back to `text` the way the linter reads them: in the cookie's encoding."""
    encoding: Optional[str] = None
    for line in text.splitlines()[:2]:
        match = _COOKIE.match(line)
        if match:
            encoding = match.group(1)
            break
    if encoding is not None:
        try:
            return text.encode(encoding)
        except (LookupError, UnicodeError):
            pass
    return text.encode("utf-8")

"""Which parts of a notebook are not Python: the kernel, a cell's own metadata, R or Julia cells.

Why a module of its own: deciding what to leave out of the virtual module (notebook.py) is a
separate judgement from building it. A notebook whose kernel is not Python (its metadata's
language or kernel name) is skipped whole; a code cell whose metadata names another language (VS
Code's `languageId`, .NET Interactive / Polyglot) is skipped; and a Colab notebook that switches
to an R or Julia runtime for a section carries cells with no magic and no metadata, recognised
here by their syntax (see `other_runtime`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

def _is_python_language(name: str) -> bool:
    name = name.strip().lower()
    return name.startswith("py") or "python" in name


#: Kernel names (`metadata.kernelspec.name`, up to a version suffix) of kernels that do not run
#: Python. Any other name is assumed to be Python: names such as `tf2` or `conda-env-x-py` are common.
_FOREIGN_KERNELS = frozenset({
    "ir", "r", "julia", "bash", "zsh", "sh", "scala", "javascript", "ijavascript", "typescript", "tslab",
    "deno", "java", "ijava", "kotlin", "go", "gophernotes", "gonb", "rust", "evcxr", "xcpp", "cpp", "sas",
    "octave", "matlab", "imatlab", "ruby", "haskell", "sparkkernel", "sparkrkernel", "sql", "xsqlite",
    ".net", "powershell", "stata", "perl", "lua", "wolframlanguage", "maxima", "elixir", "clojure", "ocaml",
})


#: A kernel name without its version suffix (`ir`, `julia-1.9` -> `julia`).
_KERNEL_BASE = re.compile(r"[a-z.]*")


def foreign_kernel(raw: dict) -> Optional[str]:
    """Why the whole notebook is not Python (R, Julia, ... kernel), or None."""
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    for key, name in (("language_info", "name"), ("kernelspec", "language")):
        info = metadata.get(key)
        if isinstance(info, dict) and isinstance(info.get(name), str) and info[name].strip():
            if _is_python_language(info[name]):
                return None
            return f"its kernel language is {info[name]} (metadata.{key}.{name})"
    kernelspec = metadata.get("kernelspec")
    if isinstance(kernelspec, dict) and isinstance(kernelspec.get("name"), str):
        match = _KERNEL_BASE.match(kernelspec["name"].lower())  # always matches (maybe empty)
        base = match.group() if match else ""
        if base in _FOREIGN_KERNELS:
            return f"its kernel is {kernelspec['name']} (metadata.kernelspec.name), not Python"
    return None


#: A code cell's own language, where a front end records it: VS Code, .NET Interactive / Polyglot.
_CELL_LANGUAGE_KEYS = (("vscode", "languageId"), ("polyglot_notebook", "kernelName"),
                       ("dotnet_interactive", "language"))


def cell_language(cell: dict) -> Optional[str]:
    """Why a code cell is not Python according to its own metadata, or None."""
    metadata = cell.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for key, name in _CELL_LANGUAGE_KEYS:
        info = metadata.get(key)
        if isinstance(info, dict) and isinstance(info.get(name), str) and info[name].strip():
            if _is_python_language(info[name]):
                return None
            return f"its language is {info[name]} (metadata.{key}.{name})"
    return None


# --------------------------------------------------- R / Julia cells in a Python notebook
# A Colab notebook may say "switch to an R runtime" and carry R cells: no cell magic, no metadata.
# Their syntax is recognised on the cell's code with strings and comments blanked out.
_STRINGS_AND_COMMENTS = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*')
_R_SYNTAX = [
    (re.compile(r"^[ \t]*[A-Za-z.][\w.]*(?:\$[\w.]+|\[[^\]\n]*\])*[ \t]*<<?-", re.M), "`x <- ...`"),
    (re.compile(r"(?<![\w.])(?:library|require|requireNamespace|install\.packages|suppressMessages|suppressWarnings"
                r"|suppressPackageStartupMessages)\s*\("), "`library(...)`"),
    (re.compile(r"\b[A-Za-z][\w.]*:::?[A-Za-z.][\w.]*\s*\("), "`pkg::fn(...)`"),
    (re.compile(r"[\w)\]]\$[A-Za-z_.]"), "`x$name`"),
    (re.compile(r"%(?:>|<>|T>|\$|in|\*|o|/)%"), "`%>%`"),
    (re.compile(r"\b(?:TRUE|FALSE|NULL)\b"), "`TRUE`/`FALSE`/`NULL`"),
    (re.compile(r"\b(?:as|is)\.[A-Za-z][\w.]*\s*\("), "`as.matrix(...)`"),
    (re.compile(r"\bfunction\s*\([^()]*\)\s*\{"), "`function(x) {`"),
    (re.compile(r"[(,]\s*(?!self\.)[a-z]+\.[a-z]+\s*=(?!=)"), "`f(row.names = ...)`"),
    (re.compile(r"(?:\)|\b(?!(?:and|or|not|in|is|if|else|return|yield|lambda|await|assert)\b)[A-Za-z_][\w.]*)"
                r"[ \t]*~[ \t]*[\w.(]"), "a formula `y ~ x`"),
]
_JULIA_SYNTAX = [
    (re.compile(r"^[ \t]*using[ \t]+[A-Za-z]", re.M), "`using ...`"),
    (re.compile(r"\bprintln\s*\("), "`println(...)`"),
    (re.compile(r"^[ \t]*@\w+[ \t]+\S", re.M), "a macro `@time ...`"),
    (re.compile(r"\bPkg\.(?:add|activate|instantiate)\s*\("), "`Pkg.add(...)`"),
    (re.compile(r"^[ \t]*(?:function|macro|(?:mutable[ \t]+)?struct|module)[ \t]+\w", re.M), "`function f(...)`"),
    (re.compile(r"^[ \t]*end[ \t]*$", re.M), "a line `end`"),
]
_LANGUAGES = (("R", _R_SYNTAX), ("Julia", _JULIA_SYNTAX))
#: Python a cell of another language would not contain: it keeps a cell between R cells Python.
_PYTHON_SYNTAX = re.compile(
    r"^[ \t]*(?:import|from|def|class|with|async|return|yield|try|except|raise|del|global|assert)\b"
    r"|\blambda\b|\b(?:tf|tfp|tfd|tfb|np|pd|plt|keras|jax|jnp|torch|self)\.|:[ \t]*$", re.M)


def _blank(match: re.Match) -> str:
    return "" if match.group().startswith("#") else '""'


def _foreign_syntax(code: str) -> tuple[Optional[str], list[str]]:
    """The language (R or Julia) whose syntax the code shows most, and what was seen."""
    best: tuple[Optional[str], list[str]] = (None, [])
    for language, patterns in _LANGUAGES:
        seen = [label for pattern, label in patterns if pattern.search(code)]
        if len(seen) > len(best[1]):
            best = (language, seen)
    return best


@dataclass
class CodeCell:
    """A code cell on its way into the virtual module (see notebook.py), with its verdict."""

    index: int
    lines: list[str]
    indent: int
    magic: set[int]
    error: Optional[tuple[int, int, str]]
    language: Optional[str] = None  # R / Julia when the cell is judged not to be Python
    reason: str = ""


def other_runtime(cells: list[CodeCell]) -> None:
    """Mark the cells written for another runtime (a Colab notebook's R section), in place."""
    if not any(cell.error for cell in cells):  # every run of R cells has one that does not parse
        return
    code = [_STRINGS_AND_COMMENTS.sub(_blank, "\n".join(cell.lines)) for cell in cells]
    syntax = [_foreign_syntax(text) for text in code]
    python = [bool(cell.magic) or bool(_PYTHON_SYNTAX.search(text)) for cell, text in zip(cells, code)]
    for cell, (language, seen), pythonic in zip(cells, syntax, python):
        if cell.error and language and not pythonic:
            cell.language = language
            cell.reason = f"looks like {language}, not Python (it does not parse as Python and has {', '.join(seen)})"
    changed = True
    while changed:  # a run of R cells grows over its neighbours
        changed = False
        for at, cell in enumerate(cells):
            if cell.language or python[at]:
                continue
            before = cells[at - 1].language if at > 0 else None
            after = cells[at + 1].language if at + 1 < len(cells) else None
            language, seen = syntax[at]
            if language and language in (before, after):
                cell.language = language
                cell.reason = f"looks like {language}, not Python (it has {', '.join(seen)}, next to {language} cells)"
            elif before and before == after:
                cell.language = before
                cell.reason = f"looks like {before}, not Python (between {before} cells, with no Python syntax)"
            else:
                continue
            changed = True

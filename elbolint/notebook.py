"""Jupyter notebooks (`.ipynb`, nbformat 4), linted the way ruff lints them.

Why one virtual module: the resolver is per file, and a notebook is one program run top to bottom,
so `tfd = tfp.distributions` in cell 1 must resolve `tfd.Normal` in cell 3. The code cells are
concatenated in order into one Python module (IPython magics, shell escapes and `?` help lines
commented out), keeping a map from each virtual line to (cell number, line within the cell). Cell
numbers are 1-based positions among *all* the notebook's cells, markdown included, as ruff counts them.

What is not Python is left out, and `Notebook.skipped` says what and why (`--show-files` prints it):
a notebook whose kernel is not Python (R, Julia, ...: its metadata's language or kernel name); a
cell of a foreign cell magic (`%%R`, `%%bash`, `%%writefile`, ...); a cell whose own metadata names
another language (VS Code's `languageId`, .NET Interactive / Polyglot); and, in a Colab notebook
that switches to an R or Julia runtime for a section, cells that are clearly R or Julia: a cell that
does not parse as Python and shows R syntax (`x <- ...`, `library(...)`, `pkg::fn(...)`, `fit$y`,
`TRUE`, `as.matrix(...)`, a formula `y ~ x`, ...) or Julia syntax (`using Foo`, `println(...)`,
`@time`, `function ... end`); a cell that parses but shows such syntax next to one of those; and a
cell with no Python in it (no import, def, `tf.`, magic, ...) between two of them (`head(data)`).
A cell that does not parse and shows no R or Julia syntax stays Python: it is ELB000.

Why text edits for `--fix`: a fix is applied to the affected cells' own sources (the Diagnostic's
text edits, in cell coordinates), never by writing the virtual module back, so magics and the
other cells stay exactly as they were. The notebook is rewritten only when the JSON, serialised
back with the layout detected from the file (indent, `ensure_ascii`, final newline), reproduces
the original bytes exactly: then outputs, metadata and formatting survive untouched. Otherwise,
or when the fixed cells no longer parse, the notebook is left alone and its findings reported.
"""

from __future__ import annotations

import ast
import bisect
import copy
import io
import json
import re
import tokenize
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

import libcst as cst

from elbolint.diagnostics import Diagnostic, Edit, Fix, Position
from elbolint.source import Source

NOTEBOOK_SUFFIX = ".ipynb"

#: Cell magics whose body is still Python run by the kernel: only their first line is commented out.
#: Any other cell magic (`%%R`, `%%bash`, `%%script ...`, `%%writefile`, `%%html`, ...) is not Python.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "px"})

_NEWLINE = re.compile(r"\r\n|\r|\n")
_CELL_MAGIC = re.compile(r"%%(\w*)")
_LINE_MAGIC = re.compile(r"[%!]")  # `%matplotlib inline`, `!pip install ...`
_HELP = re.compile(r"\?{1,2}\S.*|[\w.*\[\]]+\?{1,2}\s*")  # `?tfd.Normal`, `tfd.Normal??`
_ASSIGNED_MAGIC = re.compile(r"[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[%!]")  # `files = !ls`


def is_notebook(path: Path) -> bool:
    return path.suffix == NOTEBOOK_SUFFIX


@dataclass(frozen=True)
class Skipped:
    """Something of the notebook not linted because it is not Python, and why."""

    cell: Optional[int]  # 1-based, as in findings; None: the whole notebook
    reason: str

    def __str__(self) -> str:
        return f"{'notebook' if self.cell is None else f'cell {self.cell}'} not linted: {self.reason}"


@dataclass
class Span:
    """One linted code cell: where its lines sit in the virtual module."""

    cell: int      # 1-based position among all cells (what the user reads)
    index: int     # index into the JSON's `cells`
    start: int     # first virtual line (1-based)
    count: int     # number of lines
    magic_lines: frozenset[int] = frozenset()  # cell lines that were commented out
    indent: int = 0  # columns IPython strips from every line (a cell typed with a leading indent)
    #: (line, column, message) within the cell when the cell alone is not valid Python; its lines are
    #: then blank in the virtual module, so one scratch cell (`y_pred.`) costs only itself.
    syntax_error: Optional[tuple[int, int, str]] = None


@dataclass
class Notebook:
    raw: dict
    original: str
    spans: list[Span] = field(default_factory=list)
    text: str = ""
    data: bytes = b""  # the file's bytes as read: --fix refuses to write if the file changed since
    skipped: list[Skipped] = field(default_factory=list)  # what is not Python, and why

    # ------------------------------------------------------------ positions
    def locate(self, line: int) -> tuple[Span, int]:
        """The cell of a virtual line and the line within it (past the end: the last cell's end)."""
        starts = [span.start for span in self.spans]
        at = max(0, bisect.bisect_right(starts, line) - 1)
        span = self.spans[at]
        return span, min(max(line - span.start + 1, 1), max(span.count, 1))

    def syntax_errors(self) -> list[tuple[int, int, str]]:
        """The cells that are not valid Python alone, as (virtual line, column, message)."""
        return [(span.start + line - 1, column, message)
                for span in self.spans if span.syntax_error
                for line, column, message in [span.syntax_error]]

    def to_cells(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Diagnostics with cell-relative positions and `cell` set (fix edits included)."""
        if not self.spans:
            return diagnostics
        return [self._to_cell(d) for d in diagnostics]

    def _to_cell(self, d: Diagnostic) -> Diagnostic:
        span, line = self.locate(d.start.line)
        shift = span.indent
        start = Position(line, d.start.column + shift)
        end = Position(max(line, d.end.line - span.start + 1), d.end.column + shift)
        fix = d.fix
        if fix is not None:
            edits = tuple(
                Edit(Position(e.start.line - span.start + 1, e.start.column + shift),
                     Position(e.end.line - span.start + 1, e.end.column + shift), e.content)
                for e in fix.edits
            )
            fix = Fix(fix.message, edits, node=fix.node, replacement=fix.replacement, unsafe=fix.unsafe)
        return replace(d, start=start, end=end, fix=fix, cell=span.cell)

    # ------------------------------------------------------------------ fix
    def fixed(self, diagnostics: list[Diagnostic]) -> Optional[bytes]:
        """The notebook's bytes with every applicable fix applied to its cells, or None when nothing
        applies, the fixed cells do not parse, or the file's JSON layout cannot be reproduced."""
        dumps = _layout(self.raw, self.original)
        if dumps is None:
            return None
        spans = {span.cell: span for span in self.spans}
        by_cell: dict[int, list[Edit]] = {}
        for d in diagnostics:
            if d.fix is None or d.cell not in spans:
                continue
            span = spans[d.cell]
            for e in d.fix.edits:
                lines = range(e.start.line, e.end.line + 1)
                if e.start.line < 1 or e.end.line > span.count or any(n in span.magic_lines for n in lines):
                    continue
                by_cell.setdefault(d.cell, []).append(e)
        if not by_cell:
            return None
        sources = {}
        for number, edits in by_cell.items():
            span = spans[number]
            sources[span.index] = _apply(_cell_source(self.raw["cells"][span.index]), edits)
        new_raw = copy.deepcopy(self.raw)
        for index, source in sources.items():
            cell = new_raw["cells"][index]
            cell["source"] = source.splitlines(keepends=True) if isinstance(cell["source"], list) else source
        try:
            cst.parse_module(_virtual(new_raw)[0].encode("utf-8"))
        except (cst.ParserSyntaxError, RecursionError, MemoryError, ValueError):
            return None
        return dumps(new_raw).encode("utf-8")


# ------------------------------------------------------------------ reading
def read_notebook(source: Source) -> tuple[Source, Optional[Notebook]]:
    """Turn a decoded `.ipynb` Source into the Source of its virtual module, or one with a problem."""
    if source.text is None:
        return source, None
    try:
        raw = json.loads(source.text)
    except json.JSONDecodeError as error:
        problem = ("ELB000", f"not a valid notebook: invalid JSON: {error.msg}", error.lineno, error.colno)
        return replace(source, text=None, problem=problem), None
    except RecursionError:
        problem = ("ELB000", "not a valid notebook: JSON nested too deeply", 1, 1)
        return replace(source, text=None, problem=problem), None
    reason = _not_a_notebook(raw)
    if reason is not None:
        return replace(source, text=None, problem=("ELB000", f"not a valid notebook: {reason}", 1, 1)), None
    text, spans, skipped = _virtual(raw)
    notebook = Notebook(raw, source.text, spans, text, source.data, skipped)
    return Source(source.path, text.encode("utf-8"), text=text), notebook


def skipped_parts(path: Path) -> list[Skipped]:
    """What of the notebook at `path` is not linted as Python, and why (for `--show-files`);
    nothing for a file that cannot be read or is not a valid notebook (linting reports those)."""
    from elbolint.source import read_source

    try:
        _, notebook = read_notebook(read_source(path))
    except (OSError, ValueError, RecursionError, MemoryError):
        return []
    return notebook.skipped if notebook is not None else []


def _not_a_notebook(raw: Any) -> Optional[str]:
    if not isinstance(raw, dict):
        return "the JSON is not an object"
    version = raw.get("nbformat")
    if isinstance(version, int) and version < 4:
        return f"nbformat {version} is not supported (only nbformat 4; convert with `jupyter nbconvert --to notebook`)"
    cells = raw.get("cells")
    if not isinstance(cells, list):
        return "no `cells` list (not an nbformat 4 notebook)"
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            return f"cell {number} is not an object"
        source = cell.get("source", "")
        if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            return f"cell {number}: `source` is not a string or a list of strings"
    return None


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


def _foreign_kernel(raw: dict) -> Optional[str]:
    """Why the whole notebook is not Python (R, Julia, ... kernel), or None."""
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    for key, name in (("language_info", "name"), ("kernelspec", "language")):
        info = metadata.get(key)
        if isinstance(info, dict) and isinstance(info.get(name), str) and info[name].strip():
            if _is_python_language(info[name]):
                return None
            return f"its kernel language is {info[name]} (metadata.{key}.{name})"
    kernelspec = metadata.get("kernelspec")
    if isinstance(kernelspec, dict) and isinstance(kernelspec.get("name"), str):
        base = re.match(r"[a-z.]*", kernelspec["name"].lower()).group()
        if base in _FOREIGN_KERNELS:
            return f"its kernel is {kernelspec['name']} (metadata.kernelspec.name), not Python"
    return None


#: A code cell's own language, where a front end records it: VS Code, .NET Interactive / Polyglot.
_CELL_LANGUAGE_KEYS = (("vscode", "languageId"), ("polyglot_notebook", "kernelName"),
                       ("dotnet_interactive", "language"))


def _cell_language(cell: dict) -> Optional[str]:
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
class _Cell:
    index: int
    lines: list[str]
    indent: int
    magic: set[int]
    error: Optional[tuple[int, int, str]]
    language: Optional[str] = None  # R / Julia when the cell is judged not to be Python
    reason: str = ""


def _other_runtime(cells: list[_Cell]) -> None:
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


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _virtual(raw: dict) -> tuple[str, list[Span], list[Skipped]]:
    """The code cells concatenated into one module, where each cell's lines went, and what was
    left out as not Python."""
    reason = _foreign_kernel(raw)
    if reason is not None:
        return "", [], [Skipped(None, reason)]
    skipped: list[Skipped] = []
    cells: list[_Cell] = []
    for index, cell in enumerate(raw["cells"]):
        if cell.get("cell_type") != "code":
            continue
        lines = _NEWLINE.split(_cell_source(cell))
        if lines[-1] == "":
            lines.pop()
        if not lines:
            continue
        reason = _cell_language(cell)
        if reason is not None:
            skipped.append(Skipped(index + 1, reason))
            continue
        lines, indent = _dedent(lines)
        commented, magic = _comment_magics(lines)
        if commented is None:
            skipped.append(Skipped(index + 1, f"`%%{_cell_magic(lines)}` cell, not Python"))
            continue
        cells.append(_Cell(index, commented, indent, magic, _cell_syntax_error(commented)))
    _other_runtime(cells)
    pieces: list[str] = []
    spans: list[Span] = []
    line = 1
    for cell in cells:
        if cell.language:
            skipped.append(Skipped(cell.index + 1, cell.reason))
            continue
        spans.append(Span(cell.index + 1, cell.index, line, len(cell.lines), frozenset(cell.magic),
                          cell.indent, cell.error))
        pieces += ["\n" if cell.error else text + "\n" for text in cell.lines]
        line += len(cell.lines)
    skipped.sort(key=lambda s: s.cell or 0)
    return "".join(pieces), spans, skipped


def _cell_syntax_error(lines: list[str]) -> Optional[tuple[int, int, str]]:
    """Why per cell: Jupyter compiles each cell on its own, so a cell that does not parse fails alone
    and the notebook's other cells still run; they are linted too. `ast.parse` only parses."""
    try:
        ast.parse("\n".join(lines) + "\n")
    except SyntaxError as error:
        return error.lineno or 1, error.offset or 1, error.msg or "invalid syntax"
    except (RecursionError, MemoryError, ValueError) as error:
        return 1, 1, f"cannot parse: {type(error).__name__}"
    return None


def _dedent(lines: list[str]) -> tuple[list[str], int]:
    """Strip the indent of a cell's first line from all its lines, as IPython does before running
    a cell (` print(x)` runs); only when every non-blank line carries that exact prefix."""
    first = next((text for text in lines if text.strip()), "")
    prefix = first[: len(first) - len(first.lstrip())]
    if not prefix or not all(text.startswith(prefix) for text in lines if text.strip()):
        return lines, 0
    return [text[len(prefix):] if text.strip() else "" for text in lines], len(prefix)


def _comment_magics(lines: list[str]) -> tuple[Optional[list[str]], set[int]]:
    """Comment out IPython syntax, or None for a cell whose cell magic runs another language."""
    out = list(lines)
    magic: set[int] = set()
    name = _cell_magic(lines)
    if name is not None:
        if name not in PYTHON_CELL_MAGICS:
            return None, magic
        first = next(i for i, text in enumerate(lines) if text.strip())
        out[first] = "#" + lines[first]
        magic.add(first + 1)
    continued = False
    for i, text in enumerate(lines):
        if i + 1 in magic:
            continue
        body = text.lstrip()
        candidate = continued or _LINE_MAGIC.match(body) or _HELP.fullmatch(body) or _ASSIGNED_MAGIC.match(body)
        if candidate and (continued or not _inside_statement(out[:i])):
            indent = text[: len(text) - len(body)]
            # An indented magic inside a block needs a statement; the continuation of a magic
            # (`!curl ... \` then an indented line) is only a comment.
            out[i] = indent + ("pass  #" if indent and not continued else "#") + body
            magic.add(i + 1)
            continued = body.rstrip().endswith("\\")
        else:
            continued = False
    return out, magic


def _cell_magic(lines: list[str]) -> Optional[str]:
    """The name of the cell magic on the first non-blank line (`script` for `%%script bash`), or None."""
    first = next((text for text in lines if text.strip()), "")
    match = _CELL_MAGIC.match(first)
    return match.group(1) if match else None


def _inside_statement(lines: list[str]) -> bool:
    """True when the next line continues an open bracket or string (so `% b` is Python, not a magic)."""
    if not lines:
        return False
    if lines[-1].rstrip().endswith("\\"):
        return True
    try:
        for _ in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            pass
    except tokenize.TokenError:
        return True
    except (SyntaxError, ValueError):
        return False
    return False


# ------------------------------------------------------------------ writing
def _apply(source: str, edits: list[Edit]) -> str:
    """Apply non-overlapping text edits (cell coordinates) to one cell's source, last first."""
    starts = [0]
    for match in _NEWLINE.finditer(source):
        starts.append(match.end())

    def offset(position: Position) -> int:
        return starts[position.line - 1] + position.column - 1

    accepted: list[tuple[int, int, str]] = []
    for e in sorted(edits, key=lambda e: (e.start.line, e.start.column)):
        begin, end = offset(e.start), offset(e.end)
        if accepted and begin < accepted[-1][1]:
            continue  # overlaps an earlier fix: the re-lint after writing reports it again
        accepted.append((begin, end, e.content))
    for begin, end, content in reversed(accepted):
        source = source[:begin] + content + source[end:]
    return source


def _layout(raw: dict, original: str):
    """A serialiser reproducing `original` byte for byte from `raw`, or None if there is none."""
    newline = original.find("\n")
    indent: Union[int, str, None] = None
    if newline >= 0:
        following = original[newline + 1:]
        whitespace = following[: len(following) - len(following.lstrip(" \t"))]
        indent = whitespace if "\t" in whitespace else len(whitespace)
    final = "\n" if original.endswith("\n") else ""
    for ensure_ascii in (False, True):
        def dumps(value, ensure_ascii=ensure_ascii):
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii) + final
        if dumps(raw) == original:
            return dumps
    return None


# ------------------------------------------------------- positions in the .ipynb file itself
# Why: GitHub annotations, SARIF viewers (code scanning) and GitLab Code Quality draw a finding on a
# line of the file as stored, and a notebook is stored as JSON. The cell-relative line of a finding is
# some unrelated line of that JSON (line 2 is `"cells": [`); the line to draw on is the one that holds
# the flagged code inside the cell's `source` strings (nbformat writes one source line per JSON line).

#: One JSON token: a string (unrolled loop, so a multi-megabyte output string is one C-level match),
#: punctuation, or a literal. Leading whitespace is skipped.
_JSON_TOKEN = re.compile(r'[ \t\r\n]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\]:,])|(true|false|null|-?[0-9][0-9.eE+-]*))',
                         re.S)
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


class JsonCells:
    """Maps (cell, line, column) in cell coordinates to (line, column) in the notebook's JSON text.

    Built from the raw text with a small tokenizer that remembers where each string of
    `cells[i].source` starts; a position inside a cell is found by walking that string's escapes
    (`\\n`, `\\"`, `\\u00e9`, surrogate pairs) so the column is exact on the JSON line too."""

    def __init__(self, text: str, sources: dict[int, list[tuple[int, str]]]) -> None:
        self.text = text
        self.sources = sources  # cell index -> [(offset of the opening quote, raw token)]
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    @classmethod
    def parse(cls, text: str) -> Optional["JsonCells"]:
        sources = _source_tokens(text)
        return None if sources is None else cls(text, sources)

    def cell_source(self, index: int) -> Optional[str]:
        tokens = self.sources.get(index)
        if tokens is None:
            return None
        return "".join(json.loads(raw) for _, raw in tokens)

    def position(self, index: int, line: int, column: int, end: bool = False) -> Optional[tuple[int, int]]:
        """The (1-based line, 1-based column) in the JSON text of a 1-based position in the cell at
        `index` of `cells` (0-based), or None when the cell has no such position. `end`: an exclusive
        end, which at the boundary of two source strings belongs to the first (before its quote)."""
        tokens = self.sources.get(index)
        if not tokens:
            return None
        decoded = [json.loads(raw) for _, raw in tokens]
        source = "".join(decoded)
        starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]
        if not 1 <= line <= len(starts):
            return None
        offset = starts[line - 1] + column - 1
        line_end = starts[line] if line < len(starts) else len(source)
        if column < 1 or offset > line_end:
            return None
        for (quote, raw), text in zip(tokens, decoded):
            if offset < len(text) or (offset == len(text) and (end or (quote, raw) == tokens[-1])):
                return self._line_column(quote + 1 + _raw_offset(raw, offset))
            offset -= len(text)
        return None

    def _line_column(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1


def _raw_offset(raw: str, decoded: int) -> int:
    """The offset inside the JSON string token `raw` (after its opening quote) of its `decoded`-th
    decoded character."""
    at, count = 1, 0
    while count < decoded and at < len(raw) - 1:
        if raw[at] == "\\":
            escape = _JSON_ESCAPE.match(raw, at)
            width = len(escape.group(0)) if escape else 2
            if escape and escape.group(1)[0] == "u" and 0xD800 <= int(escape.group(1)[1:], 16) < 0xDC00:
                low = _JSON_ESCAPE.match(raw, at + width)
                if low and low.group(1)[0] == "u" and 0xDC00 <= int(low.group(1)[1:], 16) < 0xE000:
                    width += len(low.group(0))  # a surrogate pair decodes to one character
            at += width
        else:
            at += 1
        count += 1
    return at - 1


def _source_tokens(text: str) -> Optional[dict[int, list[tuple[int, str]]]]:
    """For each cell index, where the strings of its `source` start in `text` (the opening quote's
    offset) and their raw tokens; None when `text` is not a JSON object this tokenizer follows."""
    # A stack of containers: [kind, key or index, state]; an object's state: "key", ":", "value", ","
    stack: list[list] = []
    found: dict[int, list[tuple[int, str]]] = {}
    at, done = 0, False
    while True:
        match = _JSON_TOKEN.match(text, at)
        if match is None:
            return found if done and not text[at:].strip() else None
        at = match.end()
        string, punct, literal = match.groups()
        if done:
            return None
        if string is not None and stack and stack[-1][0] == "obj" and stack[-1][2] == "key":
            try:
                stack[-1][1] = json.loads(string)
            except ValueError:
                return None
            stack[-1][2] = ":"
            continue
        if punct == ":":
            if not stack or stack[-1][0] != "obj" or stack[-1][2] != ":":
                return None
            stack[-1][2] = "value"
            continue
        if punct == ",":
            if not stack or stack[-1][2] != ",":
                return None
            if stack[-1][0] == "obj":
                stack[-1][2] = "key"
            else:
                stack[-1][1] += 1
                stack[-1][2] = "value"
            continue
        if punct in ("}", "]"):
            kind = "obj" if punct == "}" else "arr"
            if not stack or stack[-1][0] != kind or stack[-1][2] not in (",", "key" if kind == "obj" else "value"):
                return None
            stack.pop()
            done = _value_done(stack)
            continue
        # a value: string, literal, `{` or `[`
        if stack and stack[-1][2] != "value":
            return None
        if string is not None:
            where = _source_of(stack)
            if where is not None:
                index, listed = where
                if listed:
                    found.setdefault(index, []).append((match.start(1), string))
                else:
                    found[index] = [(match.start(1), string)]  # a later `source` wins, as in json.loads
            done = _value_done(stack)
        elif literal is not None:
            done = _value_done(stack)
        elif punct == "{":
            stack.append(["obj", None, "key"])
        elif punct == "[":
            where = _source_of(stack)
            if where is not None and not where[1]:
                found[where[0]] = []
            stack.append(["arr", 0, "value"])
        else:
            return None


def _source_of(stack: list[list]) -> Optional[tuple[int, bool]]:
    """(cell index, inside a list) when the next value is (part of) `cells[i].source`, else None."""
    if len(stack) not in (3, 4) or stack[0][0] != "obj" or stack[0][1] != "cells" or stack[1][0] != "arr":
        return None
    if stack[2][0] != "obj" or stack[2][1] != "source" or (len(stack) == 4 and stack[3][0] != "arr"):
        return None
    return stack[1][1], len(stack) == 4


def _value_done(stack: list[list]) -> bool:
    """Mark the innermost container's value as complete; True when that was the top-level value."""
    if not stack:
        return True
    stack[-1][2] = ","
    return False

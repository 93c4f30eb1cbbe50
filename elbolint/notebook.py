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
A cell that does not parse and shows no R or Julia syntax stays Python: it is ELB000. Those
judgements live in notebook_languages.py; where a cell's line sits in the `.ipynb` file's JSON (for
the reporters that draw on the stored file) in notebook_json.py.

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
from elbolint.notebook_json import NEWLINE as _NEWLINE
from elbolint.notebook_json import JsonCells as JsonCells  # re-exported: the reporters import it from here
from elbolint.notebook_languages import CodeCell, cell_language, foreign_kernel, other_runtime
from elbolint.source import Source

NOTEBOOK_SUFFIX = ".ipynb"

#: Cell magics whose body is still Python run by the kernel: only their first line is commented out.
#: Any other cell magic (`%%R`, `%%bash`, `%%script ...`, `%%writefile`, `%%html`, ...) is not Python.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "px"})

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


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _virtual(raw: dict) -> tuple[str, list[Span], list[Skipped]]:
    """The code cells concatenated into one module, where each cell's lines went, and what was
    left out as not Python."""
    reason = foreign_kernel(raw)
    if reason is not None:
        return "", [], [Skipped(None, reason)]
    skipped: list[Skipped] = []
    cells: list[CodeCell] = []
    for index, cell in enumerate(raw["cells"]):
        if cell.get("cell_type") != "code":
            continue
        lines = _NEWLINE.split(_cell_source(cell))
        if lines[-1] == "":
            lines.pop()
        if not lines:
            continue
        reason = cell_language(cell)
        if reason is not None:
            skipped.append(Skipped(index + 1, reason))
            continue
        lines, indent = _dedent(lines)
        commented, magic = _comment_magics(lines)
        if commented is None:
            skipped.append(Skipped(index + 1, f"`%%{_cell_magic(lines)}` cell, not Python"))
            continue
        cells.append(CodeCell(index, commented, indent, magic, _cell_syntax_error(commented)))
    other_runtime(cells)
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

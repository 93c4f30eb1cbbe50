"""`full`: each finding's `text` line, then the offending source line(s) with carets under the
span, in ruff's gutter layout:

    bad.py:5:31: ELB001 [unconstrained-scale] `scale` of tfd.Normal is a raw tf.Variable; ...
      |
    5 | q = tfd.Normal(loc=0.0, scale=tf.Variable(1.0))
      |                               ^^^^^^^^^^^^^^^^ ELB001
      |

The source is read lazily from `d.path` (see source_lines.py); when it cannot be shown (file gone,
not text, stdin, changed since the run) the finding is printed without a snippet. A notebook
finding shows the line of its cell. Tabs are shown as four spaces and wide characters count two
columns, so the carets stay under the span.
"""

from __future__ import annotations

import unicodedata

from elbolint.diagnostics import Diagnostic
from elbolint.reporters import text
from elbolint.reporters.source_lines import SourceLines

#: A span longer than this shows its first lines and then `...`.
MAX_LINES = 6
TAB = "    "


def render(diagnostics: list[Diagnostic]) -> str:
    sources = SourceLines()
    blocks = [_block(d, sources) for d in diagnostics]
    return "\n".join(blocks)


def _block(d: Diagnostic, sources: SourceLines) -> str:
    out = text.render([d])  # the header (and dynamic evidence) exactly as the text format prints it
    lines = sources.span(d)
    if lines is None:
        return out
    first, last = d.start.line, max(d.start.line, d.end.line)
    gutter = len(str(min(last, first + MAX_LINES - 1)))
    blank = " " * gutter + " |"
    rows = [blank]
    for offset, line in enumerate(lines[:MAX_LINES]):
        number = first + offset
        begin = d.start.column - 1 if number == first else len(line) - len(line.lstrip())
        end = d.end.column - 1 if number == last else len(line.rstrip())
        shown, begin_at, end_at = _display(line, begin, max(begin, end))
        rows.append(f"{number:>{gutter}} | {shown}".rstrip())
        if number != first and not line.strip():
            continue  # a blank line inside a multi-line span gets no caret
        if number == last or offset == MAX_LINES - 1:
            label = f" {d.code}"
        else:
            label = ""
        rows.append(f"{blank} {' ' * begin_at}{'^' * max(1, end_at - begin_at)}{label}")
    if len(lines) > MAX_LINES:
        rows.append(f"{' ' * gutter} | ...")
    rows.append(blank)
    return out + "\n".join(rows) + "\n"


def _display(line: str, begin: int, end: int) -> tuple[str, int, int]:
    """The line as shown (tabs expanded, control characters replaced) and the display columns of
    the character offsets `begin` and `end`."""
    shown, width = [], 0
    begin_at = end_at = None
    for index, char in enumerate(line):
        if index == begin:
            begin_at = width
        if index == end:
            end_at = width
        if char == "\t":
            piece = TAB
        elif unicodedata.category(char) == "Cc":
            piece = "\ufffd"
        else:
            piece = char
        shown.append(piece)
        width += sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in piece)
    begin_at = width if begin_at is None else begin_at
    end_at = width if end_at is None else end_at
    return "".join(shown), begin_at, end_at

"""Positions in a notebook's `.ipynb` file itself, for the reporters that draw on the stored file.

Why: GitHub annotations, SARIF viewers (code scanning) and GitLab Code Quality draw a finding on a
line of the file as stored, and a notebook is stored as JSON. The cell-relative line of a finding is
some unrelated line of that JSON (line 2 is `"cells": [`); the line to draw on is the one that holds
the flagged code inside the cell's `source` strings (nbformat writes one source line per JSON line).
Kept apart from notebook.py (which builds the virtual module and applies fixes) because only the
reporters need it, and it reads the JSON text with its own small tokenizer instead of `json.loads`.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Optional

#: The line breaks a cell's source is split on (notebook.py splits cells into lines the same way).
NEWLINE = re.compile(r"\r\n|\r|\n")

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
        starts = [0] + [m.end() for m in NEWLINE.finditer(source)]
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

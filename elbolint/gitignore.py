"""A small .gitignore matcher (patterns, `!` negation, `dir/` only, anchoring, `**`), so the core
keeps to LibCST and click. Semantics follow gitignore(5); the last matching pattern wins."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Pattern:
    base: Path
    regex: re.Pattern
    negated: bool
    directory_only: bool


def _translate(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = glob[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def parse_patterns(lines: list[str], base: Path) -> list[Pattern]:
    patterns = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        try:
            regex = re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z", re.S)
        except re.error:
            continue  # a pattern that cannot match anything (`[z-a]`): git skips it too
        patterns.append(Pattern(base, regex, negated, directory_only))
    return patterns


def invalid(lines: list[str]) -> list[tuple[str, str]]:
    """(pattern, why) for each pattern that cannot be used (a bad character range such as `[z-a]`):
    parse_patterns skips them; a configured exclude that is skipped deserves a message instead."""
    found = []
    for line in lines:
        text = line.strip().lstrip("!").strip("/")
        try:
            re.compile(_translate(text))
        except re.error as error:
            found.append((line, str(error).split(" at position")[0]))
    return found


def load(path: Path) -> list[Pattern]:
    try:
        return parse_patterns(path.read_text(encoding="utf-8", errors="replace").splitlines(), path.parent.absolute())
    except OSError:
        return []


def relative_to(absolute: str, base: Path) -> Optional[str]:
    """`absolute` (a normalised absolute path) relative to `base`, with `/` separators, or None when
    it is not below `base`. Plain string work: pathlib's relative_to was most of a 10,000-file
    discovery (one call per file and pattern)."""
    prefix = str(base)
    if not prefix.endswith(os.sep):
        prefix += os.sep
    if not absolute.startswith(prefix):
        return None
    relative = absolute[len(prefix):]
    return relative if os.sep == "/" else relative.replace(os.sep, "/")


def is_ignored(path: Path, is_dir: bool, patterns: list[Pattern]) -> bool:
    """Whether `path` is ignored by `patterns` (ordered from outermost file to innermost)."""
    ignored = False
    absolute = os.path.abspath(path)
    for pattern in patterns:
        if pattern.directory_only and not is_dir:
            continue
        relative = relative_to(absolute, pattern.base)
        if relative is None:
            continue
        if pattern.regex.match(relative):
            ignored = not pattern.negated
    return ignored

"""Triage: decide before LibCST parses a file that no selected rule can fire in it.

Why: LibCST's parse is about half the cost of a file, and most files that mention TensorFlow (the
prefilter in linter.py) contain nothing a rule starts from: a rule about a raw `tf.Variable` cannot
fire in a file that never says `Variable`, a rule about optimizers in a file that names none. Such
a file is not parsed with LibCST; CPython's `ast.parse` still gives its verdict (ELB000), and the
result is exactly the one the full parse would give (benchmarks/triage_parity.py proves it on every
corpus, tests/test_triage.py on the fixtures and hand-written cases).

The declarations live with the rules, never here: a rule (or the base class it shares with others)
sets `starts_from`, a tuple of groups; a group is a tuple of words. The rule can fire only in a file
that contains, for every group, at least one of its words as a whole word. A word is a plain
identifier (`"Variable"`, the last part of every spelling of `tf.Variable`: aliases such as `import
tensorflow as t`, `from tensorflow import Variable as V` or `tfd = tfp.distributions` rename the
module, never the member, and a star import still names the member where it is used) or a regular
expression of identifier characters (`"JointDistribution\\w*"`, `"(?i:adam|sgd)"`). A word may name
its kind: `keyword:x` (only as a call's keyword argument `x=`), `target:x` (only as a name assigned
by `x = ...`); in the text it is the word `x`. A rule that declares nothing (`starts_from = None`,
the default; a plugin's rule) always runs.

Two passes, each cheap: the words of the whole text (a regular expression), then, only for a file
that has the words, the words of its code (`code_words`: CPython's tree, already built for the
ELB000 verdict, without comments and docstrings; other strings count, `optimizer="adam"`). A file
that does not parse with CPython is never triaged away (LibCST's verdict may differ).

The same declarations also choose the rules of a file that is parsed (`firing`, asked by the
runner's worker before lint_file): a rule that cannot fire in the file's text is left out of the
traversal, so a file that only an optimizer rule starts from is not visited by the rules about raw
variables. The findings are the same: the rule left out finds nothing there by its declaration
(as for a file triaged away whole, a crash of that rule there is not met either).

`ELBOLINT_NO_TRIAGE=1` in the environment turns triage off, and with it the runner's prefilter in
the parent (runner.py): every file goes to a worker, every file that passes the prefilter is parsed
with LibCST by every selected rule. The parity script and the tests compare both.
"""

from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from typing import Any, Iterable, Optional, Sequence, TypeVar

#: Set (to anything but "" or "0") to parse every prefiltered file with LibCST.
DISABLE_VARIABLE = "ELBOLINT_NO_TRIAGE"

Declaration = Optional[tuple[tuple[str, ...], ...]]
_Rule = TypeVar("_Rule")

_WORD = re.compile(r"\w+")
#: A word of a kind: `keyword:x` (passed as `x=` to a call), `target:x` (assigned: `x = ...`).
_KIND = re.compile(r"(keyword|target):(.+)", re.S)


def disabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "") not in ("", "0")


def last_parts(qualified: Iterable[str]) -> tuple[str, ...]:
    """`{"tensorflow.Variable", "tensorflow.compat.v1.Variable"}` -> `("Variable",)`: how a rule
    turns the qualified names it matches into the words its declaration lists (sorted, once each)."""
    return tuple(sorted({name.rsplit(".", 1)[-1] for name in qualified}))


class Words:
    """The words of one file, as a set (plain words) and as one line each (for regular expressions).
    `code`: the words of its code (`code_words`), which also holds the kinds `keyword:` and `target:`."""

    __slots__ = ("words", "code", "_lines")

    def __init__(self, words: Iterable[str], code: bool = False) -> None:
        self.words = frozenset(words)
        self.code = code
        self._lines: Optional[str] = None

    @classmethod
    def of_text(cls, text: str) -> "Words":
        """The words of `text`. The last text's words are kept: the runner's worker asks them to
        choose a file's rules (`firing`) and the linter again, for the same text decoded a second
        time, before the parse (`any_can_fire`)."""
        last = _last_text
        if last is not None and last[0] == text:
            return last[1]
        words = cls(_WORD.findall(text))
        _remember(text, words)
        return words

    @property
    def lines(self) -> str:
        if self._lines is None:
            self._lines = "\n".join(self.words)
        return self._lines


_last_text: Optional[tuple[str, Words]] = None


def _remember(text: str, words: Words) -> None:
    global _last_text
    _last_text = (text, words)


class _Group:
    """One group of a declaration: its plain words as a set, its other words as one regex matched
    against whole words (a file's distinct words are far fewer than its characters); in two forms,
    for the text (a kind is dropped: `keyword:x` is the word `x`) and for the code."""

    __slots__ = ("text_plain", "text_pattern", "code_plain", "code_pattern")

    def __init__(self, words: tuple[str, ...]) -> None:
        text_plain, text_other, code_plain, code_other = set(), [], set(), []
        for word in words:
            typed = _KIND.fullmatch(word)
            kind, bare = (typed.group(1), typed.group(2)) if typed else ("", word)
            if _WORD.fullmatch(bare):
                text_plain.add(bare)
                code_plain.add(word)
            else:
                text_other.append(bare)
                code_other.append(f"{kind}:(?:{bare})" if kind else bare)
        self.text_plain, self.code_plain = frozenset(text_plain), frozenset(code_plain)
        self.text_pattern, self.code_pattern = _alternation(text_other), _alternation(code_other)

    def found(self, words: Words) -> bool:
        plain, pattern = (self.code_plain, self.code_pattern) if words.code else (self.text_plain, self.text_pattern)
        if not plain.isdisjoint(words.words):
            return True
        return pattern is not None and pattern.search(words.lines) is not None


def _alternation(fragments: list[str]) -> Optional[re.Pattern]:
    return re.compile(r"^(?:" + "|".join(fragments) + r")$", re.M) if fragments else None


@lru_cache(maxsize=512)
def _compiled(declaration: tuple[tuple[str, ...], ...]) -> tuple[_Group, ...]:
    return tuple(_Group(tuple(group)) for group in declaration)


def can_fire(text: str, declaration: Declaration, words: Optional[Words] = None) -> bool:
    """False only when `declaration` proves the rule cannot fire in `text` (or in `words`, the
    file's words when already known)."""
    if declaration is None:
        return True
    if words is None:
        words = Words.of_text(text)
    return all(group.found(words) for group in _compiled(declaration))


def firing(text: str, rules: Sequence[_Rule]) -> list[_Rule]:
    """The rules (classes with `starts_from`) that could fire in `text` by the words of the whole
    text, in their order; all of them when triage is off. Why: a file that one rule starts from need
    not be traversed by the others; a rule dropped here finds nothing in the full run either (its
    declaration says so), so the findings are the same."""
    if disabled():
        return list(rules)
    words = Words.of_text(text)
    return [rule for rule in rules if can_fire(text, getattr(rule, "starts_from", None), words)]


def any_can_fire(text: str, declarations: Iterable[Declaration], tree: Optional[ast.AST] = None) -> bool:
    """Whether any of the rules (given by their declarations) could fire in `text`; True when
    triage is off. Called with the text that would be parsed (a notebook's virtual module). With
    `tree`, CPython's tree of `text`, a file whose text has the words is read again without its
    comments and docstrings (`code_words`): a word only they mention cannot start a rule."""
    if disabled():
        return True
    declarations = list(dict.fromkeys(declarations))
    if any(declaration is None for declaration in declarations):
        return True
    words = Words.of_text(text)
    if not any(can_fire(text, declaration, words) for declaration in declarations):
        return False
    if tree is None:
        return True
    words = Words(code_words(tree), code=True)
    return any(can_fire(text, declaration, words) for declaration in declarations)


def code_words(tree: ast.AST) -> set[str]:
    """Every word of the code: names, attributes, keywords, imports, definitions, and the words of
    string constants, except strings that are a statement by themselves (docstrings: a rule never
    starts from one). Comments are not in the tree. Every string field of every node is read, so
    no kind of node is forgotten. (Depth first, a node before its children, as ast.walk's nodes but
    without its generators: an Expr is met before its value.)"""
    words: set[str] = set()
    statements: set[int] = set()  # ids of the constants that are a statement by themselves
    stack: list[Any] = [tree]  # (the node kinds are told apart by `type`, below)
    AST, Name, Attribute, Constant, Expr, keyword, Assign = (
        ast.AST, ast.Name, ast.Attribute, ast.Constant, ast.Expr, ast.keyword, ast.Assign)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Name:
            words.add(node.id)
        elif kind is Attribute:
            words.add(node.attr)
        elif kind is Constant:
            if type(node.value) is str and id(node) not in statements:
                words.update(_WORD.findall(node.value))
        elif kind is Expr:
            if type(node.value) is Constant:
                statements.add(id(node.value))
        elif kind is keyword:
            if node.arg is not None:
                words.update((node.arg, "keyword:" + node.arg))
        elif kind is Assign:
            words.update("target:" + target.id for target in node.targets if type(target) is Name)
            if node.type_comment:
                words.update(_WORD.findall(node.type_comment))
        else:
            for field in kind._fields:
                value = getattr(node, field, None)
                if type(value) is str:
                    words.update(_WORD.findall(value))
                elif type(value) is list:
                    for item in value:
                        if type(item) is str:
                            words.update(_WORD.findall(item))
        for field in kind._fields:  # the children, as ast.iter_child_nodes finds them
            value = getattr(node, field, None)
            if isinstance(value, AST):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, AST))
    return words

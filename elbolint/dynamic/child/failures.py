"""Whose failure is it? Turning an exception raised while a model ran into a reason at the user's
line, and telling the user's own failure (ELB100: "the program fails on its own at file:line") from
the environment's (a package that is not installed, a download in the offline sandbox) and from
elbolint's own (a seam of ours that broke): those two leave the findings `not-run`, never an error.

Why a module of its own: every driver and the runner ask these questions, and the answers are a
traceback heuristic (which frame is the deepest: the user's file or elbolint's) that should live in
one place, apart from the fitting code.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from types import FrameType
from typing import Optional

_EMBEDDED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$", re.M)


def exception_text(error: BaseException) -> str:
    raw = str(error)
    if "Traceback (most recent call last)" in raw:
        # an error that embeds other tracebacks (TFP's "Attempted to detect if <fn> requires a
        # `seed`, but failed ..."): the innermost error is the one that says what went wrong
        inner = _EMBEDDED.findall(raw)
        if inner:
            kind, message = inner[-1]
            raw = f"{message.strip()} (raised as {type(error).__name__}: {raw.splitlines()[0][:120]})"
            return _short(f"{kind.rsplit('.', 1)[-1]}: {raw}")
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(raw.split()))
    if len(text) > 600:
        text = text[:600] + " ..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _short(text: str) -> str:
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(text.split()))
    return text[:600] + " ..." if len(text) > 600 else text


def user_line(error: BaseException, path: str) -> Optional[int]:
    """The deepest line of the user's file in the traceback (where their code went wrong); for an
    error raised while handling another (TFP re-raises the target's own error wrapped, with its
    traceback as text), the innermost error's line."""
    path = os.path.abspath(path)
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for inner in reversed(chain):  # innermost first
        line = None
        for frame in traceback.extract_tb(inner.__traceback__):
            if os.path.abspath(frame.filename) == path:
                line = frame.lineno
        embedded = re.findall(rf'File "{re.escape(path)}", line ([0-9]+)', str(inner))
        if embedded:
            return int(embedded[-1])
        if line is not None:
            return line
    return None


def user_frame(path: str) -> Optional[FrameType]:
    """The innermost frame of the user's file on the current stack, or None."""
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) == path:
            return frame
        frame = frame.f_back
    return None


def caller_line(path: str) -> Optional[int]:
    frame = user_frame(path)
    return frame.f_lineno if frame is not None else None


def blame(error: BaseException, path: str) -> str:
    """"user" when the user's own code raised `error` (the deepest elbolint frame of the traceback
    is above the deepest frame of the user's file, or there is none), else "harness": elbolint's
    own code failed while driving the file (a check of ours, a bug)."""
    user = mine = -1
    package = os.path.dirname(os.path.abspath(__file__))
    for index, frame in enumerate(traceback.extract_tb(error.__traceback__)):
        name = os.path.abspath(frame.filename)
        if name == path:
            user = index
        elif name.startswith(package + os.sep):
            mine = index
    return "user" if user >= 0 and user > mine else "harness"


def raised_by_elbolint(error: BaseException) -> bool:
    """The exception was raised by elbolint's own code itself (its deepest frame is ours)."""
    frames = traceback.extract_tb(error.__traceback__)
    package = os.path.dirname(os.path.abspath(__file__))
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(package + os.sep)


NOTEBOOK_MODULE = re.compile(r"^elbolint_notebook_[0-9]+\.py$")


def user_failure(error: BaseException, path: str, fallback_line: Optional[int] = None) -> dict:
    """The trace's `failure` for a program that fails on its own: the user's file:line and the
    exception, as ELB100 reports it."""
    line = user_line(error, path) or fallback_line
    text = exception_text(error)
    name = os.path.basename(path)
    if NOTEBOOK_MODULE.match(name):  # a notebook's scratch module: the row's cell:line says where
        where = "the notebook fails on its own"
    else:
        where = f"the program fails on its own at {name}:{line}" if line else \
            f"the program fails on its own ({name})"
    return {"kind": "exception", "line": line, "exception": text, "message": f"{where}: {text}"}


def missing_package(error: BaseException) -> Optional[str]:
    """The not-installed top-level package behind a ModuleNotFoundError (the environment, not the
    program), else None."""
    name = error.name if isinstance(error, ModuleNotFoundError) else None
    return name.split(".")[0] if name else None


def needs_network(error: BaseException) -> Optional[str]:
    """What a failure to reach the network says (a dataset download: `tfds.load`,
    `keras.datasets.cifar10.load_data()`), else None. Where the data cannot be fetched, that is the
    environment, not the program: the findings are not-run, never ELB100."""
    import socket
    import urllib.error

    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (urllib.error.URLError, socket.gaierror, socket.timeout, ConnectionError)):
            return exception_text(current)
        text = str(current)
        if "URL fetch failure" in text or "Temporary failure in name resolution" in text:
            return exception_text(current)
        current = current.__cause__ or current.__context__
    return None


def missing_imports(source: str) -> list[tuple[str, int]]:
    """Every top-level package the file imports at module level (also under `if __name__ ==
    "__main__":` and other module-level blocks, not in functions, not in a `try` that handles
    ImportError) that cannot be found, as (package, line), read statically with `ast` before the
    file runs (so all missing packages are named at once, not one per run). Finding a package's
    spec imports nothing of the user's; relative imports and `__future__` are skipped."""
    import ast
    import importlib.util

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[tuple[str, int]] = []

    def handles_import_error(node: ast.Try) -> bool:
        for handler in node.handlers:
            names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
            if handler.type is None or any(isinstance(n, ast.Name) and n.id in (
                    "ImportError", "ModuleNotFoundError", "Exception", "BaseException") for n in names):
                return True
        return False

    def visit(statements) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                names = []
            for name in names:
                top = name.split(".")[0]
                if top == "__future__" or any(top == seen for seen, _ in found):
                    continue
                try:
                    missing = importlib.util.find_spec(top) is None
                except (ImportError, ValueError):
                    missing = True
                if missing:
                    found.append((top, node.lineno))
            if isinstance(node, ast.Try) and handles_import_error(node):
                continue
            if isinstance(node, (ast.If, ast.With, ast.For, ast.While, ast.Try)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []) or [])
                for handler in getattr(node, "handlers", []) or []:
                    visit(handler.body)

    visit(tree.body)
    return found

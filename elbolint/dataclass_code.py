"""Keep the code `@dataclass` compiles for its generated methods between runs, as a `.pyc` keeps a module's.

Why: importing LibCST took 0.13 s of a one-file run's 0.34 s, and more than half of that is not
LibCST's own code: for each of its ~200 node classes the standard library's `dataclasses` writes the
source of `__init__`, `__repr__`, `__eq__`, `__setattr__`, `__delattr__` and `__hash__` as text and
compiles it with `exec` (about 620 texts). Those texts are the same on every run of the same
installation, so their compiled code objects are kept in the user's cache directory (beside the rule
index, user_cache.py), in `marshal` format, the format of `.pyc` files; a later run
executes the kept code instead of compiling the text again. Measured on a quiet 2-core machine:
`import libcst` 0.13 s -> 0.06 s.

How: while `generated_code()` is active, the name `exec` in the `dataclasses` module (looked up in
the module's globals before the builtins) is a function that, given a text, takes its compiled code
from the store (else compiles it and remembers it) and then calls the builtin `exec` with it. Nothing
of `dataclasses` is re-implemented, so this holds for any Python version:

- `exec(text, globals, locals)` is `exec(compile(text, "<string>", "exec"), globals, locals)` with
  the compiler flags of the calling code; `dataclasses` has no `from __future__` import, so the text
  is compiled with `dont_inherit=True` (none of this module's flags). The store is keyed by the text
  itself, so a kept code object is exactly what compiling that text gives (tests/test_startup_stores.py
  compares the methods built both ways).
- The file is named by the interpreter's bytecode magic number (`importlib.util.MAGIC_NUMBER`), as a
  `.pyc` is: another Python never reads it. It is written atomically (a temporary file renamed over
  it), only when a run compiled a text the store did not have, and then holds exactly the texts that
  run executed (an edited dataclass or a new LibCST leaves nothing stale behind); a damaged or
  unreadable file is ignored (a CRC-32 follows the marshal data: kept bytecode with a flipped bit
  can crash the interpreter, so a file damaged after writing is recompiled, never executed), an
  unwritable directory costs only the saving.
- The patch exists only inside the `with` block (the imports of the rules and LibCST, at a run's
  start); the module attribute is removed afterwards, so user code and other libraries in the process
  see the standard library untouched (a dataclass another thread made meanwhile would get the same
  methods either way). Like the rule index, the store holds nothing from the
  user's project, so `--no-cache` does not turn it off.
"""

from __future__ import annotations

import builtins
import marshal
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from elbolint.user_cache import directory, save

@contextmanager
def generated_code(store: str) -> Iterator[None]:
    """Within the block, `@dataclass` takes its generated methods' code from the store named `store`
    (one per group of modules imported together, so a run that needs only the engine's modules does
    not read LibCST's ~800 KB)."""
    import dataclasses

    if hasattr(dataclasses, "exec"):
        yield  # already active (a nested call) or someone else's patch: leave it alone
        return
    path = store_path(store)
    known = _read(path) if path is not None else {}
    used: dict[str, Any] = {}  # what this block executed, taken from the store or compiled
    fresh = False

    def cached_exec(source, globals=None, locals=None, /):
        nonlocal fresh
        if isinstance(source, str):
            code = known.get(source)
            if code is None:
                code = compile(source, "<string>", "exec", dont_inherit=True)
                fresh = True
            used[source] = code
            source = code
        return builtins.exec(source, globals, locals)

    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del dataclasses.exec  # type: ignore[attr-defined]
        if fresh and path is not None:  # (what an older installation needed is not kept: no growth)
            _write(path, used)


def store_path(store: str) -> Optional[Path]:
    """`<cache directory>/dataclass-code-<store>-<magic>.marshal`, None without a cache directory."""
    from importlib.util import MAGIC_NUMBER

    folder = directory()
    return None if folder is None else folder / f"dataclass-code-{store}-{MAGIC_NUMBER.hex()}.marshal"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
        if len(data) < 8 or data[-4:] != _TAG or zlib.crc32(data[:-8]) != int.from_bytes(data[-8:-4], "little"):
            return {}  # absent, cut short, damaged (a flipped bit in kept bytecode can crash the interpreter)
        texts = marshal.loads(data[:-8])  # (marshal.load on a file reads it in tiny pieces: 10x slower)
    except (OSError, EOFError, ValueError, TypeError, SystemError):  # absent, damaged, another format
        return {}
    if not isinstance(texts, dict):
        return {}
    code_type = type(_read.__code__)
    return {text: code for text, code in texts.items() if isinstance(text, str) and isinstance(code, code_type)}


def _write(path: Path, texts: dict[str, Any]) -> None:
    """The marshal data, then its CRC-32 and a tag (8 bytes `marshal.loads` ignores): a file damaged
    after it was written is recompiled, not executed (about 0.2 ms over LibCST's 800 KB)."""
    data = marshal.dumps(texts)
    save(path, data + zlib.crc32(data).to_bytes(4, "little") + _TAG, "dataclass-code-*.marshal", keep=16)


#: Ends a file written with its checksum.
_TAG = b"ELBc"

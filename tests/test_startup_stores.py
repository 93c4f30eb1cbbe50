"""What elbolint keeps in the user's cache directory to start faster changes no answer: the compiled
code of `@dataclass` methods (elbolint/dataclass_code.py) gives the methods compiling gives, and the
remembered digest of elbolint's sources (cache._sources_digest) is the digest reading them gives, and
is not used once a file changes."""

from __future__ import annotations

import dataclasses
import hashlib
import marshal
import subprocess
import sys
from pathlib import Path

from elbolint import cache, dataclass_code

SOURCE = '''
import dataclasses
from typing import Optional

@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int
    y: "Optional[int]" = None
    tags: tuple = dataclasses.field(default_factory=tuple)

@dataclasses.dataclass
class Box:
    corner: Point
    label: str = "box"
'''


def _methods(namespace: dict) -> dict:
    found = {}
    for cls_name in ("Point", "Box"):
        cls = namespace[cls_name]
        for name, value in vars(cls).items():
            code = getattr(value, "__code__", None)
            if code is not None:
                found[f"{cls_name}.{name}"] = (code.co_code, code.co_consts, code.co_names, code.co_varnames,
                                               code.co_filename, code.co_flags, value.__annotations__,
                                               value.__defaults__)
    return found


def _build(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<classes>", "exec"), namespace)
    return namespace


def test_kept_code_builds_the_methods_compiling_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plain = _build(SOURCE)
    with dataclass_code.generated_code("test"):  # compiles and stores
        first = _build(SOURCE)
    stored = dataclass_code.store_path("test")
    assert stored is not None and stored.exists()
    texts = marshal.loads(stored.read_bytes())
    assert any("def __init__" in text for text in texts)
    with dataclass_code.generated_code("test"):  # takes every text from the store
        second = _build(SOURCE)
    assert _methods(plain) == _methods(first) == _methods(second)
    assert len(_methods(plain)) >= 8
    point = second["Point"](1, 2)
    assert repr(point) == "Point(x=1, y=2, tags=())" and point < second["Point"](1, 3)
    assert point == second["Point"](1, 2) and hash(point) == hash(second["Point"](1, 2))
    assert not hasattr(dataclasses, "exec")  # the standard library is itself again


def test_a_damaged_store_is_ignored_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stored = dataclass_code.store_path("test")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x00not marshal")
    with dataclass_code.generated_code("test"):
        built = _build(SOURCE)
    assert built["Box"](built["Point"](0)).label == "box"
    assert marshal.loads(stored.read_bytes())  # written again, whole


def test_no_cache_directory_still_builds(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "missing" / "home"))
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "home").write_text("a file, not a folder")  # the directory cannot be made
    with dataclass_code.generated_code("test"):
        built = _build(SOURCE)
    assert _methods(built) == _methods(_build(SOURCE))


def test_libcst_imported_with_kept_code_parses_and_prints_the_same(tmp_path):
    """Import LibCST in fresh interpreters (storing, then reading), parse and print a file."""
    probe = ("import sys\nfrom elbolint.dataclass_code import generated_code\nwith generated_code('test'):\n"
             "    import libcst\nm = libcst.parse_module(open(sys.argv[1]).read())\n"
             "print(m.code == open(sys.argv[1]).read(), m.body[0].deep_equals(m.body[0]), "
             "repr(libcst.Name('x')))\n")
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    target = str(Path(__file__).resolve().parents[1] / "examples" / "bayesian_regression.py")
    outputs = [subprocess.run([sys.executable, "-c", probe, target], env=env, capture_output=True, text=True,
                              timeout=120) for _ in range(2)]
    assert [o.stdout for o in outputs] == ["True True Name(\n    value='x',\n    lpar=[],\n    rpar=[],\n)\n"] * 2, \
        [o.stderr for o in outputs]
    [stored] = (tmp_path / "elbolint").glob("dataclass-code-test-*.marshal")
    assert len(marshal.loads(stored.read_bytes())) > 500  # LibCST's node classes


def test_the_remembered_source_digest_is_the_read_one_and_follows_edits(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    files = []
    for index in range(3):
        path = tmp_path / f"m{index}.py"
        path.write_text(f"x = {index}\n")
        files.append(path)
    monkeypatch.setattr(cache, "_code_files", lambda: list(files))

    def read_digest() -> str:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def digest() -> str:
        cache._sources_digest.cache_clear()
        return cache._sources_digest()

    try:
        assert digest() == read_digest()  # read, then remembered
        assert len(list((tmp_path / "xdg" / "elbolint").glob("sources-*"))) == 1
        memo = next((tmp_path / "xdg" / "elbolint").glob("sources-*"))
        memo.write_text("f" * 64)  # a remembered value is really what is used ...
        assert digest() == "f" * 64
        files[1].write_text("x = 9\n")  # ... until a file changes: then it is read again
        assert digest() == read_digest() != "f" * 64
        files.append(tmp_path / "gone.py")  # a missing file counts by its name
        assert digest() == hashlib.sha256(b"".join(p.read_bytes() for p in files[:3]) + str(files[3]).encode()
                                          ).hexdigest()
    finally:
        cache._sources_digest.cache_clear()


def test_the_store_keeps_only_what_the_last_writing_run_executed(tmp_path, monkeypatch):
    """An edited dataclass (or a new LibCST) leaves no stale text behind: the store cannot grow."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with dataclass_code.generated_code("test"):
        _build(SOURCE)
    stored = dataclass_code.store_path("test")
    before = marshal.loads(stored.read_bytes())
    assert any("label" in text for text in before)
    edited = SOURCE.replace("label", "caption")
    with dataclass_code.generated_code("test"):
        _build(edited)
    after = marshal.loads(stored.read_bytes())
    assert any("caption" in text for text in after) and not any("label" in text for text in after)
    assert len(after) == len(before)
    with dataclass_code.generated_code("test"):  # everything from the store: not written again
        _build(edited)
    assert marshal.loads(stored.read_bytes()) == after


def test_the_hash_of_every_run_is_hashlib_s_sha256():
    """Fingerprints and keys use Python's own SHA-256 (no OpenSSL to load): the same digests, so
    caches and rule indexes written before keep their names."""
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        digest = cache._sha256()
        digest.update(data)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert cache.content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()

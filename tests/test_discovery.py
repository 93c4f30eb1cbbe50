"""File discovery: recursion, default excludes, --exclude, .gitignore like ruff, explicit files."""

from __future__ import annotations

from pathlib import Path

from elbolint.config import Config
from elbolint.discovery import Missing, discover
from elbolint.gitignore import is_ignored, parse_patterns

SRC = "import tensorflow\n"


def tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SRC)


def found(root: Path, paths=None, **config) -> list[str]:
    cfg = Config(root=root, **config)
    items = discover(paths or [root], cfg)
    return sorted(
        item.path.as_posix() if isinstance(item, Missing) else item.relative_to(root).as_posix()
        for item in items
    )


def test_recursion_suffixes_and_default_excludes(tmp_path):
    tree(tmp_path, ["a.py", "pkg/b.py", "pkg/c.pyi", "pkg/notes.txt", ".venv/lib/x.py", "venv/y.py",
                    "build/z.py", "pkg/__pycache__/w.py", "node_modules/m.py", ".tox/t.py", "x.egg-info/e.py"])
    assert found(tmp_path) == ["a.py", "pkg/b.py", "pkg/c.pyi"]


def test_gitignore_is_honoured(tmp_path):
    (tmp_path / ".git").mkdir()
    tree(tmp_path, ["keep.py", "generated/gen.py", "models/tmp_model.py", "models/real.py",
                    "models/sub/tmp_keep.py", "notebooks/nb.py"])
    (tmp_path / ".gitignore").write_text("generated/\ntmp_*.py\n# comment\n/notebooks\n")
    (tmp_path / "models" / "sub" / ".gitignore").write_text("!tmp_keep.py\n")
    assert found(tmp_path) == ["keep.py", "models/real.py", "models/sub/tmp_keep.py"]
    # From a subdirectory, the repository's .gitignore above still applies.
    assert found(tmp_path, [tmp_path / "models"]) == ["models/real.py", "models/sub/tmp_keep.py"]
    assert "generated/gen.py" in found(tmp_path, respect_gitignore=False)


def test_explicit_files_are_always_linted(tmp_path):
    (tmp_path / ".git").mkdir()
    tree(tmp_path, ["build/explicit.py"])
    (tmp_path / ".gitignore").write_text("*.py\n")
    assert found(tmp_path, [tmp_path / "build" / "explicit.py"]) == ["build/explicit.py"]


def test_exclude_and_extend_exclude(tmp_path):
    tree(tmp_path, ["a.py", "legacy/old.py", "build/b.py", "deep/legacy/x.py", "src/gen/g.py"])
    assert found(tmp_path, extend_exclude=["legacy"]) == ["a.py", "src/gen/g.py"]
    assert found(tmp_path, exclude=["src/gen"]) == ["a.py", "build/b.py", "deep/legacy/x.py", "legacy/old.py"]


def test_missing_paths_and_duplicates(tmp_path):
    tree(tmp_path, ["a.py"])
    items = list(discover([tmp_path / "a.py", tmp_path, tmp_path / "nope.py"], Config(root=tmp_path)))
    assert [type(i).__name__ for i in items] == ["PosixPath", "Missing"]


def test_gitignore_pattern_semantics(tmp_path):
    patterns = parse_patterns(["**/cache/", "docs/*.py", "!docs/keep.py", "a?.py", "[xy]z.py"], tmp_path)
    assert is_ignored(tmp_path / "one" / "two" / "cache", True, patterns)
    assert not is_ignored(tmp_path / "cache", False, patterns)  # directory-only pattern
    assert is_ignored(tmp_path / "docs" / "conf.py", False, patterns)
    assert not is_ignored(tmp_path / "docs" / "keep.py", False, patterns)
    assert not is_ignored(tmp_path / "sub" / "docs" / "conf.py", False, patterns)  # anchored
    assert is_ignored(tmp_path / "ab.py", False, patterns)
    assert is_ignored(tmp_path / "deep" / "yz.py", False, patterns)
    assert not is_ignored(tmp_path / "zz.py", False, patterns)

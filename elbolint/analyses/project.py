"""What a file can know of the project it belongs to, read as text (never imported).

Why: VI is often split over modules — the model and its KL in `models.py`, the optimizer and the
loop in `train.py`. A linter that reads one file at a time then judges `train.py`'s optimizer as
driving nothing. Reading the imported module's text for signs of VI (a KL term, variational
layers, a VI fit, an ELBO) is cheap and safe: only modules of the same project count (a file or
package beside the linted file, or up to three folders above it), never installed packages.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

#: Packages that are never the project's own: their functions are known, and not read as text.
KNOWN_PACKAGES = ("tensorflow", "tensorflow_probability", "keras", "tf_keras", "functools", "itertools",
                  "copy", "collections", "contextlib", "typing", "numpy", "math", "builtins")

#: Signs of VI in a module's source, read as text (never imported): a KL term, variational
#: layers, a VI fit, an ELBO.
VI_TEXT = re.compile(r"kl_divergence|KLDivergence|Flipout|DenseVariational|Reparameterization\b|"
                      r"fit_surrogate_posterior|\belbo\b|\bELBO\b|surrogate_posterior")


def project_module_does_vi(path: Optional[Path], qualified: str) -> bool:
    """Whether the module that `qualified` (`model.get_model`, `mypkg.nets.bayes.build`) comes from,
    imported by the file at `path`, is a module of the same project (beside the file or up to three
    folders above it) whose own source shows VI. Only that module's file is read (the longest dotted
    prefix that is a file, or a package's `__init__.py`), never a whole package: a GAN imported from
    a package that also has a VAE somewhere is not VI."""
    return ProjectModules(path).does_vi(qualified)


class ProjectModules:
    """`project_module_does_vi` for the file at `path`, remembering for the length of one lint of
    that file where its folders are and which top-level names they hold. Why: a file asks about
    many names with the same first part (`os.path.join`, `os.makedirs`), and each question
    resolved the file's path and looked for `os.py` and `os/` in four folders again (thousands of
    failed stats on a monorepo, profiled). The answers are the function's, asked of the same
    folders; nothing is kept once the file's analysis is done."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._folders: Optional[list[Path]] = None
        self._homes: dict[str, Optional[Path]] = {}  # first part -> the first folder that has it

    def does_vi(self, qualified: str) -> bool:
        parts = qualified.split(".")
        if self.path is None or parts[0] in KNOWN_PACKAGES:
            return False
        folder = self._home(parts[0])
        if folder is None:
            return False
        for size in range(len(parts), 0, -1):
            base = folder.joinpath(*parts[:size])
            for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
                if candidate.is_file():
                    return _source_shows_vi(candidate)
        return False

    def _home(self, head: str) -> Optional[Path]:
        if head in self._homes:
            return self._homes[head]
        if self._folders is None:
            assert self.path is not None
            self._folders = list(self.path.resolve().parents)[:4]
        home = next((folder for folder in self._folders
                     if (folder / f"{head}.py").exists() or (folder / head).is_dir()), None)
        self._homes[head] = home
        return home


@lru_cache(maxsize=256)
def _source_shows_vi(location: Path) -> bool:
    try:
        return bool(VI_TEXT.search(location.read_text(encoding="utf-8", errors="replace")[:500_000]))
    except OSError:
        return False

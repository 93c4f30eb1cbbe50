"""The lint options of the command line, declared once: `elbolint check`'s parameters, the top-level
`elbolint --help` (which shows them, as ruff's does), and the one value the check runs from.

Why a module of its own: `check` took thirty parameters one by one and was the most complex function
of the project. Here each option is declared with its help text (`LINT_OPTIONS`), click fills a
`LintOptions` from them, and cli.py runs the check from that one value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import click

from elbolint.config import did_you_mean
from elbolint.reporters import FORMATS


class Choice(click.Choice):
    """click.Choice that names the nearest choice: `--output-format jsn` -> did you mean `json`?"""

    def get_invalid_choice_message(self, value, ctx) -> str:
        return super().get_invalid_choice_message(value, ctx) + did_you_mean(str(value), self.choices).replace(
            "; did", " Did", 1)


@dataclass
class LintOptions:
    """What `elbolint check` was asked to do (the command line's values, before the configuration)."""

    paths: tuple[Path, ...] = ()
    select: Optional[str] = None
    extend_select: Optional[str] = None
    ignore: Optional[str] = None
    config_path: Optional[Path] = None
    exclude: Optional[str] = None
    extend_exclude: Optional[str] = None
    no_respect_gitignore: bool = False
    force_exclude: bool = False
    output_format: str = "text"
    output_file: Optional[Path] = None
    exit_zero: bool = False
    fix: bool = False
    unsafe_fixes: bool = False
    unfixable: Optional[str] = None
    diff: bool = False
    no_cache: bool = False
    cache_dir: Optional[Path] = None
    stdin_filename: Optional[str] = None
    quiet: bool = False
    statistics: bool = False
    show_files: bool = False
    show_settings: bool = False
    dynamic: bool = False
    dynamic_scope: str = "flagged"
    dynamic_steps: Optional[int] = None
    dynamic_seeds: Optional[int] = None
    dynamic_timeout: Optional[float] = None
    dynamic_memory: Optional[int] = None
    dynamic_logdir: Optional[Path] = None
    python_path: Optional[Path] = None
    jobs: Optional[int] = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "LintOptions":
        """From click's parameters (named as the fields are)."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in params.items() if name in known})

    @property
    def use_stdin(self) -> bool:
        return self.stdin_filename is not None or list(self.paths) == [Path("-")]

    @property
    def paths_or_here(self) -> list[Path]:
        return list(self.paths) or [Path(".")]

    @property
    def human_output(self) -> bool:
        """A format for people (a summary line follows it on stderr)."""
        return self.output_format in ("text", "concise", "full")

    def dynamic_settings(self) -> dict[str, Any]:
        """The command line's dynamic settings that were given (the configuration supplies the rest)."""
        settings = {
            "scope": self.dynamic_scope, "steps": self.dynamic_steps, "seeds": self.dynamic_seeds,
            "timeout": self.dynamic_timeout, "memory_mib": self.dynamic_memory, "python": self.python_path,
            "jobs": self.jobs,
        }
        return {key: value for key, value in settings.items() if value is not None}


LINT_OPTIONS: tuple[Callable, ...] = (
    click.option("--select", help="Comma-separated codes or prefixes to enable (replaces the config's)."),
    click.option("--extend-select", help="Codes or prefixes to enable in addition."),
    click.option("--ignore", help="Codes or prefixes to disable."),
    click.option("--config", "config_path", type=click.Path(path_type=Path),
                 help="pyproject.toml (or a TOML file with the same keys) to use instead of searching."),
    click.option("--exclude", help="Comma-separated patterns replacing the default excludes."),
    click.option("--extend-exclude", help="Comma-separated patterns to exclude in addition."),
    click.option("--no-respect-gitignore", is_flag=True, help="Lint files that .gitignore ignores."),
    click.option("--force-exclude", is_flag=True,
                 help="Apply the excludes to files named on the command line too (use it in pre-commit hooks)."),
    click.option("--output-format", type=Choice(FORMATS), default="text", show_default=True),
    click.option("-o", "--output-file", type=click.Path(path_type=Path), help="Write the report here."),
    click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings."),
    click.option("--fix", is_flag=True, help="Apply the available fixes (atomically) and report the rest."),
    click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that change what the code computes."),
    click.option("--unfixable", help="Comma-separated codes or prefixes whose fixes are never applied."),
    click.option("--diff", is_flag=True,
                 help="Print the fixes as a unified diff instead of writing them; exit 1 if any file would change."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the cache (.elbolint_cache/)."),
    click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                 help="Where the cache lives (default: .elbolint_cache/ at the project root)."),
    click.option("--stdin-filename", help="Read the source from stdin and report it under this name."),
    click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr."),
    click.option("--statistics", is_flag=True,
                 help="Print the number of findings per code instead of the findings."),
    click.option("--show-files", is_flag=True,
                 help="Print the files that would be linted (and, on stderr, the notebook cells that are not "
                      "Python), and exit."),
    click.option("--show-settings", is_flag=True,
                 help="Print the resolved configuration and where it came from, and exit."),
    click.option("--dynamic", "dynamic", is_flag=True,
                 help="Also run flagged models briefly in a sandbox to confirm findings "
                      "(needs the [dynamic] extra: TensorFlow, TFP, tf-keras)."),
    click.option("--dynamic-scope", type=Choice(["flagged", "all"]), default="flagged",
                 help="`--dynamic=all` runs every file that builds a TFP surrogate or model."),
    click.option("--dynamic-steps", type=click.IntRange(1, 100000), default=None,
                 help="Steps per fit when the file states no num_steps (default 200); "
                      "a fit's own num_steps is followed up to max(this, max-steps)."),
    click.option("--dynamic-seeds", type=click.IntRange(1, 100), default=None,
                 help="Seeds per run: each fit from the same initial values, and a loop's or Keras fit's "
                      "program replayed, once per seed (default 4)."),
    click.option("--dynamic-timeout", type=click.FloatRange(1, 3600), default=None,
                 help="Seconds per file (default 60)."),
    click.option("--dynamic-memory", type=click.IntRange(64, 1 << 20), default=None,
                 help="Memory cap per file in MiB (default 4096)."),
    click.option("--dynamic-logdir", type=click.Path(path_type=Path), default=None,
                 help="Also write TensorBoard event files of every dynamic run here "
                      "(`tensorboard --logdir DIR`; one run per file, training site, seed and variant)."),
    click.option("--python", "python_path", type=click.Path(path_type=Path), default=None,
                 help="Interpreter that runs the models (default: the current one)."),
    click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
                 help="Parallel workers for linting and dynamic runs (default: the number of cores)."),
)


def lint_options(function: Callable) -> Callable:
    """Decorate a click command with PATHS and every lint option, in the order of `--help`."""
    for option in reversed(LINT_OPTIONS):
        function = option(function)
    return click.argument("paths", nargs=-1, type=click.Path(path_type=Path))(function)

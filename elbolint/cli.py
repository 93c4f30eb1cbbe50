"""The command line: `elbolint [check] PATH...`, `elbolint rule CODE`, `elbolint server`.

Exit codes: 0 no findings, 1 findings, 2 usage or configuration error (never a traceback).

A run imports only what it needs, because a pre-commit hook starts elbolint for a file or two: the
lint options are declared in options.py, the known codes come from rule_index.py (no rule imported),
the runner, the worker machinery, LibCST and the rules only when a file must be parsed, one reporter
(the chosen format's). Check a change with `python -X importtime -m elbolint check FILE`.
"""

from __future__ import annotations

import atexit
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import click

from elbolint import __version__
from elbolint.dataclass_code import generated_code

with generated_code("engine"):  # their ~50 dataclass methods: elbolint/dataclass_code.py
    from elbolint.config import Config, ConfigError, did_you_mean, find_config_file, load_config, validate_codes
    from elbolint.diagnostics import Diagnostic, Severity
    from elbolint.options import LintOptions, lint_options


if TYPE_CHECKING:
    from elbolint.linter import FileResult
    from elbolint.reporters.html_curves import Evidence


def _nearest_option(name: str, possibilities) -> str:
    """`; did you mean `--select`?` for `--selct`: the nearest option by its name without dashes
    (ratio >= 0.6, so `--bogus` is not taken for `--jobs` as click would), or one it abbreviates."""
    from difflib import SequenceMatcher

    typed = name.lstrip("-")
    scored = [(SequenceMatcher(None, typed, option.lstrip("-")).ratio(), option)
              for option in sorted(possibilities or [])]
    scored = [(score, option) for score, option in scored
              if score >= 0.6 or (len(typed) >= 3 and option.lstrip("-").startswith(typed))]
    if not scored:
        return ""
    return f"; did you mean `{max(scored, key=lambda item: item[0])[1]}`?"


class DefaultGroup(click.Group):
    """A click group that runs `check` when the first argument is not a subcommand, and reports a
    usage error (an unknown option, a bad value) as one line, exit 2, as ruff does, instead of
    click's usage block."""

    def main(self, *args, **kwargs):
        # At exit, after the other exit handlers (they run last registered first), the objects alive are set
        # aside from the collector: Python's final collection over LibCST's classes and the rules cost ~16 ms
        # of a one-file run. Registered when the command runs, not when this module is imported: a program
        # that imports elbolint.cli as a library keeps its own objects' final collection (__del__ of cycles).
        atexit.unregister(gc.freeze)  # (once, however often the command runs in one process)
        atexit.register(gc.freeze)
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.NoSuchOption as error:
            # click lists up to three close options alphabetically (`--selct`: "--extend-select,
            # --help, --select"); name the nearest one, as ruff does
            _fail(f"No such option {error.option_name!r}{_nearest_option(error.option_name, error.possibilities)}")
        except click.UsageError as error:
            _fail(error.format_message())
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            click.echo("elbolint: aborted", err=True)
            sys.exit(1)

    def parse_args(self, ctx, args):
        # `--dynamic=all` / `--dynamic=flagged` is spelled as in the docs; click flags take no value.
        rewritten = []
        for arg in args:
            if arg.startswith("--dynamic="):
                rewritten += ["--dynamic", "--dynamic-scope", arg.split("=", 1)[1]]
            else:
                rewritten.append(arg)
        args = rewritten
        if not args or args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            first = args[0] if args else "-"
            if not first.startswith("-") and not Path(first).exists():
                suggestion = did_you_mean(first, self.commands, lambda name: f"`elbolint {name}`")
                if suggestion:  # `elbolint rul ELB001`: a typo of a command, not a missing file
                    _fail(f"{first!r} is neither a file nor a command{suggestion}")
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`elbolint --help` shows the lint options as well as the commands, as ruff's does: `elbolint
        PATH...` is `elbolint check PATH...`, so they are the options a user types after `elbolint`."""
        click.Command.format_options(self, ctx, formatter)  # --version, --help
        check = self.commands["check"]
        with click.Context(check, info_name="check", parent=ctx) as sub:
            records = [record for param in check.get_params(sub) if not getattr(param, "is_eager", False)
                       for record in [param.get_help_record(sub)] if record is not None]
        with formatter.section("Lint options (`elbolint [check] [PATHS]...`)"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]},
             subcommand_metavar="[PATHS]... | COMMAND [ARGS]...")
@click.version_option(__version__, prog_name="elbolint")
def main() -> None:
    """Lint TensorFlow Probability variational-inference code for the causes of huge, NaN or
    stuck ELBO losses. `elbolint PATH...` is short for `elbolint check PATH...`: the lint options
    below go with either."""


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """`elbolint: 523/1537 files` on a terminal's stderr, redrawn at most ten times a second, so a
    long run is never silent; erased before the report."""

    def __init__(self) -> None:
        self.shown = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if total < 50 or (now - self.shown < 0.1 and done < total):
            return
        self.shown = now
        text = f"elbolint: {done}/{total} files"
        self.width = len(text)
        sys.stderr.write("\r" + text)
        sys.stderr.flush()

    def clear(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _fail(message: str) -> NoReturn:
    """A configuration or usage error: one line on stderr and exit 2 (no usage block, no traceback)."""
    click.echo(f"elbolint: error: {message}", err=True)
    sys.exit(2)


def _codes(value: Optional[str]) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


@main.command()
@lint_options
def check(**params) -> None:
    """Lint PATHS (files or directories, recursively; default: the current directory)."""
    import signal

    # From the start (not only once the workers run: LibCST and the rules may still be importing):
    # Ctrl-C is exit 130 without a traceback, SIGTERM (a CI timeout) exit 143 through the `finally`
    # blocks that stop the workers (isolation.py).
    previous = signal.signal(signal.SIGTERM, _exit_on_term) if _main_thread() else None
    try:
        run_check(LintOptions.from_params(params))
    except KeyboardInterrupt:  # fixes are atomic: an interrupted run leaves every file whole
        click.echo("\nelbolint: interrupted", err=True)
        sys.exit(130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_on_term(_signum, _frame) -> NoReturn:
    raise SystemExit(143)


def run_check(options: LintOptions) -> NoReturn:
    """The whole check: configuration, files, findings, report, exit code (0 none, 1 findings)."""
    config, enabled = _configure(options)
    if options.show_settings:
        click.echo(_settings_text(config, enabled), nl=False)
        sys.exit(0)
    if options.show_files:
        _show_files(options, config)
    _check_logdir(options.dynamic_logdir, options.dynamic)
    results = _lint_stdin(options, config, enabled) if options.use_stdin else _lint(options, config, enabled)
    if not results and not options.quiet:  # as ruff does: say so, exit 0
        click.echo("elbolint: warning: no Python files found under the given paths", err=True)
    if options.diff:
        _print_diffs(results, options.quiet)
    diagnostics = [d for r in results for d in r.diagnostics]
    evidence = None
    if options.dynamic:
        from elbolint.reporters.html_curves import Evidence

        evidence = Evidence()  # the dynamic runs' whole traces, for the curves (reporters/html_curves.py)
        diagnostics += _run_dynamic(results, config, options.dynamic_settings(), enabled, options.quiet, evidence)
        _write_logdir(options.dynamic_logdir, evidence, options.python_path, options.quiet)
    diagnostics.sort(key=Diagnostic.sort_key)
    _write_report(options, _report(options, diagnostics, evidence))
    if not options.quiet and options.human_output:
        _print_summary(options, results, diagnostics)
    sys.exit(1 if diagnostics and not options.exit_zero else 0)


def _configure(options: LintOptions) -> tuple[Config, set[str]]:
    """The configuration with the command line's codes and excludes applied, and the enabled codes."""
    try:
        config = _load(options.config_path, options.paths, options.stdin_filename)
        for option, value in (("--select", options.select), ("--extend-select", options.extend_select),
                              ("--ignore", options.ignore), ("--unfixable", options.unfixable)):
            try:
                validate_codes(_codes(value))
            except ConfigError as error:
                raise ConfigError(f"{option}: {error}") from None
        if options.select is not None:
            config.select = _codes(options.select)
        config.extend_select += _codes(options.extend_select)
        config.ignore += _codes(options.ignore)
        validate_codes(config.select + config.extend_select + config.ignore)
        if options.exclude is not None:
            config.exclude = _codes(options.exclude)
        config.extend_exclude += _codes(options.extend_exclude)
        from elbolint.gitignore import invalid

        for pattern, why in invalid(config.exclude + config.extend_exclude):
            raise ConfigError(f"invalid exclude pattern {pattern!r}: {why}")
        if options.no_respect_gitignore:
            config.respect_gitignore = False
        if options.force_exclude:
            config.force_exclude = True
        config.unfixable += _codes(options.unfixable)
        validate_codes(config.unfixable)
        return config, config.enabled_codes()
    except ConfigError as error:
        _fail(str(error))


def _show_files(options: LintOptions, config: Config) -> NoReturn:
    """--show-files: the files that would be linted on stdout (notebook cells not linted on stderr)."""
    from elbolint.discovery import Missing, discover
    from elbolint.notebook import is_notebook, skipped_parts

    for item in discover(options.paths_or_here, config):
        if not isinstance(item, Missing):
            click.echo(item)
            if is_notebook(item) and not options.quiet:  # stdout stays a list of files
                for part in skipped_parts(item):
                    click.echo(f"{item}: {part}", err=True)
    sys.exit(0)


def _lint_stdin(options: LintOptions, config: Config, enabled: set[str]) -> list[FileResult]:
    from elbolint.runner import lint_stdin

    name = Path(options.stdin_filename or "-")
    result = lint_stdin(name, sys.stdin.buffer.read(), config, enabled, fix=options.fix, diff=options.diff,
                        unsafe_fixes=options.unsafe_fixes)
    if options.fix and not options.diff:  # the fixed source goes to stdout, the report to stderr
        sys.stdout.buffer.write(result.fixed or b"")
        sys.stdout.buffer.flush()
    return [result]


def _lint(options: LintOptions, config: Config, enabled: set[str]) -> list[FileResult]:
    from elbolint.runner import lint_paths

    cache = None if options.no_cache or options.dynamic else _open_cache(config, options.cache_dir)
    try:
        progress = _Progress() if not options.quiet and _is_terminal(sys.stderr) else None
        results = lint_paths(options.paths_or_here, config, enabled, fix=options.fix, diff=options.diff,
                             jobs=options.jobs, keep_modules=options.dynamic, cache=cache, progress=progress,
                             unsafe_fixes=options.unsafe_fixes)
        if progress is not None:
            progress.clear()
        return results
    finally:
        if cache is not None:
            cache.close()
            if cache.warning and not options.quiet:
                click.echo(cache.warning, err=True)


def _report(options: LintOptions, diagnostics: list[Diagnostic], evidence) -> str:
    if options.statistics:
        return _statistics(diagnostics, as_json=options.output_format == "json", unsafe_fixes=options.unsafe_fixes)
    if options.output_format == "html":
        from elbolint.reporters.html import render
        from elbolint.reporters.html_curves import Evidence

        return render(diagnostics, evidence if evidence is not None else Evidence())
    from elbolint.reporters import get_reporter  # imports the chosen format's module only

    return get_reporter(options.output_format)(diagnostics)


def _write_report(options: LintOptions, report: str) -> None:
    """The report to --output-file, or to stdout (stderr for stdin with --fix: stdout holds the code)."""
    if options.output_file is not None:
        try:
            options.output_file.write_text(report, encoding="utf-8")
        except OSError as error:
            _fail(f"cannot write the report to {options.output_file}: {error.strerror or error}")
    elif report:
        to_stderr = options.use_stdin and options.fix
        if options.human_output and _wants_color(sys.stderr if to_stderr else sys.stdout):
            from elbolint.reporters.text import colorize

            report = colorize(report)
        click.echo(report, nl=False, err=to_stderr, color=True)
    sys.stdout.flush()


def _print_summary(options: LintOptions, results: list[FileResult], diagnostics: list[Diagnostic]) -> None:
    """The summary lines on stderr: fixed, found, what `--fix` (and `--unsafe-fixes`) would fix."""
    if options.fix:
        fixed = sum(r.fixed_count for r in results)
        click.echo(f"Fixed {fixed} finding{'s' if fixed != 1 else ''} ({len(diagnostics)} remaining).", err=True)
    click.echo(_summary(diagnostics, len(results)), err=True)
    fixable = sum(d.fix is not None and not d.fix.unsafe for d in diagnostics)
    hidden = sum(d.fix is not None and d.fix.unsafe for d in diagnostics)
    if fixable and not options.fix and not options.diff:
        click.echo(f"[*] {fixable} fixable with `elbolint --fix`.", err=True)
    if hidden and not options.unsafe_fixes:
        click.echo(f"{hidden} more fix{'es' if hidden != 1 else ''} available with `--fix --unsafe-fixes`.",
                   err=True)


def _run_dynamic(results, config, settings, enabled, quiet, evidence: Evidence) -> list[Diagnostic]:
    """--dynamic: the dynamic-only rows; the static findings get their verdicts in place."""
    from elbolint.dynamic import run_dynamic

    try:
        return run_dynamic(results, config, settings, enabled=enabled, show_progress=not quiet, on_trace=evidence.keep)
    except ConfigError as error:
        _fail(str(error))
    except KeyboardInterrupt:  # the workers and their models are already killed (harness.py)
        click.echo("\nelbolint: interrupted; dynamic workers stopped", err=True)
        sys.exit(130)


def _check_logdir(logdir: Optional[Path], dynamic: bool) -> None:
    """--dynamic-logdir: refused before anything runs when it cannot be used (one line, exit 2)."""
    if logdir is None:
        return
    if not dynamic:
        _fail("--dynamic-logdir needs --dynamic (the event files hold the dynamic runs' curves)")
    from elbolint.tensorboard_logs import prepare

    problem = prepare(logdir)
    if problem:
        _fail(f"--dynamic-logdir: {problem}")


def _write_logdir(logdir: Optional[Path], evidence: Evidence, python: Optional[Path], quiet: bool) -> None:
    if logdir is None:
        return
    from elbolint.tensorboard_logs import write_logs

    written, problem = write_logs(logdir, evidence, python)
    if problem:
        _fail(f"--dynamic-logdir: {problem}")
    if not quiet:
        click.echo(f"elbolint: TensorBoard logs of {written} run{'s' if written != 1 else ''} in {logdir} "
                   f"(tensorboard --logdir {logdir})", err=True)


def _open_cache(config: Config, cache_dir: Optional[Path]):
    """The run's cache: keyed by elbolint's code, rule options and limits (see cache.py)."""
    import json

    from elbolint.cache import DEFAULT_DIRECTORY, Cache, code_fingerprint

    directory = cache_dir or config.cache_dir or config.root / DEFAULT_DIRECTORY
    settings = json.dumps([config.rule_options, vars(config.limits), config.fixable, config.unfixable],
                          sort_keys=True, default=str)
    return Cache(directory, f"{code_fingerprint()}|{settings}")


def _load(config_path, paths, stdin_filename) -> Config:
    if config_path is not None:
        return load_config(config_path)
    start = Path(stdin_filename) if stdin_filename else (paths[0] if paths else Path("."))
    if str(start) == "-":
        start = Path(".")
    found = find_config_file(start if start.exists() else Path("."))
    return load_config(found)


def _print_diffs(results: list[FileResult], quiet: bool) -> None:
    """--diff: the fixes as one patch on stdout; exit 1 when a file would change, like ruff."""
    changed = [r for r in results if r.diff]
    click.echo("".join(r.diff or "" for r in changed), nl=False)
    if not quiet:
        count = len(changed)
        click.echo(f"{count} file{'s' if count != 1 else ''} would be fixed." if count else "No fixes to apply.",
                   err=True)
    sys.exit(1 if changed else 0)


def _wants_color(stream) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org), as ruff does."""
    import os

    return _is_terminal(stream) and not os.environ.get("NO_COLOR")


def _statistics(diagnostics: list[Diagnostic], as_json: bool = False, unsafe_fixes: bool = False) -> str:
    """`--statistics`: count, code, fix marker and name per code, most frequent first (ruff's layout;
    with `--output-format json`, a JSON list of the same).

    The marker says how many of the code's findings `--fix` would fix: `[*]` all of them, `[-]` some
    (then `(N fixable)` follows the name, as it does for `[*]`), `[ ]` none. An unsafe fix counts only
    with `--unsafe-fixes`, as in the summary's "N fixable" line, so the counts add up to it. JSON rows
    carry `fixable_count`, and `fixable` (true when at least one is)."""
    import json
    from collections import Counter

    counts = Counter(d.code for d in diagnostics)
    names = {d.code: d.name for d in diagnostics}
    fixable = Counter(d.code for d in diagnostics if d.fix is not None and (unsafe_fixes or not d.fix.unsafe))
    order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        rows = [{"code": code, "name": names[code], "count": count, "fixable": fixable[code] > 0,
                 "fixable_count": fixable[code]} for code, count in order]
        return json.dumps(rows, indent=2) + "\n"
    width = len(str(max(counts.values()))) if counts else 1
    lines = []
    for code, count in order:
        if fixable[code] == 0:
            marker, suffix = "[ ]", ""
        else:
            marker, suffix = ("[*]" if fixable[code] == count else "[-]"), f" ({fixable[code]} fixable)"
        lines.append(f"{count:>{width}}\t{code}\t{marker} {names[code]}{suffix}\n")
    return "".join(lines)


def _settings_text(config: Config, enabled: set[str]) -> str:
    """`--show-settings`: the resolved configuration, and the file it came from."""
    from elbolint.discovery import DEFAULT_EXCLUDES

    rows = [
        ("config file", str(config.source) if config.source else "none (defaults)"),
        ("root", str(config.root)),
        ("enabled codes", ", ".join(sorted(enabled))),
        ("select", repr(config.select or "default")), ("extend-select", repr(config.extend_select)),
        ("ignore", repr(config.ignore)), ("per-file-ignores", repr(config.per_file_ignores)),
        ("exclude", repr(config.exclude or list(DEFAULT_EXCLUDES))), ("extend-exclude", repr(config.extend_exclude)),
        ("respect-gitignore", repr(config.respect_gitignore)), ("force-exclude", repr(config.force_exclude)),
        ("max-file-size-kib", repr(config.limits.file_size_kib)),
        ("max-seconds-per-file", repr(config.limits.seconds)), ("max-memory-mib", repr(config.limits.memory_mib)),
        ("cache-dir", str(config.cache_dir or config.root / ".elbolint_cache")),
        ("fixable", repr(config.fixable)), ("unfixable", repr(config.unfixable)),
        ("rule options", repr(config.rule_options)), ("dynamic", repr(config.dynamic)),
    ]
    return "".join(f"{key:<22}{value}\n" for key, value in rows)


def _summary(diagnostics: list[Diagnostic], files: int) -> str:
    if not diagnostics:
        return f"All checks passed ({files} file{'s' if files != 1 else ''})."
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    with_findings = len({str(d.path) for d in diagnostics})
    where = (f"in {files} file{'s' if files != 1 else ''}" if with_findings == files
             else f"in {with_findings} of {files} files")
    return (f"Found {len(diagnostics)} finding{'s' if len(diagnostics) != 1 else ''} "
            f"({errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}) "
            f"{where}.")


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
@click.option("--table", is_flag=True, help="Print the README's Markdown table of rules.")
def rule(code, show_all, table):
    """Explain a rule: what it does, why it is bad, an example and what to use instead."""
    from elbolint.docs import explain, rule_table

    if table:
        click.echo(rule_table())
        return
    if show_all or not code:
        from elbolint.registry import all_rules

        for r in all_rules():
            default = "" if r.default_enabled else " (opt-in)"
            click.echo(f"{r.code}  {r.name:<28} {r.severity.value:<8}{default} {r.summary()}")
        return
    text = explain(code)
    if text is None:
        from elbolint.config import _code_suggestion

        _fail(f"unknown rule {code!r}{_code_suggestion(code)} (see `elbolint rule --all`)")
    click.echo(text, nl=False)


@main.command()
def server():
    """Run the language server (LSP over stdin/stdout) for editors: diagnostics as you type, fixes as code
    actions, rule explanations on hover. Static mode only; needs the [lsp] extra (pygls, lsprotocol)."""
    try:
        from elbolint.server import run
    except ImportError as error:
        _fail(f"the language server needs pygls and lsprotocol: pip install 'elbolint[lsp]' ({error})")
    run()

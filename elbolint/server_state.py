"""The state of `elbolint server` (the handlers are in server.py): an LSP server over stdio (pygls),
static mode only.

Why here and not in the engine: the engine knows nothing of LSP. This module turns editor events into
the same calls the CLI makes (`runner.lint_stdin`: the buffer linted in a supervised worker, so a file
that crashes LibCST costs one ELB901, never the server) and the engine's Diagnostic values into LSP ones.

- Diagnostics on open, save and change (debounced: DEBOUNCE_SECONDS after the last keystroke), for
  `.py`/`.pyi` buffers and notebook documents; a notebook is linted as the CLI lints an `.ipynb` (its
  code cells as one module) and each finding is published on its cell's URI.
- Code actions: one quick fix per available fix (an unsafe one says so in its title and is never
  preferred) and "Fix all elbolint problems" (`source.fixAll.elbolint`: the safe fixes, applied by the
  engine as `--fix` applies them; its edit is computed when the client resolves the action).
- Hover on a finding: `elbolint rule CODE`'s explanation.
- Configuration: the nearest `[tool.elbolint]` as for the CLI (excludes, per-file-ignores, fixable);
  reloaded when a `pyproject.toml` changes (watched files, or saved in the editor). A broken one is
  shown once and the defaults are used until it is fixed.
- Cache: the CLI's (`.elbolint_cache/`, same key). Every lint reads it; only the text of an opened or
  saved buffer is written to it (the text on disk, which a CLI run will see), not every keystroke's.
- Never a traceback to the client: an internal error becomes one `window/logMessage` line.
All engine work runs on one thread (the cache's SQLite connection belongs to it); the event loop
only schedules, so typing is never blocked by a lint.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from elbolint import __version__
from elbolint.diagnostics import Diagnostic, Position, Severity
from elbolint.reporters import rule_url

DEBOUNCE_SECONDS = 0.3
FIX_ALL_KIND = "source.fixAll.elbolint"
FIX_ALL_TITLE = "Fix all elbolint problems"
PYTHON_SUFFIXES = (".py", ".pyi")
CONFIG_NAME = "pyproject.toml"


class Projects:
    """Configuration, enabled codes and cache per `[tool.elbolint]` file; used on the engine thread only."""

    def __init__(self, notify) -> None:
        self.notify = notify  # (message) -> None: a configuration problem, shown to the user
        self.by_source: dict[Optional[Path], tuple] = {}
        self.shown: set[str] = set()

    def settings(self, path: Path) -> tuple:
        from elbolint.config import Config, ConfigError, find_config_file, load_config

        problem: Optional[str] = None
        try:
            source = find_config_file(path)
        except ConfigError as error:
            source, problem = path, str(error)
        if source in self.by_source:
            return self.by_source[source]
        try:
            if problem is not None:
                raise ConfigError(problem)
            config = load_config(source)
            enabled = config.enabled_codes()
        except ConfigError as error:
            if str(error) not in self.shown:
                self.shown.add(str(error))
                self.notify(f"elbolint: {error}; using the default settings until it is fixed")
            config = Config(root=path.parent)
            enabled = config.enabled_codes()
        self.by_source[source] = settings = (config, enabled, _open_cache(config))
        return settings

    def clear(self) -> None:
        for _config, _enabled, cache in self.by_source.values():
            if cache is not None:
                cache.close()
        self.by_source.clear()
        self.shown.clear()


def _open_cache(config):
    from elbolint.cli import _open_cache as open_cli_cache  # the CLI's directory and fingerprint

    cache = open_cli_cache(config, None)
    return cache if cache.connection is not None else None


def _excluded(path: Path, config) -> bool:
    """Whether the configured excludes leave this file out (as `--force-exclude` would)."""
    from elbolint import gitignore
    from elbolint.discovery import DEFAULT_EXCLUDES, _force_excluded

    excludes = (list(config.exclude) or list(DEFAULT_EXCLUDES)) + list(config.extend_exclude)
    return _force_excluded(path, gitignore.parse_patterns(excludes, config.root), config.root)


class Engine:
    """The calls into elbolint, on the engine thread."""

    def __init__(self, notify) -> None:
        self.projects = Projects(notify)

    def lint(self, path: Path, data: bytes, remember: bool) -> list[Diagnostic]:
        from elbolint.cache import UNCACHEABLE, content_hash, decode, encode
        from elbolint.runner import lint_stdin

        config, enabled, cache = self.projects.settings(path)
        if _excluded(path, config):
            return []
        key = cache.key(content_hash(data), path.suffix, enabled - config.ignored_for(path)) if cache else None
        if key is not None:
            hit = cache.get(key)
            if hit is not None:
                try:
                    return decode(path, hit[1])
                except (KeyError, TypeError, ValueError):
                    pass
        result = lint_stdin(path, data, config, enabled)
        if remember and key is not None and not any(d.code in UNCACHEABLE for d in result.diagnostics):
            cache.put([(key, result.parsed, encode(result.diagnostics))], [])
        return result.diagnostics

    def fixed(self, path: Path, data: bytes) -> Optional[bytes]:
        """The buffer with every safe fix applied (as `--fix` applies them), or None."""
        from elbolint.runner import lint_stdin

        config, enabled, _cache = self.projects.settings(path)
        if _excluded(path, config):
            return None
        result = lint_stdin(path, data, config, enabled, fix=True)
        return result.fixed if result.fixed not in (None, data) else None


class ElbolintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("elbolint", __version__, notebook_document_sync=lsp.NotebookDocumentSyncOptions(
            notebook_selector=[lsp.NotebookDocumentFilterWithCells(
                notebook="*", cells=[lsp.NotebookCellLanguage(language="python")])],
            save=True))
        #: the engine's one thread (not `thread`: that name is pygls's decorator for threaded handlers)
        self.engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="elbolint-engine")
        self.engine = Engine(lambda message: self.loop_call(self.show, message))
        self.pending: dict[str, asyncio.Task] = {}
        self.open_texts: set[str] = set()
        self.open_notebooks: set[str] = set()
        #: uri (a file or a cell) -> (version, [(finding, LSP diagnostic)]) of the last published lint
        self.results: dict[str, tuple[Optional[int], list[tuple[Diagnostic, lsp.Diagnostic]]]] = {}
        self.published_cells: dict[str, set[str]] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    # ------------------------------------------------------------ plumbing
    def loop_call(self, function, *args) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(function, *args)

    def show(self, message: str) -> None:
        self.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=message))
        self.log(message, lsp.MessageType.Warning)

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def internal_error(self, what: str, error: BaseException) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        self.log(f"elbolint: internal error while {what}: {type(error).__name__}: {error}{where}; "
                 "please report it", lsp.MessageType.Error)

    def report_server_error(self, error: Exception, source) -> None:
        self.internal_error("handling a message", error)

    async def on_engine(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.engine_thread, function, *args)

    # ------------------------------------------------------------ scheduling
    def schedule(self, key: str, delay: float, remember: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        previous = self.pending.pop(key, None)
        if previous is not None:
            previous.cancel()
        self.pending[key] = self.loop.create_task(self._lint_later(key, delay, remember))

    async def _lint_later(self, key: str, delay: float, remember: bool) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            if key in self.open_notebooks:
                await self._lint_notebook(key, remember)
            elif key in self.open_texts:
                await self._lint_text(key, remember)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.internal_error(f"linting {key}", error)
        finally:
            if self.pending.get(key) is asyncio.current_task():
                del self.pending[key]

    def relint_all(self) -> None:
        for key in [*self.open_texts, *self.open_notebooks]:
            self.schedule(key, 0.0)

    async def reload(self) -> None:
        await self.on_engine(self.engine.projects.clear)
        self.log("elbolint: configuration reloaded")
        self.relint_all()

    # ------------------------------------------------------------ linting
    async def _lint_text(self, uri: str, remember: bool) -> None:
        document = self.workspace.get_text_document(uri)
        version = document.version
        findings = await self.on_engine(self.engine.lint, document_path(uri, ".py"),
                                        encode_buffer(document.source)[0], remember)
        if uri not in self.open_texts or document.version != version:
            return  # changed meanwhile: a newer lint is scheduled
        pairs = [(d, self.to_lsp(d, document)) for d in findings]
        self.results[uri] = (version, pairs)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[diagnostic for _, diagnostic in pairs]))

    def notebook_json(self, uri: str) -> tuple[lsp.NotebookDocument, list[TextDocument], bytes]:
        """The open notebook `uri`, its cells' documents and the `.ipynb` text the engine lints."""
        notebook = self.workspace.get_notebook_document(notebook_uri=uri)
        if notebook is None:
            raise LookupError(f"the notebook {uri} is not open")
        documents = [self.workspace.get_text_document(cell.document) for cell in notebook.cells]
        cells: list[dict[str, Any]] = [{
            "cell_type": "code" if cell.kind == lsp.NotebookCellKind.Code else "markdown",
            "metadata": {"vscode": {"languageId": document.language_id}} if document.language_id else {},
            "source": document.source, "outputs": [], "execution_count": None,
        } for cell, document in zip(notebook.cells, documents)]
        metadata: dict[str, Any] = notebook.metadata if isinstance(notebook.metadata, dict) else {}
        raw = {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
        return notebook, documents, (json.dumps(raw, indent=1, ensure_ascii=False) + "\n").encode("utf-8")

    async def _lint_notebook(self, uri: str, remember: bool) -> None:
        notebook, documents, data = self.notebook_json(uri)
        version = notebook.version
        findings = await self.on_engine(self.engine.lint, document_path(uri, ".ipynb"), data, remember)
        if uri not in self.open_notebooks or notebook.version != version:
            return
        by_cell: dict[str, list] = {cell.document: [] for cell in notebook.cells}
        for finding in findings:
            index = (finding.cell or 1) - 1
            if not 0 <= index < len(documents):
                index = 0
            if not documents:
                break
            by_cell[notebook.cells[index].document].append((finding, self.to_lsp(finding, documents[index])))
        gone = self.published_cells.get(uri, set()) - set(by_cell)
        self.published_cells[uri] = set(by_cell)
        for cell_uri in gone:
            self.results.pop(cell_uri, None)
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=cell_uri, diagnostics=[]))
        for cell_uri, pairs in by_cell.items():
            cell_version = self.workspace.get_text_document(cell_uri).version
            self.results[cell_uri] = (cell_version, pairs)
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=cell_uri, version=cell_version, diagnostics=[diagnostic for _, diagnostic in pairs]))

    def to_range(self, start: Position, end: Position, document) -> lsp.Range:
        """1-based (line, column in code points), end exclusive -> LSP's 0-based range in the client's units."""
        lines = document.lines
        codec = self.workspace.position_codec
        return codec.range_to_client_units(lines, lsp.Range(
            start=lsp.Position(line=max(start.line - 1, 0), character=max(start.column - 1, 0)),
            end=lsp.Position(line=max(end.line - 1, 0), character=max(end.column - 1, 0))))

    def to_lsp(self, finding: Diagnostic, document) -> lsp.Diagnostic:
        url = rule_url(finding.code)
        return lsp.Diagnostic(
            range=self.to_range(finding.start, finding.end, document), message=finding.message,
            severity=lsp.DiagnosticSeverity.Error if finding.severity is Severity.ERROR
            else lsp.DiagnosticSeverity.Warning,
            code=finding.code, code_description=None if url is None else lsp.CodeDescription(href=url),
            source="elbolint")

    def forget(self, uris) -> None:
        for uri in uris:
            task = self.pending.pop(uri, None)
            if task is not None:
                task.cancel()
            if self.results.pop(uri, None) is not None:
                self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def document_path(uri: str, suffix: str) -> Path:
    """The file a document stands for (an unsaved buffer: `untitled.py` in the working directory)."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path.cwd() / f"untitled{suffix}" if path is None else Path(path)


def encode_buffer(text: str) -> tuple[bytes, str]:
    """The buffer as the file's bytes: in the encoding its PEP 263 cookie declares (as the CLI reads the
    file, so columns and the cache key agree), UTF-8 otherwise or when the text does not fit it."""
    import io
    import tokenize

    data = text.encode("utf-8")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return data, "utf-8"
    if encoding in ("utf-8", "utf-8-sig"):
        return data, "utf-8"
    try:
        return text.encode(encoding), encoding
    except (UnicodeEncodeError, LookupError):
        return data, "utf-8"


def is_python(uri: str, language_id: Optional[str]) -> bool:
    return language_id == "python" or uri.endswith(PYTHON_SUFFIXES)


def is_config(uri: str) -> bool:
    return unquote(uri).rsplit("/", 1)[-1] == CONFIG_NAME

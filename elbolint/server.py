"""`elbolint server`: the Language Server Protocol handlers (stdio, pygls + lsprotocol), static mode only.

What it offers and why it is built so is in server_state.py's docstring (the server's state, linting
and positions); this module registers the LSP methods: document events, code actions, hover,
configuration reloads. Every handler is `guarded`: an exception becomes a `window/logMessage` line
and an empty answer, never a traceback in a JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Optional, Sequence

from lsprotocol import types as lsp

from elbolint.reporters import rule_url
from elbolint.server_state import (
    DEBOUNCE_SECONDS, FIX_ALL_KIND, FIX_ALL_TITLE, ElbolintServer, document_path, encode_buffer, is_config, is_python,
)

server = ElbolintServer()


def guarded(what: str):
    """Run a handler; an exception becomes a logMessage and an empty answer, never a traceback."""

    def wrap(function):
        if asyncio.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(params):
                try:
                    return await function(params)
                except Exception as error:
                    server.internal_error(what, error)
                    return None
            return run_async

        @functools.wraps(function)
        def run_sync(params):
            try:
                return function(params)
            except Exception as error:
                server.internal_error(what, error)
                return None
        return run_sync

    return wrap


# ------------------------------------------------------------------ life cycle
@server.feature(lsp.INITIALIZED)
@guarded("starting")
def initialized(params: lsp.InitializedParams) -> None:
    """Ask the client to tell us when a pyproject.toml changes (when it can register watchers)."""
    workspace = server.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace is not None else None
    if watched is not None and watched.dynamic_registration:
        server.client_register_capability(lsp.RegistrationParams(registrations=[lsp.Registration(
            id="elbolint-pyproject", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                watchers=[lsp.FileSystemWatcher(glob_pattern="**/pyproject.toml")]))]))


@server.feature(lsp.SHUTDOWN)
@guarded("shutting down")
async def shutdown(params) -> None:
    await server.on_engine(server.engine.projects.clear)  # close the caches on their own thread


# ------------------------------------------------------------------ text documents
@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
@guarded("opening a document")
def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
    document = params.text_document
    if is_python(document.uri, document.language_id):
        server.open_texts.add(document.uri)
        server.schedule(document.uri, 0.0, remember=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
@guarded("updating a document")
def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
    if params.text_document.uri in server.open_texts:
        server.schedule(params.text_document.uri, DEBOUNCE_SECONDS)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE, lsp.SaveOptions(include_text=False))
@guarded("saving a document")
def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if is_config(uri):
        asyncio.get_running_loop().create_task(server.reload())
    elif uri in server.open_texts:
        server.schedule(uri, 0.0, remember=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
@guarded("closing a document")
def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
    server.open_texts.discard(params.text_document.uri)
    server.forget([params.text_document.uri])


# ------------------------------------------------------------------ notebooks
@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
@guarded("opening a notebook")
def notebook_did_open(params: lsp.DidOpenNotebookDocumentParams) -> None:
    server.open_notebooks.add(params.notebook_document.uri)
    server.schedule(params.notebook_document.uri, 0.0, remember=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
@guarded("updating a notebook")
def notebook_did_change(params: lsp.DidChangeNotebookDocumentParams) -> None:
    if params.notebook_document.uri in server.open_notebooks:
        server.schedule(params.notebook_document.uri, DEBOUNCE_SECONDS)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
@guarded("saving a notebook")
def notebook_did_save(params: lsp.DidSaveNotebookDocumentParams) -> None:
    if params.notebook_document.uri in server.open_notebooks:
        server.schedule(params.notebook_document.uri, 0.0, remember=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
@guarded("closing a notebook")
def notebook_did_close(params: lsp.DidCloseNotebookDocumentParams) -> None:
    uri = params.notebook_document.uri
    server.open_notebooks.discard(uri)
    server.forget([uri, *server.published_cells.pop(uri, set())])


# ------------------------------------------------------------------ configuration
@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
@guarded("reloading the configuration")
async def watched_files_changed(params: lsp.DidChangeWatchedFilesParams) -> None:
    if any(is_config(change.uri) for change in params.changes):
        await server.reload()


# ------------------------------------------------------------------ code actions
def _wants(only: Optional[Sequence[str]], kind: str) -> bool:
    return not only or any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)


def _workspace_edit(changes: list[tuple[str, Optional[int], list[lsp.TextEdit]]]) -> lsp.WorkspaceEdit:
    """Versioned document changes when the client takes them (a stale edit is then refused), else `changes`."""
    workspace = server.client_capabilities.workspace
    edit_support = workspace.workspace_edit if workspace is not None else None
    if edit_support is not None and edit_support.document_changes:
        return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
            text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=edits)
            for uri, version, edits in changes])
    return lsp.WorkspaceEdit(changes={uri: edits for uri, _version, edits in changes})


def _can_resolve_edits() -> bool:
    text = server.client_capabilities.text_document
    action = text.code_action if text is not None else None
    support = action.resolve_support if action is not None else None
    return support is not None and "edit" in support.properties


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
    code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.SourceFixAll, FIX_ALL_KIND],
    resolve_provider=True))
@guarded("computing code actions")
async def code_actions(params: lsp.CodeActionParams) -> Optional[list[lsp.CodeAction]]:
    uri, only = params.text_document.uri, params.context.only
    version, pairs = server.results.get(uri, (None, []))
    document = server.workspace.get_text_document(uri)
    if version != document.version:
        return []  # the buffer changed since its last lint: a newer one is on its way
    actions = []
    if _wants(only, lsp.CodeActionKind.QuickFix):
        for finding, diagnostic in pairs:
            if finding.fix is None or not _overlaps(diagnostic.range, params.range):
                continue
            unsafe = finding.fix.unsafe
            edits = [lsp.TextEdit(range=server.to_range(edit.start, edit.end, document), new_text=edit.content)
                     for edit in finding.fix.edits]
            actions.append(lsp.CodeAction(
                title=f"{finding.fix.message} ({finding.code}{', unsafe fix' if unsafe else ''})",
                kind=lsp.CodeActionKind.QuickFix, diagnostics=[diagnostic], is_preferred=not unsafe,
                edit=_workspace_edit([(uri, version, edits)])))
    notebook = server.workspace.get_notebook_document(cell_uri=uri)
    target = notebook.uri if notebook is not None else uri
    kind = f"notebook.{FIX_ALL_KIND}" if notebook is not None and only and any(
        k.startswith("notebook") for k in only) else FIX_ALL_KIND
    if _wants(only, kind) and _has_safe_fix(target, notebook):
        action = lsp.CodeAction(title=FIX_ALL_TITLE, kind=kind, data={"uri": target})
        actions.append(action if _can_resolve_edits() else await resolve(action))
    return actions


def _has_safe_fix(uri: str, notebook) -> bool:
    uris = [cell.document for cell in notebook.cells] if notebook is not None else [uri]
    return any(finding.fix is not None and not finding.fix.unsafe
               for each in uris for finding, _ in server.results.get(each, (None, []))[1])


@server.feature(lsp.CODE_ACTION_RESOLVE)
@guarded("computing the fix-all edit")
async def resolve(action: lsp.CodeAction) -> lsp.CodeAction:
    uri = (action.data or {}).get("uri", "") if isinstance(action.data, dict) else ""
    if uri in server.open_notebooks:
        notebook, documents, data = server.notebook_json(uri)
        fixed = await server.on_engine(server.engine.fixed, document_path(uri, ".ipynb"), data)
        changes = []
        if fixed is not None:
            cells = json.loads(fixed.decode("utf-8"))["cells"]
            for cell, document, new in zip(notebook.cells, documents, cells):
                source = new["source"] if isinstance(new["source"], str) else "".join(new["source"])
                if source != document.source:
                    changes.append((cell.document, document.version, [_replace_lines(document.source, source)]))
        action.edit = _workspace_edit(changes)
    elif uri in server.open_texts:
        document = server.workspace.get_text_document(uri)
        data, encoding = encode_buffer(document.source)
        fixed = await server.on_engine(server.engine.fixed, document_path(uri, ".py"), data)
        edits = [_replace_lines(document.source, fixed.decode(encoding, errors="replace"))] if fixed else []
        action.edit = _workspace_edit([(uri, document.version, edits)] if edits else [])
    return action


def _replace_lines(old: str, new: str) -> lsp.TextEdit:
    """One edit replacing only the lines that differ (whole lines: no column arithmetic needed)."""
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    return lsp.TextEdit(range=lsp.Range(start=lsp.Position(line=head, character=0),
                                        end=lsp.Position(line=len(before) - tail, character=0)),
                        new_text="".join(after[head:len(after) - tail]))


# ------------------------------------------------------------------ hover
@server.feature(lsp.TEXT_DOCUMENT_HOVER)
@guarded("computing a hover")
def hover(params: lsp.HoverParams) -> Optional[lsp.Hover]:
    from elbolint.docs import explain

    at = (params.position.line, params.position.character)
    found = [(finding, diagnostic) for finding, diagnostic in server.results.get(params.text_document.uri,
                                                                                  (None, []))[1]
             if (diagnostic.range.start.line, diagnostic.range.start.character) <= at
             <= (diagnostic.range.end.line, diagnostic.range.end.character)]
    if not found:
        return None
    parts, shown = [], set()
    for finding, _ in found:
        parts.append(f"**{finding.code}** ({finding.name}): {finding.message}")
        if finding.code not in shown:
            shown.add(finding.code)
            url = rule_url(finding.code)
            parts.append((explain(finding.code) or "").strip()
                         + ("" if url is None else f"\n\n[{finding.code} documentation]({url})"))
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)),
                     range=found[0][1].range)


def run() -> None:
    """`elbolint server`: serve on stdin/stdout until the client says exit."""
    from elbolint.registry import all_rules

    all_rules()  # import the rules once, before the workers fork
    server.start_io(*_private_streams())


def _private_streams():
    """The protocol's own stdin and stdout, and `sys.stdin`/`sys.stdout` pointed elsewhere.

    Why: each lint forks a worker (isolation.py) while pygls's reader thread is blocked inside
    `sys.stdin`'s buffer, holding its lock; multiprocessing's child closes `sys.stdin` and flushes
    `sys.stdout` first thing, and waited forever for those locks (seen in this test suite). With
    private streams the child touches only /dev/null and stderr. A stray `print` cannot corrupt the
    protocol either: file descriptor 1 now goes to stderr."""
    import os
    import sys

    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, encoding="utf-8")
    sys.stdout = sys.stderr
    return protocol_in, protocol_out


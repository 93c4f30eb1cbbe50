"""`elbolint server` end to end: a real LSP client (pytest-lsp, built on pygls's client) starts
`python -m elbolint server` over stdio, and each test speaks LSP to it as an editor would: initialize,
open a buggy file, receive its diagnostics, ask for code actions, apply one's workspace edit, send the
changed text and see the diagnostic go; hover; a notebook document; a syntax error; a config reload.
No network, no TensorFlow: static mode only."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

from elbolint.docs import explain
from elbolint.reporters import rule_url

# fixtures/ELB001 and fixtures/ELB003 in small: a raw `tf.Variable` scale (ELB001, error) and an
# unclipped optimizer that drives a VI fit (ELB003, warning); both have a safe fix.
BUGGY = '''import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))


def target_log_prob_fn(z):
    return tfd.Normal(0.0, 1.0).log_prob(z)


optimizer = tf.optimizers.Adam(learning_rate=0.01)
losses = tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, num_steps=100)
'''
ELB001_RANGE = ((5, 51), (5, 67))  # `tf.Variable(1.0)`, 0-based LSP positions
ELB003_RANGE = ((12, 12), (12, 50))  # `tf.optimizers.Adam(learning_rate=0.01)`

# fixtures/ELB013/bad_tensorflow_spelled_out.py: a raw network output as a scale; its fix is unsafe.
UNSAFE = '''import tensorflow
import tensorflow_probability as tfp
from tensorflow import keras

model = keras.Sequential([
    keras.layers.Dense(2),
    tfp.layers.DistributionLambda(
        lambda t: tfp.distributions.LogNormal(loc=t[..., :1], scale=t[..., 1:])
    ),
])
model.compile(optimizer="adam", loss=lambda y, d: -d.log_prob(y))
print(tensorflow.__version__)
'''

CAPABILITIES = lsp.ClientCapabilities(
    workspace=lsp.WorkspaceClientCapabilities(workspace_edit=lsp.WorkspaceEditClientCapabilities(
        document_changes=True)),
    text_document=lsp.TextDocumentClientCapabilities(
        publish_diagnostics=lsp.PublishDiagnosticsClientCapabilities(version_support=True),
        code_action=lsp.CodeActionClientCapabilities(
            code_action_literal_support=lsp.ClientCodeActionLiteralOptions(
                code_action_kind=lsp.ClientCodeActionKindOptions(value_set=[lsp.CodeActionKind.QuickFix,
                                                                            lsp.CodeActionKind.SourceFixAll])),
            resolve_support=lsp.ClientCodeActionResolveOptions(properties=["edit"]), is_preferred_support=True),
        hover=lsp.HoverClientCapabilities(content_format=[lsp.MarkupKind.Markdown])),
    notebook_document=lsp.NotebookDocumentClientCapabilities(
        synchronization=lsp.NotebookDocumentSyncClientCapabilities()),
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose own pyproject.toml configures elbolint (so nothing above tmp_path counts)."""
    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\n", encoding="utf-8")
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "elbolint", "server"]))
async def client(lsp_client: LanguageClient, project: Path):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=CAPABILITIES, root_uri=from_fs_path(str(project)),
        workspace_folders=[lsp.WorkspaceFolder(uri=from_fs_path(str(project)), name="project")]))
    yield
    await lsp_client.shutdown_session()


# ------------------------------------------------------------------ helpers
async def published(client: LanguageClient, uri: str, condition=lambda diagnostics: True, timeout: float = 20):
    """The diagnostics the server publishes next for `uri` that satisfy `condition`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if uri in client.diagnostics and condition(client.diagnostics[uri]):
            return list(client.diagnostics[uri])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no matching diagnostics for {uri}: {client.diagnostics.get(uri)}")


def open_file(client: LanguageClient, project: Path, name: str, text: str) -> str:
    path = project / name
    path.write_text(text, encoding="utf-8")
    uri = from_fs_path(str(path))
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=text)))
    return uri


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))


def span(diagnostic: lsp.Diagnostic):
    r = diagnostic.range
    return (r.start.line, r.start.character), (r.end.line, r.end.character)


def offset(text: str, position: lsp.Position) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[:position.line]) + position.character


def apply(text: str, edits: list) -> str:
    """Apply LSP text edits as an editor does (from the last to the first; ASCII text, so UTF-16 = str)."""
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(text, edit.range.start)] + edit.new_text + text[offset(text, edit.range.end):]
    return text


def edits_for(workspace_edit: lsp.WorkspaceEdit, uri: str) -> list:
    return [edit for change in workspace_edit.document_changes if change.text_document.uri == uri
            for edit in change.edits]


def no_errors_logged(client: LanguageClient) -> None:
    errors = [m.message for m in client.log_messages if m.type == lsp.MessageType.Error]
    assert not errors, errors


async def actions(client: LanguageClient, uri: str, diagnostics, only=None, at=None):
    where = at or lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))
    return await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=where,
        context=lsp.CodeActionContext(diagnostics=diagnostics, only=only)))


# ------------------------------------------------------------------ tests
@pytest.mark.asyncio
async def test_diagnostics_quick_fix_and_the_finding_goes(client: LanguageClient, project: Path):
    uri = open_file(client, project, "model.py", BUGGY)
    diagnostics = await published(client, uri)
    assert [(d.code, span(d)) for d in diagnostics] == [("ELB001", ELB001_RANGE), ("ELB003", ELB003_RANGE)]
    elb001, elb003 = diagnostics
    assert {d.source for d in diagnostics} == {"elbolint"}
    assert elb001.severity == lsp.DiagnosticSeverity.Error and elb003.severity == lsp.DiagnosticSeverity.Warning
    url = rule_url("ELB003")  # None while there is no published address: the optional field is left out
    assert (elb003.code_description.href if url else elb003.code_description) == url
    assert "clip" in elb003.message

    found = await actions(client, uri, [elb003], at=elb003.range)
    [quick] = [a for a in found if a.kind == lsp.CodeActionKind.QuickFix]
    assert "clipnorm" in quick.title and quick.is_preferred and quick.diagnostics[0].code == "ELB003"
    fixed = apply(BUGGY, edits_for(quick.edit, uri))
    assert "tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)" in fixed
    assert quick.edit.document_changes[0].text_document.version == 1

    change(client, uri, 2, fixed)
    after = await published(client, uri)
    assert [(d.code, span(d)) for d in after] == [("ELB001", ELB001_RANGE)]
    no_errors_logged(client)


@pytest.mark.asyncio
async def test_fix_all_action_is_resolved_and_clears_the_file(client: LanguageClient, project: Path):
    uri = open_file(client, project, "model.py", BUGGY)
    diagnostics = await published(client, uri)
    found = await actions(client, uri, diagnostics, only=[lsp.CodeActionKind.SourceFixAll])
    [fix_all] = found
    assert (fix_all.title, fix_all.kind, fix_all.edit) == ("Fix all elbolint problems", "source.fixAll.elbolint",
                                                           None)
    resolved = await client.code_action_resolve_async(fix_all)
    fixed = apply(BUGGY, edits_for(resolved.edit, uri))
    assert "tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus())" in fixed and "clipnorm=1.0" in fixed
    change(client, uri, 2, fixed)
    assert await published(client, uri) == []
    assert not await actions(client, uri, [], only=[lsp.CodeActionKind.SourceFixAll])


@pytest.mark.asyncio
async def test_unsafe_fix_is_marked_and_not_preferred(client: LanguageClient, project: Path):
    uri = open_file(client, project, "heads.py", UNSAFE)
    [diagnostic] = await published(client, uri)
    assert diagnostic.code == "ELB013"
    [quick] = await actions(client, uri, [diagnostic], at=diagnostic.range)
    assert quick.kind == lsp.CodeActionKind.QuickFix and quick.is_preferred is False
    assert "unsafe" in quick.title
    assert "softplus" in apply(UNSAFE, edits_for(quick.edit, uri))
    # only safe fixes are applied by "fix all": there is none here
    assert not await actions(client, uri, [diagnostic], only=[lsp.CodeActionKind.SourceFixAll])


@pytest.mark.asyncio
async def test_hover_shows_the_rule_explanation(client: LanguageClient, project: Path):
    uri = open_file(client, project, "model.py", BUGGY)
    await published(client, uri)
    hover = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=5, character=55)))
    assert hover.contents.kind == lsp.MarkupKind.Markdown
    assert hover.contents.value.startswith("**ELB001**")
    assert explain("ELB001").strip() in hover.contents.value
    assert span(hover) == ELB001_RANGE
    nothing = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=0, character=0)))
    assert nothing is None


@pytest.mark.asyncio
async def test_syntax_error_is_elb000_and_the_server_goes_on(client: LanguageClient, project: Path):
    uri = open_file(client, project, "broken.py", "import tensorflow as tf\nx = tf.constant((1.0,\n")
    [diagnostic] = await published(client, uri)
    assert diagnostic.code == "ELB000" and "SyntaxError" in diagnostic.message
    assert diagnostic.range.start.line == 1
    change(client, uri, 2, BUGGY)
    assert [d.code for d in await published(client, uri)] == ["ELB001", "ELB003"]
    no_errors_logged(client)


@pytest.mark.asyncio
async def test_typing_is_debounced(client: LanguageClient, project: Path):
    """Ten changes in a burst (faster than the 0.3 s debounce) give one lint, of the last text."""
    uri = open_file(client, project, "model.py", BUGGY)
    await published(client, uri)
    count = 0
    original = client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def counting(params):
        nonlocal count
        count += params.uri == uri
        return original(params)

    client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = counting
    for version in range(2, 12):
        change(client, uri, version, BUGGY.replace("Adam(learning_rate=0.01)", f"Adam(0.0{version})"))
    after = await published(client, uri)
    await asyncio.sleep(1.0)
    assert count == 1
    assert [(d.code, span(d)) for d in after] == [
        ("ELB001", ELB001_RANGE), ("ELB003", ((12, 12), (12, 12 + len("tf.optimizers.Adam(0.011)"))))]
    assert list(client.diagnostics[uri]) == after


@pytest.mark.asyncio
async def test_notebook_cells_get_their_own_diagnostics(client: LanguageClient, project: Path):
    head, tail = BUGGY.split("surrogate = ", 1)
    sources = [head, "## The surrogate", "surrogate = " + tail]
    notebook_uri = from_fs_path(str(project / "fit.ipynb"))
    cell_uris = [f"vscode-notebook-cell:{project / 'fit.ipynb'}#cell{index}" for index in range(3)]
    kinds = [lsp.NotebookCellKind.Code, lsp.NotebookCellKind.Markup, lsp.NotebookCellKind.Code]
    languages = ["python", "markdown", "python"]
    client.notebook_document_did_open(lsp.DidOpenNotebookDocumentParams(
        notebook_document=lsp.NotebookDocument(
            uri=notebook_uri, notebook_type="jupyter-notebook", version=1,
            cells=[lsp.NotebookCell(kind=kind, document=cell) for kind, cell in zip(kinds, cell_uris)]),
        cell_text_documents=[lsp.TextDocumentItem(uri=cell, language_id=language, version=1, text=text)
                             for cell, language, text in zip(cell_uris, languages, sources)]))
    last = await published(client, cell_uris[2])
    assert [(d.code, span(d)) for d in last] == [("ELB001", ((0, 51), (0, 67))), ("ELB003", ((7, 12), (7, 50)))]
    assert await published(client, cell_uris[0]) == []
    assert not client.diagnostics.get(notebook_uri)

    # the cell's quick fix edits the cell; the notebook's change makes the finding go
    [quick] = [a for a in await actions(client, cell_uris[2], [last[1]], at=last[1].range)
               if a.kind == lsp.CodeActionKind.QuickFix]
    fixed = apply(sources[2], edits_for(quick.edit, cell_uris[2]))
    client.diagnostics.pop(cell_uris[2], None)
    client.notebook_document_did_change(lsp.DidChangeNotebookDocumentParams(
        notebook_document=lsp.VersionedNotebookDocumentIdentifier(uri=notebook_uri, version=2),
        change=lsp.NotebookDocumentChangeEvent(cells=lsp.NotebookDocumentCellChanges(text_content=[
            lsp.NotebookDocumentCellContentChanges(
                document=lsp.VersionedTextDocumentIdentifier(uri=cell_uris[2], version=2),
                changes=[lsp.TextDocumentContentChangeWholeDocument(text=fixed)])]))))
    assert [d.code for d in await published(client, cell_uris[2])] == ["ELB001"]

    # fix all, across the notebook's cells
    [fix_all] = await actions(client, cell_uris[2], [], only=[lsp.CodeActionKind.SourceFixAll])
    resolved = await client.code_action_resolve_async(fix_all)
    assert "TransformedVariable" in apply(fixed, edits_for(resolved.edit, cell_uris[2]))
    no_errors_logged(client)


@pytest.mark.asyncio
async def test_configuration_is_reloaded_when_pyproject_changes(client: LanguageClient, project: Path):
    config = project / "pyproject.toml"
    config.write_text('[tool.elbolint]\nignore = ["ELB003"]\n', encoding="utf-8")
    uri = open_file(client, project, "model.py", BUGGY)
    assert [d.code for d in await published(client, uri)] == ["ELB001"]

    config.write_text('[tool.elbolint]\nignore = ["ELB001"]\n', encoding="utf-8")
    client.diagnostics.pop(uri, None)
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(
        uri=from_fs_path(str(config)), type=lsp.FileChangeType.Changed)]))
    assert [d.code for d in await published(client, uri)] == ["ELB003"]

    # saved in the editor: reloaded too; a broken one is shown and the defaults apply meanwhile
    config.write_text('[tool.elbolint]\nignores = ["ELB001"]\n', encoding="utf-8")
    client.diagnostics.pop(uri, None)
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(
        text_document=lsp.TextDocumentIdentifier(uri=from_fs_path(str(config)))))
    assert [d.code for d in await published(client, uri)] == ["ELB001", "ELB003"]
    assert any("did you mean `ignore`" in m.message for m in client.messages)
    no_errors_logged(client)


@pytest.mark.asyncio
async def test_the_cache_is_the_clis(client: LanguageClient, project: Path):
    """An opened file's result is stored where and as `elbolint check` stores it: the CLI's next run
    over the same bytes is a cache hit (it reports the same findings without parsing)."""
    uri = open_file(client, project, "model.py", BUGGY)
    await published(client, uri)
    import subprocess

    database = project / ".elbolint_cache" / "results-v1.sqlite"
    assert database.is_file()
    import sqlite3

    with sqlite3.connect(database) as connection:
        (entries,) = connection.execute("SELECT COUNT(*) FROM results").fetchone()
    assert entries == 1
    result = subprocess.run([sys.executable, "-m", "elbolint", "--output-format", "json", "model.py"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert [d["code"] for d in json.loads(result.stdout)] == ["ELB001", "ELB003"]
    with sqlite3.connect(database) as connection:
        (entries,) = connection.execute("SELECT COUNT(*) FROM results").fetchone()
    assert entries == 1  # a hit: the CLI stored nothing new


@pytest.mark.asyncio
async def test_other_documents_are_left_alone(client: LanguageClient, project: Path):
    text_uri = from_fs_path(str(project / "notes.txt"))
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=text_uri, language_id="plaintext", version=1, text="tf.Variable(1.0)")))
    uri = open_file(client, project, "model.py", BUGGY)  # answered after notes.txt
    await published(client, uri)
    assert text_uri not in client.diagnostics
    assert not await actions(client, text_uri, [])

    # an excluded file (the default excludes, as `--force-exclude` applies them) gets no findings
    (project / "build").mkdir()
    excluded = open_file(client, project, "build/model.py", BUGGY)
    assert await published(client, excluded) == []

    # saving re-lints; closing clears the file's diagnostics
    client.diagnostics.pop(uri, None)
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert [d.code for d in await published(client, uri)] == ["ELB001", "ELB003"]
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert await published(client, uri, lambda diagnostics: not diagnostics) == []
    no_errors_logged(client)


@pytest.mark.asyncio
async def test_an_internal_error_is_a_log_line_not_a_traceback(client: LanguageClient, project: Path):
    """A change to a notebook the server never saw fails inside pygls's own bookkeeping: the client gets
    one logMessage line, no showMessage and no traceback, and the server keeps serving."""
    client.notebook_document_did_change(lsp.DidChangeNotebookDocumentParams(
        notebook_document=lsp.VersionedNotebookDocumentIdentifier(uri=from_fs_path(str(project / "x.ipynb")),
                                                                  version=2),
        change=lsp.NotebookDocumentChangeEvent()))
    uri = open_file(client, project, "model.py", BUGGY)
    assert [d.code for d in await published(client, uri)] == ["ELB001", "ELB003"]
    [error] = [m.message for m in client.log_messages if m.type == lsp.MessageType.Error]
    assert error.startswith("elbolint: internal error while handling a message: ") and "KeyError" in error
    assert "Traceback" not in error and "\n" not in error
    assert not client.messages



@pytest.mark.asyncio
async def test_columns_are_in_the_clients_units(client: LanguageClient, project: Path):
    """LSP counts UTF-16 code units: an emoji before a finding is two of them. A buffer whose coding cookie
    says latin-1 is linted as those bytes, as the CLI reads the file (columns stay right)."""
    line = 'label = "é😋"; surrogate = tfd.Normal(loc=tf.Variable(0.0), scale=tf.Variable(1.0))'
    emoji = open_file(client, project, "emoji.py", BUGGY.replace("surrogate = tfd.Normal(loc=tf.Variable(0.0), "
                                                                  "scale=tf.Variable(1.0))", line))
    [elb001] = [d for d in await published(client, emoji) if d.code == "ELB001"]
    start = line.index("tf.Variable(1.0)")
    assert span(elb001) == ((5, start + 1), (5, start + 1 + len("tf.Variable(1.0)")))  # +1: the emoji's 2nd unit

    latin = "# -*- coding: latin-1 -*-\n" + BUGGY.replace("surrogate = tfd", "label = 'é'; surrogate = tfd")
    uri = open_file(client, project, "latin.py", latin)
    [elb001] = [d for d in await published(client, uri) if d.code == "ELB001"]
    start = latin.splitlines()[6].index("tf.Variable(1.0)")
    assert span(elb001) == ((6, start), (6, start + len("tf.Variable(1.0)")))
    no_errors_logged(client)

# ------------------------------------------------------------------ the README's editor snippets, run as written
ROOT = Path(__file__).resolve().parent.parent

NVIM_CHECK = r'''
local out = {}
local function dump()
  for _, d in ipairs(vim.diagnostic.get(0)) do
    table.insert(out, string.format("%s %d:%d-%d:%d %s", d.code, d.lnum, d.col, d.end_lnum, d.end_col, d.source))
  end
end
vim.wait(60000, function() return #vim.diagnostic.get(0) >= 2 end, 100)
dump()
vim.api.nvim_win_set_cursor(0, {13, 15})
vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title:find("clipnorm") ~= nil end })
vim.wait(30000, function() return vim.api.nvim_buf_get_lines(0, 12, 13, false)[1]:find("clipnorm") ~= nil end, 100)
table.insert(out, vim.api.nvim_buf_get_lines(0, 12, 13, false)[1])
vim.wait(30000, function() return #vim.diagnostic.get(0) == 1 end, 100)
dump()
local hover = vim.lsp.buf_request_sync(0, "textDocument/hover",
  { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = 5, character = 55 } }, 30000)
for _, r in pairs(hover or {}) do table.insert(out, r.result.contents.value:sub(1, 10)) end
vim.fn.writefile(out, "result.txt")
vim.cmd("qa!")
'''

EMACS_CHECK = r'''
(defun wait-until (pred secs)
  (let ((i 0)) (while (and (< i (* secs 10)) (not (funcall pred)))
                 (accept-process-output nil 0.1) (setq i (1+ i))) (funcall pred)))
(defun dump (out)
  (dolist (d (flymake-diagnostics))
    (princ (format "%s %s\n" (substring (flymake-diagnostic-text d) 0 18) (flymake-diagnostic-beg d)) out)))
(with-temp-file "result.txt"
  (let ((out (current-buffer)))
    (with-current-buffer (find-file-noselect "model.py")
      (run-hooks 'post-command-hook)  ; eglot-ensure connects after a command
      (wait-until (lambda () (flymake-start) (>= (length (flymake-diagnostics)) 2)) 60)
      (dump out)
      (goto-char (point-min)) (forward-line 12)
      (eglot-code-actions (line-beginning-position) (line-end-position) "quickfix" t)
      (princ (format "%s\n" (buffer-substring (line-beginning-position) (line-end-position))) out)
      (eglot--signal-textDocument/didChange)  ; batch mode runs no idle timers: send the pending change
      (wait-until (lambda () (flymake-start) (= (length (flymake-diagnostics)) 1)) 30)
      (dump out)
      (goto-char (point-min)) (forward-line 5) (forward-char 55)
      (let ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                                    (eglot--TextDocumentPositionParams))))
        (princ (format "%s\n" (substring (plist-get (plist-get hover :contents) :value) 0 10)) out)))))
(kill-emacs 0)
'''


def readme_block(language: str, containing: str) -> str:
    import re

    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if containing in b]
    return block


def _neovim():
    """An nvim that has vim.lsp.start (>= 0.8): ELBOLINT_TEST_NVIM, else the one on PATH."""
    import os
    import re
    import shutil
    import subprocess

    nvim = os.environ.get("ELBOLINT_TEST_NVIM") or shutil.which("nvim")
    if not nvim:
        return None
    version = re.search(r"NVIM v(\d+)\.(\d+)", subprocess.run([nvim, "--version"], capture_output=True,
                                                             text=True, timeout=30).stdout)
    return nvim if version and (int(version[1]), int(version[2])) >= (0, 8) else None


def _editor_project(tmp_path: Path) -> tuple[Path, dict]:
    import os

    (tmp_path / "pyproject.toml").write_text("[tool.elbolint]\n", encoding="utf-8")
    (tmp_path / "model.py").write_text(BUGGY, encoding="utf-8")
    # `elbolint` as the snippets spell it: the console script of this interpreter
    return tmp_path, {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


EXPECTED_EDITOR_LINES = "optimizer = tf.optimizers.Adam(learning_rate=0.01, clipnorm=1.0)"


@pytest.mark.skipif(_neovim() is None, reason="no Neovim >= 0.8 (set ELBOLINT_TEST_NVIM to one)")
def test_readme_neovim_snippet(tmp_path):
    import subprocess

    project, env = _editor_project(tmp_path)
    (project / "init.lua").write_text(readme_block("lua", "vim.lsp.start"), encoding="utf-8")
    (project / "check.lua").write_text(NVIM_CHECK, encoding="utf-8")
    subprocess.run([_neovim(), "--headless", "-u", "init.lua", "-c", "luafile check.lua", "model.py"], cwd=project,
                   env=env, capture_output=True, timeout=240)
    assert (project / "result.txt").read_text().splitlines() == [
        "ELB001 5:51-5:67 elbolint", "ELB003 12:12-12:50 elbolint", EXPECTED_EDITOR_LINES,
        "ELB001 5:51-5:67 elbolint", "**ELB001**"]


def _emacs_with_eglot() -> bool:
    import shutil
    import subprocess

    if not shutil.which("emacs"):
        return False
    probe = subprocess.run(["emacs", "--batch", "--eval", "(require 'eglot)"], capture_output=True, timeout=60)
    return probe.returncode == 0


@pytest.mark.skipif(not _emacs_with_eglot(), reason="no Emacs with eglot")
def test_readme_emacs_eglot_snippet(tmp_path):
    import subprocess

    project, env = _editor_project(tmp_path)
    (project / "init.el").write_text(readme_block("elisp", "eglot-server-programs"), encoding="utf-8")
    (project / "check.el").write_text(EMACS_CHECK, encoding="utf-8")
    subprocess.run(["emacs", "--batch", "-l", "init.el", "-l", "check.el"], cwd=project, env=env,
                   capture_output=True, timeout=240)
    lines = (project / "result.txt").read_text().splitlines()
    # flymake positions are buffer offsets (1-based): ELB001 at line 6, column 52
    assert [line.split(" ", 2)[1] for line in lines if line.startswith("elbolint")] == [
        "[ELB001]:", "[ELB003]:", "[ELB001]:"]
    assert EXPECTED_EDITOR_LINES in lines and lines[-1] == "**ELB001**"

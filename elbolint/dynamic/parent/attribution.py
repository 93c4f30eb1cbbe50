"""Which run a static finding may be judged by (no verdict may come from another run, and every
verdict names its run). Pure Python (`ast`), in the parent.

The child records, for every run it drives, its `site` (sites.py): the kind (`fit`, `keras`, `loop`,
`minimize`), the user's line of the call, every user line on the stack when it started, the names bound
to its optimizer and Keras model, and the line of the model's `compile`. Here, from the source alone,
each finding gets the statements its object flows into: the simple statement holding the finding binds
names (`bnn_optimizer = Adam(...)`, `bnn = Sequential([...])`, `surrogate = tfd.Normal(...)`; ELB010's
message also names its model), and every statement with a call that mentions one of those names (or
holds the finding itself) is a use: the `fit_surrogate_posterior` call, `bnn.compile(...)` and then
`bnn.fit(...)`, `run_vi(surrogate, opt)`; a hand-written loop's `apply_gradients`/
`monte_carlo_variational_loss` counts as its enclosing loop or function. A run belongs to the finding
when one of its stack lines (or its compile line) is in a use; it does not when the finding has uses
and none is on the run's stack; with no use to go by, the names bound to the run's optimizer/model
decide, else it cannot be told (None: the run may judge it, as before).

| finding | its run |
|---|---|
| ELB003 / ELB009 (optimizer) | the run that used that optimizer: the call it is passed to (fit, compile then fit, minimize, a loop's apply_gradients), or its name bound to the run's optimizer |
| ELB001 / ELB002 / ELB007 / ELB008 (parameter) | the run its surrogate/distribution is passed to (then report.py matches the watched parameter's identity, confirmation.owns) |
| ELB004 (a parameter computed once) | the run its surrogate is passed to |

A surrogate built and returned by a function of the file (`def make_q(): ... return q`) is followed to
the names its calls bind (`q = make_q()`), and from there to the run it is passed to.
| ELB010 / ELB013 (Keras model) | the Keras fit of that model |
"""

from __future__ import annotations

import ast
import re
from typing import Callable, Iterator, Optional, TypeGuard

from elbolint.dynamic.child.sites import run_lines

OPTIMIZER = ("ELB003", "ELB009")
PARAMETER = ("ELB001", "ELB002", "ELB007", "ELB008")
KERAS_MODEL = ("ELB010", "ELB013")
#: a surrogate whose parameter is computed once (ELB004): its run is the one the surrogate is passed to
DISTRIBUTION = ("ELB004",)
CODES = OPTIMIZER + PARAMETER + KERAS_MODEL + DISTRIBUTION

_LOOP_CALLS = ("apply_gradients", "monte_carlo_variational_loss")
_KERAS_FIT = ("fit", "fit_generator", "train_on_batch")
_MODEL = re.compile(r"\bin `(?P<name>[A-Za-z_][\w.]*)`")
_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While, ast.If,
             ast.With, ast.AsyncWith, ast.Try)


def site_of(part: dict) -> dict:
    """The run's site; traces without one (a probe, a pairing) get their kind from `source`."""
    found = part.get("site")
    if found:
        return found
    return {"kind": part.get("source") or "run", "line": part.get("line"), "derived": True}


def run_name(site: dict, locate: Optional[Callable[[int], str]] = None) -> str:
    """"the fit at line 42", "the Keras fit of `bnn` at cell 12:3", "the loop at line 30"."""
    line, caller = site.get("line"), site.get("caller")
    where = (locate(line) if locate else f"line {line}") if isinstance(line, int) else None
    at = f" at {where}" if where else ""
    if where and isinstance(caller, int):  # a helper's loop reached from two places differs by its caller
        at += f", called at {locate(caller) if locate else f'line {caller}'}"
    kind = site.get("kind")
    if kind in ("fit", "fit_surrogate_posterior"):
        return f"the fit{at}"
    if kind == "keras":
        names = site.get("model_names") or []
        return f"the Keras fit of `{names[0]}`{at}" if names else f"the Keras fit{at}"
    if kind == "minimize":
        return f"the tfp.math.minimize loop{at}"
    if kind == "loop":
        return f"the loop{at}"
    if kind == "probe":
        return "the probe"
    if kind == "pair":
        return "elbolint's pairing of the file's surrogate and model"
    return f"the run{at}"


class Attribution:
    """The findings' uses in one module's source (the module that ran: a notebook's virtual module)."""

    def __init__(self, source: str):
        self.tree: Optional[ast.Module]  # None when the source does not parse
        try:
            self.tree = ast.parse(source)
        except (SyntaxError, ValueError):
            self.tree = None
        self.statements: list = []  # (node, first, last) of every simple statement with a call
        self.loops: list = []  # (first, last) of every loop and function
        self.trainers: dict = {}  # name of a function of the file that trains -> the kind of its training call
        if self.tree is None:
            return
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kinds = [_kind(*_callee(c)) for c in ast.walk(node) if isinstance(c, ast.Call)]
                kinds = [k for k in kinds if k not in (None, "compile")]
                if kinds:
                    self.trainers[node.name] = kinds[0]
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.loops.append((node.lineno, node.end_lineno or node.lineno))
            elif isinstance(node, ast.stmt) and not isinstance(node, _COMPOUND):
                if any(isinstance(n, ast.Call) for n in ast.walk(node)):
                    self.statements.append((node, node.lineno, node.end_lineno or node.lineno))

    # ------------------------------------------------------------------ static side
    def _nodes(self) -> Iterator[ast.AST]:
        """Every node of the module (none when it does not parse)."""
        return ast.walk(self.tree) if self.tree is not None else iter(())

    def _holding(self, line: int):
        best = None
        for node, first, last in self.statements + [(n, n.lineno, n.end_lineno or n.lineno)
                                                    for n in self._nodes()
                                                    if isinstance(n, (ast.Assign, ast.AnnAssign))]:
            if first <= line <= last and (best is None or last - first < best[2] - best[1]):
                best = (node, first, last)
        return best

    def _module_model(self, line: int, names: set) -> bool:
        """The finding is in a model the file binds at module level (`unscaled_net = Sequential([...])`):
        its fit is a Keras fit whose model has one of those names (sites.names_of binds globals by
        identity), whatever name the fitting code uses. Not for a layer built in a function or a
        class (`self.dense = DenseFlipout(...)`), whose model's names cannot be read here."""
        holding = self._holding(line)
        return bool(names) and self.tree is not None and holding is not None and holding[0] in self.tree.body \
            and isinstance(holding[0], ast.Assign) and all(isinstance(t, ast.Name) for t in holding[0].targets)

    def names(self, code: str, line: int, message: str) -> set:
        found: set = set()
        holding = self._holding(line)
        if holding is not None and isinstance(holding[0], (ast.Assign, ast.AnnAssign)):
            targets = holding[0].targets if isinstance(holding[0], ast.Assign) else [holding[0].target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        found.add(node.id)
                    elif isinstance(node, ast.Attribute):
                        found.add(node.attr)
        if code in KERAS_MODEL:
            match = _MODEL.search(message or "")
            if match:
                found.add(match.group("name").rsplit(".", 1)[-1])
        if code in PARAMETER + DISTRIBUTION + OPTIMIZER + KERAS_MODEL:
            # built and returned by a function: the names its calls bind, not the function's locals
            # (another function's local `distribution` is another object)
            found = self._built_by(line, holding, found, code) or found
        return found

    def _built_by(self, line: int, holding, names: set, code: str) -> set:
        """The names the file binds to what a builder function returns, when the finding's object is
        that return value (`distribution = tfd.MultivariateNormalDiag(...)` ... `return distribution`
        in `def make_q(): ...`, then `q = make_q()`) or, for an optimizer, the model the function
        compiles with it and returns (`opt = Adam()`, `model.compile(optimizer=opt)`, `return model`,
        then `bnn = make_bnn()`): the object's run is the one `q` or `bnn` flows into."""
        function = self._returning(line, holding, names, code)
        if function is None:
            return set()
        bound: set = set()
        for node in self._nodes():
            if _calls(node, function):
                bound |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        return bound

    def _returning(self, line: int, holding, names: set, code: str) -> Optional[str]:
        """The function of the file that returns the finding's object (or, for an optimizer, the model
        compiled with it), or None."""
        if code in OPTIMIZER:
            return self._compiler(line, names)
        if code in PARAMETER + DISTRIBUTION + KERAS_MODEL:
            return self._builder(line, holding, names)
        return None

    def _compiler(self, line: int, names: set) -> Optional[str]:
        """The innermost function holding `line` that compiles a model with one of `names` and
        returns that model (a notebook's `def create_model(): ... opt = Adam(); model.compile(
        optimizer=opt); return model`), or None."""
        function = self._innermost_function(line)
        if function is None or not names:
            return None
        returned = {x.id for r in ast.walk(function) if isinstance(r, ast.Return) and r.value is not None
                    for x in ast.walk(r.value) if isinstance(x, ast.Name)}
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            callee, receiver = _callee(call)
            mentioned = {n.id for a in call.args + [k.value for k in call.keywords] for n in ast.walk(a)
                         if isinstance(n, ast.Name)}
            if callee == "compile" and receiver in returned and names & mentioned:
                return function.name
        return None

    def _innermost_function(self, line: int):
        functions = [n for n in self._nodes() if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.lineno <= line <= (n.end_lineno or n.lineno)]
        return max(functions, key=lambda n: n.lineno) if functions else None

    def _builder(self, line: int, holding, names: set) -> Optional[str]:
        """The function of the file whose return value the finding's object is, or None (`names`: those
        the statement holding the finding binds)."""
        function = self._innermost_function(line)
        if function is None:
            return None
        returned = {x.id for r in ast.walk(function) if isinstance(r, ast.Return) and r.value is not None
                    for x in ast.walk(r.value) if isinstance(x, ast.Name)}
        is_return = holding is not None and isinstance(holding[0], ast.Return)
        return function.name if is_return or names & returned else None

    def name_windows(self, code: str, line: int, message: str) -> list[tuple[str, int, Optional[int]]]:
        """(name, first, last) for each name the finding's object is bound to: the lines from its binding
        statement to the next statement that binds the name again (last None: never). A run is the
        object's only while one of its lines is in that window: a notebook that binds `optimizer` three
        times has three different optimizers under one name (measured: the first loop's SGD `optimizer`
        was handed the verdict of a later cell's Adam `optimizer`)."""
        holding = self._holding(line)
        start, end = (holding[1], holding[2]) if holding is not None else (line, line)
        builder = self._returning(line, holding, _bound(holding), code)
        windows = []
        for name in sorted(self.names(code, line, message)):
            rebound = self._rebound({name}, end, builder)
            windows.append((name, start, None if rebound == float("inf") else int(rebound)))
        return windows

    def uses(self, code: str, line: int, message: str) -> list[dict]:
        """The statements the finding's object flows into: {first, last, kind, receiver, line}."""
        if self.tree is None:
            return []
        names = self.names(code, line, message)
        holding = self._holding(line)
        start = holding[1] if holding is not None else line
        builder = self._returning(line, holding, _bound(holding), code)
        cutoff = self._rebound(names, holding[2] if holding is not None else line, builder)
        found: list[dict] = []
        compiled: dict = {}  # receiver -> the line the finding's object is compiled into it
        for node, first, last in self.statements:
            if first < start or first >= cutoff:
                continue  # before the finding's object exists, or after its name is bound to another
            mentions = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            own = first <= line <= last
            if not own and not (names & mentions):
                continue
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                callee, receiver = _callee(call)
                if callee == "compile" and receiver:
                    compiled.setdefault(receiver, call.lineno)
                kind = _kind(callee, receiver)
                trainer = kind is None and receiver is None and callee in self.trainers
                if trainer:
                    kind = self.trainers[callee]  # `train(surrogate, opt)`: a function of the file that trains
                if kind is None:
                    continue
                if own and not names:
                    pass
                elif not own and not (names & ({n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
                                               | {n.attr for n in ast.walk(call) if isinstance(n, ast.Attribute)})):
                    continue
                span = (first, last)
                if kind == "loop" and not trainer:
                    span = self._loop(first) or span
                found.append({"first": span[0], "last": span[1], "kind": kind, "receiver": receiver,
                              "line": call.lineno})
            if own and not any(u["first"] <= line <= u["last"] for u in found):
                found.append({"first": first, "last": last, "kind": None, "receiver": None, "line": first})
            elif not own:
                found.append({"first": first, "last": last, "kind": None, "receiver": None, "line": first})
        until = {receiver: self._recompiled(receiver, at) for receiver, at in compiled.items()}
        for node, first, last in self.statements:  # a compiled model: its fit, until it is rebuilt
            if first < start or first >= cutoff:
                continue
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                callee, receiver = _callee(call)
                if callee in _KERAS_FIT and receiver in compiled and call.lineno < until[receiver]:
                    found.append({"first": first, "last": last, "kind": "keras", "receiver": receiver,
                                  "line": call.lineno})
        unique = []
        for use in found:
            if use not in unique:
                unique.append(use)
        return unique

    def _recompiled(self, receiver: str, at: int) -> float:
        """The first line after `at` where `receiver` is bound again or compiled again: its fits from
        there on train another model, or the same one with another optimizer (a notebook that builds
        and compiles `model` three times, with an optimizer written inline each time)."""
        first = self._rebound({receiver}, at)
        for node, line, _last in self.statements:
            if line <= at or line >= first:
                continue
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                if _callee(call) == ("compile", receiver):
                    first = min(first, line)
        return first

    def _rebound(self, names: set, after: int, builder: Optional[str] = None) -> float:
        """The first line after `after` that binds one of `names` again (a notebook's `model = ...`);
        a call of `builder` (the function returning the finding's object) binds it, not again."""
        first = float("inf")
        for node in self._nodes():
            if builder is not None and _calls(node, builder):
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno > after:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                if bound & names:
                    first = min(first, node.lineno)
        return first

    def _loop(self, line: int):
        inner = [span for span in self.loops if span[0] <= line <= span[1]]
        return min(inner, key=lambda s: s[1] - s[0]) if inner else None

    # ------------------------------------------------------------------ matching
    def belongs(self, code: str, line: int, message: str, site: dict) -> Optional[bool]:
        """Whether the run at `site` is the finding's own (None: cannot be told)."""
        if code not in CODES or site.get("derived") or self.tree is None:
            return None
        uses = [u for u in self.uses(code, line, message) if not (u["first"] <= line <= u["last"])
                or u["kind"] is not None]
        lines = run_lines(site)
        if any(u["first"] <= at <= u["last"] for u in uses for at in lines):
            return True
        names = self.names(code, line, message)
        bound = set(site.get("optimizer_names") or []) if code in OPTIMIZER else set()
        if code in KERAS_MODEL or code in OPTIMIZER:
            bound |= set(site.get("model_names") or [])
        if names & bound and in_window(bound, lines, self.name_windows(code, line, message)):
            return True
        if code in KERAS_MODEL and site.get("kind") not in ("keras",) and (uses or names):
            return False  # a Keras model's finding is judged by a Keras fit only
        if code in KERAS_MODEL and site.get("model_names") and self._module_model(line, names):
            return False  # the fit of another model (`for net in (scaled_net, unscaled_net): net.fit(...)`)
        if any(u["kind"] for u in uses):
            return False  # it flows into a training call, and this run is not at it
        return None

    def own_site(self, code: str, line: int, message: str, locate=None) -> Optional[str]:
        """The training call the finding flows into, named as a run ("the fit at line 42")."""
        for use in self.uses(code, line, message):
            if use["kind"] in (None, "compile"):
                continue
            site = {"kind": use["kind"], "line": use["line"]}
            if use["kind"] == "keras" and use["receiver"]:
                site["model_names"] = [use["receiver"]]
            return run_name(site, locate)
        return None


def _bound(holding) -> set:
    """The names the statement holding a finding binds (`holding`: Attribution._holding's answer)."""
    if holding is None or not isinstance(holding[0], (ast.Assign, ast.AnnAssign)):
        return set()
    targets = holding[0].targets if isinstance(holding[0], ast.Assign) else [holding[0].target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _calls(node: ast.AST, function: str) -> TypeGuard[ast.Assign]:
    """`node` is `name = function(...)`."""
    return (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == function)


def in_window(bound: set, lines: set, windows) -> bool:
    """Whether a run whose optimizer or model is bound to one of `bound` and whose user lines are
    `lines` is inside a window (name, first, last) of the flagged object: the name held *that* object
    when the run ran (Attribution.name_windows). A bare name (no window known) matches by name."""
    for window in windows:
        name, first, last = (window, None, None) if isinstance(window, str) else window
        if name not in bound:
            continue
        if first is None or any(first <= at and (last is None or at < last) for at in lines):
            return True
    return False


def _callee(call: ast.Call) -> tuple:
    func = call.func
    if isinstance(func, ast.Attribute):
        receiver = func.value
        name = receiver.id if isinstance(receiver, ast.Name) else (
            receiver.attr if isinstance(receiver, ast.Attribute) else None)
        return func.attr, name
    if isinstance(func, ast.Name):
        return func.id, None
    return "", None


def _kind(callee: str, receiver: Optional[str]) -> Optional[str]:
    if callee == "fit_surrogate_posterior":
        return "fit"
    if callee in _KERAS_FIT and receiver:
        return "keras"
    if callee == "compile" and receiver:
        return "compile"
    if callee == "minimize":
        return "minimize" if receiver in (None, "math", "tfm") else "loop"
    if callee in _LOOP_CALLS:
        return "loop"
    return None

"""The lean positions (elbolint/positions.py) are LibCST's PositionProvider's, node for node.

Why: a finding's line:column comes from positions.py, which regenerates the module's code with a
lighter state and stops after the last node asked; any difference from PositionProvider would move
findings. Compared here on every node of every fixture and of odd layouts (CRLF and CR line breaks,
no trailing newline, tabs, continuation lines, decorators, comments after the last statement), asked
all at once and one node at a time (the early stop).
"""

from __future__ import annotations

import random
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from elbolint.positions import positions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

ODD = {
    "crlf": "import tensorflow as tf\r\nx = tf.Variable(1.0)\r\nif x:\r\n    y = (1 +\r\n         2)\r\n",
    "cr": "import tensorflow as tf\rx = tf.Variable(1.0)\rdef f():\r    return x\r",
    "no_newline": "import tensorflow as tf\nx = tf.Variable(\n    1.0)",
    "tabs": "if True:\n\tx = 1\n\tif x:\n\t\ty = [1,\n\t\t 2]\n",
    "continuation": "x = 1 + \\\n    2\nassert x, \\\n  'no'\n",
    "decorators": "@a.b(1,\n  2)\n@c\nclass K(object):\n    '''doc'''\n    @property\n    def f(self): return 1  # c\n",
    "comments": "# head\n\n\nx = 1  # x\n    # indented\n# tail\n",
    "empty": "",
    "strings": "s = '''a\nb''' + f'{1}\\n' + 'c'\n",
    "form_feed": "x = 1\n\x0c\ny = (lambda a: a)(2)\n",
}


def _sources() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(FIXTURES)), p.read_text(encoding="utf-8", errors="replace"))
             for p in sorted(FIXTURES.rglob("*.py"))]
    return found + sorted(ODD.items())


def _nodes(module: cst.Module) -> list[cst.CSTNode]:
    nodes: list[cst.CSTNode] = []
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.children)
    return nodes


def _module(text: str) -> cst.Module | None:
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError:
        return None


@pytest.mark.parametrize("name,text", _sources(), ids=[name for name, _ in _sources()])
def test_positions_match_position_provider(name: str, text: str) -> None:
    module = _module(text)
    if module is None:
        pytest.skip("LibCST cannot parse it")
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    nodes = _nodes(module)
    every = positions(module, nodes)
    assert {node: every[node] for node in nodes} == {node: expected[node] for node in nodes}
    chosen = random.Random(name).sample(nodes, min(10, len(nodes)))
    for node in chosen:  # one node asked: the code generation stops right after it
        assert positions(module, [node])[node] == expected[node]


def test_no_node_asked_generates_nothing() -> None:
    module = cst.parse_module("x = 1\n")
    assert len(positions(module, [])) == 0

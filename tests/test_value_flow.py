"""The resolver's intra-file value flow (`follow`, `within`, `argument_flows`, ...): what it
follows, where it stops, and that it stays bounded."""

from __future__ import annotations

import libcst as cst

from elbolint.registry import all_rules
from elbolint.resolver import FLOW_CALLS, Resolver
from elbolint.walk import supports, walk

_CODE = cst.Module([]).code_for_node


class _Probe(cst.BatchableCSTVisitor):
    """Follows the argument of every `use(...)` call while it is visited; in leave_Module, the
    arguments passed for the parameters those flows stopped at."""

    def __init__(self, resolver: Resolver):
        super().__init__()
        self.resolver = resolver
        self.flows = []
        self.seen: list[tuple[str, list[str], str | None]] = []
        self.arguments: list[tuple[str, str]] = []

    def visit_Call(self, node):
        if isinstance(node.func, cst.Name) and node.func.value == "use":
            flow = self.resolver.follow(node.args[0].value)
            self.flows.append(flow)
            parameter = flow.parameter[1] if flow.parameter else None
            self.seen.append((_CODE(flow.node), [_CODE(s) for s in flow.subscripts], parameter))

    def leave_Module(self, original_node):
        for flow in self.flows:
            for inner, argument in self.resolver.argument_flows(flow):
                self.arguments.append((_CODE(inner.node), _CODE(argument)))


def probe(code: str) -> _Probe:
    resolver = Resolver()
    visitor = _Probe(resolver)
    walk(cst.parse_module(code), [resolver, visitor])
    return visitor


def test_subscripts_and_slices_of_a_variable_are_kept_on_the_flow():
    seen = probe("v = tf.Variable([263., 34.])\nuse(v[0])\nuse(v[1:])\nuse(v[0][1])\n").seen
    assert seen == [
        ("tf.Variable([263., 34.])", ["v[0]"], None),
        ("tf.Variable([263., 34.])", ["v[1:]"], None),
        ("tf.Variable([263., 34.])", ["v[0]", "v[0][1]"], None),
    ]


def test_flow_indices():
    resolver = Resolver()
    flows = []

    class Grab(cst.BatchableCSTVisitor):
        def visit_Call(self, node):
            if isinstance(node.func, cst.Name) and node.func.value == "use":
                flows.append(resolver.follow(node.args[0].value))

    walk(cst.parse_module("v = tf.Variable([1., 2.])\nuse(v[-1])\nuse(v[1:])\nuse(v[i])\n"), [resolver, Grab()])
    assert [f.indices() for f in flows] == [[-1], None, None]


def test_an_integer_index_of_a_literal_list_selects_the_element():
    seen = probe("params = [tf.Variable(0.), tf.Variable(1.)]\nuse(params[1])\nuse(params[-2])\nuse(params[n])\n").seen
    assert seen[0] == ("tf.Variable(1.)", [], None)
    assert seen[1] == ("tf.Variable(0.)", [], None)
    assert seen[2] == ("[tf.Variable(0.), tf.Variable(1.)]", ["params[n]"], None)


def test_tuple_unpacking_of_literals_and_of_returned_tuples():
    seen = probe(
        "a, b = tf.Variable(0.), tf.Variable(1.)\nuse(b)\n"
        "def build():\n    q = tfd.Normal(0., 1.)\n    return q, tf.optimizers.Adam(0.1)\n"
        "q, opt = build()\nuse(q)\nuse(opt)\n"
        "*rest, last = build()\nuse(last)\n"
    ).seen
    assert seen[0][0] == "tf.Variable(1.)"
    assert seen[1][0] == "tfd.Normal(0., 1.)"
    assert seen[2][0] == "tf.optimizers.Adam(0.1)"
    assert seen[3][0] == "last"  # starred targets are not followed


def test_calls_are_read_with_their_arguments_and_defaults_bound():
    seen = probe(
        "def make(s, t=tf.Variable(3.)):\n    return tfd.Normal(s, t)\n"
        "q = make(tf.Variable(1.))\n"
        "def identity(x):\n    return x\n"
        "use(identity(tf.Variable(2.)))\n"
        "use(identity(x=tf.Variable(4.)))\n"
        "use(identity(*args))\n"
    ).seen
    assert seen[0] == ("tf.Variable(2.)", [], None)
    assert seen[1] == ("tf.Variable(4.)", [], None)
    assert seen[2] == ("x", [], "x")  # `*args`: unknown, still a parameter of `identity`


def test_within_answers_in_the_scopes_the_value_was_written_in():
    resolver = Resolver()
    answers = []

    class Grab(cst.BatchableCSTVisitor):
        def visit_Call(self, node):
            if isinstance(node.func, cst.Name) and node.func.value == "use":
                flow = resolver.follow(node.args[0].value)
                with resolver.within(flow) as value:
                    answers.append((resolver.call_names(value), _CODE(resolver.value_of(value.args[1].value))))
                answers.append(resolver.call_names(flow.node))  # outside: the function's import is not visible

    code = (
        "def make():\n"
        "    import tensorflow_probability as probability\n"  # not a conventional name: only bound here
        "    scale = tf.Variable(1.)\n"
        "    return probability.distributions.Normal(0., scale)\n"
        "scale = 5.\n"
        "use(make())\n"
    )
    walk(cst.parse_module(code), [resolver, Grab()])
    assert answers[0] == (frozenset({"tensorflow_probability.distributions.Normal"}), "tf.Variable(1.)")
    assert answers[1] == frozenset()


def test_parameters_are_followed_to_the_arguments_of_every_call():
    visitor = probe(
        "def make_q(s):\n    use(s)\n    return s\n"
        "make_q(tf.Variable(1.))\n"
        "raw = tf.Variable(2.)\n"
        "make_q(raw)\n"
        "make_q()\n"
        "def outer(z):\n    return make_q(z)\n"
        "outer(tf.Variable(3.))\n"
    )
    assert visitor.seen[0] == ("s", [], "s")
    assert visitor.arguments == [
        ("tf.Variable(1.)", "tf.Variable(1.)"),
        ("tf.Variable(2.)", "raw"),
        ("tf.Variable(3.)", "tf.Variable(3.)"),  # through `outer`, reported where it is written
    ]


def test_argument_flows_are_bounded_in_depth():
    levels = "".join(f"def f{i}(a):\n    return f{i - 1}(a)\n" for i in range(1, FLOW_CALLS + 2))
    visitor = probe("def f0(a):\n    use(a)\n" + levels + f"f{FLOW_CALLS + 1}(tf.Variable(1.))\nf1(tf.Variable(2.))\n")
    assert ("tf.Variable(2.)", "tf.Variable(2.)") in visitor.arguments
    assert all(node != "tf.Variable(1.)" for node, _ in visitor.arguments)


def test_methods_constructors_and_functions_defined_later():
    visitor = probe(
        "def main():\n    helper(tf.Variable(1.))\n"
        "def helper(h):\n    use(h)\n"
        "class Q:\n"
        "    def __init__(self, scale):\n        use(scale)\n        self.d = self._build(tf.Variable(2.))\n"
        "    def _build(self, k):\n        use(k)\n        return k\n"
        "Q(tf.Variable(3.))\n"
    )
    assert sorted(visitor.arguments) == [
        ("tf.Variable(1.)", "tf.Variable(1.)"),
        ("tf.Variable(2.)", "tf.Variable(2.)"),
        ("tf.Variable(3.)", "tf.Variable(3.)"),
    ]


def test_what_is_not_followed():
    seen = probe(
        "import tensorflow as tf\n"
        "def cache(f):\n    return f\n"
        "@cache\ndef decorated():\n    return tf.Variable(1.)\n"
        "@tf.function\ndef compiled():\n    return tf.Variable(2.)\n"
        "def either(flag):\n    if flag:\n        return tf.Variable(3.)\n    return tf.Variable(4.)\n"
        "def same(flag):\n    v = tf.Variable(5.)\n    if flag:\n        return v\n    return v\n"
        "make = lambda: tf.Variable(6.)\n"
        "use(decorated())\nuse(compiled())\nuse(either(True))\nuse(same(True))\nuse(make())\n"
        "use(other.function())\n"
    ).seen
    assert [node for node, _, _ in seen] == [
        "decorated()", "tf.Variable(2.)", "either(True)", "tf.Variable(5.)", "make()", "other.function()",
    ]


def test_recursion_and_self_reference_stay_bounded():
    seen = probe(
        "def f(n):\n    return f(n)\n"
        "use(f(1))\n"
        "x = x[0]\nuse(x)\n"
        "a = b\nb = a\nuse(a)\n"
    ).seen
    assert len(seen) == 3  # it answered, whatever the answer


def test_value_of_is_unchanged_for_defs_and_unpacked_names():
    resolver = Resolver()
    answers = []

    class Grab(cst.BatchableCSTVisitor):
        def visit_Call(self, node):
            if isinstance(node.func, cst.Name) and node.func.value == "use":
                answers.append(_CODE(resolver.value_of(node.args[0].value)))

    walk(cst.parse_module("def f():\n    pass\na, b = 1, 2\nuse(f)\nuse(a)\n"), [resolver, Grab()])
    assert answers == ["f", "a"]


def test_function_of_and_call_sites():
    resolver = Resolver()
    found = []

    class Grab(cst.BatchableCSTVisitor):
        def visit_Call(self, node):
            function = resolver.function_of(node)
            found.append(function.name.value if function is not None else None)

        def leave_Module(self, original_node):
            make = original_node.body[0]
            found.append(len(resolver.call_sites(make)))
            found.append([_CODE(v) for v in resolver.returned_values(make)])

    walk(cst.parse_module("def make():\n    return 1\nmake()\nmake()\nprint(make)\n"), [resolver, Grab()])
    assert found == ["make", "make", None, 2, ["1"]]


def test_rules_keep_the_fast_read_only_walk():
    assert supports([rule_class.__new__(rule_class) for rule_class in all_rules()])


def test_a_helper_named_like_a_callback_does_not_cost_the_fast_walk():
    class Helpers(cst.BatchableCSTVisitor):
        def visit_Call(self, node):  # a callback
            pass

        def visit_function_def(self, node):  # a helper LibCST never calls
            pass

    class AttributeCallback(cst.BatchableCSTVisitor):
        def visit_Call_func(self, node):  # a real attribute callback: only LibCST's traversal has it
            pass

    assert supports([Helpers()])
    assert not supports([AttributeCallback()])

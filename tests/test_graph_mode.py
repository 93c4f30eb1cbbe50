"""ELB004 stays silent on graph-mode TF1 code (graph-mode code re-runs the transform at every
`session.run` step). The near-miss fixture is only meaningful if the same program written
eagerly is flagged: this test proves it."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import lint

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ELB004" / "good_tf1_graph_mode.py"
GRAPH_ONLY = re.compile(r"disable_eager_execution|placeholder|Session|session\.run|for _ in|global_variables|data = np")


def test_graph_mode_fixture_is_clean_and_its_eager_twin_is_flagged(tmp_path):
    assert [d.code for d in lint(FIXTURE, {"ELB004"})] == []
    eager = "\n".join(line for line in FIXTURE.read_text().splitlines() if not GRAPH_ONLY.search(line))
    eager = eager.replace("log_prob(observations)", "log_prob([1.0, 2.0])")
    path = tmp_path / "eager.py"
    path.write_text(eager + "\n")
    lines = eager.splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if line.startswith("likelihood = "))
    assert [(d.code, d.line) for d in lint(path, {"ELB004"})] == [("ELB004", expected)]

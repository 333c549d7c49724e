"""A 300-node graph stays interactive, and the page's own code stays small.

The frame figures are printed (run with `-s` to see them); benchmarks/editor_frames.py is where the
16 ms target is measured and reported, since a timed assertion fails whenever the machine is busy.
What is asserted here is what keeps frames short at any machine speed: a redraw draws the nodes on
screen, not the whole graph.
"""

from __future__ import annotations

from benchmarks.editor_frames import measure, page_weight
from tests.web.conftest import Editor

PAGE_BUDGET = 100_000  # bytes of the page's own HTML, JS and CSS


def test_a_300_node_graph_pans_and_zooms_drawing_only_the_nodes_on_screen(editor: Editor) -> None:
    figures = measure(editor.page, 300, frames=40)
    for view, times in figures.items():
        print(f"300 nodes, {view}: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in times.items()))
    assert editor.evaluate("() => window.depthgraph.graph._nodes.length") == 300
    drawn = editor.evaluate(
        """() => { const c = window.depthgraph.canvas; c.ds.scale = 1; c.ds.offset = [0, 0];
            c.draw(true, true); return c.visible_nodes.length; }"""
    )
    assert 0 < drawn < 60, f"at 100% a frame drew {drawn} of the 300 nodes"
    editor.screenshot("300-nodes")


def test_the_pages_own_code_weighs_under_100_kb_and_needs_no_build_step() -> None:
    weights = page_weight()
    assert "index.html" in weights and "js/main.js" in weights
    assert sum(weights.values()) < PAGE_BUDGET, weights

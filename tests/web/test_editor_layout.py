"""How graphs open: every library graph at a zoom where litegraph draws titles and widgets (all of it in
view when it fits, else its start), and no node over another once the image previews have loaded."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import ROOT, Editor

LIBRARY = sorted(path.name for path in (ROOT / "graphs").glob("*.json"))

# Every node's box in graph units (title bar included, as litegraph hit-tests it), the view's rectangle,
# and the canvas's zoom and low-detail threshold; once every image shown on a node has loaded.
VIEW = """() => {
    const { canvas, graph } = window.depthgraph;
    canvas.draw(true, true);
    const [x, y] = canvas.ds.convertCanvasToOffset([0, 0]);
    const scale = canvas.ds.scale;
    return {
        scale,
        threshold: canvas.low_quality_zoom_threshold,
        lowQuality: canvas.low_quality,
        view: [x, y, x + canvas.canvas.clientWidth / scale, y + canvas.canvas.clientHeight / scale],
        nodes: graph._nodes.map((node) => {
            const [left, top, width, height] = node.boundingRect;
            return { id: node.id, title: node.title, box: [left, top, left + width, top + height] };
        }),
    };
}"""
IMAGES_LOADED = "() => window.depthgraph.graph._nodes.every((n) => (n.images ?? []).every((i) => i.complete))"


def overlaps(nodes: list[dict[str, Any]]) -> list[str]:
    """Each pair of nodes whose boxes share any area, as 'title #id and title #id'."""
    found = []
    for index, first in enumerate(nodes):
        for second in nodes[index + 1 :]:
            a, b = first["box"], second["box"]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                found.append(f"{first['title']} #{first['id']} and {second['title']} #{second['id']}")
    return found


def inside(box: list[float], view: list[float]) -> bool:
    return view[0] <= box[0] and view[1] <= box[1] and box[2] <= view[2] and box[3] <= view[3]


def test_every_library_graph_opens_drawn_in_full_detail_with_no_node_over_another(editor: Editor) -> None:
    problems = []
    for name in LIBRARY:
        editor.open_library_graph(name)
        editor.page.wait_for_function(IMAGES_LOADED)
        state = editor.evaluate(VIEW)
        nodes, view = state["nodes"], state["view"]
        if state["lowQuality"] or state["scale"] < state["threshold"]:
            problems.append(
                f"{name}: opens at {state['scale']:.2f}, under the low-detail zoom {state['threshold']}"
            )
        whole = [
            min(n["box"][0] for n in nodes),
            min(n["box"][1] for n in nodes),
            max(n["box"][2] for n in nodes),
            max(n["box"][3] for n in nodes),
        ]
        start = min(nodes, key=lambda n: (n["box"][0], n["box"][1]))
        if not inside(whole, view) and not inside(start["box"], view):
            problems.append(f"{name}: neither the whole graph nor its first node {start['title']} is in view")
        problems += [f"{name}: {pair} overlap" for pair in overlaps(nodes)]
        editor.screenshot(name.removesuffix(".json"))
    assert not problems, "\n".join(problems)


def test_a_small_graph_opens_whole_and_a_wide_one_from_its_start_at_the_same_readable_zoom(
    editor: Editor,
) -> None:
    editor.open_library_graph("invert_and_scale.json")
    small = editor.evaluate(VIEW)
    assert all(inside(node["box"], small["view"]) for node in small["nodes"])
    editor.open_library_graph("depth_edit.json")
    wide = editor.evaluate(VIEW)
    first = next(node for node in wide["nodes"] if node["title"] == "Load Depth Model")
    assert inside(first["box"], wide["view"])
    assert not all(inside(node["box"], wide["view"]) for node in wide["nodes"])
    # The wide graph is not shrunk to fit: its text is drawn as large as the small graph's, or nearly.
    assert wide["scale"] >= 0.75 and small["scale"] >= 0.75

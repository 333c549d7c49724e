"""The canvas: the page starts cleanly, every node can be added, widgets and sockets follow the schemas."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.web.conftest import ROOT, Editor


def get_json(editor: Editor, path: str) -> Any:
    with urllib.request.urlopen(editor.server.url + path) as response:
        return json.loads(response.read())


def runnable(prompt: dict[str, Any]) -> dict[str, Any]:
    """The API form without the titles in `_meta`."""
    return {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in prompt.items()}


def test_the_page_loads_the_depth_graph_with_no_console_errors_or_failed_requests(editor: Editor) -> None:
    # A first visit (no saved graph in the browser) opens the library's depth-to-image graph.
    assert editor.testid("graph-title").input_value() == "Depth-to-image at full strength"
    classes = editor.evaluate("() => window.depthgraph.graph._nodes.map((n) => n.type).sort()")
    expected = json.loads((ROOT / "graphs" / "depth2img.json").read_text())["nodes"]
    assert classes == sorted(node["class_type"] for node in expected.values())
    assert editor.testid("status").inner_text() == "0 in queue"
    editor.screenshot("loaded")
    # The fixture fails the test on any console error, page error or failed request.


def test_the_node_menu_lists_every_registered_node(editor: Editor) -> None:
    editor.testid("node-menu-button").click()
    menu = editor.testid("node-menu")
    assert menu.is_visible()
    listed = menu.locator("[data-testid=node-menu-item]").evaluate_all(
        "items => items.map((i) => i.dataset.nodeClass)"
    )
    assert sorted(listed) == sorted(get_json(editor, "/object_info"))
    editor.screenshot("node-menu")


def test_searching_the_node_menu_and_picking_adds_that_node(editor: Editor) -> None:
    before = editor.evaluate("() => window.depthgraph.graph._nodes.length")
    editor.testid("node-menu-button").click()
    editor.testid("node-search").fill("invert colours")  # every word must match
    visible = editor.page.locator("[data-testid=node-menu-item]:visible")
    assert visible.evaluate_all("items => items.map((i) => i.dataset.nodeClass)") == ["ImageInvert"]
    visible.first.click()
    assert editor.testid("node-menu").is_hidden()
    types = editor.evaluate("() => window.depthgraph.graph._nodes.map((n) => n.type)")
    assert len(types) == before + 1 and types[-1] == "ImageInvert"


def test_widgets_follow_the_schema_of_each_node(editor: Editor) -> None:
    widgets = editor.evaluate(
        """() => Object.fromEntries(window.depthgraph.graph._nodes.map((node) => [
              node.type + ':' + node.id,
            (node.widgets ?? []).map(({name, type, value, options}) => ({name, type, value, options})),
            ]))"""
    )
    by_name = {key.split(":")[0] + "." + w["name"]: w for key, ws in widgets.items() for w in ws}
    assert by_name["CLIPTextEncode.text"]["type"] == "multiline"
    strength = by_name["NoiseLatent.strength"]
    assert strength["type"] == "slider"
    assert (strength["options"]["min"], strength["options"]["max"]) == (0, 1)
    steps = by_name["NoiseLatent.steps"]
    assert steps["type"] == "number"
    assert (steps["options"]["min"], steps["options"]["step2"], steps["options"]["precision"]) == (1, 1, 0)
    assert by_name["NoiseLatent.scheduler"]["type"] == "combo"
    assert "euler_ancestral" in by_name["NoiseLatent.scheduler"]["options"]["values"]
    assert by_name["NoiseLatent.control after generate"]["value"] == "fixed"
    assert by_name["LoadImage.image"]["type"] == "combo"
    assert by_name["LoadImage.choose image to upload"]["type"] == "button"
    assert by_name["SaveImage.filename_prefix"]["type"] == "text"


def test_sockets_wear_their_type_colour_and_links_only_join_matching_types(editor: Editor) -> None:
    result = editor.evaluate(
        """() => {
            const graph = window.depthgraph.graph;
            const loader = graph._nodes.find((n) => n.type === "LoadImage");
            const sampler = graph._nodes.find((n) => n.type === "DepthSampler");
            const depthSlot = sampler.findInputSlot("depth");
            const wrong = loader.connect(0, sampler, depthSlot);  // IMAGE into DEPTH
            const estimate = graph._nodes.find((n) => n.type === "DepthEstimate");
            const right = estimate.connect(0, sampler, depthSlot);  // DEPTH into DEPTH
            const canvas = window.depthgraph.canvas;
            return {wrong: wrong === null || wrong === undefined, right: Boolean(right),
                    colours: canvas.default_connection_color_byType};
        }"""
    )
    assert result["wrong"] and result["right"]
    assert set(result["colours"]) >= {"IMAGE", "DEPTH", "LATENT", "CONDITIONING", "MODEL", "MASK"}
    assert len(set(result["colours"].values())) == len(result["colours"])


def test_choosing_a_library_graph_from_the_menu_draws_its_nodes(editor: Editor) -> None:
    editor.testid("graph-menu-button").click()
    editor.page.locator("[data-testid=graph-item]").first.wait_for()  # the menu fills from /graphs
    names = editor.page.locator("[data-testid=graph-item]").evaluate_all(
        "items => items.map((i) => i.dataset.name)"
    )
    assert sorted(names) == sorted(path.name for path in (ROOT / "graphs").glob("*.json"))
    editor.screenshot("graph-menu")
    editor.page.locator('[data-testid=graph-item][data-name="invert_and_scale.json"]').click()
    expected = json.loads((ROOT / "graphs" / "invert_and_scale.json").read_text())
    editor.page.wait_for_function(
        "n => window.depthgraph.graph._nodes.length === n", arg=len(expected["nodes"])
    )
    assert runnable(editor.prompt()) == runnable(expected["nodes"])
    positions = editor.evaluate(
        "() => Object.fromEntries(window.depthgraph.graph._nodes.map((n) => [n.id, [...n.pos]]))"
    )
    for node_id, place in expected.get("layout", {}).get("nodes", {}).items():
        assert positions[node_id] == place["pos"]
    editor.screenshot("invert-and-scale")


@pytest.mark.parametrize("name", sorted(path.name for path in (ROOT / "graphs").glob("*.json")))
def test_every_library_graph_opens_in_the_editor_and_queues_as_its_file(editor: Editor, name: str) -> None:
    editor.open_library_graph(name)
    expected = json.loads((ROOT / "graphs" / name).read_text())["nodes"]
    assert runnable(editor.prompt()) == runnable(expected)
    editor.screenshot(name.removesuffix(".json"))

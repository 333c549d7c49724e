"""depthgraph's depth view in ComfyUI's official front end (web/comfyui/depth_view.js): after a
depth-to-image run, the Save Image node's context menu (and its button in the selection toolbox) opens
the depth map, the 3-D parallax and the input/output comparison, as depthgraph's own editor does;
Escape closes it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.web.comfyui.conftest import FrontEnd

EXTENSION = "/extensions/depthgraph/depth_view.js"

REGISTERED = """() => window.app.extensions.some((extension) => extension.name === "depthgraph.DepthView")
    && document.querySelector('link[href="/web/depth_view.css"]') !== null"""

# Two steps instead of fifty, so the run takes seconds on CPU; returns the ids of the two Save nodes.
LOWER_AND_QUEUE = """async () => {
    const titled = (title) => window.app.graph.nodes.find((node) => node.title === title);
    titled("Noise Latent").widgets.find((widget) => widget.name === "steps").value = 2;
    await window.app.queuePrompt(0, 1);
    return [String(titled("Save Image").id), String(titled("Save Depth").id)];
}"""

# The centre of a node's body in page coordinates (litegraph's canvas coordinates are CSS pixels from
# the canvas element's corner), where a user clicks it.
NODE_CENTRE = """(id) => {
    const canvas = window.app.canvas;
    const node = window.app.graph.getNodeById(Number(id));
    canvas.centerOnNode(node);
    canvas.setDirty(true, true);
    const [x, y] = canvas.ds.convertOffsetToCanvas([
        node.pos[0] + node.size[0] / 2, node.pos[1] + node.size[1] / 2,
    ]);
    const box = canvas.canvas.getBoundingClientRect();
    return [box.left + x, box.top + y];
}"""

DISTINCT_REDS = """(canvas) => {
    const gl = canvas.getContext("webgl");
    const pixels = new Uint8Array(canvas.width * canvas.height * 4);
    gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    return new Set(Array.from(pixels.filter((_, i) => i % 4 === 0))).size;
}"""


def test_the_depth_view_opens_from_the_save_image_node_after_a_depth_to_image_run(frontend: FrontEnd) -> None:
    with urllib.request.urlopen(frontend.server.url + "/api/extensions") as answer:
        assert EXTENSION in json.load(answer)
    # The module was imported and registered, and its setup ran (its stylesheet is linked).
    console_errors: list[str] = []
    frontend.page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    assert frontend.evaluate(REGISTERED)

    page = frontend.page
    # The front end's first start (the workspace is new) opens the template browser on the graph library.
    page.get_by_text("Depth-to-image at full strength", exact=True).click()
    page.wait_for_function("() => window.app.graph.nodes.some((node) => node.title === 'Save Depth')")
    # The extension reads the finished run from the history (the front end itself asks /api/jobs).
    with page.expect_response(lambda response: "/api/history/" in response.url, timeout=120_000):
        result_id, depth_id = frontend.evaluate(LOWER_AND_QUEUE)
    outputs = "(id) => window.app.nodeOutputs[id]?.images?.[0]"
    page.wait_for_function(outputs, arg=result_id)
    saved_depth: dict[str, Any] = frontend.evaluate(outputs, depth_id)

    # Right-click the Save Image node, as a user would once it shows the picture.
    page.mouse.click(*frontend.evaluate(NODE_CENTRE, result_id), button="right")
    frontend.screenshot("node-menu")
    page.get_by_text("Open depth view", exact=True).click()

    view = page.get_by_test_id("depth-view")
    assert view.is_visible()
    gray = page.get_by_test_id("depth-gray").locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=gray.element_handle())
    assert f"filename={saved_depth['filename']}" in (gray.get_attribute("src") or "")
    frontend.screenshot("depth-gray")

    page.get_by_test_id("depth-tab-3-D").click()
    canvas = page.get_by_test_id("depth-parallax")
    page.wait_for_function("canvas => canvas.width > 0 && canvas.height > 0", arg=canvas.element_handle())
    page.wait_for_timeout(300)  # a few animation frames
    assert frontend.evaluate(DISTINCT_REDS, canvas.element_handle()) > 50  # drawn, not blank
    frontend.screenshot("depth-parallax")

    page.get_by_test_id("depth-tab-compare").click()
    assert page.locator(".depth-view .compare .after").is_visible()
    frontend.screenshot("depth-compare")

    page.keyboard.press("Escape")
    assert view.count() == 0

    # Selecting the node shows the same view's button in the selection toolbox.
    frontend.evaluate("() => window.app.canvas.deselectAll()")
    page.mouse.click(*frontend.evaluate(NODE_CENTRE, result_id))
    page.locator("[data-testid=selection-toolbox] .pi-box").click()
    assert view.is_visible()
    page.keyboard.press("Escape")
    assert view.count() == 0
    assert not [text for text in console_errors if "depthgraph" in text or "depth_view" in text]

"""The editor's basics: the node search, New, the Graphs menu, the title field, Escape, and the mask
painter of Load Image."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
from PIL import Image

from tests.web.conftest import ROOT, Editor

LOADER = 2  # Load Image in graphs/depth2img.json, which a first visit opens


def object_info(editor: Editor) -> dict[str, Any]:
    with urllib.request.urlopen(editor.server.url + "/object_info") as response:
        return dict(json.loads(response.read()))


def box_of(editor: Editor, testid: str) -> dict[str, float]:
    return dict(editor.testid(testid).bounding_box() or {})


def within(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        outer["x"] <= inner["x"]
        and outer["y"] <= inner["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def empty_canvas_point(editor: Editor) -> dict[str, float]:
    """The point of the canvas furthest right (then lowest) that is well clear of every node."""
    point = editor.evaluate(
        """() => {
            const { canvas, graph } = window.depthgraph;
            const page = canvas.canvas.getBoundingClientRect();
            for (let x = page.width - 20; x > 20; x -= 20) {
                for (let y = page.height - 20; y > 20; y -= 20) {
                    const [gx, gy] = canvas.ds.convertCanvasToOffset([x, y]);
                    const clear = graph._nodes.every((node) => {
                        const [left, top, width, height] = node.boundingRect;
                        const gap = 40;
                        return gx < left - gap || gx > left + width + gap
                            || gy < top - gap || gy > top + height + gap;
                    });
                    if (clear) return { x: page.left + x, y: page.top + y, canvasX: gx, canvasY: gy };
                }
            }
            return null;
        }"""
    )
    assert point, "the canvas has no empty place to double-click"
    return dict(point)


def click_widget(editor: Editor, node_id: int, name: str) -> None:
    """Click a node's widget on the canvas, where the user sees it."""
    x, y = editor.evaluate(
        """([id, name]) => {
            const { canvas, graph } = window.depthgraph;
            const node = graph.getNodeById(id);
            const widget = node.widgets.find((w) => w.name === name);
            const middle = [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + 10];
            const [x, y] = canvas.ds.convertOffsetToCanvas(middle);
            const page = canvas.canvas.getBoundingClientRect();
            return [page.left + x, page.top + y];
        }""",
        [node_id, name],
    )
    editor.page.mouse.click(x, y)


def node_count(editor: Editor) -> int:
    return int(editor.evaluate("() => window.depthgraph.graph._nodes.length"))


def test_double_clicking_the_canvas_opens_the_node_search_with_categories_inside_the_canvas_area(
    editor: Editor,
) -> None:
    point = empty_canvas_point(editor)
    editor.page.mouse.dblclick(point["x"], point["y"])
    menu = editor.testid("node-menu")
    menu.wait_for()
    assert editor.page.locator(".litesearchbox").count() == 0  # not litegraph's own search box
    headings = menu.locator("[data-testid=node-category] h4").all_inner_texts()
    categories = {info.get("category") or "other" for info in object_info(editor).values()}
    assert sorted(heading.lower() for heading in headings) == sorted(c.lower() for c in categories)
    assert within(box_of(editor, "node-menu"), dict(editor.page.locator(".canvas-area").bounding_box() or {}))
    assert editor.page.evaluate("() => document.activeElement?.dataset.testid") == "node-search"
    editor.screenshot("search")

    editor.page.keyboard.type("invert colours")
    editor.page.keyboard.press("Enter")
    added = editor.evaluate(
        "() => { const n = window.depthgraph.graph._nodes.at(-1); return [n.type, ...n.pos]; }"
    )
    assert added[0] == "ImageInvert"
    assert abs(added[1] - point["canvasX"]) < 1 and abs(added[2] - point["canvasY"]) < 1
    assert menu.is_hidden()


def slot_point(editor: Editor, node_id: int, is_input: bool, slot: int) -> tuple[float, float]:
    """Where a node's socket is drawn on the page."""
    x, y = editor.evaluate(
        """([id, isInput, slot]) => {
            const { canvas, graph } = window.depthgraph;
            const socket = graph.getNodeById(id).getConnectionPos(isInput, slot);
            const [x, y] = canvas.ds.convertOffsetToCanvas(socket);
            const page = canvas.canvas.getBoundingClientRect();
            return [page.left + x, page.top + y];
        }""",
        [node_id, is_input, slot],
    )
    return float(x), float(y)


def drop_link(editor: Editor, start: tuple[float, float], end: dict[str, float], shift: bool) -> None:
    mouse = editor.page.mouse
    mouse.move(*start)
    mouse.down()
    mouse.move(end["x"], end["y"], steps=8)
    if shift:
        editor.page.keyboard.down("Shift")
    mouse.up()
    if shift:
        editor.page.keyboard.up("Shift")


def offered_nodes(editor: Editor) -> set[str]:
    menu = editor.testid("node-menu")
    menu.wait_for()
    items = menu.locator("[data-testid=node-menu-item]:not([hidden])")
    return set(items.evaluate_all("(items) => items.map((item) => item.dataset.nodeClass)"))


def test_a_link_dropped_with_shift_opens_the_search_for_nodes_that_take_it_and_links_the_pick(
    editor: Editor,
) -> None:
    info = object_info(editor)
    point = empty_canvas_point(editor)
    drop_link(editor, slot_point(editor, LOADER, False, 0), point, shift=True)  # Load Image's IMAGE
    offered = offered_nodes(editor)
    taking_images = {
        name
        for name, schema in info.items()
        if any(spec[0] == "IMAGE" for group in schema["input"].values() for spec in group.values())
    }
    assert offered == taking_images
    assert "DepthSampler" not in offered and "ImageInvert" in offered
    editor.screenshot("link-search")
    editor.page.keyboard.type("invert colours")
    editor.page.keyboard.press("Enter")
    origin = editor.evaluate(
        """() => {
            const { graph } = window.depthgraph;
            const node = graph._nodes.at(-1);
            const link = graph.links.get?.(node.inputs[0].link) ?? graph.links[node.inputs[0].link];
            return [node.type, link?.origin_id, link?.origin_slot];
        }"""
    )
    assert origin == ["ImageInvert", LOADER, 0]


def test_a_link_dropped_from_an_input_offers_the_nodes_that_make_its_type_and_links_the_pick(
    editor: Editor,
) -> None:
    point = empty_canvas_point(editor)
    added = editor.evaluate(
        """([x, y]) => window.depthgraph.addNode("DepthToImage", { canvasX: x - 400, canvasY: y - 100 })
            .id""",
        [point["canvasX"], point["canvasY"]],
    )
    drop_link(editor, slot_point(editor, added, True, 0), point, shift=False)  # its DEPTH input
    offered = offered_nodes(editor)
    assert {"DepthEstimate", "LoadDepth", "DepthBlur"} <= offered
    assert "ImageInvert" not in offered and "SaveDepth" not in offered
    editor.page.keyboard.type("load depth map")
    editor.page.keyboard.press("Enter")
    linked = editor.evaluate(
        """(id) => {
            const { graph } = window.depthgraph;
            const target = graph.getNodeById(id);
            const link = graph.links.get?.(target.inputs[0].link) ?? graph.links[target.inputs[0].link];
            return graph.getNodeById(link.origin_id).type;
        }""",
        added,
    )
    assert linked == "LoadDepth"


def test_escape_closes_the_node_search_and_the_menus(editor: Editor) -> None:
    point = empty_canvas_point(editor)
    editor.page.mouse.dblclick(point["x"], point["y"])
    editor.testid("node-menu").wait_for()
    editor.page.keyboard.press("Escape")
    assert editor.testid("node-menu").is_hidden()
    editor.testid("node-menu-button").click()
    assert within(box_of(editor, "node-menu"), {"x": 0, "y": 0, "width": 1100, "height": 850})
    editor.page.keyboard.press("Escape")
    assert editor.testid("node-menu").is_hidden()
    editor.testid("graph-menu-button").click()
    editor.page.locator("[data-testid=graph-item]").first.wait_for()
    editor.page.keyboard.press("Escape")
    assert editor.testid("graph-menu").is_hidden()
    assert node_count(editor) == 13  # Escape closed things; it changed nothing on the canvas


def test_new_empties_the_canvas_and_asks_first_only_when_there_are_unsaved_changes(editor: Editor) -> None:
    editor.set_widget(8, "seed", 9001)
    editor.testid("new-button").click()
    dialog = editor.testid("confirm-dialog")
    dialog.wait_for()
    assert "Depth-to-image at full strength" in dialog.inner_text()
    editor.testid("confirm-cancel").click()
    assert node_count(editor) == 13 and dialog.count() == 0
    editor.testid("new-button").click()
    editor.page.keyboard.press("Escape")  # Escape is "Cancel" too
    assert node_count(editor) == 13 and dialog.count() == 0

    with editor.page.expect_download():
        editor.testid("save-button").click()  # saved: nothing left to lose
    editor.testid("new-button").click()
    assert node_count(editor) == 0 and dialog.count() == 0
    assert editor.testid("graph-title").input_value() == ""
    editor.screenshot("new")

    editor.open_library_graph("invert_and_scale.json")
    editor.set_widget(2, "width", 320)
    editor.testid("new-button").click()
    editor.testid("confirm-ok").click()
    assert node_count(editor) == 0
    editor.page.reload()
    editor.page.wait_for_selector("body[data-ready=true]")
    assert node_count(editor) == 0  # the empty graph is what the browser keeps


def test_the_graphs_menu_lists_titles_and_descriptions_on_one_line_each_and_scrolls(editor: Editor) -> None:
    editor.page.set_viewport_size({"width": 1000, "height": 520})
    editor.testid("graph-menu-button").click()
    items = editor.page.locator("[data-testid=graph-item]")
    items.first.wait_for()
    library = {path.name: json.loads(path.read_text()) for path in sorted((ROOT / "graphs").glob("*.json"))}
    lines = items.evaluate_all(
        """(items) => items.map((item) => {
            const lines = (element) =>
                element.offsetHeight / parseFloat(getComputedStyle(element).lineHeight);
            const [title, description] = ["graph-item-title", "graph-item-description"]
                .map((id) => item.querySelector(`[data-testid=${id}]`));
            return { name: item.dataset.name, title: title.textContent, description: description.textContent,
                     lines: [lines(title), lines(description)] };
        })"""
    )
    assert [item["name"] for item in lines] == list(library)
    for item in lines:
        assert item["title"] == library[item["name"]]["title"]
        assert item["description"] == library[item["name"]]["description"]
        assert max(item["lines"]) < 1.5, item
    menu = box_of(editor, "graph-menu")
    assert menu["y"] + menu["height"] <= 520
    assert editor.evaluate(
        "() => { const m = document.querySelector('[data-testid=graph-menu]'); "
        "return m.scrollHeight > m.clientHeight; }"
    )
    editor.screenshot("graphs-menu")
    last = items.last
    last.scroll_into_view_if_needed()
    assert within(dict(last.bounding_box() or {}), menu)
    last.click()
    editor.page.wait_for_function(
        "n => window.depthgraph.graph._nodes.length === n", arg=len(library[lines[-1]["name"]]["nodes"])
    )


def test_the_title_field_shows_a_long_title_whole(editor: Editor) -> None:
    editor.open_library_graph("strength_sweep.json")
    title = editor.testid("graph-title")
    assert title.input_value() == "Strength sweep: img2img, depth2img and ControlNet depth"
    assert title.evaluate("input => input.scrollWidth <= input.clientWidth")


def alpha_of(path: Any) -> np.ndarray:
    with Image.open(path) as stored:
        assert stored.mode == "RGBA"
        return np.asarray(stored.getchannel("A"))


def paint(editor: Editor, tool: str, start: float, end: float) -> None:
    """Drag across the middle of the painter's image, from `start` to `end` (fractions of its width)."""
    editor.testid(f"mask-{tool}").check()
    box = box_of(editor, "mask-canvas")
    y = box["y"] + box["height"] / 2
    editor.page.mouse.move(box["x"] + box["width"] * start, y)
    editor.page.mouse.down()
    editor.page.mouse.move(box["x"] + box["width"] * end, y, steps=12)
    editor.page.mouse.up()


def loader_image(editor: Editor) -> str:
    return str(editor.evaluate(f"() => window.depthgraph.graph.getNodeById({LOADER}).widgets[0].value"))


def test_the_mask_painter_stores_brush_and_eraser_strokes_as_the_load_image_mask(editor: Editor) -> None:
    click_widget(editor, LOADER, "paint mask")
    editor.testid("mask-painter").wait_for()
    paint(editor, "brush", 0.2, 0.8)
    paint(editor, "eraser", 0.15, 0.45)  # takes the left part of the stroke back
    editor.screenshot("mask-painted")
    editor.testid("mask-save").click()
    editor.page.wait_for_function(
        f"() => window.depthgraph.graph.getNodeById({LOADER}).widgets[0].value !== 'example.jpg'"
    )
    assert editor.testid("mask-painter").count() == 0

    name = loader_image(editor)
    assert name.startswith("clipspace/") and name.endswith(".png")
    assert editor.prompt()[str(LOADER)]["inputs"]["image"] == name
    stored = editor.server.settings.input_dir / name
    alpha = alpha_of(stored)
    height, width = alpha.shape
    middle = height // 2
    assert alpha[middle, int(width * 0.65)] == 0  # painted: transparent, so LoadImage's MASK is 1 there
    assert alpha[middle, int(width * 0.3)] == 255  # painted, then erased
    assert alpha[height // 10, width // 2] == 255  # never painted
    with Image.open(ROOT / "input" / "example.jpg") as original, Image.open(stored) as masked:
        assert masked.size == original.size
        assert np.array_equal(np.asarray(masked.convert("RGB")), np.asarray(original.convert("RGB")))
    editor.screenshot("mask-saved")


def test_the_mask_painter_reopens_on_the_mask_then_clears_inverts_and_closes_with_escape(
    editor: Editor,
) -> None:
    click_widget(editor, LOADER, "paint mask")
    editor.testid("mask-painter").wait_for()
    paint(editor, "brush", 0.3, 0.7)
    editor.testid("mask-save").click()
    editor.page.wait_for_function(
        f"() => window.depthgraph.graph.getNodeById({LOADER}).widgets[0].value !== 'example.jpg'"
    )
    first = loader_image(editor)

    click_widget(editor, LOADER, "paint mask")
    editor.testid("mask-painter").wait_for()
    shown = editor.testid("mask-canvas").evaluate(
        """(canvas) => {
            const pixel = (x) => canvas.getContext("2d").getImageData(x, canvas.height / 2, 1, 1).data[3];
            return [pixel(canvas.width / 2), pixel(5)];
        }"""
    )
    assert shown[0] > 0 and shown[1] == 0  # the saved stroke is there to go on painting
    editor.testid("mask-clear").click()
    editor.testid("mask-invert").click()  # nothing painted, inverted: all of it masked
    editor.testid("mask-save").click()
    editor.page.wait_for_function(
        "first => window.depthgraph.graph.getNodeById(2).widgets[0].value !== first", arg=first
    )
    assert (alpha_of(editor.server.settings.input_dir / loader_image(editor)) == 0).all()

    second = loader_image(editor)
    click_widget(editor, LOADER, "paint mask")
    editor.testid("mask-painter").wait_for()
    editor.page.keyboard.press("Escape")
    assert editor.testid("mask-painter").count() == 0
    assert loader_image(editor) == second


def test_only_load_image_offers_the_mask_painter_not_the_depth_map_loader(editor: Editor) -> None:
    editor.open_library_graph("foreground_only.json")
    buttons = editor.evaluate(
        """() => Object.fromEntries([2, 4].map((id) => {
            const node = window.depthgraph.graph.getNodeById(id);
            return [node.type, node.widgets.filter((w) => w.type === "button").map((w) => w.name)];
        }))"""
    )
    assert buttons == {
        "LoadImage": ["choose image to upload", "paint mask"],
        "LoadDepth": ["choose image to upload"],
    }

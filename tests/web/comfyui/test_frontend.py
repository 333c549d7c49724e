"""ComfyUI's official front end, unchanged, as depthgraph's editor: it boots with no failed request,
knows every node with its widgets, opens the graph library as templates, runs depth-to-image with the
images shown on their nodes and in its queue panel, and its mask editor drives inpainting."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import numpy as np
from depthgraph.engine.formats.graph_library import list_library, read_library_graph
from PIL import Image

from tests.live_server import start_server
from tests.web.comfyui.conftest import FrontEnd, comfy_settings, watch
from tests.web.conftest import ROOT

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
OPEN_NODE_MENU = """(type) => {
    const node = app.graph._nodes.find((n) => n.type === type);
    app.canvas.selectNode(node);
    const [x, y] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + 40, node.pos[1] + 10]);
    const box = app.canvas.canvas.getBoundingClientRect();
    return [box.left + x, box.top + y];
}"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def library_prompt(name: str) -> dict[str, Any]:
    return read_library_graph(ROOT / "graphs", name).prompt


def same_graph(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Node for node: the class, every constant and every link (JSON numbers: 1 == 1.0)."""
    assert sorted(theirs) == sorted(ours)
    for node_id, node in ours.items():
        assert theirs[node_id]["class_type"] == node["class_type"], node_id
        assert theirs[node_id]["inputs"] == node["inputs"], (node_id, node["class_type"])


def open_template(frontend: FrontEnd, title: str, size: int) -> None:
    """Through the template browser, as a user opens one: the sidebar's Templates button, a card;
    done when the canvas holds that graph (not merely as many nodes as the one before)."""
    page = frontend.page
    name = next(entry.name for entry in list_library(ROOT / "graphs") if entry.title == title)
    expected = sorted(f"{key}:{node['class_type']}" for key, node in library_prompt(name).items())
    assert len(expected) == size
    if not page.get_by_role("dialog").count():
        page.locator("button[aria-label=Templates]").first.click()
    page.get_by_role("dialog").get_by_text(title, exact=True).first.click()
    page.wait_for_function(
        "expected => JSON.stringify(app.graph._nodes.map((n) => `${n.id}:${n.type}`).sort())"
        " === JSON.stringify(expected) && !document.querySelector('[role=dialog]')",
        arg=sorted(expected, key=str),
    )


def test_the_front_end_boots_and_knows_every_node_with_its_widgets(frontend: FrontEnd) -> None:
    frontend.screenshot("booted")
    info = get_json(frontend.server.url + "/api/object_info")
    known = frontend.evaluate(
        """(types) => types.map((type) => {
            const node = LiteGraph.createNode(type);
            return [type, node ? (node.widgets ?? []).map((w) => w.name) : null,
                    node ? node.inputs.filter((i) => !i.widget).map((i) => i.type) : null,
                    node ? node.outputs.map((o) => o.type) : null];
        })""",
        sorted(info),
    )
    assert len(known) == len(info) > 30
    for node_type, widgets, inputs, outputs in known:
        schema = info[node_type]
        assert widgets is not None, f"the front end cannot create {node_type}"
        required, optional = schema["input"].get("required", {}), schema["input"].get("optional", {})
        expected, sockets = [], []
        for name, spec in {**required, **optional}.items():
            if isinstance(spec[0], list) or spec[0] in WIDGET_TYPES:
                expected += [name, "control_after_generate"] if name == "seed" else [name]
            else:
                sockets.append(spec[0])
        shown = [name for name in widgets if name not in ("upload", "$$canvas-image-preview")]
        assert shown == expected, node_type
        assert inputs == sockets, node_type
        assert outputs == schema["output"], node_type


def test_every_library_graph_opens_as_a_template_and_queues_as_the_library_has_it(
    frontend: FrontEnd,
) -> None:
    """The template browser lists the library with titles; each opens, and the front end's own
    graph-to-prompt gives exactly the library graph: no widget value shifted, no link lost."""
    entries = list_library(ROOT / "graphs")
    assert entries
    index = get_json(frontend.server.url + "/templates/index.json")
    listed = {template["name"]: template for template in index[0]["templates"]}
    assert sorted(listed) == sorted(entry.name.removesuffix(".json") for entry in entries)
    for entry in entries:
        assert listed[entry.name.removesuffix(".json")]["description"] == entry.description
        prompt = library_prompt(entry.name)
        open_template(frontend, entry.title, len(prompt))
        same_graph(prompt, frontend.prompt())
    frontend.screenshot("last-template")


def test_depth2img_runs_with_its_images_on_the_nodes_and_in_the_queue_panel(frontend: FrontEnd) -> None:
    frontend.close_dialogs()
    prompt = library_prompt("depth2img.json")
    open_template(frontend, "Depth-to-image at full strength", len(prompt))
    frontend.evaluate("() => { app.graph.getNodeById(8).widgets.find((w) => w.name === 'steps').value = 2 }")
    frontend.page.get_by_role("button", name="Run", exact=True).click()
    frontend.page.wait_for_function(
        "() => [11, 13].every((id) => (app.graph.getNodeById(id).imgs ?? []).length > 0)", timeout=120_000
    )
    shown = frontend.evaluate("() => [11, 13].map((id) => app.graph.getNodeById(id).imgs[0].src)")
    history = get_json(frontend.server.url + "/history?max_items=1")
    (entry,) = history.values()
    saved = {entry["outputs"][node]["images"][0]["filename"] for node in ("11", "13")}
    assert {src.split("filename=")[1].split("&")[0] for src in shown} == saved
    frontend.page.get_by_text("active", exact=False).first.click()  # the job queue panel
    frontend.page.get_by_text(entry["outputs"]["11"]["images"][0]["filename"]).first.wait_for()
    frontend.screenshot("ran")


def test_the_mask_editor_paints_a_mask_that_drives_inpainting(frontend: FrontEnd) -> None:
    """Paint a stroke in the front end's mask editor on the photo; its upload is stored, Load Image's
    MASK carries it, and the inpainting graph changes the picture there and nowhere far from it."""
    frontend.close_dialogs()
    page = frontend.page
    prompt = library_prompt("depth_inpaint.json")
    open_template(
        frontend,
        next(e.title for e in list_library(ROOT / "graphs") if e.name == "depth_inpaint.json"),
        len(prompt),
    )
    # Inpaint where the user paints: Load Image's MASK feeds the mask chain instead of the mask file.
    frontend.evaluate(
        """() => {
            const image = app.graph._nodes.find((n) => n.type === 'LoadImage');
            const size = app.graph._nodes.find((n) => n.type === 'ImageSizeForModel');
            image.connect(1, size, size.findInputSlot('mask'));
            app.graph.getNodeById(8).widgets.find((w) => w.name === 'steps').value = 2;
        }"""
    )
    x, y = frontend.evaluate(OPEN_NODE_MENU, "LoadImage")
    page.mouse.click(x, y, button="right")
    page.get_by_text("Open in MaskEditor").first.click()
    layer = page.locator("canvas.z-10").first  # the mask layer over the photo
    layer.wait_for()
    box = layer.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + box["width"] * (0.3 + step * 0.02), box["y"] + box["height"] * 0.5)
    page.mouse.up()
    with page.expect_response(lambda r: "/upload/image" in r.url and "painted-masked" in r.text()) as upload:
        page.get_by_role("button", name="Save").last.click()
    stored = upload.value.json()
    value = frontend.evaluate("() => app.graph._nodes.find((n) => n.type === 'LoadImage').widgets[0].value")
    assert value == f"{stored['name']} [input]"
    painted = Image.open(frontend.server.settings.input_dir / stored["name"])
    alpha = np.asarray(painted.getchannel("A"), dtype=np.float32) / 255
    height, width = alpha.shape
    assert alpha[height // 2, int(width * 0.5)] < 0.5  # painted: transparent, so masked
    assert alpha[int(height * 0.1), int(width * 0.1)] == 1.0 and alpha.mean() > 0.8

    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => (app.graph.getNodeById(11).imgs ?? []).length > 0", timeout=120_000)
    (entry,) = get_json(frontend.server.url + "/history?max_items=1").values()
    assert entry["status"]["status_str"] == "success", entry["status"]
    output = entry["outputs"]["11"]["images"][0]
    result = Image.open(
        io.BytesIO(get_bytes(f"{frontend.server.url}/view?filename={output['filename']}&type=output"))
    )
    before = np.asarray(
        Image.open(frontend.server.settings.input_dir / "example.jpg").convert("RGB").resize(result.size),
        dtype=np.float32,
    )
    after = np.asarray(result.convert("RGB"), dtype=np.float32)
    changed = np.abs(after - before).mean(axis=2)
    h, w = changed.shape
    assert changed[h // 2, int(w * 0.5)] > 20  # regenerated under the stroke
    assert changed[int(h * 0.1), int(w * 0.1)] < 8  # the corner, far from it, kept
    frontend.screenshot("inpainted")


def test_a_saved_workflow_survives_a_server_restart(browser: Any, tmp_path: Any) -> None:
    """Saved with Ctrl+S under a name, listed in the Workflows sidebar after the server restarts
    (the front end keeps its workflows in the server's data folder), and opened unchanged."""
    settings = comfy_settings(tmp_path)
    prompt = library_prompt("depth2img.json")
    for attempt in ("save", "reopen"):
        server = start_server(settings)
        context = browser.new_context(viewport={"width": 1400, "height": 850})
        frontend = FrontEnd(context.new_page(), server, f"restart-{attempt}")
        watch(frontend.page, server.url, frontend.problems)
        try:
            frontend.open()
            frontend.close_dialogs()
            page = frontend.page
            if attempt == "save":
                open_template(frontend, "Depth-to-image at full strength", len(prompt))
                frontend.evaluate(
                    "() => { app.graph.getNodeById(8).widgets.find((w) => w.name === 'seed').value = 7 }"
                )
                page.locator("canvas#graph-canvas").click(position={"x": 700, "y": 760})
                page.keyboard.press("Control+s")
                page.get_by_role("dialog").locator("input").fill("my knight")
                with page.expect_response(
                    lambda r: "/api/userdata/workflows" in r.url and r.request.method == "POST"
                ):
                    page.keyboard.press("Enter")
            else:
                page.locator("button[aria-label^=Workflows]").click()
                page.get_by_text("my knight", exact=True).first.click()
                page.wait_for_function("n => app.graph._nodes.length === n", arg=len(prompt))
                frontend.screenshot("reopened")
                queued = frontend.prompt()
                assert queued["8"]["inputs"]["seed"] == 7
                same_graph({**prompt, "8": queued["8"]}, queued)
        finally:
            context.close()
            server.stop()
        assert not frontend.problems, frontend.problems
    saved = settings.data_dir / "users" / "default" / "workflows" / "my knight.json"
    assert json.loads(saved.read_text())["nodes"]


# --- conversion: what the front end writes, converted by depthgraph, equals what it queues itself ---
EDITS = {
    "bypass": """() => { app.graph.getNodeById(3).mode = 4; }""",
    "mute": """() => { app.graph.getNodeById(12).mode = 2; app.graph.getNodeById(6).mode = 2; }""",
    "reroute": """() => {
        const reroute = LiteGraph.createNode('Reroute');
        reroute.pos = [200, 300];
        app.graph.add(reroute);
        const image = app.graph.getNodeById(2), size = app.graph.getNodeById(3);
        image.connect(0, reroute, 0);
        reroute.connect(0, size, size.findInputSlot('image'));
    }""",
    "primitive": """() => {
        const primitive = LiteGraph.createNode('PrimitiveNode');
        primitive.pos = [200, 700];
        app.graph.add(primitive);
        const noise = app.graph.getNodeById(8);
        primitive.connect(0, noise, noise.findInputSlot('seed'));
        primitive.widgets[0].value = 1234;
    }""",
}


def signature(prompt: dict[str, Any], node_id: str, seen: dict[str, Any]) -> Any:
    """A node by what it is and what feeds it, whatever the ids (group nodes are renumbered)."""
    if node_id not in seen:
        node = prompt[node_id]
        inputs = []
        for name, value in sorted(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                inputs.append((name, signature(prompt, str(value[0]), seen), value[1]))
            else:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                inputs.append((name, json.dumps(float(value) if number else value)))  # 1 == 1.0
        seen[node_id] = (node["class_type"], tuple(inputs))
    return seen[node_id]


def same_meaning(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> None:
    mine: dict[str, Any] = {}
    other: dict[str, Any] = {}
    left = {repr(signature(ours, key, mine)) for key in ours}
    right = {repr(signature(theirs, key, other)) for key in theirs}
    assert left == right and len(ours) == len(theirs), (what, left - right, right - left)


def convert(frontend: FrontEnd, workflow: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        frontend.server.url + "/api/workflow/convert",
        data=json.dumps({"workflow": workflow}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def front_end_forms(frontend: FrontEnd) -> tuple[dict[str, Any], dict[str, Any]]:
    """The workflow the front end saves for its graph now, and the prompt it queues for it."""
    both = frontend.evaluate(
        "async () => { const p = await app.graphToPrompt(); return [p.workflow, p.output]; }"
    )
    return dict(both[0]), dict(both[1])


def runnable(prompt: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """What of a queued prompt can run: ComfyUI runs the outputs that pass validation, so a node
    missing a required input (a muted node's reader) is left out, and so is everything it fed."""
    kept = dict(prompt)
    while True:
        broken = [
            node_id
            for node_id, node in kept.items()
            if any(
                name not in node["inputs"] for name in info[node["class_type"]]["input"].get("required", {})
            )
            or any(
                isinstance(value, list) and len(value) == 2 and str(value[0]) not in kept
                for value in node["inputs"].values()
            )
        ]
        if not broken:
            return kept
        for node_id in broken:
            del kept[node_id]


def test_bypass_mute_reroute_and_primitive_convert_as_the_front_end_queues_them(frontend: FrontEnd) -> None:
    frontend.close_dialogs()
    info = get_json(frontend.server.url + "/api/object_info")
    size = len(library_prompt("depth2img.json"))
    for name, edit in EDITS.items():
        open_template(frontend, "Depth-to-image at full strength", size)
        frontend.evaluate(edit)
        workflow, queued = front_end_forms(frontend)
        assert name == "reroute" or queued != library_prompt("depth2img.json"), name
        # A muted node's readers are sent without that input; depthgraph leaves out what cannot run.
        same_graph(runnable(queued, info), convert(frontend, workflow))


def test_subgraphs_and_group_nodes_convert_as_the_front_end_queues_them(frontend: FrontEnd) -> None:
    frontend.close_dialogs()
    for path in sorted((ROOT / "tests" / "fixtures" / "workflows").glob("*.json")):
        if path.name.endswith(".prompt.json"):
            continue
        frontend.evaluate("(workflow) => app.loadGraphData(workflow)", json.loads(path.read_text()))
        workflow, queued = front_end_forms(frontend)
        assert queued, path.name
        same_meaning(convert(frontend, json.loads(path.read_text())), queued, path.name)  # as written
        same_meaning(convert(frontend, workflow), queued, f"{path.name} saved again")

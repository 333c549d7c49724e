"""Graph files in the editor: save and load, PNGs saved by SaveImage, images dropped or pasted."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.web.conftest import ROOT, Editor


def layout(editor: Editor) -> dict[str, Any]:
    return dict(
        editor.evaluate(
            "() => Object.fromEntries(window.depthgraph.graph._nodes.map((n) => [n.id, [...n.pos]]))"
        )
    )


def queue_headless(editor: Editor, document: dict[str, Any]) -> str:
    """Run a graph through the HTTP API (as a script would), with the depthgraph file as its workflow."""
    body = {"prompt": document["nodes"], "extra_data": {"extra_pnginfo": {"workflow": document}}}
    request = urllib.request.Request(
        editor.server.url + "/prompt", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return str(json.loads(response.read())["prompt_id"])


def finished(editor: Editor, prompt_id: str, timeout: float = 60) -> dict[str, Any]:
    """The history entry of `prompt_id` once it has run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{editor.server.url}/history/{prompt_id}") as response:
            entry = json.loads(response.read()).get(prompt_id)
        if entry and entry["status"]["completed"]:
            return dict(entry)
        time.sleep(0.1)
    raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")


def test_save_then_reload_then_load_restores_the_same_graph(editor: Editor) -> None:
    editor.set_widget(8, "seed", 31337)
    editor.set_widget(5, "text", "a marble statue, studio light")
    editor.evaluate("() => { window.depthgraph.graph.getNodeById(4).pos = [777, 55]; }")
    editor.testid("graph-title").fill("My statue")
    before, places = editor.prompt(), layout(editor)
    with editor.page.expect_download() as download:
        editor.testid("save-button").click()
    assert download.value.suggested_filename == "My_statue.json"
    saved = Path(download.value.path())
    document = json.loads(saved.read_text())
    assert document["format"] == "depthgraph" and document["title"] == "My statue"
    assert document["layout"]["nodes"]["4"]["pos"] == [777, 55]

    editor.page.reload()
    editor.page.wait_for_selector("body[data-ready=true]")
    editor.open_library_graph("invert_and_scale.json")  # something else on the canvas
    assert editor.prompt() != before
    with editor.page.expect_file_chooser() as chooser:
        editor.testid("load-button").click()
    chooser.value.set_files(saved)
    editor.page.wait_for_function("() => window.depthgraph.graph._nodes.length === 13")
    assert editor.prompt() == before
    assert layout(editor) == places
    assert editor.testid("graph-title").input_value() == "My statue"
    editor.screenshot("loaded-from-file")


def test_dropping_a_png_saved_by_save_image_restores_its_graph(editor: Editor) -> None:
    document = json.loads((ROOT / "graphs" / "invert_and_scale.json").read_text())
    document["nodes"]["2"]["inputs"]["width"] = 320
    document["layout"]["nodes"]["2"]["pos"] = [500, 123]
    prompt_id = queue_headless(editor, document)
    image = finished(editor, prompt_id)["outputs"]["4"]["images"][0]
    png = (editor.server.settings.output_dir / image["subfolder"] / image["filename"]).read_bytes()

    editor.drop_file(png, image["filename"], "image/png")
    editor.page.wait_for_function("() => window.depthgraph.graph._nodes.length === 4")
    exported = editor.prompt()
    assert {key: node["inputs"] for key, node in exported.items()} == {
        key: node["inputs"] for key, node in document["nodes"].items()
    }
    assert layout(editor)["2"] == [500, 123]
    editor.screenshot("png-dropped")


def photo_bytes(kind: str) -> bytes:
    pixels = np.linspace(0, 255, 96 * 64 * 3).reshape(64, 96, 3).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind)
    return buffer.getvalue()


def load_image_nodes(editor: Editor) -> list[dict[str, Any]]:
    return list(
        editor.evaluate(
            """() => window.depthgraph.graph._nodes.filter((n) => n.type === 'LoadImage')
                 .map((n) => ({id: n.id, image: n.widgets[0].value, shown: n.images?.length ?? 0}))"""
        )
    )


def test_dropping_an_image_adds_a_load_image_node_with_the_upload(editor: Editor) -> None:
    before = load_image_nodes(editor)
    editor.drop_file(photo_bytes("JPEG"), "holiday.jpg", "image/jpeg")
    editor.page.wait_for_function("n => window.depthgraph.graph._nodes.length === n", arg=14)
    added = [node for node in load_image_nodes(editor) if node not in before]
    assert len(added) == 1 and added[0]["image"].startswith("holiday")
    stored = editor.server.settings.input_dir / added[0]["image"]
    assert stored.read_bytes() == photo_bytes("JPEG")
    editor.page.wait_for_function(
        "id => window.depthgraph.graph.getNodeById(id).images?.[0]?.complete", arg=added[0]["id"]
    )
    editor.screenshot("image-dropped")


def test_pasting_an_image_adds_a_load_image_node(editor: Editor) -> None:
    editor.evaluate(
        """async (encoded) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "clipboard.png", { type: "image/png" }));
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer }));
        }""",
        base64.b64encode(photo_bytes("PNG")).decode(),
    )
    editor.page.wait_for_function(
        "() => window.depthgraph.graph._nodes.some((n) => `${n.widgets?.[0]?.value}`.startsWith('clipboard'))"
    )
    assert len(load_image_nodes(editor)) == 2
    assert (editor.server.settings.input_dir / "clipboard.png").read_bytes() == photo_bytes("PNG")


def test_a_dropped_file_that_is_not_a_graph_is_reported_and_changes_nothing(editor: Editor) -> None:
    editor.expect_problem("HTTP 400: POST")
    editor.expect_problem("the server responded with a status of 400")
    before = editor.prompt()
    editor.drop_file(b'{"nodes": [1, 2', "broken.json", "application/json")
    errors = editor.testid("error-display")
    errors.wait_for()
    assert "broken.json is not valid JSON" in errors.inner_text()
    assert editor.prompt() == before
    editor.screenshot("bad-file")

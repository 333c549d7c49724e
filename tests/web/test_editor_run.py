"""Running graphs from the editor: progress on the nodes, results in the gallery, errors on the node
that caused them, interrupting, and the queue and history panels."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import numpy as np
from PIL import Image

from tests.web.conftest import Editor
from tests.web.test_editor_layout import IMAGES_LOADED, VIEW, overlaps

SAMPLER, NOISE = 9, 8  # node ids in graphs/depth2img.json


def watch_events(editor: Editor) -> None:
    """Record the socket's events in the page, to assert on what the editor was told."""
    editor.evaluate(
        """() => {
            window.seen = [];
            for (const type of ["execution_start", "progress", "executed", "execution_success",
                                "execution_interrupted", "execution_error"]) {
                window.depthgraph.socket.addEventListener(type, (e) => window.seen.push({type, ...e.detail}));
            }
        }"""
    )


def seen(editor: Editor, kind: str) -> list[dict[str, Any]]:
    return list(editor.evaluate("kind => window.seen.filter((e) => e.type === kind)", kind))


def fetch(editor: Editor, path: str) -> bytes:
    with urllib.request.urlopen(editor.server.url + path) as response:
        return bytes(response.read())


def test_queueing_depth2img_shows_progress_and_ends_with_its_image_in_the_gallery(editor: Editor) -> None:
    editor.set_widget(NOISE, "steps", 6)
    editor.set_widget(NOISE, "seed", 1234)
    watch_events(editor)
    editor.testid("queue-button").click()
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'progress')")
    editor.screenshot("running")
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'execution_success')")
    progress = [event for event in seen(editor, "progress") if event["node"] == str(SAMPLER)]
    total = progress[-1]["max"]  # PNDM's 6 steps take 7 model calls (its warm-up)
    assert total >= 6 and [event["value"] for event in progress] == list(range(1, total + 1))
    assert editor.testid("run-notice").inner_text().startswith("done in")
    prompt_id = seen(editor, "execution_start")[0]["prompt_id"]

    pictures = editor.page.locator(f'[data-testid=gallery-image][data-prompt-id="{prompt_id}"]')
    pictures.first.wait_for()
    assert sorted(pictures.evaluate_all("items => items.map((i) => i.dataset.node)")) == ["11", "13"]
    result = pictures.and_(editor.page.locator("[data-node='11']"))
    src = result.get_attribute("src")
    shown = editor.evaluate(
        "async (src) => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer()))", src
    )
    history = json.loads(fetch(editor, f"/history/{prompt_id}"))[prompt_id]
    image = history["outputs"]["11"]["images"][0]
    stored = fetch(editor, f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type=output")
    assert bytes(shown) == stored
    assert stored == (editor.server.settings.output_dir / image["subfolder"] / image["filename"]).read_bytes()
    assert result.evaluate("img => img.complete && img.naturalWidth") == 512
    # The saved node shows its image too, and the history panel lists the run.
    assert editor.evaluate("() => window.depthgraph.graph.getNodeById(11).images.length") == 1
    editor.testid("tab-history").click()
    editor.page.locator("[data-testid=history-item]", has_text=prompt_id[:8]).wait_for()
    editor.screenshot("finished")


def test_a_missing_required_input_is_shown_on_its_node_and_nothing_is_queued(editor: Editor) -> None:
    editor.expect_problem("HTTP 400: POST")
    editor.expect_problem("the server responded with a status of 400")
    history_before = json.loads(fetch(editor, "/history"))
    editor.evaluate(
        """() => {
            const sampler = window.depthgraph.graph.getNodeById(9);
            sampler.disconnectInput(sampler.findInputSlot("depth"));
        }"""
    )
    editor.testid("queue-button").click()
    errors = editor.testid("error-display")
    errors.wait_for()
    assert "Depth Sampler (#9) · depth:" in errors.inner_text()
    on_nodes = editor.evaluate("() => Object.fromEntries(window.depthgraph.runState.errors)")
    assert list(on_nodes) == ["9"] and on_nodes["9"][0]["input"] == "depth"
    assert json.loads(fetch(editor, "/queue")) == {"queue_running": [], "queue_pending": []}
    assert json.loads(fetch(editor, "/history")) == history_before
    editor.screenshot("missing-input")
    # Clicking the error brings the node into view and selects it; reconnecting and queueing clears it.
    errors.locator("li").first.click()
    assert editor.evaluate("() => Object.keys(window.depthgraph.canvas.selected_nodes)") == ["9"]


def test_interrupt_during_sampling_stops_the_run_and_keeps_the_editor_usable(editor: Editor) -> None:
    editor.set_widget(NOISE, "steps", 900)
    editor.set_widget(NOISE, "seed", 777)
    watch_events(editor)
    editor.testid("queue-button").click()
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'progress' && e.value >= 2)")
    editor.testid("interrupt-button").click()
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'execution_interrupted')")
    assert editor.testid("run-notice").inner_text() == "interrupted"
    last = max(event["value"] for event in seen(editor, "progress"))
    assert last < 900
    prompt_id = seen(editor, "execution_start")[0]["prompt_id"]
    assert not editor.page.locator(f'[data-testid=gallery-image][data-prompt-id="{prompt_id}"]').count()
    entry = json.loads(fetch(editor, f"/history/{prompt_id}"))[prompt_id]
    assert entry["status"]["status_str"] == "error"
    editor.screenshot("interrupted")


def test_ctrl_enter_queues_and_history_entries_reload_their_graph(editor: Editor) -> None:
    editor.set_widget(NOISE, "steps", 2)
    editor.set_widget(NOISE, "seed", 99)
    queued = editor.prompt()
    watch_events(editor)
    editor.page.locator("#canvas").click(position={"x": 5, "y": 5})
    editor.page.keyboard.press("Control+Enter")
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'execution_success')")
    prompt_id = seen(editor, "execution_start")[0]["prompt_id"]
    editor.open_library_graph("invert_and_scale.json")
    editor.testid("tab-history").click()
    editor.page.locator("[data-testid=history-item]", has_text=prompt_id[:8]).click()
    editor.page.wait_for_function("() => window.depthgraph.graph._nodes.length === 13")
    assert editor.prompt() == queued


def layout_sizes(editor: Editor) -> dict[str, list[float]]:
    """Each node's size on the canvas, by node id."""
    return dict(
        editor.evaluate(
            "() => Object.fromEntries(window.depthgraph.graph._nodes.map((n) => [n.id, [...n.size]]))"
        )
    )


def wait_for_runs(editor: Editor, count: int) -> list[str]:
    """The ids of the first `count` prompts the page saw start, once all of them have succeeded."""
    editor.page.wait_for_function(
        "n => window.seen.filter((e) => e.type === 'execution_success').length >= n", arg=count
    )
    return [event["prompt_id"] for event in seen(editor, "execution_start")][:count]


def test_result_images_fill_only_free_space_and_leave_no_empty_space_after_a_reload(editor: Editor) -> None:
    editor.page.wait_for_function(IMAGES_LOADED)
    before = layout_sizes(editor)
    editor.set_widget(NOISE, "steps", 2)
    watch_events(editor)
    editor.testid("queue-button").click()
    wait_for_runs(editor, 1)
    editor.page.wait_for_function(
        "() => [11, 13].every((id) => window.depthgraph.graph.getNodeById(id).images?.[0]?.complete)"
    )
    after = editor.evaluate(VIEW)
    assert not overlaps(after["nodes"])
    # Save Depth (#13) sits above Depth Sampler: its preview grew it, but only into the gap between them.
    grown = layout_sizes(editor)
    assert grown["13"][1] > before["13"][1]
    editor.screenshot("results-shown")
    editor.page.reload()
    editor.page.wait_for_selector("body[data-ready=true]")
    editor.page.wait_for_function(IMAGES_LOADED)
    assert layout_sizes(editor) == before
    editor.screenshot("reloaded")


def test_a_batch_of_two_queues_two_prompts_with_advancing_seeds_captioned_in_the_gallery(
    editor: Editor,
) -> None:
    editor.set_widget(NOISE, "steps", 2)
    editor.set_widget(NOISE, "seed", 500)
    editor.set_widget(NOISE, "control after generate", "increment")
    editor.testid("batch-count").fill("2")
    watch_events(editor)
    editor.testid("queue-button").click()
    prompt_ids = wait_for_runs(editor, 2)
    assert len(set(prompt_ids)) == 2
    for prompt_id, seed in zip(prompt_ids, (500, 501), strict=True):
        entry = json.loads(fetch(editor, f"/history/{prompt_id}"))[prompt_id]
        assert entry["prompt"][2][str(NOISE)]["inputs"]["seed"] == seed
        filename = entry["outputs"]["11"]["images"][0]["filename"]
        figure = editor.page.locator("[data-testid=gallery-item]").filter(
            has=editor.page.locator(
                f'[data-testid=gallery-image][data-prompt-id="{prompt_id}"][data-node="11"]'
            )
        )
        caption = figure.get_by_test_id("gallery-caption")
        caption.wait_for()
        text = caption.inner_text()
        assert filename in text and f"seed {seed}" in text and "photo of a knight in shining armour" in text
    assert editor.evaluate(f"() => window.depthgraph.graph.getNodeById({NOISE}).widgets[0].value") == 502
    editor.screenshot("batch-of-two")
    # The full-size view closes with Escape.
    editor.page.locator("[data-testid=gallery-image]").first.click()
    editor.testid("lightbox").wait_for()
    editor.page.keyboard.press("Escape")
    assert editor.testid("lightbox").count() == 0


def test_the_running_sampler_shows_a_progress_bar_with_its_step_and_cached_nodes_say_so(
    editor: Editor,
) -> None:
    editor.set_widget(NOISE, "steps", 2)
    watch_events(editor)
    editor.testid("queue-button").click()  # a first run, so the second finds the depth estimate cached
    wait_for_runs(editor, 1)
    editor.set_widget(NOISE, "steps", 400)
    editor.set_widget(NOISE, "seed", 4242)
    # Record what the canvas writes, and in which font.
    editor.evaluate(
        """() => {
            window.drawn = [];
            const fillText = CanvasRenderingContext2D.prototype.fillText;
            CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
                window.drawn.push({ text: String(text), font: this.font, fill: this.fillStyle });
                return fillText.call(this, text, ...rest);
            };
            const { canvas, graph } = window.depthgraph;
            canvas.centerOnNode(graph.getNodeById(9));
        }"""
    )
    editor.testid("queue-button").click()
    editor.page.wait_for_function(
        "() => window.seen.some((e) => e.type === 'progress' && e.node === '9' && e.value >= 3)"
    )
    editor.evaluate("() => { window.drawn = []; window.depthgraph.canvas.draw(true, true); }")
    drawn = editor.evaluate("() => window.drawn")
    total = seen(editor, "progress")[-1]["max"]  # PNDM's 400 steps take 401 model calls
    steps = [item for item in drawn if item["text"].startswith("step ")]
    assert steps and steps[0]["text"].endswith(f"/{total}") and "bold 12px" in steps[0]["font"]
    cached = [item for item in drawn if item["text"] == "cached"]
    assert cached and "bold 12px" in cached[0]["font"]
    bar = title_bar_pixels(editor, 9)
    green = np.all(np.abs(bar.astype(int) - RUNNING) < 40, axis=-1).mean()
    assert green > 0.05, f"only {green:.1%} of the sampler's title bar is the progress colour"
    editor.screenshot("progress")
    editor.testid("interrupt-button").click()
    editor.page.wait_for_function("() => window.seen.some((e) => e.type === 'execution_interrupted')")


RUNNING = np.array([76, 175, 80])  # run_state.js's RUNNING colour


def title_bar_pixels(editor: Editor, node_id: int) -> np.ndarray:
    """The node's title bar as the user sees it, as RGB pixels (inset, to leave out the running outline)."""
    box = editor.evaluate(
        """(id) => {
            const { canvas, graph } = window.depthgraph;
            const node = graph.getNodeById(id);
            const title = 30;
            const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0], node.pos[1] - title]);
            const page = canvas.canvas.getBoundingClientRect();
            const scale = canvas.ds.scale;
            const inset = 4;
            return { x: page.left + x + inset, y: page.top + y + inset,
                     width: node.size[0] * scale - 2 * inset, height: title * scale - 2 * inset };
        }""",
        node_id,
    )
    png = editor.page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

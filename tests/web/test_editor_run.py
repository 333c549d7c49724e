"""Running graphs from the editor: progress on the nodes, results in the gallery, errors on the node
that caused them, interrupting, and the queue and history panels."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.web.conftest import Editor

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

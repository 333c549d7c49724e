"""ComfyUI client libraries from PyPI, used unchanged, against a real depthgraph server: each queues a
library graph, follows its progress and gets back the image SaveImage wrote, as a user of that library
would with ComfyUI.

The libraries (the `test` extra pins the versions tried): comfy-api-simplified (`requests` and
`websockets`, blocking), comfyui-autoflow (stdlib only, blocking) and comfyui-async-api-tool
(aiohttp). The server is one per module, on the tiny model on CPU, on an ephemeral loopback port; each
test lowers the sampler's steps with its library's own way of editing a graph, and gives its graph its
own seed so no test is answered from another's cached results.
"""

from __future__ import annotations

import copy
import io
import logging
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from autoflow import ApiFlow, NodeInfo
from comfy_api_simplified import ComfyApiWrapper, ComfyWorkflowWrapper
from comfyui_async_api_tool import ComfyClient
from depthgraph.engine.app.config import Settings
from depthgraph.engine.formats.graph_library import read_library_graph
from PIL import Image

from tests import live_server

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"
SIZE = (192, 128)  # width, height: each graph's photo is scaled to this first (multiples of 64)
STEPS = 2
# The sampler reports one progress event per UNet call: PNDM, with its Runge-Kutta warm-up skipped as
# SD 2 depth's scheduler config says, repeats one timestep, so 2 steps are 3 calls.
SAMPLER_PROGRESS = [(call, STEPS + 1) for call in range(1, STEPS + 2)]
SAMPLER = "9"  # the DepthSampler's node id in every depth graph of the library
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live_server.Server]:
    workspace = tmp_path_factory.mktemp("third-party-clients")
    shutil.copytree(ROOT / "input", workspace / "input")  # the files the library graphs name
    settings = Settings.under(workspace, device="cpu", graphs_dir=GRAPHS)
    running = live_server.start_server(settings)
    yield running
    running.stop()


def small_library_graph(name: str, seed: int) -> dict[str, Any]:
    """The API form of library graph `name`, with its photo scaled to SIZE before it is sized for
    the model (so the tiny model runs in about a second on CPU) and the noise seed `seed`."""
    prompt = copy.deepcopy(read_library_graph(GRAPHS, name).prompt)
    width, height = SIZE
    prompt["100"] = {
        "class_type": "ImageScale",
        "inputs": {
            "image": prompt["3"]["inputs"]["image"],
            "upscale_method": "bilinear",
            "width": width,
            "height": height,
            "crop": "center",
        },
        "_meta": {"title": "Scale for the test"},
    }
    assert prompt["3"]["class_type"] == "ImageSizeForModel"
    prompt["3"]["inputs"]["image"] = ["100", 0]
    assert prompt[SAMPLER]["class_type"] == "DepthSampler"
    prompt["8"]["inputs"]["seed"] = seed
    return prompt


def saved_files(server: live_server.Server, prefix: str) -> dict[str, bytes]:
    """The PNGs SaveImage wrote with `prefix` (and a counter), by file name."""
    output = server.settings.output_dir
    return {path.name: path.read_bytes() for path in sorted(output.glob(f"{prefix}_[0-9]*.png"))}


def assert_saved_png(
    data: bytes, reference: Mapping[str, Any], server: live_server.Server, size: tuple[int, int] = SIZE
) -> None:
    """`data` is the PNG that `reference` ({filename, subfolder, type} from the history) names in
    the output folder, byte for byte, `size` pixels (the generated image's, by default)."""
    assert data.startswith(PNG_SIGNATURE), data[:16]
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("PNG", size)
    assert reference["type"] == "output"
    path = server.settings.output_dir / reference["subfolder"] / reference["filename"]
    assert data == path.read_bytes()


def test_comfy_api_simplified_gets_exactly_the_images_the_save_node_it_names_wrote(
    server: live_server.Server, caplog: pytest.LogCaptureFixture
) -> None:
    workflow = ComfyWorkflowWrapper(small_library_graph("depth2img.json", seed=101))
    workflow.set_node_param("Noise Latent", "steps", STEPS)  # by title, as its README shows
    api = ComfyApiWrapper(server.url)

    # Its only window on progress is its debug log of every WebSocket message.
    with caplog.at_level(logging.DEBUG, logger="comfy_api_simplified"):
        images = api.queue_and_wait_images(workflow, "Save Image")

    # Binary frames would come back instead, keyed "0", "1"...: the server sent no step previews to
    # a client that never asked for them, so these are the files of "Save Image", and only those.
    saved = saved_files(server, "depth2img")
    assert images == saved and len(images) == 1
    assert not saved_files(server, "depth2img_depth").keys() & images.keys()
    for filename, data in images.items():
        assert_saved_png(data, {"filename": filename, "subfolder": "", "type": "output"}, server)

    # It logs the /prompt answer too; WebSocket messages are the dicts with a type.
    messages = [r.msg for r in caplog.records if isinstance(r.msg, dict) and "type" in r.msg]
    steps = [m["data"] for m in messages if m["type"] == "progress" and m["data"]["node"] == SAMPLER]
    assert [(step["value"], step["max"]) for step in steps] == SAMPLER_PROGRESS
    assert messages[-1]["type"] == "executing" and messages[-1]["data"]["node"] is None


def test_autoflow_follows_progress_and_fetches_every_saved_image_with_the_servers_node_info(
    server: live_server.Server,
) -> None:
    # With node_info from the server, autoflow drops every node whose class /object_info does not
    # list before it submits: a missing class would silently lose that node's image.
    node_info = NodeInfo("fetch", server_url=server.url)
    prompt = small_library_graph("pose_transfer.json", seed=202)
    api = ApiFlow(prompt, node_info=node_info)
    api.noiselatent.steps = STEPS  # nodes by class, widgets as attributes
    events: list[dict[str, Any]] = []

    result = api.submit(
        server_url=server.url, client_id="autoflow-test", wait=True, wait_timeout=60, on_event=events.append
    )
    images = result.fetch_images()

    steps = [e for e in events if e["type"] == "progress" and e["data"]["node"] == SAMPLER]
    assert [(e["node_progress_value"], e["node_progress_max"]) for e in steps] == SAMPLER_PROGRESS
    assert events[-1]["type"] == "completed" and events[-1].get("detected_by") is None  # over the socket
    assert events[-1]["nodes_progress"] == 1.0

    entry = result["history"][result.prompt_id]
    assert entry["prompt"][2].keys() == prompt.keys()  # no node was dropped on the way
    outputs = entry["outputs"]
    assert set(outputs) == {"11", "13"}  # "Save Image" and "Save Depth"
    fetched = {image["ref"]["filename"]: image["bytes"] for image in images}
    assert fetched == saved_files(server, "pose_transfer") | saved_files(server, "pose_transfer_depth")
    generated, depth = (outputs[node]["images"][0] for node in ("11", "13"))
    by_name = {image["ref"]["filename"]: image for image in images}
    assert_saved_png(by_name[generated["filename"]]["bytes"], generated, server)
    # Stability's depth preprocessing keeps the aspect ratio at 384 pixels on the long side.
    assert_saved_png(by_name[depth["filename"]]["bytes"], depth, server, size=(384, 256))


async def test_comfyui_async_api_tool_streams_progress_then_the_image_of_the_last_save_node(
    server: live_server.Server,
) -> None:
    workflow = small_library_graph("style_transfer.json", seed=303)
    async with aiohttp.ClientSession() as session:
        # The caps keep a client that missed the end from waiting its default half hour.
        client = ComfyClient(session, [server.url], max_listen_seconds=60, fetch_image_timeout=30)
        # No server pinned: it probes GET /prompt and GET /queue to pick the least busy one.
        events = [event async for event in client.run(workflow, values={"8": {"steps": STEPS}})]
        start = events[0]
        assert start["type"] == "start" and start["data"]["server_url"] == server.url
        prompt_id = start["data"]["prompt_id"]
        async with session.get(f"{server.url}/history/{prompt_id}") as response:
            history = await response.json()

    assert history[prompt_id]["prompt"][2]["8"]["inputs"]["steps"] == STEPS
    progress = [event["data"] for event in events if event["type"] == "progress"]
    # Its bar eases toward the latest progress message's fraction, and ends at execution_success.
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert any(0 < value < 100 for value in progress), progress
    image = events[-1]
    assert image["type"] == "image", events[-1]
    (reference,) = history[prompt_id]["outputs"]["11"]["images"]
    assert_saved_png(image["data"], reference, server)
    assert saved_files(server, "style_transfer") == {reference["filename"]: image["data"]}
    # Timed from the execution_start and execution_success the history keeps, with timestamps.
    assert isinstance(image["generation_ms"], int) and image["generation_ms"] >= 0

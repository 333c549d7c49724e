"""The server speaks ComfyUI's API: queue, events, history, files, errors; every test runs against
the in-process executor and against two Ray workers, which must behave the same to a client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings

from tests.server.conftest import ROOT, StartServer, chain, collect, run_prompt


@pytest.fixture(params=["local", "ray"])
async def client(request: pytest.FixtureRequest, start_server: StartServer) -> Any:
    return await start_server(executor=request.param)


def image_graph() -> dict[str, Any]:
    return json.loads((ROOT / "graphs" / "invert_and_scale.json").read_text())["nodes"]


async def test_a_queued_graph_reports_its_events_in_order_and_its_image_can_be_viewed(
    client: Any, settings: Settings
) -> None:
    prompt_id, messages = await run_prompt(client, image_graph())
    kinds = [message["type"] for message in messages if message["type"] != "status"]
    assert kinds[0] == "execution_start"
    assert kinds[-2:] == ["execution_success", "executing"]
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert executing == ["1", "2", "3", "4", None]
    executed = [m["data"] for m in messages if m["type"] == "executed"]
    assert [data["node"] for data in executed] == ["4"]
    assert all(m["data"].get("prompt_id") == prompt_id for m in messages if m["type"] != "status")

    history = await (await client.get(f"/history/{prompt_id}")).json()
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [message[0] for message in entry["status"]["messages"]] == ["execution_start", "execution_success"]
    image = entry["outputs"]["4"]["images"][0]
    assert image == executed[0]["output"]["images"][0]
    view = await client.get("/view", params=image)
    assert view.status == 200
    assert await view.read() == (settings.output_dir / image["subfolder"] / image["filename"]).read_bytes()
    assert entry["prompt"][1] == prompt_id and entry["prompt"][2] == image_graph()


async def test_routes_also_answer_under_api(client: Any) -> None:
    for path in ("/prompt", "/api/prompt"):
        assert await (await client.get(path)).json() == {"exec_info": {"queue_remaining": 0}}
    info = await (await client.get("/api/object_info/ImageScale")).json()
    assert info["ImageScale"]["input"]["required"]["width"][0] == "INT"
    assert await (await client.get("/object_info/NoSuchNode")).json() == {}
    queue = await (await client.get("/api/queue")).json()
    assert queue == {"queue_running": [], "queue_pending": []}
    stats = await (await client.get("/system_stats")).json()
    assert stats["devices"][0]["type"] == "cpu" and stats["system"]["ram_total"] > 0
    assert stats["system"]["models_on_device"] == [] and "compile off" in stats["system"]["acceleration"]


async def test_each_client_sees_only_its_own_events(client: Any) -> None:
    first, second = await client.ws_connect("/ws?clientId=alice"), await client.ws_connect("/ws?clientId=bob")
    ids = []
    for name, value in (("alice", 1), ("bob", 2)):
        response = await client.post("/prompt", json={"prompt": chain(value), "client_id": name})
        ids.append((await response.json())["prompt_id"])
    alice, bob = await asyncio.gather(collect(first, ids[0]), collect(second, ids[1]))
    for seen, mine in ((alice, ids[0]), (bob, ids[1])):
        prompts = {m["data"].get("prompt_id") for m in seen if m["type"] != "status"}
        assert prompts == {mine}
    await first.close()
    await second.close()


async def test_a_second_identical_prompt_is_reported_as_cached(client: Any) -> None:
    await run_prompt(client, chain(5))
    _, messages = await run_prompt(client, chain(5))
    cached = [m["data"]["nodes"] for m in messages if m["type"] == "execution_cached"]
    assert cached == [["1", "2", "3"]], "every node of the prompt, as ComfyUI lists them"
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert executing == [None]
    assert [m["data"]["output"] for m in messages if m["type"] == "executed"] == [{"text": ["6"]}]


async def test_a_client_chosen_prompt_id_is_kept_and_cannot_be_reused(client: Any) -> None:
    prompt_id, _ = await run_prompt(client, chain(3), prompt_id="my-own-id")
    assert prompt_id == "my-own-id"
    again = await client.post("/prompt", json={"prompt": chain(3), "prompt_id": "my-own-id"})
    assert again.status == 400 and (await again.json())["error"]["type"] == "duplicate_prompt_id"


INVALID = [
    (
        {
            "1": {"class_type": "Nope", "inputs": {}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        "1",
        "unknown_node_type",
    ),
    ({"1": {"class_type": "Show", "inputs": {}}}, "1", "required_input_missing"),
    ({"1": {"class_type": "Show", "inputs": {"value": ["9", 0]}}}, "1", "bad_linked_input"),
    (
        {
            "1": {"class_type": "Text", "inputs": {}},
            "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
            "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        },
        "2",
        "return_type_mismatch",
    ),
    (
        {
            "1": {"class_type": "Number", "inputs": {"value": "many"}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        "1",
        "invalid_input_type",
    ),
    (
        {
            "1": {"class_type": "Number", "inputs": {"value": -5000}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        "1",
        "value_smaller_than_min",
    ),
    (
        {
            "1": {"class_type": "Number", "inputs": {"value": 10**7}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        "1",
        "value_bigger_than_max",
    ),
    (
        {
            "1": {"class_type": "Text", "inputs": {"style": "bold"}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        "1",
        "value_not_in_list",
    ),
    (
        {
            "1": {"class_type": "Add", "inputs": {"a": ["2", 0]}},
            "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
            "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        },
        "1",
        "dependency_cycle",
    ),
]


@pytest.mark.parametrize(("prompt", "node_id", "code"), INVALID, ids=[case[2] for case in INVALID])
async def test_an_invalid_prompt_gets_400_with_node_errors_and_the_server_stays_up(
    client: Any, prompt: dict[str, Any], node_id: str, code: str
) -> None:
    response = await client.post("/prompt", json={"prompt": prompt})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert code in [error["type"] for error in body["node_errors"][node_id]["errors"]]
    _, messages = await run_prompt(client, chain(1))
    assert messages[-2]["type"] == "execution_success"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"prompt": {"1": {"class_type": "Number", "inputs": {}}}}, "prompt_no_outputs"),
        ({"prompt": []}, "invalid_prompt"),
        ({"graph": {}}, "no_prompt"),
    ],
)
async def test_a_prompt_without_outputs_or_shape_is_refused_with_a_message(
    client: Any, body: dict[str, Any], kind: str
) -> None:
    response = await client.post("/prompt", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == kind and error["message"]


async def test_a_body_that_is_not_json_is_a_400(client: Any) -> None:
    response = await client.post("/prompt", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await (await client.get("/prompt")).json())["exec_info"]["queue_remaining"] == 0


async def test_interrupt_stops_the_running_prompt_and_the_next_one_runs(client: Any) -> None:
    socket = await client.ws_connect("/ws?clientId=stopper")
    slow = {
        "1": {"class_type": "Steps", "inputs": {"steps": 500, "delay": 0.02}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    response = await client.post("/prompt", json={"prompt": slow, "client_id": "stopper"})
    prompt_id = (await response.json())["prompt_id"]
    async for message in socket:
        if message.type.name == "TEXT" and message.json()["type"] == "progress":
            break
    await client.post("/interrupt")
    messages = await collect(socket, prompt_id)
    progress = [m["data"]["value"] for m in messages if m["type"] == "progress"]
    assert "execution_interrupted" in [m["type"] for m in messages]
    assert max(progress, default=0) < 100
    history = await (await client.get(f"/history/{prompt_id}")).json()
    assert history[prompt_id]["status"]["status_str"] == "error"
    _, after = await run_prompt(client, chain(8), client_id="stopper")
    assert after[-2]["type"] == "execution_success"
    await socket.close()


async def test_queue_and_history_can_be_listed_deleted_and_cleared(client: Any) -> None:
    first, _ = await run_prompt(client, chain(11))
    second, _ = await run_prompt(client, chain(12))
    newest = await (await client.get("/history", params={"max_items": "1"})).json()
    assert list(newest) == [second], "as ComfyUI: max_items alone gives the newest"
    assert list(await (await client.get("/history", params={"max_items": "1", "offset": "-1"})).json()) == [
        second
    ]
    oldest = await (await client.get("/history", params={"max_items": "1", "offset": "0"})).json()
    assert list(oldest) == [first], "an offset counts from the oldest"
    assert list(await (await client.get("/history")).json()) == [first, second]
    await client.post("/history", json={"delete": [first]})
    assert list(await (await client.get("/history")).json()) == [second]
    await client.post("/history", json={"clear": True})
    assert await (await client.get("/history")).json() == {}


async def test_an_editor_workflow_converts_to_the_api_form(client: Any) -> None:
    workflow = {
        "nodes": [
            {
                "id": 1,
                "type": "Number",
                "widgets_values": [7, "randomize"],
                "inputs": [],
                "outputs": [{"links": [1]}],
            },
            {
                "id": 2,
                "type": "Add",
                "widgets_values": [0, 2],
                "inputs": [{"name": "a", "link": 1, "widget": {"name": "a"}}],
            },
            {"id": 3, "type": "Show", "title": "Result", "inputs": [{"name": "value", "link": 2}]},
            {"id": 4, "type": "Note", "widgets_values": ["a note"]},
            {"id": 5, "type": "Number", "mode": 4, "widgets_values": [1]},
        ],
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"]],
    }
    response = await client.post("/workflow/convert", json=workflow)
    assert response.status == 200
    assert await response.json() == {
        "1": {"class_type": "Number", "inputs": {"value": 7}, "_meta": {"title": "Number"}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 2}, "_meta": {"title": "Add"}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}, "_meta": {"title": "Result"}},
    }
    broken = await client.post(
        "/workflow/convert", json={"nodes": [{"id": 1, "type": "Mystery"}], "links": []}
    )
    assert broken.status == 400 and "Mystery" in (await broken.json())["error"]["message"]


async def sampled_frames(
    client: Any, client_id: str, asks_for_previews: bool
) -> tuple[list[bytes], list[Any]]:
    """The binary frames and text messages a client gets while the depth graph samples 2 steps."""
    socket = await client.ws_connect(f"/ws?clientId={client_id}")
    texts: list[Any] = []
    if asks_for_previews:  # what ComfyUI's front end (and depthgraph's editor) send on connecting
        await socket.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    prompt = json.loads((ROOT / "graphs" / "depth2img.json").read_text())["nodes"]
    prompt["8"]["inputs"]["steps"] = 2
    prompt["3"]["inputs"]["multiple"] = 64
    await asyncio.sleep(0.05)  # the flags are read before the prompt is queued
    answer = await client.post("/prompt", json={"prompt": prompt, "client_id": client_id})
    prompt_id = (await answer.json())["prompt_id"]
    frames: list[bytes] = []

    async def read() -> None:
        async for message in socket:
            if message.type.name == "BINARY":
                frames.append(message.data)
            elif message.type.name == "TEXT":
                data = message.json()
                texts.append(data)
                if (
                    data["type"] == "executing"
                    and data["data"]["node"] is None
                    and data["data"]["prompt_id"] == prompt_id
                ):
                    return

    await asyncio.wait_for(read(), 120)
    await socket.close()
    return frames, texts


async def test_previews_arrive_as_binary_frames_with_the_comfyui_header_for_a_client_that_asks(
    client: Any, settings: Settings
) -> None:
    frames, texts = await sampled_frames(client, "viewer", asks_for_previews=True)
    assert frames
    assert frames[0][:8] == b"\x00\x00\x00\x01\x00\x00\x00\x01" and frames[0][8:10] == b"\xff\xd8"  # JPEG
    flags = [text["data"] for text in texts if text["type"] == "feature_flags"]
    assert len(flags) == 1 and flags[0]["supports_preview_metadata"] is False  # plain JPEG frames
    assert flags[0]["max_upload_size"] == settings.max_upload_bytes
    assert flags[0]["assets"] is False  # else the front end asks an asset service depthgraph lacks


async def test_a_script_that_does_not_ask_gets_no_previews_only_its_results(client: Any) -> None:
    frames, texts = await sampled_frames(client, "script", asks_for_previews=False)
    assert frames == [], "ComfyUI sends no previews unless asked; scripts would take them for results"
    assert any(text["type"] == "executed" for text in texts)


async def test_the_history_is_there_as_soon_as_a_prompt_ends(client: Any) -> None:
    for value in range(15):  # the end message is sent only after the history is stored
        prompt_id, _ = await run_prompt(client, chain(value % 3))
        history = await (await client.get(f"/history/{prompt_id}")).json()
        assert history[prompt_id]["status"]["completed"] is True


@pytest.mark.parametrize("path", ["/free", "/interrupt", "/queue", "/history"])
async def test_a_body_that_is_not_json_is_a_400_on_every_route(client: Any, path: str) -> None:
    response = await client.post(path, data=b"not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await client.get("/prompt")).status == 200


async def test_a_node_warning_reaches_the_client_and_stays_in_the_history(client: Any) -> None:
    prompt = {
        "1": {"class_type": "Warn", "inputs": {"value": 0}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    prompt_id, messages = await run_prompt(client, prompt)
    (warning,) = [m["data"] for m in messages if m["type"] == "execution_warning"]
    assert warning.pop("timestamp") > 0
    assert warning == {
        "prompt_id": prompt_id,
        "node_id": "1",
        "node_type": "Warn",
        "message": "the value is zero",
    }
    history = await (await client.get(f"/history/{prompt_id}")).json()
    kept = [
        message for message in history[prompt_id]["status"]["messages"] if message[0] == "execution_warning"
    ]
    assert len(kept) == 1 and kept[0][1]["message"] == "the value is zero"
    assert history[prompt_id]["status"]["status_str"] == "success"


async def test_numbers_are_whole_and_the_client_id_is_in_the_extra_data_as_comfyui_gives_them(
    client: Any,
) -> None:
    response = await client.post("/prompt", json={"prompt": chain(21), "client_id": "counter"})
    answer = await response.json()
    assert type(answer["number"]) is int, answer
    front = await (await client.post("/prompt", json={"prompt": chain(22), "front": True})).json()
    assert type(front["number"]) is int and front["number"] <= answer["number"]
    socket = await client.ws_connect("/ws?clientId=counter")
    prompt_id, _ = await run_prompt(client, chain(23), client_id="counter")
    await socket.close()
    entry = (await (await client.get(f"/history/{prompt_id}")).json())[prompt_id]
    number, stored_id, _, extra_data, _ = entry["prompt"]
    assert type(number) is int and stored_id == prompt_id
    assert extra_data["client_id"] == "counter"
    given = await (await client.post("/prompt", json={"prompt": chain(24), "number": 2.5})).json()
    assert given["number"] == 2.5  # a number the client chose is kept as given, as in ComfyUI


async def test_the_routes_comfyui_clients_call_on_start_answer_as_comfyui_does(client: Any) -> None:
    assert await (await client.get("/embeddings")).json() == []
    assert await (await client.get("/api/extensions")).json() == ["/extensions/depthgraph/depth_view.js"]
    system = (await (await client.get("/system_stats")).json())["system"]
    assert isinstance(system["argv"], list)


async def test_an_execution_error_carries_the_failing_nodes_inputs_and_the_outputs_there(client: Any) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": -4}},
        "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    _, messages = await run_prompt(client, prompt, client_id="failing")
    (error,) = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert error["node_id"] == "2" and error["current_inputs"] == {"value": ["output 0 of node 1"]}
    assert error["current_outputs"] == ["1"]
    assert "negative value -4" in error["exception_message"]


async def test_save_image_websocket_sends_the_png_to_a_script_as_comfyuis_example_client_reads_it(
    client: Any,
) -> None:
    """ComfyUI's websockets_api_example_ws_images.py: binary frames while the node runs, 8 bytes off."""
    prompt = image_graph()
    prompt["4"] = {"class_type": "SaveImageWebsocket", "inputs": {"images": ["3", 0]}}
    socket = await client.ws_connect("/ws?clientId=ws-images")  # no feature_flags: a plain script
    answer = await client.post("/prompt", json={"prompt": prompt, "client_id": "ws-images"})
    prompt_id = (await answer.json())["prompt_id"]
    frames: list[bytes] = []
    current = None

    async def read() -> None:
        nonlocal current
        async for message in socket:
            if message.type.name == "TEXT":
                data = message.json()
                if data["type"] == "executing" and data["data"]["prompt_id"] == prompt_id:
                    current = data["data"]["node"]
                    if current is None:
                        return
            elif message.type.name == "BINARY" and current == "4":
                frames.append(message.data)

    await asyncio.wait_for(read(), 60)
    await socket.close()
    (frame,) = frames
    assert frame[:8] == b"\x00\x00\x00\x01\x00\x00\x00\x02" and frame[8:16] == b"\x89PNG\r\n\x1a\n"
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(frame[8:])).size == (384, 384)
    history = (await (await client.get(f"/history/{prompt_id}")).json())[prompt_id]
    assert history["status"]["status_str"] == "success" and "4" not in history["outputs"]

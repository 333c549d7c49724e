"""No client can stop or slow the events of the others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings
from depthgraph.server import STATE
from depthgraph.server_events import Clients

from tests.server.conftest import StartServer, chain, collect, run_prompt


def big_text_prompt(size: int, tag: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "Text", "inputs": {"text": f"{tag} " + "x" * size}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }


async def test_a_client_that_never_reads_is_disconnected_and_delays_no_one(
    start_server: StartServer, settings: Settings
) -> None:
    settings.max_socket_backlog_bytes = 256 * 1024
    client = await start_server()
    # This client connects, queues prompts with large outputs, and never reads a message.
    sloth = await client.ws_connect("/ws?clientId=sloth")
    sloth_ids = []
    for tag in range(40):
        body = {"prompt": big_text_prompt(200_000, tag), "client_id": "sloth"}
        response = await client.post("/prompt", json=body)
        sloth_ids.append((await response.json())["prompt_id"])
    reader = await client.ws_connect("/ws?clientId=reader")
    response = await client.post("/prompt", json={"prompt": chain(7), "client_id": "reader"})
    prompt_id = (await response.json())["prompt_id"]

    async def stored() -> float:
        while not await (await client.get(f"/history/{prompt_id}")).json():
            await asyncio.sleep(0.02)
        return time.monotonic()

    async def delivered() -> float:
        await collect(reader, prompt_id, timeout=120)
        return time.monotonic()

    history_at, delivered_at = await asyncio.gather(stored(), delivered())
    # `executing null` is sent right after the history is written; the sloth must not hold it up.
    assert delivered_at - history_at < 1.0
    clients = client.app[STATE].clients
    assert clients.get("sloth") is None  # past its backlog: disconnected
    assert clients.get("reader") is not None
    await reader.close()
    ended = set()
    async for message in sloth:  # what it had been sent before it was cut off, then the end
        if message.type.name == "TEXT" and '"executing"' in message.data:
            data = message.json()["data"]
            ended.add(data["prompt_id"] if data["node"] is None else None)
    assert sloth.closed and sloth_ids[-1] not in ended
    # Its prompts ran all the same: their results are in the history, to read after reconnecting.
    assert (await (await client.get(f"/history/{sloth_ids[-1]}")).json())[sloth_ids[-1]]["outputs"]


async def test_a_failing_delivery_is_logged_and_later_events_still_arrive(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = Clients.send_json
    failures = iter([True])

    def flaky(self: Clients, kind: str, data: dict[str, Any], client_id: Any) -> None:
        if kind == "execution_start" and next(failures, False):
            raise RuntimeError("a broken event")
        original(self, kind, data, client_id)

    monkeypatch.setattr(Clients, "send_json", flaky)
    _, first = await run_prompt(client, chain(1))
    assert "execution_start" not in [m["type"] for m in first]
    assert "an event could not be delivered" in caplog.text
    _, second = await run_prompt(client, chain(2))
    assert [m["type"] for m in second if m["type"] == "execution_start"] == ["execution_start"]


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("client_id", ["x", "y"], "invalid_client_id"),
        ("client_id", {"a": 1}, "invalid_client_id"),
        ("client_id", "c" * 257, "invalid_client_id"),
        ("prompt_id", "p" * 2**20, "invalid_prompt_id"),
        ("prompt_id", 1.5, "invalid_prompt_id"),
    ],
)
async def test_client_and_prompt_ids_are_bounded_text(client: Any, field: str, value: Any, kind: str) -> None:
    response = await client.post("/prompt", json={"prompt": chain(1), field: value})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == kind and field in error["message"]
    assert await (await client.get("/history")).json() == {}
    # Delivery still works for everyone afterwards.
    _, messages = await run_prompt(client, chain(3))
    assert messages[-1]["type"] == "executing" and messages[-1]["data"]["node"] is None


async def test_a_lone_surrogate_in_a_prompt_id_is_refused(client: Any) -> None:
    body = '{"prompt": {"1": {"class_type": "Number", "inputs": {}}}, "prompt_id": "\\ud800"}'
    response = await client.post("/prompt", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"]["type"] == "invalid_prompt_id"


async def test_a_websocket_client_id_over_the_limit_is_refused(client: Any) -> None:
    response = await client.get("/ws", params={"clientId": "c" * 300})
    assert response.status == 400
    assert (await response.json())["error"]["type"] == "invalid_client_id"

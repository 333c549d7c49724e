"""The server on two Ray workers: routing by cache, events per client, lost workers, interrupts and
restarts. (tests/server/test_api.py runs the whole client API against both executors as well.)"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from depthgraph.engine.app.config import Settings
from depthgraph.server import STATE, create_app

from tests.server.conftest import StartServer, make_engine


def slow(value: int, steps: int = 6, delay: float = 0.03) -> dict[str, Any]:
    """A prompt of three nodes whose middle one takes `steps * delay` seconds, reporting progress."""
    return {
        "1": {"class_type": "Steps", "inputs": {"steps": steps, "delay": delay}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": value}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }


async def queue(client: Any, prompt: dict[str, Any], client_id: str = "tester") -> str:
    response = await client.post("/prompt", json={"prompt": prompt, "client_id": client_id})
    assert response.status == 200, await response.text()
    return str((await response.json())["prompt_id"])


async def collect_all(socket: Any, prompt_ids: set[str], timeout: float = 120) -> list[dict[str, Any]]:
    """A client's text messages until every one of `prompt_ids` has ended."""
    messages: list[dict[str, Any]] = []
    waiting = set(prompt_ids)

    async def read() -> None:
        async for message in socket:
            if message.type.name != "TEXT":
                continue
            data = message.json()
            messages.append(data)
            if data["type"] == "executing" and data["data"]["node"] is None:
                waiting.discard(data["data"]["prompt_id"])
                if not waiting:
                    return

    await asyncio.wait_for(read(), timeout)
    return messages


async def entry(client: Any, prompt_id: str) -> dict[str, Any]:
    history = await (await client.get(f"/history/{prompt_id}")).json()
    return dict(history[prompt_id])


def backend_of(client: Any) -> Any:
    return client.server.app[STATE].backend


async def test_two_workers_finish_twenty_prompts_and_each_client_sees_only_its_own(
    start_server: StartServer,
) -> None:
    client = await start_server(executor="ray")
    alice, bob = await client.ws_connect("/ws?clientId=alice"), await client.ws_connect("/ws?clientId=bob")
    mine: dict[str, set[str]] = {"alice": set(), "bob": set()}
    for value in range(20):  # values 0..19: twenty different prompts
        name = "alice" if value % 2 else "bob"
        mine[name].add(await queue(client, slow(value), name))
    seen = await asyncio.gather(collect_all(alice, mine["alice"]), collect_all(bob, mine["bob"]))
    for name, messages in zip(("alice", "bob"), seen, strict=True):
        prompts = {m["data"]["prompt_id"] for m in messages if m["type"] != "status"}
        assert prompts == mine[name]
        assert len([m for m in messages if m["type"] == "execution_success"]) == 10
    workers = []
    for prompt_id in mine["alice"] | mine["bob"]:
        item = await entry(client, prompt_id)
        assert item["status"]["status_str"] == "success"
        assert item["routing"]["attempts"] == []
        workers.append(item["routing"]["worker"])
    assert set(workers) == {"worker-0", "worker-1"}  # both did part of the work
    await alice.close()
    await bob.close()


async def test_the_same_graph_again_goes_to_the_worker_that_holds_it_and_is_fully_cached(
    start_server: StartServer,
) -> None:
    client = await start_server(executor="ray")
    socket = await client.ws_connect("/ws?clientId=tester")
    first = await queue(client, slow(50))
    await collect_all(socket, {first})
    others = {await queue(client, slow(value)) for value in (51, 52, 53)}  # keep both workers busy
    await collect_all(socket, others)
    again = await queue(client, slow(50))
    messages = await collect_all(socket, {again})
    before, after = (await entry(client, first))["routing"], (await entry(client, again))["routing"]
    assert after["worker"] == before["worker"]
    assert after["held"] == after["results"] == 3 and after["reason"].startswith("cache: holds 3 of 3")
    mine = [m for m in messages if m["data"].get("prompt_id") == again]
    assert [m["data"]["node"] for m in mine if m["type"] == "executing"] == [None]
    # Nothing ran: the output node was served from the cache (as the in-process executor reports it).
    assert next(m["data"]["nodes"] for m in mine if m["type"] == "execution_cached") == ["1", "2", "3"]
    assert not [m for m in mine if m["type"] == "progress"]
    await socket.close()


async def test_a_worker_killed_mid_prompt_loses_nothing_its_prompt_runs_elsewhere(
    start_server: StartServer,
) -> None:
    client = await start_server(executor="ray")
    backend = backend_of(client)
    socket = await client.ws_connect("/ws?clientId=tester")
    ids = [await queue(client, slow(-value, steps=8)) for value in range(20)]
    victim = None
    async for message in socket:  # the first step of some prompt: kill the worker running it
        if message.type.name == "TEXT" and message.json()["type"] == "progress":
            running = message.json()["data"]["prompt_id"]
            victim = backend._running.get(running)
            if victim is not None:
                os.kill(backend.pids()[victim], signal.SIGKILL)
                break
    assert victim is not None
    await collect_all(socket, set(ids), timeout=240)
    requeued = []
    for prompt_id in ids:
        item = await entry(client, prompt_id)
        assert item["status"]["status_str"] == "success", item["status"]
        if item["routing"]["attempts"]:
            requeued.append(item["routing"])
    # The prompt it was running and at most the one waiting on it ran again on the other worker.
    assert 1 <= len(requeued) <= 2
    for routing in requeued:
        assert [attempt["worker"] for attempt in routing["attempts"]] == [victim]
        assert routing["worker"] != victim and "Actor" in routing["attempts"][0]["error"]
    await socket.close()


async def test_a_prompt_whose_worker_dies_once_too_often_fails_with_the_reason(
    aiohttp_client: Any, settings: Settings, ray_backend: Any
) -> None:
    backend = ray_backend(settings.file_store(), max_attempts=1)
    client = await aiohttp_client(create_app(settings, make_engine(settings), backend=backend))
    socket = await client.ws_connect("/ws?clientId=tester")
    prompt_id = await queue(client, slow(30, steps=40, delay=0.05))
    async for message in socket:
        if message.type.name == "TEXT" and message.json()["type"] == "progress":
            os.kill(backend.pids()[backend._running[prompt_id]], signal.SIGKILL)
            break
    messages = await collect_all(socket, {prompt_id})
    (error,) = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert error["exception_type"] == "WorkerLost" and "max_attempts 1" in error["exception_message"]
    item = await entry(client, prompt_id)
    assert item["status"]["status_str"] == "error" and len(item["routing"]["attempts"]) == 1
    await socket.close()


async def test_an_interrupt_stops_the_prompt_on_its_worker_and_no_other(start_server: StartServer) -> None:
    client = await start_server(executor="ray")
    backend = backend_of(client)
    socket = await client.ws_connect("/ws?clientId=tester")
    long_one = await queue(client, slow(40, steps=200, delay=0.02))
    other = await queue(client, slow(41, steps=20, delay=0.02))
    async for message in socket:
        data = message.json() if message.type.name == "TEXT" else {}
        if data.get("type") == "progress" and data["data"]["prompt_id"] == long_one:
            break
    assert backend._running.get(long_one) is not None
    await client.post("/interrupt", json={"prompt_id": long_one})
    messages = await collect_all(socket, {long_one, other})
    endings = {"execution_interrupted", "execution_success", "execution_error"}
    ends = {m["data"]["prompt_id"]: m["type"] for m in messages if m["type"] in endings}
    assert ends == {long_one: "execution_interrupted", other: "execution_success"}
    steps = [
        m["data"]["value"] for m in messages if m["type"] == "progress" and m["data"]["prompt_id"] == long_one
    ]
    assert max(steps, default=1) < 200  # it stopped early (the first step was read above)
    await socket.close()


async def test_a_restarted_server_reattaches_to_its_warm_workers_and_runs_every_queued_prompt(
    aiohttp_client: Any, settings: Settings, ray_backend: Any
) -> None:
    backend = ray_backend(settings.file_store())
    first = await aiohttp_client(create_app(settings, make_engine(settings), backend=backend))
    socket = await first.ws_connect("/ws?clientId=tester")
    warm = await queue(first, slow(70))
    await collect_all(socket, {warm})
    pids = backend_of(first).pids()
    queued = [await queue(first, slow(71 + value, steps=10)) for value in range(6)]
    await socket.close()
    await first.close()  # stops with prompts running and waiting

    # A new server attaches the way a new server process does: by the workers' names, caches kept.
    second = await aiohttp_client(
        create_app(settings, make_engine(settings), backend=ray_backend(settings.file_store(), clean=False))
    )
    assert backend_of(second).pids() == pids
    for _ in range(600):
        finished = [await (await second.get(f"/history/{prompt_id}")).json() for prompt_id in queued]
        if all(finished):
            break
        await asyncio.sleep(0.1)
    for prompt_id in queued:
        assert (await entry(second, prompt_id))["status"]["status_str"] == "success"
    again = await queue(second, slow(70))
    for _ in range(600):
        if await (await second.get(f"/history/{again}")).json():
            break
        await asyncio.sleep(0.1)
    assert (await entry(second, again))["routing"]["reason"].startswith("cache: holds 3 of 3")

"""Server overhead: from `POST /prompt` to the WebSocket's `executing` with `node: null`, for chains of
trivial nodes, through the real server on a loopback port.

    python benchmarks/api_overhead.py [--lengths 100 1000] [--repeats 5]

The server is `create_app` with an engine whose registry is the torch-free test node pack, started
in-process on an ephemeral 127.0.0.1 port; the client is aiohttp in the same process (one event loop,
so the figures include the client's own work). Each chain is `Number -> Add -> ... -> Show`, as in
benchmarks/engine_overhead.py. "cold" runs after `POST /free` (an empty cache: every node runs and
sends its `executing` event); "cached" queues the same prompt again (a new prompt_id), which runs
nothing. The "engine" columns time the same prompt on the same engine without the server (validate +
run), so the difference is what HTTP, the queue, the sqlite store, the worker thread and the
WebSocket add.

Targets: <= 50 ms for 1,000 nodes cold, <= 10 ms cached. For scale, ComfyUI takes ~1.1 s cold and
~0.17 s cached for 100 nodes and rejects a 1,000-node chain (its recursive validation hits Python's
recursion limit).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_overhead import chain
from engine.config import Settings
from engine.runtime import Engine
from server import create_app
from tests.engine import node_pack


def make_engine(folder: Path) -> tuple[Settings, Engine]:
    settings = Settings.under(folder, device="cpu")
    return settings, Engine(settings, registry=node_pack.make_registry())


class ApiClient:
    """Queues prompts over HTTP and waits for their end on one WebSocket."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, socket: aiohttp.ClientWebSocketResponse[bool]
    ) -> None:
        self.session, self.base, self.socket = session, base, socket

    async def free(self) -> None:
        async with self.session.post(f"{self.base}/free", json={"free_memory": True}) as response:
            response.raise_for_status()

    async def run(self, prompt: dict[str, Any]) -> tuple[float, int]:
        """Seconds from POST to the end of the prompt, and how many nodes said they were executing."""
        started = time.perf_counter()
        body = {"prompt": prompt, "client_id": "bench"}
        async with self.session.post(f"{self.base}/prompt", json=body) as response:
            answer = await response.json()
            assert response.status == 200, answer
        prompt_id, executing = answer["prompt_id"], 0
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event["data"]
            if event["type"] == "execution_error" and data.get("prompt_id") == prompt_id:
                raise RuntimeError(f"the chain failed: {data}")
            if event["type"] == "executing" and data.get("prompt_id") == prompt_id:
                if data["node"] is None:
                    return time.perf_counter() - started, executing
                executing += 1
        raise RuntimeError("the WebSocket closed")


def engine_alone(engine: Engine, prompt: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = engine.run(prompt, on_event=lambda event: None)
    assert result.status == "success", result.error
    return time.perf_counter() - started


def milliseconds(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:>8.2f} {min(samples) * 1e3:>7.2f}"


async def measure(lengths: list[int], repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="depthgraph-api-bench-") as temporary:
        settings, engine = make_engine(Path(temporary))
        runner = web.AppRunner(create_app(settings, engine=engine), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{base}/ws", params={"clientId": "bench"}) as socket,
            ):
                client = ApiClient(session, base, socket)
                await client.run(chain(10))  # warm up: imports, first connection, sqlite
                print(f"server on {base}; {repeats} repeats; milliseconds per prompt (median, best)")
                print(
                    f"{'nodes':>6} | {'api cold':>8} {'best':>7} | {'api cached':>10} {'best':>7} |"
                    f" {'engine cold':>11} {'best':>7} | {'engine cached':>13} {'best':>7}"
                )
                for length in lengths:
                    await report(client, engine, chain(length), length + 1, repeats)
        finally:
            await runner.cleanup()


async def report(client: ApiClient, engine: Engine, prompt: dict[str, Any], nodes: int, repeats: int) -> None:
    api_cold: list[float] = []
    api_cached: list[float] = []
    engine_cold: list[float] = []
    engine_cached: list[float] = []
    for _ in range(repeats):
        await client.free()
        gc.collect()
        seconds, executing = await client.run(prompt)
        assert executing == nodes, f"{executing} of {nodes} nodes reported executing before the end"
        api_cold.append(seconds)
        seconds, executing = await client.run(prompt)
        assert executing == 0, f"{executing} nodes ran again on a cached prompt"
        api_cached.append(seconds)
    # The engine alone, in this thread; the server's worker is idle meanwhile.
    for _ in range(repeats):
        engine.cache.clear()
        gc.collect()
        engine_cold.append(engine_alone(engine, prompt))
        engine_cached.append(engine_alone(engine, prompt))
    print(
        f"{nodes:>6} | {milliseconds(api_cold)} | {' ' * 2}{milliseconds(api_cached)} |"
        f" {' ' * 3}{milliseconds(engine_cold)} | {' ' * 5}{milliseconds(engine_cached)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(args.lengths, args.repeats))


if __name__ == "__main__":
    main()

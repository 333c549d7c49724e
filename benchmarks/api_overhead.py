"""Server overhead: from `POST /prompt` to the WebSocket's `executing` with `node: null`, for chains of
trivial nodes, through the real server on a loopback port.

    python benchmarks/api_overhead.py [--lengths 100 1000] [--repeats 5] [--large 100000]

The server is `create_app` with an engine whose registry is the torch-free test node pack, started
in-process on an ephemeral 127.0.0.1 port; the client is aiohttp in the same process (one event loop,
so the figures include the client's own work). Each chain is `Number -> Add -> ... -> Show`, as in
benchmarks/engine_overhead.py. "cold" runs after `POST /free` (an empty cache: every node runs and
sends its `executing` event); "cached" queues the same prompt again (a new prompt_id), which runs
nothing. The "engine" columns time the same prompt on the same engine without the server (validate +
run), so the difference is what HTTP, the queue, the sqlite store, the worker thread and the
WebSocket add.

The last line queues one 100,000-node chain (`--large`) while a second client polls `GET /prompt`
as fast as it can: the time to the prompt's 200 (reading, validating and storing it) and the polls'
worst latency meanwhile, which shows whether a large prompt holds up other requests.

Targets: <= 50 ms for 1,000 nodes cold, <= 10 ms cached; a poll's worst latency under 50 ms while the
100,000-node prompt is accepted. For scale, ComfyUI takes ~1.1 s cold and
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

from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.server import create_app

from benchmarks.engine_overhead import chain
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


async def measure(lengths: list[int], repeats: int, large: int) -> None:
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
                if large:
                    await report_large(session, base, chain(large), large + 1)
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


async def report_large(session: aiohttp.ClientSession, base: str, prompt: dict[str, Any], nodes: int) -> None:
    """Seconds to the 200 of one large prompt, and the worst latency of polls sent meanwhile."""
    body = json.dumps({"prompt": prompt, "client_id": "bench-large"}).encode()
    latencies: list[float] = []
    accepted = asyncio.Event()

    async def poll() -> None:
        while not accepted.is_set():
            started = time.perf_counter()
            async with session.get(f"{base}/prompt") as response:
                await response.read()
            latencies.append(time.perf_counter() - started)

    poller = asyncio.ensure_future(poll())
    await asyncio.sleep(0.05)  # the poller is under way before the prompt is sent
    started = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    async with session.post(f"{base}/prompt", data=body, headers=headers) as response:
        answer = await response.json()
        assert response.status == 200, answer
    seconds = time.perf_counter() - started
    accepted.set()
    await poller
    await session.post(f"{base}/interrupt", json={"prompt_id": answer["prompt_id"]})
    print(
        f"{nodes:>6} nodes, {len(body) / 1e6:.1f} MB: 200 after {seconds * 1e3:.0f} ms; "
        f"{len(latencies)} polls meanwhile, worst {max(latencies) * 1e3:.1f} ms, "
        f"median {statistics.median(latencies) * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--large", type=int, default=100_000, help="nodes of the large prompt (0: leave it out)"
    )
    args = parser.parse_args()
    asyncio.run(measure(args.lengths, args.repeats, args.large))


if __name__ == "__main__":
    main()

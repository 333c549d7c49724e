"""The jobs list on a long history: `GET /api/jobs` with a store of many finished depth-to-image prompts.

    python benchmarks/jobs_listing.py [--prompts 5000] [--repeats 7]

ComfyUI's front end reads the jobs list for its queue panel, a page at a time, newest first, whenever
the queue changes. The store is filled with `--prompts` finished prompts, each the library's
depth2img graph with the outputs and messages a run leaves, and the server (`create_app`, no prompt
threads) answers through aiohttp's test client in this process. Printed: the median time of
`?limit=20` (what the panel asks; sqlite sorts and pages it, reading 20 prompts), of
`?sort_by=execution_duration&limit=20` (durations are in each prompt's messages, so every prompt is
read, as every listing was before pages were read from the store), and of the history's newest 20
(`/history?max_items=20`, whole prompts and outputs, as clients poll it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.store import PromptStore, StoredPrompt, store_path
from depthgraph.engine.formats.graph_library import read_library_graph
from depthgraph.server import create_app

ROOT = Path(__file__).resolve().parents[1]


def fill(data_dir: Path, count: int) -> None:
    prompt = read_library_graph(ROOT / "graphs", "depth2img.json").prompt
    outputs = {"11": {"images": [{"filename": "depth2img_00001_.png", "subfolder": "", "type": "output"}]}}
    store = PromptStore(store_path(data_dir))
    for index in range(count):
        prompt_id = f"prompt-{index:06d}"
        store.add(StoredPrompt(prompt_id, index, "pending", prompt, {"client_id": "bench"}))
        now = int(time.time() * 1000)
        messages = [
            ["execution_start", {"prompt_id": prompt_id, "timestamp": now}],
            ["execution_success", {"prompt_id": prompt_id, "timestamp": now + 1500 + index % 700}],
        ]
        store.finish(prompt_id, "success", outputs, messages)
    store.close()


async def timed(client: TestClient, path: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = await client.get(path)
        body = await response.json()
        times.append(time.perf_counter() - start)
        assert response.status == 200 and len(body.get("jobs", body)) == 20, body
    return statistics.median(times)


async def measure(folder: Path, repeats: int) -> dict[str, float]:
    settings = Settings.under(folder, device="cpu")
    client = TestClient(TestServer(create_app(settings, start_worker=False)))
    await client.start_server()
    try:
        paths = (
            "/api/jobs?limit=20",
            "/api/jobs?sort_by=execution_duration&limit=20",
            "/api/history?max_items=20",
        )
        return {path: await timed(client, path, repeats) for path in paths}
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        fill(folder / "data", args.prompts)
        figures = asyncio.run(measure(folder, args.repeats))
    print(
        f"GET /api/jobs with {args.prompts:,} finished depth2img prompts in the store "
        f"(median of {args.repeats})"
    )
    for query, seconds in figures.items():
        print(f"  {query:<48} {seconds * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The server on a full disk and on a damaged store: finished results are still reported, new prompts
are refused with the reason (503) until space returns, and a damaged store stops `depthgraph serve`
with what to do instead of a traceback.

The full disk is sqlite's own limit on the store's connection (see tests/engine/test_store.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.store import PromptStore, store_path
from depthgraph.engine.app.store_repair import repair_store
from depthgraph.server import STATE

from tests.engine import node_pack
from tests.engine.test_store import fill_disk, filled_store, free_disk, stored_on_disk
from tests.server.conftest import StartServer, chain, run_prompt


def store_of(client: Any) -> PromptStore:
    store: PromptStore = client.server.app[STATE].store
    return store


def large_result() -> dict[str, Any]:
    """A prompt whose result (24 kB of text) needs new pages in the store."""
    return {
        "1": {"class_type": "Steps", "inputs": {"steps": 2}},
        "2": {"class_type": "Blob", "inputs": {"size": 6000, "tag": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }


async def finish_on_a_full_disk(client: Any) -> str:
    """Run `large_result`, the disk filling up while it runs; its id."""
    store = store_of(client)
    node_pack.ON_STEP.append(lambda step: fill_disk(store) if step == 1 else None)
    prompt_id, messages = await run_prompt(client, large_result())
    assert messages[-1]["type"] == "executing" and messages[-1]["data"]["node"] is None
    return prompt_id


async def history_of(client: Any, prompt_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = (await (await client.get(f"/history/{prompt_id}")).json())[prompt_id]
    return entry


async def test_a_result_finished_while_the_disk_is_full_is_in_the_history(client: Any) -> None:
    prompt_id = await finish_on_a_full_disk(client)
    entry = await history_of(client, prompt_id)
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    assert len(entry["outputs"]["3"]["text"][0]) > 24000
    listed = await (await client.get("/history")).json()
    assert listed[prompt_id]["outputs"] == entry["outputs"]
    assert stored_on_disk(store_of(client).path, prompt_id) == ("running", {})  # not on the disk yet


async def test_new_prompts_are_refused_with_the_reason_while_the_store_cannot_write(client: Any) -> None:
    await finish_on_a_full_disk(client)
    response = await client.post("/prompt", json={"prompt": chain(1)})
    assert response.status == 503
    error = (await response.json())["error"]
    assert error["type"] == "store_unavailable"
    assert "is full" in error["message"] and "free some space" in error["message"]
    queue = await (await client.get("/queue")).json()
    assert queue["queue_pending"] == [] and queue["queue_running"] == []


async def test_waiting_results_are_written_when_space_returns_and_survive_a_restart(
    start_server: StartServer,
) -> None:
    client = await start_server()
    prompt_id = await finish_on_a_full_disk(client)
    store = store_of(client)
    free_disk(store)

    outputs = (await history_of(client, prompt_id))["outputs"]

    async def written() -> None:  # by the server's own retry, with no new prompt to prompt it
        while stored_on_disk(store.path, prompt_id) != ("success", outputs):
            await asyncio.sleep(0.2)

    await asyncio.wait_for(written(), 30)
    response = await client.post("/prompt", json={"prompt": chain(1)})
    assert response.status == 200
    await client.close()

    restarted = await start_server()
    entry = await history_of(restarted, prompt_id)
    assert entry["status"]["status_str"] == "success" and len(entry["outputs"]["3"]["text"][0]) > 24000


async def test_the_first_prompt_once_space_returns_is_taken_and_the_waiting_result_written_first(
    client: Any,
) -> None:
    prompt_id = await finish_on_a_full_disk(client)
    free_disk(store_of(client))
    next_id, _ = await run_prompt(client, chain(1))
    assert stored_on_disk(store_of(client).path, prompt_id)[0] == "success"  # type: ignore[index]
    assert (await history_of(client, next_id))["outputs"]["3"]["text"] == ["2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("damage", ["cut in half", "a folder"])
def test_serve_on_a_damaged_store_stops_with_what_to_do(tmp_path: Path, damage: str) -> None:
    path = store_path(tmp_path / "data")
    if damage == "a folder":
        path.mkdir(parents=True)
    else:
        data = filled_store(path, 100)
        path.write_bytes(data[: len(data) // 2])
    command = [
        sys.executable,
        "-m",
        "depthgraph.engine",
        "serve",
        "--port",
        str(free_port()),
        "--data-dir",
        "data",
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "DEPTHGRAPH_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "depthgraph: data/depthgraph.sqlite3 is" in done.stderr
    expected = "is a folder" if damage == "a folder" else "depthgraph store repair --data-dir data"
    assert expected in done.stderr and "--data-dir elsewhere" in done.stderr


async def test_a_repaired_store_serves_the_history_it_kept(
    start_server: StartServer, settings: Settings
) -> None:
    path = store_path(settings.data_dir)
    data = filled_store(path, 100)
    path.write_bytes(data[: len(data) // 2])
    kept = repair_store(path).kept
    client = await start_server()
    history = await (await client.get("/history")).json()
    assert len(history) == kept > 0
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())

"""A real server on an ephemeral loopback port, with the built-in nodes and the torch-free test pack."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.app.plugins import load_node_packs
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.server import create_app

from tests.engine import node_pack

ROOT = Path(__file__).resolve().parents[2]
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(autouse=True)
def reset_pack() -> Iterator[None]:
    node_pack.CALLS.clear()
    node_pack.ON_STEP.clear()
    yield
    node_pack.ON_STEP.clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "input").mkdir()
    shutil.copy(ROOT / "input" / "example.jpg", tmp_path / "input" / "example.jpg")
    return Settings.under(tmp_path, device="cpu", max_upload_bytes=200_000)


def make_engine(settings: Settings) -> Engine:
    registry = NodeRegistry()
    load_node_packs(registry)
    registry.add_module(sys.modules[node_pack.__name__], builtin=False)
    return Engine(settings, registry=registry)


StartServer = Callable[..., Awaitable[Any]]


@pytest.fixture
def start_server(aiohttp_client: Any, settings: Settings, request: pytest.FixtureRequest) -> StartServer:
    """Start a server on the in-process executor, or (`executor="ray"`) on the session's Ray workers."""

    async def start(start_worker: bool = True, executor: str = "local") -> Any:
        backend = None
        if executor == "ray":
            backend = request.getfixturevalue("ray_backend")(settings.file_store())
        return await aiohttp_client(
            create_app(settings, make_engine(settings), start_worker=start_worker, backend=backend)
        )

    return start


@pytest.fixture
async def client(start_server: StartServer) -> Any:
    return await start_server()


async def run_prompt(
    client: Any, prompt: dict[str, Any], client_id: str = "tester", **body: Any
) -> tuple[str, list[dict[str, Any]]]:
    """Queue `prompt` as `client_id` and collect that client's WebSocket messages until the prompt ends."""
    socket = await client.ws_connect(f"/ws?clientId={client_id}")
    try:
        response = await client.post("/prompt", json={"prompt": prompt, "client_id": client_id, **body})
        assert response.status == 200, await response.text()
        prompt_id = (await response.json())["prompt_id"]
        return prompt_id, await collect(socket, prompt_id)
    finally:
        await socket.close()


async def collect(socket: Any, prompt_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Text messages until `executing` with node None for `prompt_id` (ComfyUI's end of a prompt)."""
    messages: list[dict[str, Any]] = []

    async def read() -> list[dict[str, Any]]:
        async for message in socket:
            if message.type.name != "TEXT":
                continue
            data = message.json()
            messages.append(data)
            ended = data["type"] == "executing" and data["data"]["node"] is None
            if ended and data["data"]["prompt_id"] == prompt_id:
                break
        return messages

    return await asyncio.wait_for(read(), timeout)


def chain(value: int = 1) -> dict[str, Any]:
    return {
        "1": {"class_type": "Number", "inputs": {"value": value}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }

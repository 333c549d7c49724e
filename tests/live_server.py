"""A real depthgraph server on an ephemeral loopback port, in its own thread and event loop, for clients
that block (a browser driven by Playwright's synchronous API, third-party ComfyUI client libraries)."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from depthgraph.engine.app.config import Settings
from depthgraph.server import create_app


@dataclass
class Server:
    """A server running in its own thread and event loop, so the synchronous browser API can drive it."""

    url: str
    settings: Settings
    loop: asyncio.AbstractEventLoop
    runner: web.AppRunner
    thread: threading.Thread

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(settings: Settings, **app_options: Any) -> Server:
    """`create_app(settings, **app_options)` served on 127.0.0.1 at a free port until `stop()`."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(settings, **app_options))
    port = free_port()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="depthgraph-test-server", daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    return Server(f"http://127.0.0.1:{port}", settings, loop, runner, thread)

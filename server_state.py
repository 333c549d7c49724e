"""What the server's handlers and prompt threads share, kept on the app (no module-level state)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from aiohttp import web
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.app.jobs import Backend
from depthgraph.engine.app.outbox import Outbox
from depthgraph.engine.app.prompt_queue import PromptQueue
from depthgraph.engine.app.store import PromptStore
from depthgraph.server_events import Clients


@dataclass
class ServerState:
    """Everything the handlers share, kept on the app (no module-level state)."""

    engine: Engine  # validates prompts and knows the files; runs them only for the local backend
    backend: Backend
    store: PromptStore
    queue: PromptQueue
    settings: Settings
    clients: Clients
    accepting: set[str] = field(default_factory=set)  # prompt ids being validated, not yet stored
    store_retry: asyncio.Task[None] | None = None  # writes what the store keeps in memory (full disk)
    loop: asyncio.AbstractEventLoop | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stopping: bool = False
    outbox: Outbox = field(init=False)  # the worker's messages to the event loop


STATE = web.AppKey("state", ServerState)


def state_of(request: web.Request) -> ServerState:
    return request.app[STATE]

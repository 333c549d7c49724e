"""Handing messages from a worker thread to an asyncio event loop, in order, one loop hop per batch.

A graph of 1,000 nodes makes some 2,000 events; scheduling each on the loop separately costs more
than running the nodes. The worker appends to a list; the first message of a batch schedules one
drain on the loop, which sends everything queued by then, and again until the list is empty. A batch
that fails to deliver is logged; the ones after it are delivered all the same.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("depthgraph.server")
Deliver = Callable[[list[Any]], Awaitable[None]]


class Outbox:
    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def post(self, message: Any) -> None:
        """Queue `message` (from any thread); it is delivered after every message posted before it."""
        if self.loop is None:
            raise RuntimeError("the outbox has no event loop yet")
        with self._lock:
            self._items.append(message)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._items = self._items, []
                if not batch:
                    self._scheduled = False
                    return
            try:
                await self._deliver(batch)
            except Exception:  # one bad batch must not stop every later delivery
                log.exception("%d event(s) could not be delivered", len(batch))

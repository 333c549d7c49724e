"""The WebSocket side of the server: who is connected, and delivering events that no client can stall.

Each connected client has its own queue of unsent messages and its own task that sends them, so a
client that stops reading only fills its own queue. The queue is bounded in bytes
(`max_socket_backlog_bytes`); a client past it is disconnected — it can reconnect and read what it
missed from `/history` — and nobody else waits for it. A message that fails to send is logged and
dropped; delivery to everyone else goes on.

A `clientId` names whose events a socket receives. A second socket with a connected id takes its
events over (a reloaded page does that), but only from the same origin: a page elsewhere cannot
steal another client's events by reusing its id.

Step previews (binary frames) go only to clients that ask for them, as ComfyUI sends none unless
asked: an interactive front end (ComfyUI's, or depthgraph's editor) sends its `feature_flags`
message first, and is answered with the server's; a script that only queues prompts and waits for
the saved image never gets previews it would mistake for results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web
from depthgraph.server_security import error_response

log = logging.getLogger("depthgraph.server")
Message = str | bytes
MAX_CLIENT_MESSAGE = 64 * 2**10  # what a client sends is small (feature flags); more is refused


class ClientSocket:
    """One connected client: its WebSocket, its queue of unsent messages and the task sending them."""

    def __init__(
        self, client_id: str, socket: web.WebSocketResponse, request: web.Request, limit: int
    ) -> None:
        self.client_id = client_id
        self.socket = socket
        self.origin = request.headers.get("Origin")
        self._transport = request.transport
        self._limit = limit
        self._queue: deque[Message] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self.dropped = False
        self.features: dict[str, Any] = {}  # what the client said it supports (`feature_flags`)
        self.wants_previews = False
        self._task = asyncio.ensure_future(self._send_queued())

    def offer(self, message: Message) -> None:
        """Queue `message`; a client whose queue is over its limit is disconnected instead."""
        if self.dropped:
            return
        if self._queued_bytes + len(message) > self._limit:
            log.warning(
                "client %s stopped reading (%d bytes waiting); disconnected, it can reconnect",
                self.client_id[:64],
                self._queued_bytes,
            )
            self.drop()
            return
        self._queue.append(message)
        self._queued_bytes += len(message)
        self._ready.set()

    def drop(self) -> None:
        """Disconnect at once, without waiting for a client that does not read."""
        self.dropped = True
        self._queue.clear()
        self._queued_bytes = 0
        if self._transport is not None:
            self._transport.abort()
        self._task.cancel()

    async def close(self) -> None:
        """Close politely (a second of grace), or drop."""
        self._task.cancel()
        try:
            await asyncio.wait_for(self.socket.close(), 1)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            self.drop()

    async def stopped(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _send_queued(self) -> None:
        while not self.dropped:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            message = self._queue.popleft()
            self._queued_bytes -= len(message)
            if self.socket.closed:
                return
            try:
                if isinstance(message, bytes):
                    await self.socket.send_bytes(message)
                else:
                    await self.socket.send_str(message)
            except (ConnectionError, RuntimeError):
                return  # the client left; its prompts run on
            except Exception:
                log.exception("an event for client %s could not be sent", self.client_id[:64])


class Clients:
    """The connected clients by id, and sending to one of them or to all."""

    def __init__(
        self, backlog_limit: int, max_id_length: int, features: dict[str, Any] | None = None
    ) -> None:
        self.backlog_limit = backlog_limit
        self.max_id_length = max_id_length
        self.features = features or {}  # the server's own, sent in reply to a client's
        self._by_id: dict[str, ClientSocket] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, client_id: str) -> ClientSocket | None:
        return self._by_id.get(client_id)

    def send_json(self, kind: str, data: dict[str, Any], client_id: Any) -> None:
        """To the client that queued the prompt (by its id now, so a reconnect gets it), or to all
        when `client_id` is None."""
        message = json.dumps({"type": kind, "data": data})
        if client_id is None:
            for client in list(self._by_id.values()):
                client.offer(message)
        elif type(client_id) is str and (client := self._by_id.get(client_id)) is not None:
            client.offer(message)

    def wants_previews(self, client_id: Any) -> bool:
        client = self._by_id.get(client_id) if type(client_id) is str else None
        return client is not None and client.wants_previews

    def send_bytes(self, message: bytes, client_id: Any, always: bool = False) -> None:
        """An image frame, to the client that queued the prompt: a step preview only if it asked for
        previews, an image a node sends (`always`) in any case."""
        client = self._by_id.get(client_id) if type(client_id) is str else None
        if client is not None and (always or client.wants_previews):
            client.offer(message)

    def _receive(self, client: ClientSocket, text: str) -> None:
        """A message from the client: `feature_flags` is answered; anything else is ignored, as
        ComfyUI ignores what it does not know."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "feature_flags":
            return
        data = message.get("data")
        client.features = data if isinstance(data, dict) else {}
        client.wants_previews = True
        client.offer(json.dumps({"type": "feature_flags", "data": self.features}))

    async def close_all(self) -> None:
        for client in list(self._by_id.values()):
            await client.close()

    async def connect(
        self, request: web.Request, greeting: dict[str, Any]
    ) -> web.WebSocketResponse | web.Response:
        """The `/ws?clientId=` handler's work: refuse a bad or stolen id, else serve the socket until
        it closes. `greeting` is the first message, with the client's id added as `sid`."""
        client_id = request.query.get("clientId") or uuid.uuid4().hex
        if len(client_id) > self.max_id_length:
            return error_response(
                400,
                "invalid_client_id",
                f"clientId is {len(client_id)} characters; at most {self.max_id_length} "
                "(setting max_id_length)",
            )
        previous = self._by_id.get(client_id)
        if previous is not None and previous.origin != request.headers.get("Origin"):
            return error_response(
                409,
                "client_id_taken",
                "this clientId is connected from another page; choose another id (any unique text)",
            )
        socket = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_CLIENT_MESSAGE)
        await socket.prepare(request)
        client = ClientSocket(client_id, socket, request, self.backlog_limit)
        self._by_id[client_id] = client  # a reconnect with the same id takes over its events
        if previous is not None:
            await previous.close()
        client.offer(json.dumps({"type": "status", "data": {**greeting, "sid": client_id}}))
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
                if message.type == WSMsgType.TEXT:
                    self._receive(client, message.data)
        finally:
            if self._by_id.get(client_id) is client:
                del self._by_id[client_id]
            await client.stopped()
        return socket

"""The server's prompt threads, which hand queued prompts to the executor, and the events they send
back: posted from those threads, delivered on the event loop to the client that queued the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from typing import Any

from depthgraph.engine.app.jobs import Job
from depthgraph.engine.app.prompt_queue import QueuedPrompt
from depthgraph.engine.core.events import Event, ImageSent, NodeExecuting, PreviewFrame, Progress
from depthgraph.engine.core.gc_pause import thaw
from depthgraph.server_progress import ProgressState
from depthgraph.server_state import ServerState

log = logging.getLogger("depthgraph.server")
PREVIEW_IMAGE = 1
IMAGE_FORMATS = {"JPEG": 1, "PNG": 2}
# The history keeps these events of a run, as ComfyUI's does.
KEPT_MESSAGES = frozenset(
    {
        "execution_start",
        "execution_cached",
        "execution_warning",
        "execution_success",
        "execution_error",
        "execution_interrupted",
    }
)


# --- sending ---------------------------------------------------------------------------------------
def send_json(state: ServerState, kind: str, data: dict[str, Any], client_id: str | None) -> None:
    """To the client that queued the prompt (by its id at send time, so a reconnect gets it), or to all."""
    state.clients.send_json(kind, data, client_id)


def send_preview(
    state: ServerState, preview: PreviewFrame, client_id: str | None, always: bool = False
) -> None:
    """ComfyUI's binary frame: event 1 (an image), its format (1 JPEG, 2 PNG), the encoded image; a
    step preview only to a client that asked for previews, an image a node sends to any client."""
    header = struct.pack(">II", PREVIEW_IMAGE, IMAGE_FORMATS.get(preview.format, 1))
    state.clients.send_bytes(header + preview.data, client_id, always)


def status_message(state: ServerState) -> dict[str, Any]:
    return {"status": {"exec_info": {"queue_remaining": state.queue.remaining()}}}


def broadcast_status(state: ServerState) -> None:
    send_json(state, "status", status_message(state), None)


def post(state: ServerState, *message: Any) -> None:
    """From the worker thread: ("json", client_id, kind, data), ("preview", client_id, frame) or
    ("status",), delivered on the event loop in order (see engine.app.outbox)."""
    state.outbox.post(message)


async def deliver(state: ServerState, batch: list[tuple[Any, ...]]) -> None:
    """Hand each message to its client's queue; one that cannot be handed on is logged, never fatal."""
    for message in batch:
        try:
            if message[0] == "json":
                send_json(state, message[2], message[3], message[1])
            elif message[0] == "preview":
                send_preview(state, message[2], message[1])
            elif message[0] == "image":
                send_preview(state, message[2], message[1], always=True)
            else:
                broadcast_status(state)
        except Exception:
            log.exception("an event could not be delivered: %.200r", message)


# --- the prompt threads ----------------------------------------------------------------------------
def run_worker(state: ServerState) -> None:
    """Take prompts off the queue and run them until the queue is closed (one of these per slot)."""
    while (item := state.queue.take()) is not None:
        try:
            execute(state, item)
        except Exception as error:  # never let one prompt kill the worker, nor leave its client waiting
            log.exception("prompt %s failed outside its nodes", item.prompt_id)
            failure = {
                "prompt_id": item.prompt_id,
                "exception_message": str(error),
                "exception_type": type(error).__name__,
            }
            with contextlib.suppress(Exception):
                state.store.finish(item.prompt_id, "error", {}, [["execution_error", failure]])
            client_id = item.extra.get("client_id")
            post(state, "json", client_id, "execution_error", failure)
            post(state, "json", client_id, "executing", {"node": None, "prompt_id": item.prompt_id})
        finally:
            state.queue.finished(item.prompt_id)
            if state.queue.remaining() == 0:
                thaw()  # the large prompts read meanwhile are done with
            post(state, "status")


def execute(state: ServerState, item: QueuedPrompt) -> None:
    client_id = item.extra.get("client_id")
    messages: list[Any] = []
    state.store.set_status(item.prompt_id, "running")
    post(state, "status")
    the_end = {"node": None, "display_node": None, "prompt_id": item.prompt_id}

    progress = ProgressState(item.prompt_id)

    def listen(event: Event) -> None:
        if isinstance(event, ImageSent):
            post(state, "image", client_id, event.frame)  # asked for by the graph: sent to any client
            return
        nodes = progress.message(event)
        if nodes is not None:
            post(state, "json", client_id, "progress_state", nodes)
        if isinstance(event, NodeExecuting) and event.node_id is None:
            return  # sent after the history is stored, so a client may fetch it at once (as ComfyUI)
        kind, data = event.message()
        if kind in KEPT_MESSAGES:
            data = {**data, "timestamp": int(time.time() * 1000)}
            messages.append([kind, data])
        post(state, "json", client_id, kind, data)
        if isinstance(event, Progress) and event.preview is not None:
            post(state, "preview", client_id, event.preview)

    graph = item.graph
    if graph is None:  # queued before a restart: validate again (files may have changed)
        validation = state.engine.validate(item.prompt, item.extra.get("targets") or None)
        graph = validation.graph
        if graph is None:
            problem = "; ".join(str(issue) for issue in validation.issues)
            error = {
                "prompt_id": item.prompt_id,
                "exception_message": problem,
                "exception_type": "InvalidGraph",
            }
            state.store.finish(item.prompt_id, "error", {}, [["execution_error", error]])
            post(state, "json", client_id, "execution_error", error)
            post(state, "json", client_id, "executing", the_end)
            return
    extra_data = item.extra.get("extra_data") or {}
    workflow = (extra_data.get("extra_pnginfo") or {}).get("workflow")
    # Previews cost a decode per step: made only for a client that asked for them.
    previews = state.clients.wants_previews(client_id)
    job = Job(item.prompt_id, item.prompt, item.extra.get("targets") or None, workflow, previews)
    outcome = state.backend.run(job, graph, listen)
    if outcome.status == "interrupted" and state.stopping and state.backend.requeue_interrupted:
        # Cut off by the server stopping: it runs again after the restart.
        state.store.set_status(item.prompt_id, "pending")
        return
    extra = {**item.extra, "routing": outcome.route} if outcome.route is not None else None
    state.store.finish(item.prompt_id, outcome.status, outcome.outputs, messages, extra)
    post(state, "json", client_id, "executing", the_end)


STORE_RETRY_SECONDS = 5.0


async def retry_store(state: ServerState) -> None:
    """Write the results the store keeps in memory once its disk takes writes again."""
    while True:
        await asyncio.sleep(STORE_RETRY_SECONDS)
        if state.store.backlog_size:
            await asyncio.to_thread(state.store.retry_backlog)

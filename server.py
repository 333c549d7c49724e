"""depthgraph's HTTP and WebSocket server: ComfyUI's API in front of one engine.

A thin adapter: handlers validate and queue prompts, prompt threads hand them to the executor (so the
event loop never waits on the GPU) and the events go to the WebSocket of the client that queued the
prompt. The executor is the engine in this process (one thread), or a pool of Ray workers (one
thread per worker slot; `engine.cluster`). Every accepted prompt, its status and outputs live in a
sqlite store in the data folder, so the queue and the history survive a restart. Start it with
`depthgraph serve` or `python server.py`; it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import struct
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from depthgraph.engine.app.backends import make_backend
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.app.jobs import Backend, Job
from depthgraph.engine.app.outbox import Outbox
from depthgraph.engine.app.prompt_queue import PromptQueue, QueuedPrompt, comfy_number
from depthgraph.engine.app.store import PromptStore, StoredPrompt, StoreError, store_path
from depthgraph.engine.core.events import Event, ImageSent, NodeExecuting, PreviewFrame, Progress
from depthgraph.engine.core.gc_pause import in_thread_paused, thaw
from depthgraph.engine.core.schema import node_schema, object_info
from depthgraph.engine.formats.graph_file import GraphFileError
from depthgraph.engine.formats.graph_library import list_library, read_dropped_graph, read_library_graph
from depthgraph.engine.formats.workflow_convert import WorkflowError, workflow_to_prompt
from depthgraph.server_events import Clients
from depthgraph.server_files import FILES, LIMITS, get_view, post_upload_image, post_upload_mask
from depthgraph.server_frontend import FRONTEND_ROUTES, add_frontend, server_features, version_warning
from depthgraph.server_jobs import JOB_ROUTES, JOBS, Jobs
from depthgraph.server_progress import ProgressState
from depthgraph.server_requests import optional_json, read_json
from depthgraph.server_security import error_response, install
from depthgraph.server_userdata import USERDATA_ROUTES, add_userdata

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


# --- prompts and the queue -------------------------------------------------------------------------
def bad_request(
    message: str, kind: str = "invalid_prompt", node_errors: dict[str, Any] | None = None
) -> web.Response:
    return error_response(400, kind, message, node_errors)


# Prompts above this many nodes are validated in a thread, so the event loop goes on answering.
LARGE_PROMPT_NODES = 500


class BadRequest(Exception):
    """A request field that cannot be used; the message says which and why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def checked_id(value: Any, what: str, limit: int) -> str | None:
    """A client- or prompt id: text of at most `limit` characters (a whole number is taken as text)."""
    if value is None or value == "":
        return None
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise BadRequest(f"invalid_{what}", f"{what} must be text, not a JSON {type(value).__name__}")
    if len(value) > limit:
        raise BadRequest(
            f"invalid_{what}", f"{what} is {len(value)} characters; at most {limit} (setting max_id_length)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            f"invalid_{what}", f"{what} holds a lone surrogate (\\ud800-\\udfff); send plain text"
        ) from None
    return value


def checked_number(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > 2**53:
        raise BadRequest(
            "invalid_number", f"number must be a finite number of at most 2^53, not {value!r:.40}"
        )
    return float(value)


def read_prompt_request(body: Any, settings: Settings) -> dict[str, Any]:
    """The fields of a `POST /prompt` body, each checked (`BadRequest` for the first that is wrong)."""
    if not isinstance(body, dict) or "prompt" not in body:
        raise BadRequest("no_prompt", "send an object with a 'prompt' (the graph in API form)")
    prompt = body["prompt"]
    if isinstance(prompt, dict) and len(prompt) > settings.max_prompt_nodes:
        raise BadRequest(
            "prompt_too_large",
            f"the prompt has {len(prompt)} nodes; at most {settings.max_prompt_nodes} "
            "(setting max_prompt_nodes)",
        )
    extra_data = body.get("extra_data")
    if extra_data is not None and not isinstance(extra_data, dict):
        raise BadRequest("invalid_extra_data", "extra_data must be an object")
    pnginfo = (extra_data or {}).get("extra_pnginfo")
    if pnginfo is not None and not isinstance(pnginfo, dict):
        raise BadRequest("invalid_extra_data", "extra_data.extra_pnginfo must be an object ({workflow: ...})")
    targets = body.get("partial_execution_targets")
    if targets is not None and not isinstance(targets, list):
        raise BadRequest("invalid_targets", "partial_execution_targets must be a list of node ids")
    client_id = checked_id(body.get("client_id"), "client_id", settings.max_id_length)
    return {
        "prompt": prompt,
        "prompt_id": checked_id(body.get("prompt_id"), "prompt_id", settings.max_id_length),
        "client_id": client_id,
        "number": checked_number(body.get("number")),
        "front": bool(body.get("front")),
        # As ComfyUI: the client's id is part of the prompt's extra data (history shows it).
        "extra_data": {**(extra_data or {}), **({"client_id": client_id} if client_id else {})},
        "targets": targets,
    }


async def post_prompt(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        fields = read_prompt_request(await read_json(request), state.settings)
    except BadRequest as error:
        return bad_request(str(error), error.kind)
    prompt_id = fields["prompt_id"] or str(uuid.uuid4())
    if state.store.exists(prompt_id) or prompt_id in state.accepting:
        return bad_request(f"prompt_id {prompt_id!r} was already used", "duplicate_prompt_id")
    state.accepting.add(prompt_id)
    try:
        return await accept_prompt(state, prompt_id, fields)
    finally:
        state.accepting.discard(prompt_id)


async def accept_prompt(state: ServerState, prompt_id: str, fields: dict[str, Any]) -> web.Response:
    prompt, targets = fields["prompt"], fields["targets"]
    large = isinstance(prompt, dict) and len(prompt) > LARGE_PROMPT_NODES
    if large:
        validation = await in_thread_paused(state.engine.validate, prompt, targets)
    else:
        validation = state.engine.validate(prompt, targets)
    if validation.graph is None:
        node_errors = validation.node_errors()
        general = [str(issue) for issue in validation.issues if issue.node_id is None]
        if node_errors and not general:
            return bad_request(
                "Prompt outputs failed validation", "prompt_outputs_failed_validation", node_errors
            )
        message = "; ".join(general or [str(issue) for issue in validation.issues])
        kind = validation.issues[0].code.value if validation.issues else "invalid_prompt"
        return bad_request(message, kind, node_errors)
    number = fields["number"]
    number = number if number is not None else state.queue.next_number(fields["front"])
    extra = {
        "client_id": fields["client_id"],
        "extra_data": fields["extra_data"],
        "targets": list(validation.graph.targets),
    }
    stored = StoredPrompt(prompt_id, number, "pending", prompt, extra)
    if large:
        await in_thread_paused(state.store.add, stored)
    else:
        state.store.add(stored)
    state.queue.put(QueuedPrompt(number, prompt_id, prompt, extra, validation.graph))
    broadcast_status(state)
    return web.json_response({"prompt_id": prompt_id, "number": comfy_number(number), "node_errors": {}})


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response({"exec_info": {"queue_remaining": state_of(request).queue.remaining()}})


async def get_queue(request: web.Request) -> web.Response:
    running, pending = state_of(request).queue.snapshot()
    return web.json_response(
        {
            "queue_running": [item.as_comfy() for item in running],
            "queue_pending": [item.as_comfy() for item in pending],
        }
    )


def clear_or_delete(body: Any, limit: int) -> tuple[bool, list[str]]:
    """The `{clear: true}` and `{delete: [ids]}` of `POST /queue` and `POST /history`."""
    if not isinstance(body, dict):
        raise BadRequest("invalid_body", 'send an object: {"clear": true} or {"delete": [prompt ids]}')
    delete = body.get("delete", [])
    if not isinstance(delete, list):
        raise BadRequest("invalid_body", "delete must be a list of prompt ids")
    ids = [checked_id(prompt_id, "prompt_id", limit) for prompt_id in delete]
    return bool(body.get("clear")), [prompt_id for prompt_id in ids if prompt_id is not None]


async def post_queue(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        clear, delete = clear_or_delete(await read_json(request), state.settings.max_id_length)
    except BadRequest as error:
        return bad_request(str(error), error.kind)
    removed = state.queue.clear() if clear else []
    if delete:
        removed += state.queue.remove(delete)
    state.store.delete(removed)
    broadcast_status(state)
    return web.json_response({"removed": removed})


async def post_interrupt(request: web.Request) -> web.Response:
    state = state_of(request)
    running, _ = state.queue.snapshot()
    body = await optional_json(request)
    try:
        wanted = checked_id(body.get("prompt_id"), "prompt_id", state.settings.max_id_length)
    except BadRequest as error:
        return bad_request(str(error), error.kind)
    for item in running:
        if wanted is None or wanted == item.prompt_id:
            state.backend.interrupt(item.prompt_id)
    return web.json_response({})


def cancel_prompt(state: ServerState, prompt_id: str) -> bool:
    """Stop a running prompt or take a waiting one off the queue; False if it is neither."""
    running, _ = state.queue.snapshot()
    if any(item.prompt_id == prompt_id for item in running):
        state.backend.interrupt(prompt_id)
        return True
    removed = state.queue.remove([prompt_id])
    if not removed:
        return False
    state.store.delete(removed)
    broadcast_status(state)
    return True


def history_entry(item: StoredPrompt) -> dict[str, Any]:
    queued = QueuedPrompt(item.number, item.prompt_id, item.prompt, item.extra)
    routing = {"routing": item.extra["routing"]} if "routing" in item.extra else {}  # Ray executor only
    return {
        **routing,
        "prompt": queued.as_comfy(),
        "outputs": item.outputs,
        "status": {
            "status_str": "success" if item.status == "success" else "error",
            "completed": item.status == "success",
            "messages": item.messages,
        },
        "meta": {node_id: {"node_id": node_id, "display_node": node_id} for node_id in item.outputs},
    }


def query_count(request: web.Request, name: str) -> int | None:
    """A whole-number query parameter (None when absent); counts past 2^31 mean "all"."""
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 30:
        raise BadRequest("invalid_query", f"{name} is a whole number of 0 or more, not {text[:40]!r}")
    return min(int(text), 2**31 - 1)


async def get_history(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        max_items = query_count(request, "max_items")
        # No offset (or ComfyUI's -1): the newest max_items; an offset counts from the oldest.
        offset = None if request.query.get("offset") in (None, "", "-1") else query_count(request, "offset")
    except BadRequest as error:
        return bad_request(str(error), error.kind)
    items = state.store.history(max_items, offset)
    return web.json_response({item.prompt_id: history_entry(item) for item in items})


async def get_history_item(request: web.Request) -> web.Response:
    item = state_of(request).store.get(request.match_info["prompt_id"])
    if item is None or item.status in ("pending", "running"):
        return web.json_response({})
    return web.json_response({item.prompt_id: history_entry(item)})


async def post_history(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        clear, delete = clear_or_delete(await read_json(request), state.settings.max_id_length)
    except BadRequest as error:
        return bad_request(str(error), error.kind)
    if clear:
        state.store.clear()
    if delete:
        state.store.delete(delete, finished_only=True)
    return web.json_response({})


# --- nodes, system, conversion ---------------------------------------------------------------------
async def get_object_info(request: web.Request) -> web.Response:
    engine = state_of(request).engine
    return web.json_response(object_info(engine.registry, engine.files))


async def get_object_info_node(request: web.Request) -> web.Response:
    engine = state_of(request).engine
    definition = engine.registry.get(request.match_info["node_class"])
    if definition is None:
        return web.json_response({})
    return web.json_response({definition.class_name: node_schema(definition, engine.files)})


async def get_system_stats(request: web.Request) -> web.Response:
    """ComfyUI's system stats; with the Ray executor, one device per worker (`workers` has the rest)."""
    state = state_of(request)
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    workers = await asyncio.to_thread(state.backend.describe)
    devices = [
        {
            "name": worker["name"],
            "type": worker["type"],
            "index": index,
            "vram_total": worker.get("vram_total", 0),
            "vram_free": worker.get("vram_free", 0),
        }
        for index, worker in enumerate(workers)
    ]
    cache_bytes: dict[str, int] = {}
    for worker in workers:
        for device, size in worker.get("cache_bytes", {}).items():
            cache_bytes[device] = cache_bytes.get(device, 0) + size

    def joined(key: str) -> list[str]:
        return sorted({name for worker in workers for name in worker.get(key, [])})

    plans = list(dict.fromkeys(worker["acceleration"] for worker in workers if "acceleration" in worker))
    torch_version = next((w["torch_version"] for w in workers if w.get("torch_version")), None)
    return web.json_response(
        {
            "system": {
                "os": platform.system(),
                "python_version": sys.version,
                "embedded_python": False,
                "argv": list(sys.argv),  # ComfyUI's front end reads it before it shows its top bar
                "pytorch_version": torch_version or getattr(sys.modules.get("torch"), "__version__", None),
                "ram_total": page * os.sysconf("SC_PHYS_PAGES") if page else 0,
                "ram_free": page * os.sysconf("SC_AVPHYS_PAGES") if page else 0,
                "cache_bytes": cache_bytes,
                "models_loaded": joined("models_loaded"),
                "models_on_device": joined("models_on_device"),
                "acceleration": "; ".join(plans),
                "executor": state.backend.name,
            },
            "devices": devices,
            "workers": workers,
        }
    )


async def post_free(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await optional_json(request)
    cache = bool(body.get("free_memory") or body.get("unload_models") or not body)
    models = bool(body.get("unload_models") or not body)
    await asyncio.to_thread(state.backend.free, cache, models)
    return web.json_response({})


async def post_workflow_convert(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    workflow = body.get("workflow", body) if isinstance(body, dict) else body
    try:
        prompt = workflow_to_prompt(workflow, state.engine.registry)
    except WorkflowError as error:
        return bad_request(str(error), "invalid_workflow")
    return web.json_response(prompt)


# --- the editor's graph files ---------------------------------------------------------------------
async def get_graphs(request: web.Request) -> web.Response:
    folder = state_of(request).settings.graphs_dir
    entries = await asyncio.to_thread(list_library, folder)
    return web.json_response([entry.to_json() for entry in entries])


async def get_graph(request: web.Request) -> web.Response:
    folder = state_of(request).settings.graphs_dir
    try:
        document = await asyncio.to_thread(read_library_graph, folder, request.match_info["name"])
    except GraphFileError as error:
        return error_response(404, "no_such_graph", str(error))
    return web.json_response(document.to_json())


async def post_graph_read(request: web.Request) -> web.Response:
    """The graph in a dropped or picked file (raw body; `?filename=` names it in messages)."""
    state = state_of(request)
    data = await request.read()
    filename = Path(request.query.get("filename", "")).name
    try:
        document = await asyncio.to_thread(
            read_dropped_graph,
            data,
            filename,
            state.engine.registry,
            max_text_bytes=state.settings.max_text_chunk_bytes,
        )
    except GraphFileError as error:
        return error_response(400, "invalid_graph", str(error))
    return web.json_response(document.to_json())


# --- WebSocket -------------------------------------------------------------------------------------
async def websocket(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    return await state.clients.connect(request, status_message(state))


# --- the app ---------------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def get_embeddings(request: web.Request) -> web.Response:
    """ComfyUI's list of textual-inversion embeddings by name; SD2-depth prompts here use none."""
    return web.json_response([])


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/prompt", post_prompt),
    ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("GET", "/view", get_view),
    ("POST", "/upload/image", post_upload_image),
    ("POST", "/upload/mask", post_upload_mask),
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{node_class}", get_object_info_node),
    ("GET", "/system_stats", get_system_stats),
    ("POST", "/free", post_free),
    ("POST", "/workflow/convert", post_workflow_convert),
    ("GET", "/graphs", get_graphs),
    ("GET", "/graphs/{name}", get_graph),
    ("POST", "/graph/read", post_graph_read),
    ("GET", "/ws", websocket),
    ("GET", "/embeddings", get_embeddings),
]


# Every route ComfyUI's clients and front end use, each also under /api.
API_ROUTES = [*ROUTES, *JOB_ROUTES, *USERDATA_ROUTES, *FRONTEND_ROUTES]


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    start_worker: bool = True,
    backend: Backend | None = None,
) -> web.Application:
    """The server for `settings` (or an engine made elsewhere, e.g. with a test registry). A backend
    given here is the caller's to close; one made here is closed with the app."""
    settings = settings or Settings()
    engine = engine or Engine(settings)
    owns_backend = backend is None
    store = PromptStore(store_path(settings.data_dir))  # first: a damaged store stops before Ray starts
    backend = backend or make_backend(settings, engine)
    features = server_features(settings.max_upload_bytes)  # the answer to a front end's `feature_flags`
    clients = Clients(settings.max_socket_backlog_bytes, settings.max_id_length, features)
    state = ServerState(engine, backend, store, PromptQueue(), settings, clients)
    state.outbox = Outbox(lambda batch: deliver(state, batch))
    app = web.Application(client_max_size=settings.max_upload_bytes + 2**20)
    install(app, settings.allow_origins, settings.allow_hosts)
    app[STATE] = state
    app[FILES], app[LIMITS] = engine.files, settings
    app[JOBS] = Jobs(store, lambda prompt_id: cancel_prompt(state, prompt_id))
    add_userdata(app, settings.data_dir)
    for method, path, handler in API_ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    add_frontend(app, settings, engine.registry)  # after the API: its routes at / must not hide any

    async def start(app: web.Application) -> None:
        state.loop = asyncio.get_running_loop()
        state.outbox.loop = state.loop
        state.store_retry = asyncio.create_task(retry_store(state))
        # Prompts queued before a restart run again, in order (and, on Ray, those cut off running).
        for item in store.recover(requeue_running=backend.requeue_interrupted):
            state.queue.put(QueuedPrompt(item.number, item.prompt_id, item.prompt, item.extra))
        if start_worker:
            for index in range(backend.concurrency):
                thread = threading.Thread(
                    target=run_worker, args=(state,), name=f"depthgraph-prompts-{index}", daemon=True
                )
                thread.start()
                state.threads.append(thread)

    async def stop(app: web.Application) -> None:
        state.stopping = True
        state.queue.close()
        for item in state.queue.snapshot()[0]:
            backend.interrupt(item.prompt_id)
        await state.clients.close_all()
        for thread in state.threads:
            await asyncio.to_thread(thread.join, 30)
        if owns_backend:
            await asyncio.to_thread(backend.close)
        if state.store_retry is not None:
            state.store_retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.store_retry
        store.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8188) -> int:
    """Run the server until interrupted (the `depthgraph serve` command)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"depthgraph server on http://{host}:{port} (data in {settings.data_dir})", file=sys.stderr)
    try:
        app = create_app(settings)
    except (RuntimeError, StoreError) as error:  # no Ray cluster or no Ray; the store cannot be used
        print(f"depthgraph: {error}", file=sys.stderr)
        return 1
    state = app[STATE]
    if settings.frontend == "comfyui":
        print("editor: ComfyUI's front end at /, depthgraph's at /depthgraph/", file=sys.stderr)
        if (warning := version_warning()) is not None:
            print(warning, file=sys.stderr)
    if settings.allow_origins:
        print(f"pages allowed to use it: {', '.join(settings.allow_origins)}", file=sys.stderr)
    if "*" in settings.allow_origins:
        print("warning: --allow-origin '*' lets any web page you open drive this server", file=sys.stderr)
    for worker in state.backend.describe():
        print(f"{worker['worker']} on {worker['type']}: {worker.get('acceleration', '')}", file=sys.stderr)
    try:
        web.run_app(app, host=host, port=port, print=None)
    except StoreError as error:  # found on the store's first reads, as the server starts
        print(f"depthgraph: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from depthgraph.engine.app.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))

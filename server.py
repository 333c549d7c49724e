"""depthgraph's HTTP and WebSocket server: ComfyUI's API in front of one engine.

A thin adapter: handlers validate and queue prompts, one worker thread runs them on the engine (so the
event loop never waits on the GPU), and the engine's events go to the WebSocket of the client that
queued the prompt. Every accepted prompt, its status and outputs live in a sqlite store in the data
folder, so the queue and the history survive a restart. Start it with `depthgraph serve` or
`python server.py`; it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
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
from urllib.parse import unquote

from aiohttp import BodyPartReader, WSMsgType, web

from engine.config import Settings
from engine.events import Event, NodeExecuting, PreviewFrame, Progress
from engine.files import FileStore, UnsafePathError
from engine.graph_file import GraphFileError
from engine.graph_library import list_library, read_dropped_graph, read_library_graph
from engine.outbox import Outbox
from engine.prompt_queue import PromptQueue, QueuedPrompt
from engine.runtime import Engine
from engine.schema import node_schema, object_info
from engine.store import PromptStore, StoredPrompt
from engine.workflow_convert import WorkflowError, workflow_to_prompt

log = logging.getLogger("depthgraph.server")
WEB_ROOT = Path(__file__).resolve().parent / "web"
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

    engine: Engine
    store: PromptStore
    queue: PromptQueue
    settings: Settings
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    worker: threading.Thread | None = None
    outbox: Outbox = field(init=False)  # the worker's messages to the event loop


STATE = web.AppKey("state", ServerState)


def state_of(request: web.Request) -> ServerState:
    return request.app[STATE]


# --- sending ---------------------------------------------------------------------------------------
async def send_json(state: ServerState, kind: str, data: dict[str, Any], client_id: str | None) -> None:
    """To the client that queued the prompt (by its id at send time, so a reconnect gets it), or to all."""
    targets = [state.sockets[client_id]] if client_id in state.sockets else []
    if client_id is None:
        targets = list(state.sockets.values())
    for socket in targets:
        if not socket.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client left; its prompt runs on
                await socket.send_json({"type": kind, "data": data})


async def send_preview(state: ServerState, preview: PreviewFrame, client_id: str | None) -> None:
    socket = state.sockets.get(client_id) if client_id is not None else None
    if socket is not None and not socket.closed:
        header = struct.pack(">II", PREVIEW_IMAGE, IMAGE_FORMATS.get(preview.format, 1))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await socket.send_bytes(header + preview.data)


def status_message(state: ServerState) -> dict[str, Any]:
    return {"status": {"exec_info": {"queue_remaining": state.queue.remaining()}}}


async def broadcast_status(state: ServerState) -> None:
    await send_json(state, "status", status_message(state), None)


def post(state: ServerState, *message: Any) -> None:
    """From the worker thread: ("json", client_id, kind, data), ("preview", client_id, frame) or
    ("status",), delivered on the event loop in order (see engine.outbox)."""
    state.outbox.post(message)


async def deliver(state: ServerState, batch: list[tuple[Any, ...]]) -> None:
    for message in batch:
        if message[0] == "json":
            await send_json(state, message[2], message[3], message[1])
        elif message[0] == "preview":
            await send_preview(state, message[2], message[1])
        else:
            await broadcast_status(state)


# --- the execution worker --------------------------------------------------------------------------
def run_worker(state: ServerState) -> None:
    """Take prompts off the queue and run them until the queue is closed."""
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
            state.queue.finished()
            post(state, "status")


def execute(state: ServerState, item: QueuedPrompt) -> None:
    client_id = item.extra.get("client_id")
    messages: list[Any] = []
    state.store.set_status(item.prompt_id, "running")
    post(state, "status")
    the_end = {"node": None, "display_node": None, "prompt_id": item.prompt_id}

    def listen(event: Event) -> None:
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
    result = state.engine.executor.run(graph, prompt_id=item.prompt_id, on_event=listen, workflow=workflow)
    state.store.finish(item.prompt_id, result.status, dict(result.outputs), messages)
    post(state, "json", client_id, "executing", the_end)


# --- prompts and the queue -------------------------------------------------------------------------
def bad_request(
    message: str, kind: str = "invalid_prompt", node_errors: dict[str, Any] | None = None
) -> web.Response:
    error = {"type": kind, "message": message, "details": "", "extra_info": {}}
    return web.json_response({"error": error, "node_errors": node_errors or {}}, status=400)


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"type": "invalid_json", "message": "the request body is not JSON"}}),
            content_type="application/json",
        ) from None


async def optional_json(request: web.Request) -> dict[str, Any]:
    """The JSON object of a request whose body may be empty ({} then)."""
    if not request.can_read_body:
        return {}
    body = await read_json(request)
    return body if isinstance(body, dict) else {}


async def post_prompt(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    if not isinstance(body, dict) or "prompt" not in body:
        return bad_request("send an object with a 'prompt' (the graph in API form)", "no_prompt")
    prompt = body["prompt"]
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    if state.store.exists(prompt_id):
        return bad_request(f"prompt_id {prompt_id!r} was already used", "duplicate_prompt_id")
    targets = body.get("partial_execution_targets")
    validation = state.engine.validate(prompt, targets if isinstance(targets, list) else None)
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
    number = float(body["number"]) if isinstance(body.get("number"), int | float) else None
    number = number if number is not None else state.queue.next_number(bool(body.get("front")))
    extra = {
        "client_id": body.get("client_id"),
        "extra_data": body.get("extra_data") or {},
        "targets": list(validation.graph.targets),
    }
    state.store.add(StoredPrompt(prompt_id, number, "pending", prompt, extra))
    state.queue.put(QueuedPrompt(number, prompt_id, prompt, extra, validation.graph))
    await broadcast_status(state)
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response({"exec_info": {"queue_remaining": state_of(request).queue.remaining()}})


async def get_queue(request: web.Request) -> web.Response:
    running, pending = state_of(request).queue.snapshot()
    return web.json_response(
        {
            "queue_running": [running.as_comfy()] if running else [],
            "queue_pending": [item.as_comfy() for item in pending],
        }
    )


async def post_queue(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    removed: list[str] = []
    if isinstance(body, dict) and body.get("clear"):
        removed = state.queue.clear()
    if isinstance(body, dict) and isinstance(body.get("delete"), list):
        removed += state.queue.remove(str(prompt_id) for prompt_id in body["delete"])
    state.store.delete(removed)
    await broadcast_status(state)
    return web.json_response({"removed": removed})


async def post_interrupt(request: web.Request) -> web.Response:
    state = state_of(request)
    running, _ = state.queue.snapshot()
    body = await optional_json(request)
    wanted = body.get("prompt_id")
    if running is not None and (wanted is None or wanted == running.prompt_id):
        state.engine.interrupt()
    return web.json_response({})


def history_entry(item: StoredPrompt) -> dict[str, Any]:
    queued = QueuedPrompt(item.number, item.prompt_id, item.prompt, item.extra)
    return {
        "prompt": queued.as_comfy(),
        "outputs": item.outputs,
        "status": {
            "status_str": "success" if item.status == "success" else "error",
            "completed": item.status == "success",
            "messages": item.messages,
        },
        "meta": {node_id: {"node_id": node_id, "display_node": node_id} for node_id in item.outputs},
    }


async def get_history(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        max_items = int(request.query["max_items"]) if "max_items" in request.query else None
        offset = int(request.query.get("offset", 0))
    except ValueError:
        return bad_request("max_items and offset are whole numbers", "invalid_query")
    items = state.store.history(max_items, offset)
    return web.json_response({item.prompt_id: history_entry(item) for item in items})


async def get_history_item(request: web.Request) -> web.Response:
    item = state_of(request).store.get(request.match_info["prompt_id"])
    if item is None or item.status in ("pending", "running"):
        return web.json_response({})
    return web.json_response({item.prompt_id: history_entry(item)})


async def post_history(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    if isinstance(body, dict) and body.get("clear"):
        state.store.clear()
    if isinstance(body, dict) and isinstance(body.get("delete"), list):
        state.store.delete((str(prompt_id) for prompt_id in body["delete"]), finished_only=True)
    return web.json_response({})


# --- files -----------------------------------------------------------------------------------------
async def get_view(request: web.Request) -> web.StreamResponse:
    files = state_of(request).engine.files
    kind = request.query.get("type", "output")
    try:
        if kind not in ("input", "output", "temp"):
            raise UnsafePathError(f"type must be input, output or temp, not {kind!r}")
        path = files.resolve(kind, request.query.get("filename", ""), request.query.get("subfolder", ""))  # type: ignore[arg-type]
    except UnsafePathError as error:
        return web.json_response({"error": str(error)}, status=400)
    if not path.is_file():
        return web.json_response({"error": "no such file"}, status=404)
    return web.FileResponse(path)


async def read_upload(request: web.Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields and file fields of a multipart upload, refusing more than `limit` bytes per file."""
    fields: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "send multipart/form-data with the image in a field named 'image'"}),
            content_type="application/json",
        )
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # nested multiparts are not uploads we take
        name = part.name or ""
        if part.filename is None:
            fields[name] = (await part.read(decode=True)).decode("utf-8", "replace")
            continue
        fields[f"{name}.filename"] = part.filename
        data = bytearray()
        while chunk := await part.read_chunk():
            data.extend(chunk)
            if len(data) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
        blobs[name] = bytes(data)
    return fields, blobs


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            size = picture.size
            if size[0] * size[1] > max_pixels:
                raise ValueError(f"the image is {size[0]}×{size[1]}, over the {max_pixels} pixel limit")
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"the upload is not an image that can be read ({error})") from None
    return size


async def post_upload_image(request: web.Request) -> web.Response:
    return await upload(request, mask=False)


async def post_upload_mask(request: web.Request) -> web.Response:
    return await upload(request, mask=True)


async def upload(request: web.Request, mask: bool) -> web.Response:
    state = state_of(request)
    fields, blobs = await read_upload(request, state.settings.max_upload_bytes)
    data = blobs.get("image")
    if data is None:
        return web.json_response({"error": "send the image as a multipart field named 'image'"}, status=400)
    kind = fields.get("type", "input")
    subfolder = fields.get("subfolder", "")
    # Only the name is kept: any folders in it, plain or percent-encoded, are dropped.
    filename = Path(unquote(fields.get("image.filename") or "").replace("\\", "/")).name or "upload.png"
    try:
        if kind not in ("input", "temp"):
            raise UnsafePathError(f"uploads go to the input or temp folder, not {kind!r}")
        await asyncio.to_thread(check_image, data, state.settings.max_image_pixels)
        if mask:
            data = await asyncio.to_thread(
                apply_mask, state.engine.files, fields.get("original_ref", ""), data
            )
        name = await asyncio.to_thread(
            state.engine.files.save_upload,
            kind,
            filename,
            subfolder,
            data,
            fields.get("overwrite") == "true",
        )
    except UnsafePathError as error:
        return web.json_response({"error": str(error)}, status=400)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def apply_mask(files: FileStore, original_ref: str, mask_png: bytes) -> bytes:
    """ComfyUI's mask upload: the original image with the mask's alpha as its alpha channel."""
    from PIL import Image

    try:
        reference = json.loads(original_ref)
        original = files.resolve(
            reference.get("type", "input"), reference["filename"], reference.get("subfolder", "")
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(
            "original_ref must name the image the mask belongs to ({filename, subfolder, type})"
        ) from None
    if not original.is_file():
        raise ValueError(f"the original image {original.name} is not there")
    with Image.open(original) as base, Image.open(io.BytesIO(mask_png)) as painted:
        result = base.convert("RGBA")
        alpha = painted.convert("RGBA").getchannel("A").resize(result.size)
        result.putalpha(alpha)
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
    return buffer.getvalue()


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
    engine = state_of(request).engine
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    devices = []
    torch = sys.modules.get("torch")
    if torch is not None and engine.device == "cuda":
        free, total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name()
        devices.append({"name": name, "type": "cuda", "index": 0, "vram_total": total, "vram_free": free})
    else:
        devices.append(
            {"name": engine.device, "type": engine.device, "index": 0, "vram_total": 0, "vram_free": 0}
        )
    return web.json_response(
        {
            "system": {
                "os": platform.system(),
                "python_version": sys.version,
                "embedded_python": False,
                "pytorch_version": getattr(torch, "__version__", None),
                "ram_total": page * os.sysconf("SC_PHYS_PAGES") if page else 0,
                "ram_free": page * os.sysconf("SC_AVPHYS_PAGES") if page else 0,
                "cache_bytes": engine.cache.usage(),
                "models_loaded": [f"{name}/{part}" for name, part in engine.models.loaded()],
                "models_on_device": [f"{name}/{part}" for name, part in engine.models.residency.on_device()],
                "acceleration": engine.models.plan.describe(),
            },
            "devices": devices,
        }
    )


async def post_free(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await optional_json(request)
    if body.get("free_memory") or body.get("unload_models") or not body:
        state.engine.cache.clear()
    if body.get("unload_models") or not body:
        state.engine.models.unload()
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
        return web.json_response({"error": str(error)}, status=404)
    return web.json_response(document.to_json())


async def post_graph_read(request: web.Request) -> web.Response:
    """The graph in a dropped or picked file (raw body; `?filename=` names it in messages)."""
    state = state_of(request)
    data = await request.read()
    filename = Path(request.query.get("filename", "")).name
    try:
        document = read_dropped_graph(data, filename, state.engine.registry)
    except GraphFileError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response(document.to_json())


# --- WebSocket -------------------------------------------------------------------------------------
async def websocket(request: web.Request) -> web.WebSocketResponse:
    state = state_of(request)
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    client_id = request.query.get("clientId") or uuid.uuid4().hex
    previous = state.sockets.get(client_id)
    state.sockets[client_id] = socket  # a reconnect with the same id takes over its events
    if previous is not None and not previous.closed:
        await previous.close()
    try:
        await socket.send_json({"type": "status", "data": {**status_message(state), "sid": client_id}})
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        if state.sockets.get(client_id) is socket:
            del state.sockets[client_id]
    return socket


async def index(request: web.Request) -> web.StreamResponse:
    page = WEB_ROOT / "index.html"
    if page.is_file():
        return web.FileResponse(page)
    return web.Response(text="depthgraph server: the API is at /prompt, /queue, /history, /ws\n")


# --- the app ---------------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
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
]


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, start_worker: bool = True
) -> web.Application:
    """The server for `settings` (or an engine made elsewhere, e.g. with a test registry)."""
    settings = settings or Settings()
    engine = engine or Engine(settings)
    store = PromptStore(settings.data_dir / "depthgraph.sqlite3")
    state = ServerState(engine, store, PromptQueue(), settings)
    state.outbox = Outbox(lambda batch: deliver(state, batch))
    engine.executor.previews = True
    app = web.Application(client_max_size=settings.max_upload_bytes + 2**20)
    app[STATE] = state
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    app.router.add_get("/", index)
    if WEB_ROOT.is_dir():
        app.router.add_static("/web", WEB_ROOT)

    async def start(app: web.Application) -> None:
        state.loop = asyncio.get_running_loop()
        state.outbox.loop = state.loop
        for item in store.recover():  # prompts queued before a restart run again, in order
            state.queue.put(QueuedPrompt(item.number, item.prompt_id, item.prompt, item.extra))
        if start_worker:
            state.worker = threading.Thread(
                target=run_worker, args=(state,), name="depthgraph-worker", daemon=True
            )
            state.worker.start()

    async def stop(app: web.Application) -> None:
        state.queue.close()
        engine.interrupt()
        for socket in list(state.sockets.values()):
            await socket.close()
        if state.worker is not None:
            await asyncio.to_thread(state.worker.join, 30)
        store.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8188) -> int:
    """Run the server until interrupted (the `depthgraph serve` command)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"depthgraph server on http://{host}:{port} (data in {settings.data_dir})", file=sys.stderr)
    app = create_app(settings)
    engine = app[STATE].engine
    print(f"device {engine.device}: {engine.models.plan.describe()}", file=sys.stderr)
    web.run_app(app, host=host, port=port, print=None)
    return 0


if __name__ == "__main__":
    from engine.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))

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
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from depthgraph.engine.app.backends import make_backend
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.app.jobs import Backend
from depthgraph.engine.app.outbox import Outbox
from depthgraph.engine.app.prompt_queue import PromptQueue, QueuedPrompt, comfy_number
from depthgraph.engine.app.store import PromptStore, StoredPrompt, StoreError, store_path
from depthgraph.engine.core.gc_pause import in_thread_paused
from depthgraph.server_events import Clients
from depthgraph.server_files import FILES, LIMITS, get_view, post_upload_image, post_upload_mask
from depthgraph.server_frontend import FRONTEND_ROUTES, add_frontend, server_features, version_warning
from depthgraph.server_history import get_history, get_history_item, post_history
from depthgraph.server_info import (
    get_embeddings,
    get_graph,
    get_graphs,
    get_object_info,
    get_object_info_node,
    get_system_stats,
    post_free,
    post_graph_read,
    post_workflow_convert,
)
from depthgraph.server_jobs import JOB_ROUTES, JOBS, Jobs
from depthgraph.server_requests import (
    BadRequest,
    bad_request,
    checked_id,
    checked_number,
    clear_or_delete,
    optional_json,
    read_json,
)
from depthgraph.server_security import install
from depthgraph.server_state import STATE, ServerState, state_of
from depthgraph.server_userdata import USERDATA_ROUTES, add_userdata
from depthgraph.server_worker import broadcast_status, deliver, retry_store, run_worker, status_message

# --- prompts and the queue -------------------------------------------------------------------------
# Prompts above this many nodes are validated in a thread, so the event loop goes on answering.
LARGE_PROMPT_NODES = 500


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


# --- WebSocket -------------------------------------------------------------------------------------
async def websocket(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    return await state.clients.connect(request, status_message(state))


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

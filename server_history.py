"""The history of finished prompts, as ComfyUI's `/history` shows it, from the prompt store."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from depthgraph.engine.app.prompt_queue import QueuedPrompt
from depthgraph.engine.app.store import StoredPrompt
from depthgraph.server_requests import BadRequest, bad_request, clear_or_delete, query_count, read_json
from depthgraph.server_state import state_of


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

"""What the server says about itself and its nodes (object_info, system stats, freeing memory), the
workflow conversion, and the editor's graph library."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from pathlib import Path

from aiohttp import web
from depthgraph.engine.core.schema import node_schema, object_info
from depthgraph.engine.formats.graph_file import GraphFileError
from depthgraph.engine.formats.graph_library import list_library, read_dropped_graph, read_library_graph
from depthgraph.engine.formats.workflow_convert import WorkflowError, workflow_to_prompt
from depthgraph.server_requests import bad_request, optional_json, read_json
from depthgraph.server_security import error_response
from depthgraph.server_state import state_of


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


async def get_embeddings(request: web.Request) -> web.Response:
    """ComfyUI's list of textual-inversion embeddings by name; SD2-depth prompts here use none."""
    return web.json_response([])

"""Reading request bodies within the server's budgets: every refusal is a 4xx naming its setting."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from depthgraph.engine.core.gc_pause import in_thread_paused
from depthgraph.engine.formats.json_body import JsonBodyError, parse_json
from depthgraph.server_files import LIMITS
from depthgraph.server_security import json_error

# Bodies above this are parsed in a thread, so the event loop goes on answering other requests.
LARGE_BODY_BYTES = 256 * 1024


async def read_body(request: web.Request, limit: int, setting: str, what: str = "JSON requests") -> bytes:
    """The raw body, refused with 413 as soon as it is known to pass `limit` (named by `setting`)."""
    too_large = f"the body is over {limit} bytes, the limit for {what} (setting {setting})"
    if request.content_length is not None and request.content_length > limit:
        raise json_error(413, "request_too_large", too_large)
    data = bytearray()
    while chunk := await request.content.read(2**16):
        data += chunk
        if len(data) > limit:
            raise json_error(413, "request_too_large", too_large)
    return bytes(data)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, within `max_prompt_bytes` and `max_json_depth`, or a 4xx saying why."""
    settings = request.app[LIMITS]
    data = await read_body(request, settings.max_prompt_bytes, "max_prompt_bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise json_error(400, "invalid_json", "the request body is not UTF-8 text; send JSON") from None
    try:
        if len(data) > LARGE_BODY_BYTES:
            return await in_thread_paused(parse_json, text, settings.max_json_depth)
        return parse_json(text, settings.max_json_depth)
    except JsonBodyError as error:
        raise json_error(400, error.kind, str(error)) from None


async def optional_json(request: web.Request) -> dict[str, Any]:
    """The JSON object of a request whose body may be empty ({} then)."""
    if not request.can_read_body:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise json_error(400, "invalid_body", "send a JSON object (or nothing)")
    return body

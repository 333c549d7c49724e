"""Reading requests: bodies within the server's budgets, and the fields and query parameters several
handlers take; every refusal is a 4xx that names what was wrong (and the setting, for a budget)."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from depthgraph.engine.core.gc_pause import in_thread_paused
from depthgraph.engine.formats.json_body import JsonBodyError, parse_json
from depthgraph.server_files import LIMITS
from depthgraph.server_security import error_response, json_error

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


def bad_request(
    message: str, kind: str = "invalid_prompt", node_errors: dict[str, Any] | None = None
) -> web.Response:
    return error_response(400, kind, message, node_errors)


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


def clear_or_delete(body: Any, limit: int) -> tuple[bool, list[str]]:
    """The `{clear: true}` and `{delete: [ids]}` of `POST /queue` and `POST /history`."""
    if not isinstance(body, dict):
        raise BadRequest("invalid_body", 'send an object: {"clear": true} or {"delete": [prompt ids]}')
    delete = body.get("delete", [])
    if not isinstance(delete, list):
        raise BadRequest("invalid_body", "delete must be a list of prompt ids")
    ids = [checked_id(prompt_id, "prompt_id", limit) for prompt_id in delete]
    return bool(body.get("clear")), [prompt_id for prompt_id in ids if prompt_id is not None]


def query_count(request: web.Request, name: str) -> int | None:
    """A whole-number query parameter (None when absent); counts past 2^31 mean "all"."""
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 30:
        raise BadRequest("invalid_query", f"{name} is a whole number of 0 or more, not {text[:40]!r}")
    return min(int(text), 2**31 - 1)

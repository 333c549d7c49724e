"""Who may talk to the server, and how it answers when a request goes wrong.

Binding to 127.0.0.1 keeps other machines out, not other web pages: any page the user opens can send
requests to `http://127.0.0.1:8188` from the user's own browser. Two checks run before every route and
the WebSocket:

- **Host.** A page on `evil.example` whose name the attacker re-points at 127.0.0.1 (DNS rebinding)
  reaches the server with `Host: evil.example`. Only IP addresses, `localhost` names and the names the
  user allows (`--allow-host`) are served; an IP address cannot be re-pointed.
- **Origin.** A browser says which page sent a request; scripts and other programs send no `Origin`
  and are unaffected. A page other than the server's own is refused (403) unless the user allows its
  origin (`--allow-origin URL`; `*` allows every page on the web, which is dangerous), in which case
  it also gets the CORS headers that let it read the answers.

The error middleware gives every failure the JSON shape `{"error": {"type", "message"}}`: aiohttp's own
4xx answers (404, 405, 413) get a type and a message, and an unexpected exception in a handler is
logged and answered 500 without traceback text; `INTERNAL_ERRORS` counts those, so tests can prove
that bad input never reaches the catch-all. A store that cannot be written (a full disk) answers 503
with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from depthgraph.engine.app.origins import DEFAULT_PORTS, Origin, check_allowed_origin, parse_origin
from depthgraph.engine.app.store import StoreUnavailable

log = logging.getLogger("depthgraph.server")


class Counter:
    """How many requests reached the catch-all (a mutable box kept on the app)."""

    def __init__(self) -> None:
        self.count = 0


INTERNAL_ERRORS = web.AppKey("internal_errors", Counter)


def error_response(
    status: int, kind: str, message: str, node_errors: dict[str, Any] | None = None
) -> web.Response:
    """The JSON error every route answers with: `{"error": {"type", "message", ...}, "node_errors"}`."""
    error = {"type": kind, "message": message, "details": "", "extra_info": {}}
    return web.json_response({"error": error, "node_errors": node_errors or {}}, status=status)


def json_error(status: int, kind: str, message: str) -> web.HTTPException:
    """An HTTP exception with the JSON error body, for handlers that raise."""
    body = json.dumps({"error": {"type": kind, "message": message}, "node_errors": {}})
    error = web.HTTPException(text=body, content_type="application/json")
    error.set_status(status)
    return error


# --- the origin policy -----------------------------------------------------------------------------
def split_host(header: str) -> tuple[str, int | None]:
    """The name and port of a `Host` header (`[::1]:8188`, `localhost`, ...)."""
    match = re.fullmatch(r"\[([^\]]*)\](?::(\d+))?|([^:]*)(?::(\d+))?", header.strip())
    if match is None:
        return header.strip().lower(), None
    name = match.group(1) if match.group(1) is not None else match.group(3) or ""
    port = match.group(2) or match.group(4)
    return name.lower().rstrip("."), int(port) if port else None


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OriginPolicy:
    """The hosts and origins the server answers (see the module docstring)."""

    allowed_origins: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, origins: Iterable[str], hosts: Iterable[str]) -> OriginPolicy:
        return cls(
            frozenset(check_allowed_origin(origin) for origin in origins),
            frozenset(host.strip().lower().rstrip(".") for host in hosts),
        )

    @property
    def any_origin(self) -> bool:
        return "*" in self.allowed_origins

    def host_refusal(self, host_header: str | None) -> str | None:
        """Why a request with this `Host` is refused, or None."""
        if host_header is None:
            return None  # HTTP/1.0 programs; browsers always send Host
        name, _ = split_host(host_header)
        if is_ip_address(name) or is_loopback(name) or name in self.allowed_hosts:
            return None
        return (
            f"this server does not answer to the name {name!r} (a page may be re-pointing that name at "
            f"it); use http://127.0.0.1 or localhost, or start it with --allow-host {name} if that "
            "name is yours"
        )

    def same_origin(self, origin: Origin, host_header: str | None) -> bool:
        """Whether `origin` is the server itself: the host and port the request was sent to (the
        loopback names of one port count as one server)."""
        if host_header is None:
            return False
        name, port = split_host(host_header)
        port = port or DEFAULT_PORTS.get(origin.scheme)
        if origin.port != port:
            return False
        return origin.host == name or (is_loopback(origin.host) and is_loopback(name))

    def origin_refusal(self, origin_header: str, host_header: str | None) -> str | None:
        """Why a browser request from the page `origin_header` is refused, or None."""
        origin = parse_origin(origin_header)
        if origin is not None and self.same_origin(origin, host_header):
            return None
        if self.any_origin or (origin is not None and str(origin) in self.allowed_origins):
            return None
        shown = str(origin) if origin is not None else origin_header[:100]
        return (
            f"requests from pages on {shown} are refused: only this server's own pages may use it; "
            f"to allow that page, start the server with --allow-origin {shown}"
        )

    def cross_origin_allowed(self, origin_header: str, host_header: str | None) -> bool:
        """Whether an allowed page of another origin sent this request (it gets CORS headers)."""
        origin = parse_origin(origin_header)
        return origin is None or not self.same_origin(origin, host_header)


POLICY = web.AppKey("origin_policy", OriginPolicy)
CORS_METHODS = "GET, POST, OPTIONS"


@web.middleware
async def origin_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse foreign hosts and pages before any handler runs (see the module docstring)."""
    policy = request.app[POLICY]
    host = request.headers.get("Host")
    refusal = policy.host_refusal(host)
    if refusal is not None:
        return error_response(403, "forbidden_host", refusal)
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    refusal = policy.origin_refusal(origin, host)
    if refusal is not None:
        log.warning("refused %s %s from the page %s", request.method, request.path, origin[:100])
        return error_response(403, "forbidden_origin", refusal)
    if not policy.cross_origin_allowed(origin, host):
        return await handler(request)
    # An allowed page of another origin: answer its preflight, and let it read the answers.
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Content-Type"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if not response.prepared:  # a WebSocket is already upgraded: its headers are gone
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


# --- errors ------------------------------------------------------------------------------------------
ERROR_TYPES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def _as_json_error(error: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own answers (plain text) in the JSON error shape; JSON ones pass as they are."""
    if error.content_type == "application/json" or error.status < 400:
        return web.Response(status=error.status, body=error.body, headers=error.headers)
    message = error.text or error.reason
    if error.status == 413:
        message = f"the request body is too large ({message}); send less, or raise the matching max_* setting"
    elif error.status == 405:
        message = f"{error.reason}: this route does not take {error.text or 'that method'}"
    response = error_response(error.status, ERROR_TYPES.get(error.status, "http_error"), message)
    for header in ("Allow", "Retry-After"):
        if header in error.headers:
            response.headers[header] = error.headers[header]
    return response


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers JSON; an unexpected one is logged and counted, without traceback text."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        return _as_json_error(error)
    except StoreUnavailable as error:  # the disk is full or failing: the reason says what to do
        return error_response(503, "store_unavailable", error.reason)
    except (ConnectionError, OSError) as error:
        if request.transport is None or request.transport.is_closing():
            raise  # the client went away mid-request: nobody to answer
        return _internal_error(request, error)
    except Exception as error:
        return _internal_error(request, error)


def _internal_error(request: web.Request, error: BaseException) -> web.Response:
    request.app[INTERNAL_ERRORS].count += 1
    log.error("%s %s failed", request.method, request.path, exc_info=error)
    return error_response(
        500,
        "internal_error",
        "the server failed on this request (its log has the details); please report it",
    )


def install(app: web.Application, origins: Iterable[str], hosts: Iterable[str]) -> None:
    """Add the origin policy and the error middleware to `app`."""
    app[POLICY] = OriginPolicy.from_settings(origins, hosts)
    app[INTERNAL_ERRORS] = Counter()
    app.middlewares.append(errors_as_json)
    app.middlewares.append(origin_policy)

"""Web origins (`scheme://host[:port]`) as browsers send them, and as users allow them in settings."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as browsers send it in `Origin` (None for "null" or anything else)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme])


def check_allowed_origin(text: str) -> str:
    """An `--allow-origin` value as the policy compares it, or ValueError saying what to write."""
    if text.strip() == "*":
        return "*"
    origin = parse_origin(text)
    if origin is None or urlsplit(text.strip()).path not in ("", "/"):
        raise ValueError(
            f"allowed origin {text!r} is not an origin; write scheme://host[:port], "
            "e.g. http://localhost:5173, or * for every page (dangerous)"
        )
    return str(origin)

"""`depthgraph serve`: the server, found through its entry point (the engine never imports it)."""

from __future__ import annotations

import argparse
import sys

from ..config import Settings
from ..overrides import (
    UsageError,
)
from .common import EXIT_FAILED


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from importlib.metadata import entry_points

    servers = [entry for entry in entry_points(group="depthgraph.server") if entry.name == "serve"]
    if not servers:
        raise UsageError("the server is not installed here (run `pip install -e .` in depthgraph's folder)")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port number (1-65535)")
    try:
        code: int = servers[0].load()(settings, host=args.host, port=args.port)
    except OSError as error:
        print(f"depthgraph: cannot serve on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    return code

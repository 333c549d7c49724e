"""The `depthgraph` command: `main` parses the command line and hands it to the command's module
(`run`, `batch`, `models`, `store`, `serve`, `nodes`); `common` holds what they share."""

from .entry import main

__all__ = ["main"]

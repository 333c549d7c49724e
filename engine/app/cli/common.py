"""What every command shares: exit codes, building the engine, reading a graph file, showing paths."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ...core.files import FileStore
from ...formats.graph_file import GraphDocument, load_graph
from ...models.devices import DeviceError
from ..config import Settings
from ..engine import Engine
from ..overrides import (
    UsageError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


def build_engine(settings: Settings, files: FileStore) -> Engine:
    try:
        engine = Engine(settings, files=files)
    except DeviceError as error:
        raise UsageError(str(error)) from None
    for problem in engine.pack_report.problems:
        print(f"depthgraph: warning: {problem}", file=sys.stderr)
    return engine


def library_graph(path: Path, library: Path) -> Path:
    """`path` if it exists, else the library graph it names (`depth2img` or `depth2img.json`, as an
    installed package has its graphs inside it); a UsageError listing the library when neither is."""
    if path.exists():
        return path
    named = library / (path.name if path.suffix == ".json" else f"{path.name}.json")
    if path.parent in (Path(), Path("graphs")) and named.is_file():
        return named
    shipped = sorted(graph.stem for graph in library.glob("*.json"))
    hint = f"; the graph library has {', '.join(shipped)} (run one by name)" if shipped else ""
    raise UsageError(f"graph file {path} does not exist{hint}")


def load_document(path: Path, settings: Settings | None = None) -> GraphDocument:
    """The graph in `path`: a depthgraph file, an API form, a PNG saved by SaveImage, or an editor
    workflow (as ComfyUI's front end saves it), converted as the server converts it."""
    path = library_graph(path, (settings or Settings()).graphs_dir)

    def convert(workflow: dict[str, Any]) -> GraphDocument:
        from ...core.registry import NodeRegistry
        from ...formats.graph_library import workflow_document
        from ..plugins import load_node_packs

        registry = NodeRegistry()  # the widgets' order comes from the nodes' declarations
        load_node_packs(registry, (settings or Settings()).custom_nodes_dirs)
        return workflow_document(workflow, registry, path.stem)

    return load_graph(path, convert)


def shown_path(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""Graph files: ComfyUI's API form and the depthgraph file, which adds a title, a description and the
editor layout around the same executable nodes.

A depthgraph file::

    {
      "format": "depthgraph",
      "version": 1,
      "title": "Invert an image",
      "description": "One paragraph on what the graph does.",
      "nodes": {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}, ...},
      "layout": {"nodes": {"1": {"pos": [0, 0], "size": [320, 300]}}, "groups": []}
    }

"nodes" is exactly the API form, so it runs headlessly; "layout" is the editor's and is kept as is.
Keys this version does not know are kept too, so loading and saving a file changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .migrations import FORMAT_VERSION, MigrationError, migrate
from .png_text import DEFAULT_MAX_TEXT_BYTES, PngTextError, read_png_text

FORMAT_NAME = "depthgraph"
GraphKind = Literal["api", "depthgraph"]


class GraphFileError(Exception):
    """A file that is not a graph this version can read; the message says why and what to do."""


@dataclass
class GraphDocument:
    """A loaded graph file: the executable nodes (API form) and, for depthgraph files, the rest."""

    kind: GraphKind
    prompt: dict[str, Any]
    title: str = ""
    description: str = ""
    layout: dict[str, Any] = field(default_factory=dict)
    # The whole document as read (after migration), so that saving keeps unknown keys and key order.
    raw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "api":
            return self.prompt
        document = dict(self.raw) or {"format": FORMAT_NAME, "version": FORMAT_VERSION}
        fields = {"title": self.title, "description": self.description, "nodes": self.prompt}
        fields["layout"] = self.layout
        for key, value in fields.items():
            # An absent optional key stays absent, so a round trip changes nothing.
            if key in document or value or key == "nodes":
                document[key] = value
        return document

    def workflow(self) -> dict[str, Any] | None:
        """The editor form to embed in saved images (None for a bare API-form graph)."""
        return self.to_json() if self.kind == "depthgraph" else None


def new_document(prompt: Mapping[str, Any], title: str = "", description: str = "") -> GraphDocument:
    """A depthgraph document around an API-form prompt, with an empty layout."""
    raw = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "title": title,
        "description": description,
        "nodes": dict(prompt),
        "layout": {},
    }
    return GraphDocument("depthgraph", dict(prompt), title, description, {}, raw)


# Turns an editor workflow into a document (it needs the node registry, which this module does not).
WorkflowReader = Callable[[dict[str, Any]], "GraphDocument"]


def is_editor_workflow(data: Any) -> bool:
    """Whether parsed JSON is an editor workflow (litegraph's `nodes` and `links` lists)."""
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("nodes"), list)
        and isinstance(data.get("links"), list)
    )


def parse_graph(
    text: str, source: str = "the graph", workflows: WorkflowReader | None = None
) -> GraphDocument:
    """Read a graph from JSON text; `source` names it in error messages."""
    return graph_from_json(read_json(text, source), source, workflows)


def read_json(text: str, source: str = "the graph") -> Any:
    """Parse graph JSON text, with a `GraphFileError` that says where it is broken."""
    if not text.strip():
        raise GraphFileError(f"{source} is empty; a graph file is a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraphFileError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    # Valid JSON past Python's limits: nesting deeper than the stack, or a number of over 4,300 digits.
    except RecursionError:
        raise GraphFileError(f"{source} nests lists or objects too deeply to be read") from None
    except ValueError as error:
        raise GraphFileError(f"{source} cannot be read: {error}") from None
    return data


def graph_from_json(
    data: Any, source: str = "the graph", workflows: WorkflowReader | None = None
) -> GraphDocument:
    """Interpret already-parsed JSON as a graph document; an editor workflow is handed to
    `workflows` (the CLI's converter), or refused without one."""
    if not isinstance(data, dict):
        raise GraphFileError(
            f"{source} holds a JSON {_json_kind(data)} at the top level; a graph is a JSON object "
            "(node ids to nodes, or a depthgraph file)"
        )
    if data.get("format") == FORMAT_NAME:
        return _depthgraph_document(data, source)
    if is_editor_workflow(data):
        if workflows is not None:
            return workflows(data)
        raise GraphFileError(
            f"{source} is an editor workflow (nodes and links as lists), not a runnable graph; "
            "save it from the editor as a depthgraph file or export it in API form"
        )
    return GraphDocument("api", data)


def _depthgraph_document(data: dict[str, Any], source: str) -> GraphDocument:
    try:
        data = migrate(data)
    except MigrationError as error:
        raise GraphFileError(f"{source} cannot be read: {error}") from None
    prompt = data.get("nodes")
    if not isinstance(prompt, dict):
        raise GraphFileError(
            f"{source} has no 'nodes' object; a depthgraph file keeps its nodes in API form under 'nodes'"
        )
    layout = data.get("layout", {})
    if not isinstance(layout, dict):
        raise GraphFileError(f"{source} has a 'layout' that is not an object")
    title = data.get("title", "")
    description = data.get("description", "")
    return GraphDocument(
        "depthgraph",
        prompt,
        title if isinstance(title, str) else "",
        description if isinstance(description, str) else "",
        layout,
        data,
    )


def graph_from_png(data: bytes, source: str, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> GraphDocument:
    """The graph SaveImage embedded in a PNG: its editor form ("workflow") if present, else its API
    form ("prompt"). Text chunks over `max_text_bytes` (decompressed) are refused unread."""
    try:
        texts = read_png_text(data, max_text_bytes)
    except PngTextError as error:
        raise GraphFileError(f"{source} cannot be read: {error}") from None
    for key in ("workflow", "prompt"):
        if key in texts:
            document = parse_graph(texts[key], f"the {key!r} text of {source}")
            if key == "workflow" and document.kind == "api":
                continue  # an editor workflow of another tool: fall back to the API form
            return document
    raise GraphFileError(f"{source} is a PNG without an embedded graph; images saved by SaveImage carry one")


def load_graph(path: Path, workflows: WorkflowReader | None = None) -> GraphDocument:
    """Read a graph file (or a PNG saved by SaveImage), with a clear `GraphFileError` for a missing,
    unreadable or malformed one; an editor workflow goes to `workflows` (see `graph_from_json`)."""
    try:
        if path.suffix.lower() == ".png":
            return graph_from_png(path.read_bytes(), str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphFileError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise GraphFileError(f"{path} is a folder; give a graph file (.json)") from None
    except UnicodeDecodeError:
        raise GraphFileError(f"{path} is not a text file; a graph file is UTF-8 JSON") from None
    except OSError as error:
        raise GraphFileError(f"{path} cannot be read: {error.strerror}") from None
    return parse_graph(text, str(path), workflows)


def dump_graph(document: GraphDocument) -> str:
    """The document as the JSON text depthgraph writes (2-space indent, UTF-8, final newline)."""
    return json.dumps(document.to_json(), indent=2, ensure_ascii=False) + "\n"


def save_graph(document: GraphDocument, path: Path) -> None:
    path.write_text(dump_graph(document), encoding="utf-8")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__

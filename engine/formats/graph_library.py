"""The graphs the editor opens: the example library in a folder, and files a user drops or picks.

Both arrive at the editor as one shape, a depthgraph document (API-form nodes plus a layout), whatever
they were on disk: a depthgraph file, a bare API-form prompt, a PNG saved by SaveImage, or an editor
workflow of a ComfyUI-style tool (converted here, its node positions kept as the layout).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.registry import NodeRegistry
from .graph_file import (
    GraphDocument,
    GraphFileError,
    graph_from_json,
    graph_from_png,
    load_graph,
    new_document,
    read_json,
)
from .png_text import DEFAULT_MAX_TEXT_BYTES
from .workflow_convert import WorkflowError, workflow_to_prompt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Library names are plain file names: no folders, no hidden files, nothing a path could hide in, and
# short enough for any file system (a longer name is no file the library can hold).
LIBRARY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.json$")


@dataclass(frozen=True)
class LibraryEntry:
    """One graph of the library as the editor's menu lists it."""

    name: str
    title: str
    description: str
    error: str = ""

    def to_json(self) -> dict[str, str]:
        entry = {"name": self.name, "title": self.title, "description": self.description}
        if self.error:
            entry["error"] = self.error
        return entry


def list_library(folder: Path) -> list[LibraryEntry]:
    """Every graph file in `folder`, by name; a file that cannot be read is listed with the reason."""
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.iterdir()):
        if not (LIBRARY_NAME.match(path.name) and path.is_file()):
            continue
        try:
            document = load_graph(path)
        except GraphFileError as error:
            entries.append(LibraryEntry(path.name, path.stem, "", str(error)))
            continue
        entries.append(LibraryEntry(path.name, document.title or path.stem, document.description))
    return entries


def read_library_graph(folder: Path, name: str) -> GraphDocument:
    """The library graph called `name` (a file name from `list_library`), as a depthgraph document."""
    if not LIBRARY_NAME.match(name):
        raise GraphFileError(f"{name!r} is not a graph of the library; pick one of the names /graphs lists")
    path = folder / name
    if not path.is_file():
        raise GraphFileError(f"the library has no graph {name!r}; pick one of the names /graphs lists")
    return as_depthgraph(load_graph(path), path.stem)


def read_dropped_graph(
    data: bytes, filename: str, registry: NodeRegistry, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
) -> GraphDocument:
    """The graph in a file the user dropped or picked: JSON (any of the forms above) or a PNG (whose
    text chunks may hold at most `max_text_bytes`, decompressed)."""
    source = filename or "the file"
    if data.startswith(PNG_SIGNATURE):
        return as_depthgraph(graph_from_png(data, source, max_text_bytes), Path(filename).stem)
    try:
        parsed = read_json(data.decode("utf-8-sig"), source)
    except UnicodeDecodeError:
        raise GraphFileError(
            f"{source} is neither a PNG nor UTF-8 JSON; drop a graph file or an image saved by SaveImage"
        ) from None
    if isinstance(parsed, Mapping) and isinstance(parsed.get("nodes"), list):  # links may be missing
        return workflow_document(parsed, registry, Path(filename).stem)
    return as_depthgraph(graph_from_json(parsed, source), Path(filename).stem)


def workflow_document(workflow: Mapping[str, Any], registry: NodeRegistry, title: str = "") -> GraphDocument:
    """An editor workflow as a depthgraph document; the nodes keep their places on the canvas."""
    try:
        prompt = workflow_to_prompt(workflow, registry)
    except WorkflowError as error:
        raise GraphFileError(f"this editor workflow cannot be converted: {error}") from None
    document = new_document(prompt, title)
    places: dict[str, Any] = {}
    for node in workflow.get("nodes") or []:
        if isinstance(node, Mapping) and str(node.get("id")) in prompt:
            place = {key: pair for key in ("pos", "size") if (pair := _pair(node.get(key))) is not None}
            if place:
                places[str(node.get("id"))] = place
    document.layout = {"nodes": places, "groups": []}
    return document


def as_depthgraph(document: GraphDocument, title: str = "") -> GraphDocument:
    """A bare API-form graph wrapped as a depthgraph document (no layout: the editor arranges it)."""
    if document.kind == "depthgraph":
        return document
    return new_document(document.prompt, title)


def _pair(value: Any) -> list[float] | None:
    """An editor's point or size: `[x, y]`, or `{"0": x, "1": y}` as some editors write typed arrays;
    None for anything else (a place that is not two finite numbers is dropped, the node kept)."""
    if isinstance(value, Mapping):
        value = [value.get("0"), value.get("1")]
    if not (isinstance(value, list) and len(value) == 2):
        return None
    pair = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            return None
        try:
            number = float(number)
        except OverflowError:  # a whole number past any float
            return None
        if not math.isfinite(number):
            return None
        pair.append(number)
    return pair

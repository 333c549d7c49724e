"""Moving a prompt's files between the machine that queued it and the worker that runs it.

Workers need only the models on their own disk. The input files a prompt names travel with the job
(by content, so a worker's cache keys match the server's), and every file a worker saves (each one
`engine.core.files.saved_files` lists: images, depth maps) travels back before the `executed` message
that names it, to be written into this machine's output or temp folder. A worker's file names are
its own: when one is taken here by another file, the result gets the next free counter
(`depthgraph_00007.png`), and the messages and history name the file as saved.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.files import FileStore, FolderKind, UnsafePathError, check_relative_name, create_whole
from ..core.graph import ExecutableGraph

SHIPPED_KINDS: tuple[FolderKind, ...] = ("output", "temp")
_COUNTED = re.compile(r"^(?P<stem>.+)_(?P<counter>\d{5,})(?P<suffix>\.[A-Za-z0-9]+)$")


@dataclass
class ShippedFile:
    """A file a worker saved, sent back ahead of the message that names it."""

    kind: FolderKind
    subfolder: str
    filename: str
    data: bytes


def input_files(graph: ExecutableGraph, files: FileStore) -> dict[str, Path]:
    """The input files `graph` names: every text constant that is the name of an input file here."""
    found: dict[str, Path] = {}
    for graph_node in graph.nodes.values():
        for value in graph_node.constants.values():
            if not isinstance(value, str) or not value or value in found or len(value) > 1024:
                continue
            try:
                path = files.resolve_input(value)
                if path.is_file():
                    found[value] = path
            except (UnsafePathError, OSError, ValueError):
                continue  # text that is not a file name
    return found


def read_inputs(paths: Mapping[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in paths.items()}


def place_inputs(inputs: Mapping[str, bytes], folder: Path) -> dict[str, Path]:
    """Write shipped inputs under `folder` by content and return name -> path (for `extra_inputs`).
    A file that is already there with the same bytes is not written again."""
    placed: dict[str, Path] = {}
    for name, data in inputs.items():
        digest = hashlib.sha256(data).hexdigest()[:24]
        suffix = Path(name.replace("\\", "/")).suffix[:16]
        path = folder / f"{digest}{suffix}"
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            partial.replace(path)
        placed[name] = path
    return placed


def receive_output(files: FileStore, shipped: ShippedFile) -> str:
    """Write a worker's file into this machine's folder of its kind and return the name it got: the
    worker's name if that is free or holds the same bytes, else the next free counter of its stem."""
    if shipped.kind not in SHIPPED_KINDS:
        raise UnsafePathError(f"a worker may only send output or temp files, not {shipped.kind!r}")
    name = check_relative_name(shipped.filename).name  # the name only: no folders inside it
    if name in ("", "."):
        raise UnsafePathError(f"a worker sent a file without a name ({shipped.filename!r})")
    path = files.resolve(shipped.kind, name, shipped.subfolder)
    path.parent.mkdir(parents=True, exist_ok=True)
    if create_whole(path, shipped.data) or path.read_bytes() == shipped.data:
        return path.name
    match = _COUNTED.match(name)
    if match is None:  # another file has the name: "name (1).png", as uploads get
        return files.save_upload(shipped.kind, name, shipped.subfolder, shipped.data, overwrite=False)
    prefix = f"{shipped.subfolder}/{match['stem']}" if shipped.subfolder else match["stem"]
    _, _, filename = files.write_output(
        prefix, match["suffix"], shipped.kind, lambda handle: handle.write(shipped.data)
    )
    return filename


@dataclass
class OutputNames:
    """Names given here to the files of each worker, to rename them in messages and outputs."""

    files: FileStore
    _names: dict[tuple[str, str, str, str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, worker: str, shipped: ShippedFile) -> None:
        digest = hashlib.blake2b(shipped.data, digest_size=16).hexdigest()
        key = (worker, shipped.kind, shipped.subfolder, shipped.filename, digest)
        latest = (worker, shipped.kind, shipped.subfolder, shipped.filename, "")  # its newest file so named
        with self._lock:
            known = self._names.get(key)
            if known is not None and self.files.resolve(shipped.kind, known, shipped.subfolder).is_file():
                self._names[latest] = known
                return
        name = receive_output(self.files, shipped)
        with self._lock:
            self._names[key] = name
            self._names[latest] = name

    def rename(self, worker: str, ui: Mapping[str, Any]) -> dict[str, Any]:
        """`ui` with each worker file name replaced by the name it was saved under here."""
        renamed: dict[str, Any] = {}
        for key, value in ui.items():
            if isinstance(value, list):
                value = [self._renamed_item(worker, item) for item in value]
            renamed[key] = value
        return renamed

    def _renamed_item(self, worker: str, item: Any) -> Any:
        if not (isinstance(item, dict) and "filename" in item and item.get("type") in SHIPPED_KINDS):
            return item
        key = (worker, item["type"], item.get("subfolder", ""), item["filename"], "")
        with self._lock:
            name = self._names.get(key)
        return {**item, "filename": name} if name is not None else item

"""`depthgraph batch`: one graph over many inputs, on every worker at once.

`--over NODE_ID.INPUT=SOURCE` names the input that changes and where its values come from:

- a folder: every image in it (not its subfolders), in natural order (`frame_2` before `frame_10`);
- a list: `1,2,3`, with inclusive ranges (`0..99`), or any comma-separated values.

Each value makes one prompt. Output names map back to the value: every `filename_prefix` in the
graph gets the input's name (the file's stem, or `INPUT-VALUE`), so `frames/f_0007.png` through a
SaveImage with prefix `styled` becomes `styled_f_0007_00001.png`. A manifest
(`batch-YYYYmmdd-HHMMSS.json` in the output folder) lists every input with its outputs, or its error.
The prompts run on the chosen backend, as many at once as it has slots, under one progress bar.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.files import IMAGE_EXTENSIONS, FileStore, saved_files
from ..core.graph import ExecutableGraph
from .engine import Engine
from .jobs import Backend, Job
from .overrides import UsageError

MAX_ITEMS = 100_000
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Sweep:
    """The input that changes, and its values with the labels their outputs are named after."""

    node_id: str
    input_name: str
    values: list[str]
    labels: list[str]
    files: dict[str, Path] = field(default_factory=dict)  # value -> the file it names (folder sweeps)


@dataclass
class BatchItem:
    label: str
    value: str
    status: str = "pending"
    outputs: list[str] = field(default_factory=list)  # paths relative to the output folder
    worker: str | None = None
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None


def parse_over(text: str) -> Sweep:
    target, equals, source = text.partition("=")
    node_id, dot, input_name = target.rpartition(".")
    if not equals or not dot or not node_id or not input_name or not source:
        raise UsageError(
            f"--over {text!r}: write NODE_ID.INPUT=FOLDER or NODE_ID.INPUT=LIST, "
            "e.g. --over 1.image=frames/ or --over 8.seed=1..100"
        )
    folder = Path(source).expanduser()
    if folder.is_dir():
        images = sorted(
            (path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()),
            key=lambda path: _natural_key(path.name),
        )
        if not images:
            extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise UsageError(f"--over {text!r}: the folder {folder} has no images ({extensions})")
        values = [path.name for path in images]
        return Sweep(
            node_id,
            input_name,
            values,
            [path.stem for path in images],
            dict(zip(values, images, strict=True)),
        )
    looks_like_a_path = "/" in source or "\\" in source or folder.suffix.lower() in IMAGE_EXTENSIONS
    if "," not in source and looks_like_a_path:
        raise UsageError(f"--over {text!r}: there is no folder {folder}")
    values = _expand_list(source, text)
    return Sweep(node_id, input_name, values, [f"{input_name}-{value}" for value in values])


def _expand_list(source: str, text: str) -> list[str]:
    values: list[str] = []
    for part in source.split(","):
        match = _RANGE.match(part)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            step = 1 if last >= first else -1
            if abs(last - first) >= MAX_ITEMS:
                raise UsageError(f"--over {text!r}: {part.strip()} has more than {MAX_ITEMS} values")
            values.extend(str(number) for number in range(first, last + step, step))
        elif part.strip():
            values.append(part.strip())
    if not values:
        raise UsageError(f"--over {text!r}: the list is empty")
    if len(values) > MAX_ITEMS:
        raise UsageError(f"--over {text!r}: more than {MAX_ITEMS} values")
    return values


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sweep_prompts(prompt: dict[str, Any], sweep: Sweep) -> list[dict[str, Any]]:
    """One prompt per value: the swept input set, and every filename_prefix carrying the label."""
    entry = prompt.get(sweep.node_id)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(prompt)) or "none"
        raise UsageError(f"--over: the graph has no node {sweep.node_id!r} (its nodes: {known})")
    prompts = []
    for value, label in zip(sweep.values, sweep.labels, strict=True):
        copied = copy.deepcopy(prompt)
        copied[sweep.node_id].setdefault("inputs", {})[sweep.input_name] = value
        for node in copied.values():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if isinstance(inputs, dict) and isinstance(inputs.get("filename_prefix"), str):
                inputs["filename_prefix"] = f"{inputs['filename_prefix']}_{_UNSAFE.sub('_', label)}"
        prompts.append(copied)
    return prompts


def output_paths(outputs: dict[str, Any], files: FileStore) -> list[str]:
    """The files a run saved in the output folder (of every kind: images, depth maps, ...), as
    names relative to it."""
    folder = files.output_dir.resolve()
    return [
        files.path_of(saved).relative_to(folder).as_posix()
        for ui in outputs.values()
        if isinstance(ui, dict)
        for saved in saved_files(ui, ("output",))
    ]


def validate_all(
    engine: Engine, prompts: Sequence[dict[str, Any]], items: list[BatchItem]
) -> list[ExecutableGraph | None]:
    """Each prompt's graph, or None with the item marked invalid (before any worker is started)."""
    graphs: list[ExecutableGraph | None] = []
    for prompt, item in zip(prompts, items, strict=True):
        validation = engine.validate(prompt)
        graphs.append(validation.graph)
        if validation.graph is None:
            item.status, item.error = "invalid", "; ".join(str(issue) for issue in validation.issues)
    return graphs


class BatchRun:
    """Runs the prompts of a sweep on a backend, `backend.concurrency` at a time."""

    def __init__(self, backend: Backend, files: FileStore) -> None:
        self.backend = backend
        self.files = files
        self.stopped = threading.Event()

    def run(
        self,
        prompts: Sequence[dict[str, Any]],
        items: list[BatchItem],
        graphs: Sequence[ExecutableGraph | None],
        advance: Callable[[BatchItem], None],
    ) -> None:
        """Run every valid prompt; `advance` is called (from a worker thread) as each one ends."""
        work: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index, graph in enumerate(graphs):
            if graph is not None:
                work.put(index)
        threads = [
            threading.Thread(target=self._take, args=(work, prompts, items, graphs, advance), daemon=True)
            for _ in range(max(1, self.backend.concurrency))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # in short waits, so Ctrl+C reaches the main thread

    def stop(self) -> None:
        self.stopped.set()
        self.backend.interrupt(None)

    def _take(
        self,
        work: queue.SimpleQueue[int],
        prompts: Sequence[dict[str, Any]],
        items: list[BatchItem],
        graphs: Sequence[ExecutableGraph | None],
        advance: Callable[[BatchItem], None],
    ) -> None:
        while not self.stopped.is_set():
            try:
                index = work.get_nowait()
            except queue.Empty:
                return
            item, graph = items[index], graphs[index]
            assert graph is not None
            started = time.perf_counter()
            job = Job(f"batch-{index}-{item.label}", prompts[index], previews=False)
            try:
                outcome = self.backend.run(job, graph, lambda event: None)
                item.status, item.error = outcome.status, outcome.error
                item.outputs = output_paths(outcome.outputs, self.files)
                item.worker = (outcome.route or {}).get("worker")
                item.cached = outcome.status == "success" and set(outcome.cached) >= set(graph.targets)
            except Exception as error:  # one bad item never ends the batch
                item.status, item.error = "error", f"{type(error).__name__}: {error}"
            item.seconds = time.perf_counter() - started
            advance(item)


def summary(items: Sequence[BatchItem], seconds: float) -> str:
    """What the batch did, for the terminal: counts, speed, the workers used and every failure."""
    counts = Counter(item.status for item in items)
    cached = sum(1 for item in items if item.cached)
    rate = len(items) / seconds if seconds else 0.0
    not_done = ", ".join(
        f"{count} {status}" for status, count in sorted(counts.items()) if status != "success"
    )
    lines = [
        f"{counts['success']} of {len(items)} done ({cached} fully cached)"
        + (f"; not done: {not_done}" if not_done else "")
        + f"; {seconds:.1f} s, {rate:.2f} prompts/s"
    ]
    workers = Counter(item.worker for item in items if item.worker)
    if workers:
        lines.append("by worker: " + ", ".join(f"{name} {count}" for name, count in sorted(workers.items())))
    lines.extend(
        f"  {item.label}: {item.status}: {item.error or 'no reason given'}"
        for item in items
        if item.status != "success"
    )
    return "\n".join(lines)


def write_manifest(files: FileStore, graph: str, sweep: Sweep, items: Sequence[BatchItem]) -> Path:
    """The batch's record in the output folder: each input with its outputs (or its error)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    record = {
        "graph": graph,
        "over": f"{sweep.node_id}.{sweep.input_name}",
        "items": [
            {
                "input": item.value,
                "label": item.label,
                "status": item.status,
                "outputs": item.outputs,
                "worker": item.worker,
                "seconds": round(item.seconds, 3),
                **({"error": item.error} if item.error else {}),
            }
            for item in items
        ],
    }
    text = json.dumps(record, indent=2).encode("utf-8")
    path, _, _ = files.write_output(f"batch-{stamp}", ".json", "output", lambda handle: handle.write(text))
    return path

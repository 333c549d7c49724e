"""One engine on one device, serving whole prompts: the body of a Ray actor.

Plain Python: `ray_backend` wraps the class with `ray.remote`, so importing this module imports no
Ray. A worker keeps its engine (model manager and result cache) for its whole life, which is what
makes routing a prompt back to it worthwhile. Its input, output and temp folders are a scratch
folder of its own: inputs arrive with the job and saved files go back with the events
(`engine.cluster.shipping`), so a worker needs nothing on disk but the models.

`run` is a generator: Ray streams what it yields to the caller in order. It yields lists (all the
events ready at that moment, so a 1,000-node graph is not 2,000 round trips) and ends with a
`Finished`. A worker runs one prompt at a time; a second one sent meanwhile waits for it.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..app.config import Settings
from ..app.engine import Engine
from ..app.jobs import Job, describe_engine
from ..app.plugins import load_node_packs
from ..core.events import Event, NodeExecuted, PromptFailed, PromptInterrupted, PromptStarted
from ..core.executor import RunResult, RunStatus
from ..core.files import FileStore, SavedFile, saved_files
from ..core.registry import NodeRegistry
from ..core.validation import validate
from .shipping import SHIPPED_KINDS, ShippedFile, place_inputs

_DONE = object()


@dataclass
class Finished:
    """The last thing a run yields: its result and what the worker holds afterwards."""

    status: RunStatus
    outputs: dict[str, Any]
    cached: list[str]
    error: str | None
    held: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)


def worker_config(settings: Settings, node_modules: Sequence[str]) -> str:
    """A digest of what shapes a worker's engine: a server that finds a running worker with another
    one (new models folder, device, dtype ...) replaces it instead of using it."""
    parts = [
        str(settings.models_dir),
        settings.device,
        settings.dtype,
        repr(sorted(settings.cache_budget.items())),
        repr(settings.acceleration),
        repr([str(path) for path in settings.custom_nodes_dirs]),
        repr(list(node_modules)),
        str(settings.max_image_pixels),
        str(settings.max_grid_cells),
    ]
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


class EngineWorker:
    def __init__(self, settings: Settings, name: str, node_modules: Sequence[str] = ()) -> None:
        self.name = name
        self.config = worker_config(settings, node_modules)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"depthgraph-{name}-"))
        atexit.register(shutil.rmtree, self.scratch, True)
        local = replace(
            settings,
            input_dir=self.scratch / "input",
            output_dir=self.scratch / "output",
            temp_dir=self.scratch / "temp",
            data_dir=_writable(settings.data_dir) or self.scratch / "data",  # compiled kernels go there
        )
        registry = NodeRegistry()
        load_node_packs(registry, settings.custom_nodes_dirs)
        for module in node_modules:
            registry.add_module(importlib.import_module(module), builtin=False)
        self.engine = Engine(local, registry=registry)
        self._files: FileStore = self.engine.files
        self._run_lock = threading.Lock()  # one prompt at a time
        self._state = threading.Lock()
        self._running: str | None = None
        self._waiting: set[str] = set()  # prompts sent here, waiting for the one running
        self._stopping: set[str] = set()  # prompts asked to stop (maybe before they started)

    # --- asked by the backend ------------------------------------------------------------------
    def ping(self) -> str:
        return self.name

    def describe(self) -> dict[str, Any]:
        return {**describe_engine(self.engine, self.name), "config": self.config, "running": self._running}

    def holdings(self) -> tuple[list[str], list[str]]:
        """The signatures of the cached results and the names of the loaded models."""
        return list(self.engine.cache.signatures()), sorted(
            {model for model, _ in self.engine.models.loaded()}
        )

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop `prompt_id` (whether it runs now or is still waiting here), or whatever runs now."""
        with self._state:
            target = prompt_id or self._running
            if target is None or (target != self._running and target not in self._waiting):
                return False  # not here (any more)
            self._stopping.add(target)
            if self._running == target:
                self.engine.interrupt()
                return True
        return False

    def free(self, cache: bool = True, models: bool = False) -> None:
        if cache:
            self.engine.cache.clear()
        if models:
            self.engine.models.unload()

    def pid(self) -> int:
        return os.getpid()

    # --- running --------------------------------------------------------------------------------
    def run(self, job: Job) -> Iterator[list[Any]]:
        with self._state:
            self._waiting.add(job.prompt_id)
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        thread = threading.Thread(target=self._run, args=(job, events.put), daemon=True)
        thread.start()
        while True:
            batch = [events.get()]
            while True:
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is _DONE
            if done:
                batch.pop()
            if batch:
                yield batch
            if done:
                return

    def _run(self, job: Job, put: Any) -> None:
        try:
            with self._run_lock:
                put(self._execute(job, put))
        except BaseException as error:  # report it; the caller must never wait forever
            put(Finished("error", {}, [], f"the worker {self.name} failed: {type(error).__name__}: {error}"))
        finally:
            with self._state:
                if self._running == job.prompt_id:  # the next prompt may be running already
                    self._running = None
                self._waiting.discard(job.prompt_id)
                self._stopping.discard(job.prompt_id)
            put(_DONE)

    def _execute(self, job: Job, put: Any) -> Finished:
        files = replace(self._files, extra_inputs=place_inputs(job.inputs, self.scratch / "shipped"))
        validation = validate(job.prompt, self.engine.registry, files, job.targets, self.engine.limits)
        if validation.graph is None:
            problem = "; ".join(str(issue) for issue in validation.issues)
            message = f"the worker {self.name} cannot run this prompt: {problem}"
            put(PromptFailed(job.prompt_id, "", "", "InvalidGraph", message))
            return self._finished("error", {}, [], message)
        with self._state:
            self._running = job.prompt_id
            self._waiting.discard(job.prompt_id)
            if job.prompt_id in self._stopping:
                put(PromptStarted(job.prompt_id))
                put(PromptInterrupted(job.prompt_id, None, None))
                return self._finished("interrupted", {}, [], None)

        def listen(event: Event) -> None:
            if isinstance(event, PromptStarted) and job.prompt_id in self._stopping:
                self.engine.interrupt()  # asked before the run had cleared the flag
            if isinstance(event, NodeExecuted):
                for saved in saved_files(event.ui, SHIPPED_KINDS):
                    self._ship(files, saved, put)
            put(event)

        executor = self.engine.executor
        executor.files, executor.previews = files, job.previews
        result: RunResult = executor.run(
            validation.graph, prompt_id=job.prompt_id, on_event=listen, workflow=job.workflow
        )
        error = result.error.exception_message if result.error is not None else None
        return self._finished(result.status, dict(result.outputs), list(result.cached), error)

    def _finished(
        self, status: RunStatus, outputs: dict[str, Any], cached: list[str], error: str | None
    ) -> Finished:
        held, models = self.holdings()
        return Finished(status, outputs, cached, error, held, models)

    @staticmethod
    def _ship(files: FileStore, saved: SavedFile, put: Any) -> None:
        try:
            data = files.path_of(saved).read_bytes()
        except (OSError, ValueError):
            return  # named but not saved here (a node's own bookkeeping); nothing to send
        put(ShippedFile(saved.kind, saved.subfolder, saved.filename, data))


def _writable(folder: Path) -> Path | None:
    """`folder` if this machine can write there (the server's data folder, on the same machine or a
    shared disk), else None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None

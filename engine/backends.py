"""Where whole prompts run: in this process on one engine, or on a pool of engine workers.

The server and the batch command hand a `Job` to a backend and read back an `Outcome`; they never
care which backend it is. `LocalBackend` runs on the engine in this process (one prompt at a time);
`engine.cluster.ray_backend.RayBackend` sends each job to one of several Ray actors, each with its
own device, models and result cache, and is imported only when asked for.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.config import Settings
from engine.events import Listener
from engine.graph import ExecutableGraph
from engine.runtime import Engine
from engine.scheduler import RunStatus


@dataclass
class Job:
    """A prompt to run: the API-form graph, what to run of it, and the files it reads when the worker
    has no access to this machine's input folder (name -> bytes, filled by the backend that needs it)."""

    prompt_id: str
    prompt: dict[str, Any]
    targets: list[str] | None = None
    workflow: Mapping[str, Any] | None = None
    previews: bool = True
    inputs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Outcome:
    status: RunStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    # Which worker ran it and why, and the attempts that were lost (None for the local backend).
    route: dict[str, Any] | None = None
    cached: list[str] = field(default_factory=list)
    error: str | None = None  # the reason, when it failed


class Backend(Protocol):
    """What the server and the batch command need of an executor."""

    name: str
    concurrency: int  # how many prompts it can take at once (one thread each on the caller's side)
    requeue_interrupted: bool  # whether a prompt cut off by a server restart is run again

    def run(self, job: Job, graph: ExecutableGraph, on_event: Listener) -> Outcome: ...

    def interrupt(self, prompt_id: str | None = None) -> None: ...

    def free(self, cache: bool, models: bool) -> None: ...

    def describe(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def describe_engine(engine: Engine, name: str = "local") -> dict[str, Any]:
    """One engine's device, memory and models, as /system_stats reports them per device."""
    torch = sys.modules.get("torch")
    total = free = 0
    device_name = engine.device
    if torch is not None and engine.device == "cuda":
        free, total = torch.cuda.mem_get_info()
        device_name = torch.cuda.get_device_name()
    return {
        "worker": name,
        "host": platform.node(),
        "pid": os.getpid(),
        "name": device_name,
        "type": engine.device,
        "vram_total": total,
        "vram_free": free,
        "torch_version": getattr(torch, "__version__", None),
        "cache_bytes": engine.cache.usage(),
        "models_loaded": [f"{model}/{part}" for model, part in engine.models.loaded()],
        "models_on_device": [f"{model}/{part}" for model, part in engine.models.residency.on_device()],
        "acceleration": engine.models.plan.describe(),
    }


class LocalBackend:
    """Runs prompts one at a time on an engine in this process (the default executor)."""

    name = "local"
    concurrency = 1
    requeue_interrupted = False  # a prompt running when the process died may be what killed it

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run(self, job: Job, graph: ExecutableGraph, on_event: Listener) -> Outcome:
        self.engine.executor.previews = job.previews
        result = self.engine.executor.run(
            graph, prompt_id=job.prompt_id, on_event=on_event, workflow=job.workflow
        )
        error = result.error.exception_message if result.error is not None else None
        return Outcome(result.status, dict(result.outputs), None, list(result.cached), error)

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.engine.interrupt()  # one prompt at a time: the caller checks it is the one running

    def free(self, cache: bool, models: bool) -> None:
        if cache:
            self.engine.cache.clear()
        if models:
            self.engine.models.unload()

    def describe(self) -> list[dict[str, Any]]:
        return [describe_engine(self.engine)]

    def close(self) -> None:
        self.engine.interrupt()


def make_backend(settings: Settings, engine: Engine) -> Backend:
    """The executor `settings.cluster` asks for. Ray is imported only for the Ray one (and its
    workers run prompts against the engine's files, shipped to them)."""
    if settings.cluster.executor == "ray":
        from engine.cluster.ray_backend import RayBackend

        return RayBackend(settings, engine.files)
    return LocalBackend(engine)

"""What a backend is: the `Job` it is handed, the `Outcome` it gives back, the `Backend` protocol,
and how one engine describes itself. The backends (`backends.py`, `engine.cluster.ray_backend`)
and their callers (server, batch) all stand on this module; it knows none of them."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.events import Listener
from ..core.executor import RunStatus
from ..core.graph import ExecutableGraph
from .engine import Engine


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

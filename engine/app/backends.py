"""Where whole prompts run: in this process on one engine, or on a pool of engine workers.

The server and the batch command hand a `Job` (`jobs.py`) to a backend and read back an `Outcome`; they never
care which backend it is. `LocalBackend` runs on the engine in this process (one prompt at a time);
`engine.cluster.ray_backend.RayBackend` sends each job to one of several Ray actors, each with its
own device, models and result cache, and is imported only when asked for.
"""

from __future__ import annotations

from typing import Any

from ..core.events import Listener
from ..core.graph import ExecutableGraph
from .config import Settings
from .engine import Engine
from .jobs import Backend, Job, Outcome, describe_engine


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
        from ..cluster.ray_backend import RayBackend

        return RayBackend(settings, engine.files)
    return LocalBackend(engine)

"""The Ray executor: whole prompts sent to engine workers that are Ray actors, one per device.

The caller (the server's prompt threads, or the batch command) keeps the queue; this backend picks a
worker for each prompt (`routing`), streams the worker's events back in order, brings back the files
it saved (`shipping`), and runs a prompt again elsewhere when its worker dies, up to
`max_attempts` runs in all. Ray restarts a dead actor (empty-handed); it takes prompts again once it
answers.

Workers are named actors (`worker-0`, `worker-1` ... in the `depthgraph` namespace). Joining a running
cluster (`ray_address` auto or an address) makes them detached, so a restarted server finds them,
warm, and uses them again; `local` starts a private cluster that ends with the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..app.config import Cluster, Settings
from ..app.jobs import Job, Outcome
from ..core.events import Listener, NodeExecuted, PromptFailed, PromptInterrupted, PromptStarted
from ..core.files import FileStore
from ..core.graph import ExecutableGraph
from ..core.signatures import compute_signatures
from ..core.sockets import CLIP, CONTROL_NET, DEPTH_MODEL, MODEL, VAE
from ..models.controlnets import CONTROLNET_FOLDER
from ..models.depth_estimators import DEPTH_FOLDER
from .routing import DEFAULT_SLOTS, Router, Work
from .shipping import OutputNames, ShippedFile, input_files, read_inputs
from .worker import EngineWorker, Finished, worker_config

log = logging.getLogger("depthgraph.cluster")
NAMESPACE = "depthgraph"
CHECKPOINT_SOCKETS = frozenset({MODEL, CLIP, VAE})
# What a loader of only these outputs names is kept under in the model manager (`depth/NAME`, ...).
OWN_FOLDERS = {DEPTH_MODEL: DEPTH_FOLDER, CONTROL_NET: CONTROLNET_FOLDER}
START_TIMEOUT = 300.0  # seconds for a worker to import torch and build its engine
CALL_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached or gives no workers; the message says why."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "the Ray executor needs Ray: pip install 'depthgraph[ray]' (or pip install ray)"
        ) from None
    return ray


def prompt_models(graph: ExecutableGraph) -> set[str]:
    """The models a graph loads, named as a worker's model manager reports them: the text constants
    of the nodes that output model handles, a checkpoint's as they are, a depth estimator's or a
    ControlNet's under its folder (`depth/NAME`, `controlnet/NAME`)."""
    names: set[str] = set()
    for graph_node in graph.nodes.values():
        types = {output.type for output in graph_node.definition.outputs}
        if types & CHECKPOINT_SOCKETS:
            prefix = ""
        elif len(types) == 1 and (folder := OWN_FOLDERS.get(next(iter(types)))):
            prefix = f"{folder}/"
        else:
            continue
        names.update(prefix + value for value in graph_node.constants.values() if isinstance(value, str))
    return names


def prompt_work(graph: ExecutableGraph, signatures: dict[str, str]) -> Work:
    """The graph's results by signature, each with the results it reads, and its outputs."""
    inputs = {
        signatures[node_id]: tuple(signatures[link.source] for link in graph.nodes[node_id].links.values())
        for node_id in graph.order
    }
    return Work(inputs, frozenset(signatures[node_id] for node_id in graph.targets))


def absolute(settings: Settings) -> Settings:
    """Settings with every folder absolute: a worker may start in another folder (or machine)."""
    return replace(
        settings,
        models_dir=settings.models_dir.resolve(),
        data_dir=settings.data_dir.resolve(),
        custom_nodes_dirs=[path.resolve() for path in settings.custom_nodes_dirs],
    )


class RayBackend:
    name = "ray"
    requeue_interrupted = True  # the worker, not this process, ran it: running it again is safe

    def __init__(
        self,
        settings: Settings,
        files: FileStore,
        cluster: Cluster | None = None,
        node_modules: Sequence[str] = (),
        prefix: str = "worker",
        slots: int = DEFAULT_SLOTS,
    ) -> None:
        cluster = cluster or settings.cluster
        self.ray = ray = import_ray()
        self.files = files
        self.max_attempts = cluster.max_attempts
        self.owns_cluster = False
        if not ray.is_initialized():
            self._connect(cluster.ray_address)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = cluster.workers or max(gpus, 1)
        if gpus and count > gpus:
            raise ClusterError(f"{count} workers were asked for but the cluster has {gpus} GPUs (one each)")
        worker_settings = absolute(settings)
        self.config = worker_config(worker_settings, node_modules)
        options: dict[str, Any] = {
            "namespace": NAMESPACE,
            "max_restarts": -1,  # Ray starts a dead worker again; the prompt it ran is re-run by us
            "max_task_retries": 0,
            "max_concurrency": slots + 3,  # its prompts, plus interrupt/describe while one runs
            "num_gpus": 1 if gpus else 0,
            "num_cpus": 0 if gpus else 1,
        }
        if not self.owns_cluster:
            options["lifetime"] = "detached"
        self._remote = ray.remote(EngineWorker)
        self._options = options
        self._arguments = (worker_settings, tuple(node_modules))
        names = [f"{prefix}-{index}" for index in range(count)]
        self.actors: dict[str, Any] = self._attach(names)
        self.concurrency = count * slots
        self.router = Router(names, slots)
        for name, (held, models) in zip(
            names, self._get([a.holdings.remote() for a in self.actors.values()]), strict=True
        ):
            self.router.update(name, held, models)
        self.names = OutputNames(files)
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # prompt id -> worker
        self._active: set[str] = set()  # prompts in `run` (running, or waiting for a worker)
        self._cancelled: set[str] = set()
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="depthgraph-workers", daemon=True)
        self._monitor.start()

    # --- the cluster ---------------------------------------------------------------------------
    def _connect(self, address: str) -> None:
        try:
            if address == "local":
                self.ray.init(
                    namespace=NAMESPACE, include_dashboard=False, logging_level="WARNING", log_to_driver=False
                )
                self.owns_cluster = True
            else:
                self.ray.init(address=address, namespace=NAMESPACE, logging_level="WARNING")
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {error}") from None

    def _attach(self, names: Sequence[str]) -> dict[str, Any]:
        """The named workers: running ones with the same configuration are kept (warm), others made."""
        actors = {name: self._actor(name) for name in names}
        for name in names:
            info = self._describe_when_up(name, actors)
            if info["config"] != self.config:
                log.info("%s runs with other settings; starting it again", name)
                self.ray.kill(actors[name], no_restart=True)
                actors[name] = self._actor(name, fresh=True)
            elif info.get("running"):
                actors[name].interrupt.remote(None)  # a run left by a server that is gone
        self._get([actor.ping.remote() for actor in actors.values()], START_TIMEOUT)
        return actors

    def _describe_when_up(self, name: str, actors: dict[str, Any]) -> dict[str, Any]:
        """A worker's description, waiting while Ray restarts it (or making it anew if it is gone)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                info: dict[str, Any] = self._get(actors[name].describe.remote(), START_TIMEOUT)
                return info
            except self.ray.exceptions.ActorUnavailableError:
                pass  # restarting
            except self.ray.exceptions.RayActorError:
                actors[name] = self._actor(name, fresh=True)  # dead for good
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} did not come back within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def _actor(self, name: str, fresh: bool = False) -> Any:
        deadline = time.monotonic() + CALL_TIMEOUT
        while True:
            try:
                return self._remote.options(name=name, get_if_exists=not fresh, **self._options).remote(
                    *self._arguments[:1], name, self._arguments[1]
                )
            except ValueError:  # the name of a worker just killed is not free yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _get(self, refs: Any, timeout: float = CALL_TIMEOUT) -> Any:
        try:
            return self.ray.get(refs, timeout=timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"the workers did not answer within {timeout:.0f} s; "
                "does the cluster have room for them (`ray status`)?"
            ) from None

    def _watch(self) -> None:
        """Bring workers that died back into the rotation once Ray has restarted them."""
        while not self._closed.wait(1.0):
            for name in self.router.down():
                ref = self.actors[name].holdings.remote()
                ready, _ = self.ray.wait([ref], timeout=2.0)
                if not ready:
                    continue
                try:
                    held, models = self.ray.get(ready[0])
                except self.ray.exceptions.RayError:
                    continue
                log.info("%s is back", name)
                self.router.update(name, held, models)

    # --- running ---------------------------------------------------------------------------------
    def run(self, job: Job, graph: ExecutableGraph, on_event: Listener) -> Outcome:
        work = prompt_work(graph, compute_signatures(graph, self.files))
        models = prompt_models(graph)
        job = replace(job, inputs=read_inputs(input_files(graph, self.files)))
        attempts: list[dict[str, str]] = []
        with self._lock:
            self._active.add(job.prompt_id)
        try:
            while True:
                decision = self.router.acquire(
                    work,
                    models,
                    {a["worker"] for a in attempts},
                    lambda: job.prompt_id in self._cancelled,
                )
                if decision is None:  # interrupted while it waited for a worker
                    on_event(PromptStarted(job.prompt_id))
                    on_event(PromptInterrupted(job.prompt_id, None, None))
                    return Outcome("interrupted", route={"worker": None, "attempts": attempts})
                route = {**decision.to_json(), "attempts": attempts}
                try:
                    finished = self._stream(decision.worker, job, on_event)
                    self.router.update(
                        decision.worker, finished.held, finished.models
                    )  # before the slot frees
                except self.ray.exceptions.RayActorError as error:
                    self.router.lost(decision.worker)
                    attempts.append({"worker": decision.worker, "error": _first_line(error)})
                    log.warning("%s was lost running %s: %s", decision.worker, job.prompt_id, attempts[-1])
                    if len(attempts) < self.max_attempts and job.prompt_id not in self._cancelled:
                        continue
                    reason = (
                        f"its worker died {len(attempts)} time(s) (max_attempts {self.max_attempts}); "
                        f"last: {decision.worker}: {attempts[-1]['error']}"
                    )
                    on_event(PromptFailed(job.prompt_id, "", "", "WorkerLost", reason))
                    return Outcome("error", route=route, error=reason)
                finally:
                    self.router.release(decision.worker, decision.to_run)
                outputs = {
                    node: self.names.rename(decision.worker, ui) for node, ui in finished.outputs.items()
                }
                return Outcome(finished.status, outputs, route, finished.cached, finished.error)
        finally:
            with self._lock:
                self._active.discard(job.prompt_id)
                self._cancelled.discard(job.prompt_id)

    def _stream(self, worker: str, job: Job, on_event: Listener) -> Finished:
        actor = self.actors[worker]
        with self._lock:
            self._running[job.prompt_id] = worker
            stop = job.prompt_id in self._cancelled
        finished: Finished | None = None
        try:
            stream = actor.run.remote(job)
            if stop:
                actor.interrupt.remote(job.prompt_id)
            for ref in stream:
                for item in self.ray.get(ref):
                    if isinstance(item, ShippedFile):
                        self.names.receive(worker, item)
                    elif isinstance(item, Finished):
                        finished = item
                    elif isinstance(item, NodeExecuted):
                        on_event(replace(item, ui=self.names.rename(worker, item.ui)))
                    else:
                        on_event(item)
        finally:
            with self._lock:
                self._running.pop(job.prompt_id, None)
        if finished is None:
            raise self.ray.exceptions.RayActorError(error_msg=f"{worker} ended the prompt without a result")
        return finished

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop `prompt_id` on its worker (or before it gets one), or every prompt in hand."""
        with self._lock:
            targets: dict[str, str | None]
            if prompt_id is None:  # everything: running, or still waiting for a worker
                targets = {active: self._running.get(active) for active in self._active}
            else:
                targets = {prompt_id: self._running.get(prompt_id)} if prompt_id in self._active else {}
            self._cancelled.update(targets)
        for target, worker in targets.items():
            if worker is not None:
                self.actors[worker].interrupt.remote(target)

    def free(self, cache: bool, models: bool) -> None:
        self._get([actor.free.remote(cache, models) for actor in self.actors.values()])
        self.router.forget()

    def describe(self) -> list[dict[str, Any]]:
        """Every worker's description; one that does not answer within 5 s is listed as down."""
        refs = {name: actor.describe.remote() for name, actor in self.actors.items()}
        self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=5.0)
        described = []
        for name, ref in refs.items():
            try:
                described.append(self.ray.get(ref, timeout=0))
            except (self.ray.exceptions.RayError, TimeoutError):
                described.append({"worker": name, "name": "unreachable", "type": "down"})
        return described

    def pids(self) -> dict[str, int]:
        """Each worker's process id (tests and tools use it to find or kill one)."""
        return dict(
            zip(self.actors, self._get([actor.pid.remote() for actor in self.actors.values()]), strict=True)
        )

    def close(self) -> None:
        self._closed.set()
        self.interrupt()
        if self.owns_cluster:
            for actor in self.actors.values():
                self.ray.kill(actor, no_restart=True)
            self.ray.shutdown()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]

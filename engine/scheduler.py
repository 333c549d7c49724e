"""Running an executable graph: decide what must run, run it in order, and say what happens.

A run moves each node of the graph through these states (after dask's local scheduler)::

    signed     every node gets its signature (engine.signatures)
    cached     walking back from the targets, a node whose signature is in the cache stops the walk:
               its value is taken from the cache and nothing above it is visited
    to run     a visited node that is not cached; nodes sharing a signature run once (the first in
               order runs, the others are served its result)
    finished   it ran; its values go into the cache at once, so a later failure loses nothing
    released   every node of this run that reads it has run, so the run drops its reference
               (the cache may still keep it, within its byte budget)

Example: for ``Load(1) -> Invert(2) -> Save(3)``, the first run runs 1, 2 and 3. Running it again
finds 3's signature cached and runs nothing. Changing 2's constant changes the signatures of 2 and 3
(3's includes 2's) but not 1's: 2 and 3 run, 1 is served from the cache.

Everything is a loop over lists (no recursion), so a chain of 100,000 nodes runs like a chain of three.
An interrupt is honoured before every node and whenever a node reports progress.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.cache import CachedResult, ResultCache
from engine.context import Interrupted, NodeContext
from engine.events import (
    Listener,
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    PreviewFrame,
    Progress,
    PromptFailed,
    PromptInterrupted,
    PromptStarted,
    PromptSucceeded,
)
from engine.files import FileStore
from engine.gc_pause import gc_paused
from engine.graph import ExecutableGraph, GraphNode
from engine.models.manager import ModelManager
from engine.registry import NodeOutput
from engine.signatures import FingerprintError, compute_signatures

RunStatus = Literal["success", "error", "interrupted"]


@dataclass
class RunResult:
    """What a run did: UI outputs of its target nodes, which nodes ran and which came from cache."""

    prompt_id: str
    status: RunStatus
    outputs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: PromptFailed | None = None


class NodeResultError(TypeError):
    """A node function returned something other than one value per declared output."""


def _ignore(event: object) -> None:
    return None


@dataclass
class _Plan:
    steps: list[tuple[str, bool]]  # (node id, is an alias of an earlier identical node), in order
    runners: set[str]  # nodes to execute
    cached: dict[str, CachedResult]  # node id -> its cached result


class Executor:
    """Runs graphs against one result cache, on one device. One run at a time."""

    def __init__(
        self, cache: ResultCache, files: FileStore, device: str = "cpu", models: ModelManager | None = None
    ) -> None:
        self.cache = cache
        self.files = files
        self.device = device
        self.models = models or ModelManager(files.models_dir, device)
        self._interrupt = threading.Event()
        self._prompt_id = ""
        self.previews = False  # set by front ends that display step previews

    def interrupt(self) -> None:
        """Ask the running prompt to stop before its next node or progress step."""
        self._interrupt.set()

    def run(
        self,
        graph: ExecutableGraph,
        *,
        prompt_id: str | None = None,
        on_event: Listener | None = None,
        workflow: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run what `graph` needs that the cache does not hold; see the module docstring."""
        started = time.perf_counter()
        prompt_id = prompt_id or str(uuid.uuid4())
        emit: Listener = on_event or _ignore
        self._interrupt.clear()
        self._prompt_id = prompt_id
        result = RunResult(prompt_id, "success")
        emit(PromptStarted(prompt_id))

        current: GraphNode | None = None
        try:
            with gc_paused():
                signatures = compute_signatures(graph, self.files)
                plan = self._plan(graph, signatures)
            result.cached.extend(plan.cached)
            if plan.cached:
                emit(NodesCached(prompt_id, list(plan.cached)))
            for node_id, hit in plan.cached.items():
                if hit.ui and node_id in graph.targets:
                    result.outputs[node_id] = hit.ui
                    emit(NodeExecuted(prompt_id, node_id, hit.ui))

            # Values this run holds by signature, and how many pending reads each still has.
            values: dict[str, tuple[Any, ...]] = {}
            reads: dict[str, int] = {}
            for node_id in plan.runners:
                for link in graph.nodes[node_id].links.values():
                    source_signature = signatures[link.source]
                    reads[source_signature] = reads.get(source_signature, 0) + 1
            for node_id, hit in plan.cached.items():
                if signatures[node_id] in reads:
                    values[signatures[node_id]] = hit.values
            uis: dict[str, Mapping[str, Any] | None] = {}

            for node_id, is_alias in plan.steps:
                if is_alias:
                    self._serve_alias(graph, node_id, uis[signatures[node_id]], result, emit)
                    continue
                if self._interrupt.is_set():
                    current = graph.nodes[node_id]
                    raise Interrupted(f"interrupted before node {node_id}")
                current = graph.nodes[node_id]
                emit(NodeExecuting(prompt_id, node_id))
                node_values, ui = self._execute(current, values, signatures, graph, emit, workflow)
                signature = signatures[node_id]
                self.cache.put(signature, node_values, ui)
                if signature in reads:
                    values[signature] = node_values
                uis[signature] = ui
                result.executed.append(node_id)
                if ui:
                    if node_id in graph.targets:
                        result.outputs[node_id] = ui
                    emit(NodeExecuted(prompt_id, node_id, ui))
                for link in current.links.values():
                    source_signature = signatures[link.source]
                    reads[source_signature] -= 1
                    if reads[source_signature] == 0:
                        values.pop(source_signature, None)
            current = None
            emit(PromptSucceeded(prompt_id))
        except Interrupted:
            result.status = "interrupted"
            node_id_or_none = current.node_id if current else None
            class_type = current.class_type if current else None
            emit(PromptInterrupted(prompt_id, node_id_or_none, class_type, list(result.executed)))
        except FingerprintError as error:
            result.status = "error"
            result.error = self._failure(prompt_id, error.node_id, error.class_type, error.cause, result)
            emit(result.error)
        except Exception as error:
            result.status = "error"
            node_id_text = current.node_id if current else ""
            class_type_text = current.class_type if current else ""
            result.error = self._failure(prompt_id, node_id_text, class_type_text, error, result)
            emit(result.error)
        result.seconds = time.perf_counter() - started
        emit(NodeExecuting(prompt_id, None))
        return result

    def _plan(self, graph: ExecutableGraph, signatures: Mapping[str, str]) -> _Plan:
        """Walk back from the targets, stopping at cached results."""
        visited: set[str] = set()
        to_run: set[str] = set()
        cached: dict[str, CachedResult] = {}
        stack = list(graph.targets)
        while stack:
            node_id = stack.pop()
            if node_id in visited:
                continue
            visited.add(node_id)
            hit = self.cache.get(signatures[node_id])
            if hit is not None:
                cached[node_id] = hit
                continue
            to_run.add(node_id)
            stack.extend(link.source for link in graph.nodes[node_id].links.values())
        steps: list[tuple[str, bool]] = []
        runners: set[str] = set()
        first_by_signature: dict[str, str] = {}
        for node_id in graph.order:
            if node_id in to_run:
                is_alias = first_by_signature.setdefault(signatures[node_id], node_id) != node_id
                steps.append((node_id, is_alias))
                if not is_alias:
                    runners.add(node_id)
        return _Plan(steps, runners, cached)

    def _serve_alias(
        self,
        graph: ExecutableGraph,
        node_id: str,
        ui: Mapping[str, Any] | None,
        result: RunResult,
        emit: Listener,
    ) -> None:
        """A node identical to one that already ran in this run: report it as cached."""
        result.cached.append(node_id)
        emit(NodesCached(result.prompt_id, [node_id]))
        if ui:
            if node_id in graph.targets:
                result.outputs[node_id] = ui
            emit(NodeExecuted(result.prompt_id, node_id, ui))

    def _execute(
        self,
        graph_node: GraphNode,
        values: Mapping[str, tuple[Any, ...]],
        signatures: Mapping[str, str],
        graph: ExecutableGraph,
        emit: Listener,
        workflow: Mapping[str, Any] | None,
    ) -> tuple[tuple[Any, ...], Mapping[str, Any] | None]:
        """Call one node's function with its constants and linked values; check what it returns."""
        definition = graph_node.definition
        kwargs = dict(graph_node.constants)
        for name, link in graph_node.links.items():
            kwargs[name] = values[signatures[link.source]][link.output]
        if definition.wants_context:
            node_id = graph_node.node_id
            prompt_id = self._prompt_id

            def report(value: int, total: int, preview: PreviewFrame | None) -> None:
                emit(Progress(prompt_id, node_id, value, total, preview))

            kwargs["context"] = NodeContext(
                prompt_id=prompt_id,
                node_id=node_id,
                class_type=definition.class_name,
                files=self.files,
                device=self.device,
                models=self.models,
                prompt=graph.prompt,
                workflow=workflow,
                report=report,
                interrupted=self._interrupt.is_set,
                previews=self.previews,
            )
        returned = definition.function(**kwargs)
        ui: Mapping[str, Any] | None = None
        if isinstance(returned, NodeOutput):
            ui = returned.ui
            returned = returned.values
        elif returned is None and not definition.outputs:
            returned = ()
        if isinstance(returned, list):
            returned = tuple(returned)
        if not isinstance(returned, tuple) or len(returned) != len(definition.outputs):
            raise NodeResultError(
                f"{definition.class_name} returned {type(returned).__name__}; it must return a tuple "
                f"of {len(definition.outputs)} value(s), one per output"
            )
        return returned, ui

    @staticmethod
    def _failure(
        prompt_id: str, node_id: str, class_type: str, error: BaseException, result: RunResult
    ) -> PromptFailed:
        return PromptFailed(
            prompt_id=prompt_id,
            node_id=node_id,
            class_type=class_type,
            exception_type=type(error).__name__,
            exception_message=str(error),
            traceback=traceback.format_exception(type(error), error, error.__traceback__),
            executed=list(result.executed),
        )

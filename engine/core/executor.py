"""Running an executable graph: decide what must run, run it in order, and say what happens.

A run moves each node of the graph through these states (after dask's local scheduler)::

    signed     every node gets its signature (engine.core.signatures)
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

A lazy input (a comparison grid's `images`) is not computed before its node: the node gets a
`SubChain` and runs the chain behind it within this run, once per swept value. Each of those runs is
planned the same way against the same cache, so what the values share runs once; each node is listed
once in the result, as executed if it ran at all.

Everything is a loop over lists (no recursion), so a chain of 100,000 nodes runs like a chain of three.
An interrupt is honoured before every node and whenever a node reports progress. Just before a node
runs, the size it declares for its output is checked against the budget with its real inputs
(engine.core.limits): a node that would make too much fails before it allocates anything.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .cache import CachedResult, ResultCache
from .context import Interrupted, ModelProvider, NodeContext, NoModels
from .events import (
    ImageSent,
    Listener,
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    NodeWarning,
    PreviewFrame,
    Progress,
    PromptFailed,
    PromptInterrupted,
    PromptStarted,
    PromptSucceeded,
)
from .files import FileStore
from .gc_pause import gc_paused
from .graph import ExecutableGraph, GraphNode, Link
from .limits import Limits, check_output_size
from .registry import NodeOutput
from .signatures import FingerprintError, compute_signatures, inherited_signatures
from .subchain import SubChain

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
    warnings: list[NodeWarning] = field(default_factory=list)


class NodeResultError(TypeError):
    """A node function returned something other than one value per declared output."""


def _ignore(event: object) -> None:
    return None


@dataclass
class _Plan:
    steps: list[tuple[str, bool]]  # (node id, is an alias of an earlier identical node), in order
    runners: set[str]  # nodes to execute
    cached: dict[str, CachedResult]  # node id -> its cached result
    # Nodes the walk never reached: only cached results read from them, so nothing of this run
    # needs them (ComfyUI reports them cached too, so clients counting nodes reach the total).
    behind: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """One run in progress: where its events go and what it has done so far."""

    prompt_id: str
    emit: Listener
    workflow: Mapping[str, Any] | None
    result: RunResult
    current: GraphNode | None = None  # the node running now (the innermost, within a sub-chain)
    reported: set[str] = field(default_factory=set)  # ids already in result.executed or result.cached


class Executor:
    """Runs graphs against one result cache, on one device. One run at a time."""

    def __init__(
        self,
        cache: ResultCache,
        files: FileStore,
        device: str = "cpu",
        models: ModelProvider | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.cache = cache
        self.files = files
        self.device = device
        self.models: ModelProvider = models or NoModels()
        self.limits = limits or Limits()
        self._interrupt = threading.Event()
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
        result = RunResult(prompt_id, "success")
        run = _Run(prompt_id, emit, workflow, result)
        emit(PromptStarted(prompt_id))
        try:
            with gc_paused():
                signatures = compute_signatures(graph, self.files)
                plan = self._plan(graph, signatures)
            self._run_plan(graph, signatures, plan, run, keep_targets=False)
            run.current = None
            emit(PromptSucceeded(prompt_id))
        except Interrupted:
            result.status = "interrupted"
            node_id = run.current.node_id if run.current else None
            class_type = run.current.class_type if run.current else None
            emit(PromptInterrupted(prompt_id, node_id, class_type, list(result.executed)))
        except FingerprintError as error:
            result.status = "error"
            result.error = self._failure(
                prompt_id,
                error.node_id,
                error.class_type,
                error.cause,
                result,
                graph.nodes.get(error.node_id),
            )
            emit(result.error)
        except Exception as error:
            result.status = "error"
            node_id_text = run.current.node_id if run.current else ""
            class_type_text = run.current.class_type if run.current else ""
            result.error = self._failure(
                prompt_id, node_id_text, class_type_text, error, result, graph.nodes.get(node_id_text)
            )
            emit(result.error)
        result.seconds = time.perf_counter() - started
        emit(NodeExecuting(prompt_id, None))
        return result

    def _run_plan(
        self,
        graph: ExecutableGraph,
        signatures: Mapping[str, str],
        plan: _Plan,
        run: _Run,
        *,
        keep_targets: bool,
    ) -> dict[str, tuple[Any, ...]]:
        """Serve the cached nodes, run the others in order; return the targets' values if asked."""
        result, emit, prompt_id = run.result, run.emit, run.prompt_id
        self._record(run, result.cached, plan.cached)
        if plan.cached:
            served = plan.cached.keys() | plan.behind
            emit(NodesCached(prompt_id, [node_id for node_id in graph.order if node_id in served]))
        for node_id, hit in plan.cached.items():
            if hit.ui and node_id in graph.targets:
                result.outputs[node_id] = hit.ui
                emit(NodeExecuted(prompt_id, node_id, hit.ui))

        # Values this run holds by signature, and how many pending reads each still has.
        kept = {signatures[node_id] for node_id in graph.targets} if keep_targets else set()
        values: dict[str, tuple[Any, ...]] = {}
        reads: dict[str, int] = {}
        for node_id in plan.runners:
            for link in graph.nodes[node_id].eager_links():
                source_signature = signatures[link.source]
                reads[source_signature] = reads.get(source_signature, 0) + 1
        for node_id, hit in plan.cached.items():
            if signatures[node_id] in reads or signatures[node_id] in kept:
                values[signatures[node_id]] = hit.values
        uis: dict[str, Mapping[str, Any] | None] = {}

        for node_id, is_alias in plan.steps:
            if is_alias:
                self._serve_alias(graph, node_id, uis[signatures[node_id]], run)
                continue
            run.current = graph.nodes[node_id]
            if self._interrupt.is_set():
                raise Interrupted(f"interrupted before node {node_id}")
            emit(NodeExecuting(prompt_id, node_id))
            node_values, ui = self._execute(run.current, values, signatures, graph, run)
            signature = signatures[node_id]
            self.cache.put(signature, node_values, ui)
            if signature in reads or signature in kept:
                values[signature] = node_values
            uis[signature] = ui
            self._record(run, result.executed, (node_id,))
            if ui:
                if node_id in graph.targets:
                    result.outputs[node_id] = ui
                emit(NodeExecuted(prompt_id, node_id, ui))
            for link in run.current.eager_links():
                source_signature = signatures[link.source]
                reads[source_signature] -= 1
                if reads[source_signature] == 0 and source_signature not in kept:
                    values.pop(source_signature, None)
        return {
            node_id: values[signatures[node_id]] for node_id in graph.targets if signatures[node_id] in values
        }

    @staticmethod
    def _record(run: _Run, into: list[str], node_ids: Iterable[str]) -> None:
        """List nodes as executed or cached, each once per run (a sub-chain may meet them again)."""
        for node_id in node_ids:
            if node_id not in run.reported:
                run.reported.add(node_id)
                into.append(node_id)

    def _runner(
        self, whole: ExecutableGraph, signatures: Mapping[str, str], run: _Run
    ) -> Callable[[ExecutableGraph, Link], Any]:
        """How a lazy input's chain (see engine.core.subchain) runs inside the current run: its part of the
        graph is signed (reusing what did not change), planned and run; it returns the linked value."""

        def evaluate(part: ExecutableGraph, link: Link) -> Any:
            caller = run.current
            with gc_paused():
                known = inherited_signatures(part, whole, signatures)
                part_signatures = compute_signatures(part, self.files, known)
                plan = self._plan(part, part_signatures)
            values = self._run_plan(part, part_signatures, plan, run, keep_targets=True)
            run.current = caller
            if caller is not None:
                run.emit(NodeExecuting(run.prompt_id, caller.node_id))  # the caller is running again
            return values[link.source][link.output]

        return evaluate

    def _plan(self, graph: ExecutableGraph, signatures: Mapping[str, str]) -> _Plan:
        """Walk back from the targets, stopping at cached results (and at lazy inputs)."""
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
            stack.extend(link.source for link in graph.nodes[node_id].eager_links())
        steps: list[tuple[str, bool]] = []
        runners: set[str] = set()
        first_by_signature: dict[str, str] = {}
        for node_id in graph.order:
            if node_id in to_run:
                is_alias = first_by_signature.setdefault(signatures[node_id], node_id) != node_id
                steps.append((node_id, is_alias))
                if not is_alias:
                    runners.add(node_id)
        # The walk stopped at the cached results, so what it never reached is what they stand for
        # (or, rarely, what a lazy input may still ask for: that one is reported again if it runs).
        behind = [node_id for node_id in graph.order if node_id not in visited] if cached else []
        return _Plan(steps, runners, cached, behind)

    def _serve_alias(
        self, graph: ExecutableGraph, node_id: str, ui: Mapping[str, Any] | None, run: _Run
    ) -> None:
        """A node identical to one that already ran in this run: report it as cached."""
        self._record(run, run.result.cached, (node_id,))
        run.emit(NodesCached(run.prompt_id, [node_id]))
        if ui:
            if node_id in graph.targets:
                run.result.outputs[node_id] = ui
            run.emit(NodeExecuted(run.prompt_id, node_id, ui))

    def _execute(
        self,
        graph_node: GraphNode,
        values: Mapping[str, tuple[Any, ...]],
        signatures: Mapping[str, str],
        graph: ExecutableGraph,
        run: _Run,
    ) -> tuple[tuple[Any, ...], Mapping[str, Any] | None]:
        """Call one node's function with its constants and linked values; check what it returns."""
        definition = graph_node.definition
        kwargs = dict(graph_node.constants)
        for name, link in graph_node.links.items():
            if name in definition.lazy_inputs:
                kwargs[name] = SubChain(graph, link, self.files, self._runner(graph, signatures, run))
            else:
                kwargs[name] = values[signatures[link.source]][link.output]
        check_output_size(definition, kwargs, self.limits)
        if definition.wants_context:
            kwargs["context"] = self._context(graph_node, graph, run)
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

    def _context(self, graph_node: GraphNode, graph: ExecutableGraph, run: _Run) -> NodeContext:
        node_id, class_type, prompt_id, emit = (
            graph_node.node_id,
            graph_node.class_type,
            run.prompt_id,
            run.emit,
        )

        def report(value: int, total: int, preview: PreviewFrame | None) -> None:
            emit(Progress(prompt_id, node_id, value, total, preview))

        def sent(frame: PreviewFrame) -> None:
            emit(ImageSent(prompt_id, node_id, frame))

        def warned(text: str) -> None:
            warning = NodeWarning(prompt_id, node_id, class_type, text)
            run.result.warnings.append(warning)
            emit(warning)

        return NodeContext(
            prompt_id=prompt_id,
            node_id=node_id,
            class_type=class_type,
            files=self.files,
            device=self.device,
            models=self.models,
            prompt=graph.prompt,
            workflow=run.workflow,
            report=report,
            interrupted=self._interrupt.is_set,
            warned=warned,
            sent=sent,
            limits=self.limits,
            previews=self.previews,
        )

    @staticmethod
    def _failure(
        prompt_id: str,
        node_id: str,
        class_type: str,
        error: BaseException,
        result: RunResult,
        failed: GraphNode | None = None,
    ) -> PromptFailed:
        return PromptFailed(
            prompt_id=prompt_id,
            node_id=node_id,
            class_type=class_type,
            exception_type=type(error).__name__,
            exception_message=str(error),
            traceback=traceback.format_exception(type(error), error, error.__traceback__),
            executed=list(result.executed),
            current_inputs=_inputs_shown(failed) if failed is not None else {},
            current_outputs=[*result.executed, *result.cached],
        )


def _inputs_shown(node: GraphNode) -> dict[str, list[Any]]:
    """The failing node's inputs as ComfyUI's `execution_error` lists them: each as a list of plain
    values; a linked input names where it came from (its value may be a large tensor)."""
    shown: dict[str, list[Any]] = {}
    for name, value in node.constants.items():
        plain = value is None or isinstance(value, bool | int | float | str)
        shown[name] = [value if plain else repr(value)[:200]]
    for name, link in node.links.items():
        shown[name] = [f"output {link.output} of node {link.source}"]
    return shown

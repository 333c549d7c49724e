from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from depthgraph.engine.core.cache import ResultCache
from depthgraph.engine.core.events import Event
from depthgraph.engine.core.executor import Executor, RunResult
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.core.validation import validate

from tests.engine import node_pack


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    node_pack.CALLS.clear()
    node_pack.ON_STEP.clear()
    node_pack.HELD.clear()
    yield
    node_pack.ON_STEP.clear()


@pytest.fixture
def registry() -> NodeRegistry:
    return node_pack.make_registry()


@pytest.fixture
def executor(files: FileStore) -> Executor:
    return Executor(ResultCache(), files)


Runner = Callable[..., RunResult]


@pytest.fixture
def run(registry: NodeRegistry, files: FileStore, executor: Executor) -> Runner:
    """Validate and run a prompt on the shared executor; events go into `events` if given."""

    def run_prompt(prompt: dict[str, Any], events: list[Event] | None = None, **kwargs: Any) -> RunResult:
        validation = validate(prompt, registry, files, kwargs.pop("targets", None))
        assert validation.graph is not None, [str(issue) for issue in validation.issues]
        listener = events.append if events is not None else None
        return executor.run(validation.graph, on_event=listener, **kwargs)

    return run_prompt

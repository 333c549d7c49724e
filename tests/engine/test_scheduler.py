"""What runs, what is served from the cache, and what the scheduler says while it works."""

from __future__ import annotations

import copy
import gc
import os
from pathlib import Path
from typing import Any

from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.cache import ResultCache
from depthgraph.engine.core.events import (
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    Progress,
    PromptFailed,
    PromptInterrupted,
    PromptStarted,
    PromptSucceeded,
)
from depthgraph.engine.core.executor import Executor
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.limits import Limits
from depthgraph.engine.core.validation import Code, validate

from tests.engine import node_pack
from tests.engine.conftest import Runner


def chain_prompt() -> dict[str, Any]:
    """1 Number -> 2 Add -> 3 Add -> 4 Show, and a side branch 5 Add -> 6 Show from 2."""
    return {
        "1": {"class_type": "Number", "inputs": {"value": 10}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 2}},
        "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}},
        "5": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 5}},
        "6": {"class_type": "Show", "inputs": {"value": ["5", 0]}},
    }


def test_a_graph_runs_and_shows_its_outputs(run: Runner) -> None:
    result = run(chain_prompt())
    assert result.status == "success"
    assert result.outputs == {"4": {"text": ["13"]}, "6": {"text": ["16"]}}
    assert sorted(result.executed) == ["1", "2", "3", "4", "5", "6"]


def test_a_second_identical_run_executes_nothing(run: Runner) -> None:
    run(chain_prompt())
    node_pack.CALLS.clear()
    second = run(chain_prompt())
    assert second.executed == []
    assert sum(node_pack.CALLS.values()) == 0
    assert second.outputs == {"4": {"text": ["13"]}, "6": {"text": ["16"]}}


def test_changing_one_constant_reruns_exactly_that_node_and_its_descendants(run: Runner) -> None:
    run(chain_prompt())
    prompt = chain_prompt()
    prompt["3"]["inputs"]["b"] = 7
    result = run(prompt)
    assert sorted(result.executed) == ["3", "4"]
    assert result.outputs["4"] == {"text": ["18"]}
    assert result.outputs["6"] == {"text": ["16"]}

    prompt["1"]["inputs"]["value"] = 0
    result = run(prompt)
    assert sorted(result.executed) == ["1", "2", "3", "4", "5", "6"]


def test_identical_branches_share_one_execution(run: Runner) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 4}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
        "5": {"class_type": "Show", "inputs": {"value": ["3", 0]}},
    }
    result = run(prompt)
    assert node_pack.CALLS == {"Number": 1, "Add": 1, "Show": 1}
    assert result.outputs == {"4": {"text": ["5"]}, "5": {"text": ["5"]}}
    assert sorted(result.executed + result.cached) == ["1", "2", "3", "4", "5"]


def test_renumbering_node_ids_invalidates_nothing(run: Runner) -> None:
    run(chain_prompt())
    renamed = {f"n{node_id}": copy.deepcopy(entry) for node_id, entry in chain_prompt().items()}
    for entry in renamed.values():
        for name, value in entry["inputs"].items():
            if isinstance(value, list):
                entry["inputs"][name] = [f"n{value[0]}", value[1]]
    result = run(renamed)
    assert result.executed == []
    assert result.outputs == {"n4": {"text": ["13"]}, "n6": {"text": ["16"]}}


def test_a_fingerprinted_node_reruns_when_its_file_changes(run: Runner, files: FileStore) -> None:
    note = files.input_dir / "note.txt"
    note.write_text("first")
    prompt = {
        "1": {"class_type": "ReadText", "inputs": {"name": "note.txt"}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    assert run(prompt).outputs["2"] == {"text": ["'first'"]}
    assert run(prompt).executed == []

    note.write_text("second, longer")
    stat = note.stat()
    os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    result = run(prompt)
    assert sorted(result.executed) == ["1", "2"]
    assert result.outputs["2"] == {"text": ["'second, longer'"]}


def test_only_ancestors_of_output_nodes_run(run: Runner) -> None:
    prompt = chain_prompt()
    prompt["7"] = {"class_type": "Number", "inputs": {"value": 99}}
    prompt["8"] = {"class_type": "Add", "inputs": {"a": ["7", 0], "b": 1}}
    result = run(prompt)
    assert "7" not in result.executed and "8" not in result.executed
    assert set(result.outputs) == {"4", "6"}


def test_named_targets_run_only_what_they_need(run: Runner) -> None:
    result = run(chain_prompt(), targets=["6"])
    assert sorted(result.executed) == ["1", "2", "5", "6"]
    assert set(result.outputs) == {"6"}


def test_events_follow_the_comfyui_order(run: Runner) -> None:
    events: list[Any] = []
    run(chain_prompt(), events, prompt_id="p1")
    kinds = [type(event) for event in events]
    assert kinds[0] is PromptStarted
    assert kinds[-2:] == [PromptSucceeded, NodeExecuting]
    assert events[-1].node_id is None
    executing = [event.node_id for event in events if isinstance(event, NodeExecuting)]
    assert executing == ["1", "2", "3", "4", "5", "6", None]
    shown = [event.node_id for event in events if isinstance(event, NodeExecuted)]
    assert sorted(shown) == ["4", "6"]
    assert all(event.prompt_id == "p1" for event in events)

    events.clear()
    run(chain_prompt(), events)
    cached = [event for event in events if isinstance(event, NodesCached)]
    # Every node is listed, those behind the cached outputs too, as ComfyUI lists them: a client
    # counting finished nodes reaches the total.
    assert cached[0].node_ids == ["1", "2", "3", "4", "5", "6"]
    # Cached output nodes still show their result, as ComfyUI clients expect.
    assert sorted(event.node_id for event in events if isinstance(event, NodeExecuted)) == ["4", "6"]


def test_progress_is_reported_per_step(run: Runner) -> None:
    events: list[Any] = []
    prompt = {
        "1": {"class_type": "Steps", "inputs": {"steps": 4}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    run(prompt, events)
    steps = [(event.value, event.max) for event in events if isinstance(event, Progress)]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_interrupt_between_nodes_stops_before_the_next_node(run: Runner, executor: Executor) -> None:
    events: list[Any] = []

    def interrupt_after_node_2(event: Any) -> None:
        events.append(event)
        if isinstance(event, NodeExecuting) and event.node_id == "2":
            executor.interrupt()

    prompt = chain_prompt()
    graph = validate(prompt, node_pack.make_registry(), executor.files).graph
    assert graph is not None
    result = executor.run(graph, on_event=interrupt_after_node_2)
    assert result.status == "interrupted"
    assert result.executed == ["1", "2"]
    assert isinstance(events[-2], PromptInterrupted)
    assert events[-2].executed == ["1", "2"]

    # The finished nodes stay cached: the next run resumes after them.
    resumed = run(prompt)
    assert resumed.status == "success"
    assert sorted(resumed.executed) == ["3", "4", "5", "6"]


def test_interrupt_during_progress_stops_within_one_step(run: Runner, executor: Executor) -> None:
    node_pack.ON_STEP.append(lambda step: executor.interrupt() if step == 3 else None)
    events: list[Any] = []
    prompt = {
        "1": {"class_type": "Steps", "inputs": {"steps": 50}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    result = run(prompt, events)
    assert result.status == "interrupted"
    assert max(event.value for event in events if isinstance(event, Progress)) == 2
    interrupted = next(event for event in events if isinstance(event, PromptInterrupted))
    assert interrupted.node_id == "1"


def test_a_failing_node_does_not_poison_the_cache(run: Runner) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 3}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Fail", "inputs": {"value": -1}},
        "4": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["3", 0]}},
        "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}},
    }
    events: list[Any] = []
    result = run(prompt, events)
    assert result.status == "error"
    assert result.error is not None
    assert (result.error.node_id, result.error.class_type) == ("3", "Fail")
    assert result.error.exception_type == "ValueError"
    assert "negative value -1" in result.error.exception_message
    assert any("raise ValueError" in line for line in result.error.traceback)
    assert isinstance(events[-2], PromptFailed)

    prompt["3"]["inputs"]["value"] = 2
    node_pack.CALLS.clear()
    fixed = run(prompt)
    assert fixed.status == "success"
    assert fixed.outputs["5"] == {"text": ["6"]}
    assert node_pack.CALLS["Number"] == 0
    assert "1" not in fixed.executed and "2" not in fixed.executed


def test_a_node_returning_the_wrong_number_of_values_is_reported(run: Runner) -> None:
    prompt = {
        "1": {"class_type": "Bad", "inputs": {}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 1]}},
    }
    result = run(prompt)
    assert result.status == "error" and result.error is not None
    assert result.error.node_id == "1"
    assert "one per output" in result.error.exception_message


def test_a_vanished_fingerprinted_file_is_a_node_error_not_a_crash(run: Runner, files: FileStore) -> None:
    note = files.input_dir / "note.txt"
    note.write_text("x")
    prompt = {
        "1": {"class_type": "ReadText", "inputs": {"name": "note.txt"}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    graph = validate(prompt, node_pack.make_registry(), files).graph
    assert graph is not None
    note.unlink()
    executor = Executor(ResultCache(), files)
    result = executor.run(graph)
    assert result.status == "error" and result.error is not None
    assert result.error.node_id == "1"
    assert result.error.exception_type == "FileNotFoundError"


def test_a_chain_of_100000_nodes_runs(run: Runner) -> None:
    length = 100_000
    prompt: dict[str, Any] = {"0": {"class_type": "Number", "inputs": {"value": 0}}}
    for index in range(1, length):
        prompt[str(index)] = {"class_type": "Add", "inputs": {"a": [str(index - 1), 0], "b": 1}}
    prompt["out"] = {"class_type": "Show", "inputs": {"value": [str(length - 1), 0]}}
    result = run(prompt)
    assert result.status == "success"
    assert result.outputs["out"] == {"text": [str(length - 1)]}
    assert len(result.executed) == length + 1
    again = run(prompt)
    assert again.executed == [] and again.outputs["out"] == {"text": [str(length - 1)]}


def test_values_are_released_once_every_reader_has_run(registry: Any, files: FileStore) -> None:
    """A long chain does not hold every intermediate value until the end of the run."""
    executor = Executor(ResultCache({"cpu": 0}), files)  # a cache that keeps nothing
    prompt: dict[str, Any] = {"0": {"class_type": "Hold", "inputs": {}}}
    for index in range(1, 40):
        prompt[str(index)] = {"class_type": "Hold", "inputs": {"previous": [str(index - 1), 0]}}
    prompt["out"] = {"class_type": "Show", "inputs": {"value": ["39", 0]}}
    graph = validate(prompt, registry, files).graph
    assert graph is not None
    alive_when_showing: list[int] = []

    def count_alive(event: Any) -> None:
        if isinstance(event, NodeExecuting) and event.node_id == "out":
            gc.collect()
            alive_when_showing.append(sum(ref() is not None for ref in node_pack.HELD))

    result = executor.run(graph, on_event=count_alive)
    assert result.status == "success"
    assert len(node_pack.HELD) == 40
    assert alive_when_showing == [1]  # only the value Show is about to read


def enlarged_prompt(factor: int) -> dict[str, Any]:
    """A 10×10 picture, enlarged `factor` times on each side, shown."""
    return {
        "1": {"class_type": "Canvas", "inputs": {"width": 10, "height": 10}},
        "2": {"class_type": "Enlarge", "inputs": {"picture": ["1", 0], "factor": factor}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }


def test_a_node_that_would_make_more_than_the_budget_fails_before_it_runs(files: FileStore) -> None:
    executor = Executor(ResultCache(), files, limits=Limits(max_output_pixels=10_000))
    registry = node_pack.make_registry()
    prompt = enlarged_prompt(11)  # 110 × 110: the size depends on the linked picture, so validation passes
    graph = validate(prompt, registry, files, limits=executor.limits).graph
    assert graph is not None
    events: list[Any] = []

    result = executor.run(graph, on_event=events.append)

    assert result.status == "error" and result.error is not None
    assert (result.error.node_id, result.error.class_type) == ("2", "Enlarge")
    assert result.error.exception_type == "OutputTooLargeError"
    assert result.error.exception_message.startswith("this node would make 12,100 pixels")
    assert "budget of 10,000 pixels" in result.error.exception_message
    assert "max_output_pixels" in result.error.exception_message
    assert (node_pack.CALLS["Canvas"], node_pack.CALLS["Enlarge"]) == (1, 0)  # it never ran
    assert isinstance(events[-2], PromptFailed)

    graph = validate(enlarged_prompt(10), registry, files, limits=executor.limits).graph
    assert graph is not None
    assert executor.run(graph).status == "success"  # exactly the budget, and the picture was cached


def test_the_engine_takes_the_budget_from_the_settings(tmp_path: Path) -> None:
    engine = Engine(Settings.under(tmp_path, max_output_pixels=5_000), registry=node_pack.make_registry())
    prompt = enlarged_prompt(1)
    prompt["1"]["inputs"] = {"width": 100, "height": 100}
    assert [issue.code for issue in engine.validate(prompt).issues] == [Code.OUTPUT_TOO_LARGE]

    prompt["1"]["inputs"] = {"width": 50, "height": 50}
    prompt["2"]["inputs"]["factor"] = 2
    result = engine.run(prompt)
    assert result.error is not None and result.error.exception_type == "OutputTooLargeError"

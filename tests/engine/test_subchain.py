"""Lazy inputs: a node that runs the chain behind one of its inputs once per value (a sweep), within
the run and on its cache; and warnings a node raises without failing."""

from __future__ import annotations

from typing import Any

from depthgraph.engine.core.events import Event, NodeExecuting, NodeWarning, PromptFailed, PromptInterrupted
from depthgraph.engine.core.executor import Executor
from depthgraph.engine.core.files import FileStore

from tests.engine import node_pack
from tests.engine.conftest import Runner


def sweep_prompt(target: str = "3.b", values: str = "1, 2, 3") -> dict[str, Any]:
    """1 Number -> 2 Add -> 3 Add -> 4 Sweep (over 3.b) -> 5 Show."""
    return {
        "1": {"class_type": "Number", "inputs": {"value": 10}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 0}},
        "4": {"class_type": "Sweep", "inputs": {"value": ["3", 0], "target": target, "values": values}},
        "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}},
    }


def test_a_sweep_runs_the_chain_once_per_value(run: Runner) -> None:
    result = run(sweep_prompt())
    assert result.status == "success", result.error
    assert result.outputs["5"] == {"text": ["[12, 13, 14]"]}


def test_what_the_values_share_runs_once_and_the_unswept_value_never_runs(run: Runner) -> None:
    run(sweep_prompt())
    # Number once, the shared Add (node 2) once, the swept Add (node 3) once per value: 1 + 3.
    assert node_pack.CALLS["Number"] == 1
    assert node_pack.CALLS["Add"] == 4


def test_each_node_is_listed_once_though_the_sweep_runs_it_three_times(run: Runner) -> None:
    events: list[Event] = []
    result = run(sweep_prompt(), events)
    assert sorted(result.executed) == ["1", "2", "3", "4", "5"]
    assert result.cached == []
    started = [event.node_id for event in events if isinstance(event, NodeExecuting)]
    assert started.count("3") == 3  # the editor sees the swept node run for each value
    assert started[-2:] == ["5", None]


def test_running_the_same_sweep_again_is_served_from_the_cache(run: Runner) -> None:
    run(sweep_prompt())
    node_pack.CALLS.clear()
    again = run(sweep_prompt())
    assert again.executed == [] and again.outputs["5"] == {"text": ["[12, 13, 14]"]}
    assert sum(node_pack.CALLS.values()) == 0


def test_adding_a_value_runs_only_the_new_one(run: Runner) -> None:
    run(sweep_prompt())
    node_pack.CALLS.clear()
    result = run(sweep_prompt(values="1, 2, 3, 4"))
    assert result.outputs["5"] == {"text": ["[12, 13, 14, 15]"]}
    assert node_pack.CALLS["Add"] == 1 and node_pack.CALLS["Number"] == 0


def test_a_file_the_chain_reads_is_fingerprinted_once_per_run_not_once_per_value(
    run: Runner, files: FileStore
) -> None:
    (files.input_dir / "tail.txt").write_text("!")
    prompt = {
        "1": {"class_type": "ReadText", "inputs": {"name": "tail.txt"}},
        "2": {"class_type": "Text", "inputs": {"text": "x", "suffix": ["1", 0]}},
        "3": {"class_type": "Sweep", "inputs": {"value": ["2", 0], "target": "2.text", "values": "a,b,c"}},
        "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}},
    }
    result = run(prompt)
    assert result.outputs["4"] == {"text": ["['a!', 'b!', 'c!']"]}
    assert node_pack.CALLS["fingerprint"] == 1 and node_pack.CALLS["ReadText"] == 1


def test_sweeping_a_node_outside_the_chain_is_refused_before_anything_runs(run: Runner) -> None:
    prompt = sweep_prompt(target="6.value")
    prompt["6"] = {"class_type": "Number", "inputs": {"value": 1}}
    prompt["7"] = {"class_type": "Show", "inputs": {"value": ["6", 0]}}
    for targets in (None, ["5"]):  # node 6 in the run, or left out of it
        result = run(prompt, targets=targets)
        assert result.error is not None and result.error.node_id == "4"
        assert "node 6 (Number) does not feed node 3" in result.error.exception_message
        assert node_pack.CALLS["Add"] == 0
    missing = run(sweep_prompt(target="60.value"))
    assert missing.error is not None and "there is no node 60" in missing.error.exception_message


def test_sweeping_a_linked_or_unknown_input_says_what_can_be_swept(run: Runner) -> None:
    linked = run(sweep_prompt(target="3.a"))
    assert linked.error is not None and "is linked to another node" in linked.error.exception_message
    unknown = run(sweep_prompt(target="3.c"))
    assert unknown.error is not None and "it has: b" in unknown.error.exception_message


def test_a_value_out_of_range_is_refused_with_the_inputs_bounds(run: Runner) -> None:
    result = run(sweep_prompt(values="1, 500"))
    assert result.error is not None
    assert "'500'" in result.error.exception_message or "500" in result.error.exception_message
    assert "above the maximum 100" in result.error.exception_message
    assert node_pack.CALLS["Add"] == 0  # every value is checked before the first runs


def test_a_failure_inside_the_chain_names_the_node_that_failed(run: Runner) -> None:
    prompt = sweep_prompt(target="3.value", values="1, -1")
    prompt["3"] = {"class_type": "Fail", "inputs": {"value": 0}}
    prompt["4"]["inputs"]["value"] = ["3", 0]
    events: list[Event] = []
    result = run(prompt, events)
    assert result.error is not None and result.error.node_id == "3"
    assert "negative value -1" in result.error.exception_message
    assert any(isinstance(event, PromptFailed) for event in events)


def test_an_interrupt_inside_the_chain_stops_the_run(run: Runner, executor: Executor) -> None:
    prompt = sweep_prompt(target="3.steps", values="2, 3")
    prompt["3"] = {"class_type": "Steps", "inputs": {"steps": 1}}
    node_pack.ON_STEP.append(lambda step: executor.interrupt() if step == 2 else None)
    events: list[Event] = []
    result = run(prompt, events)
    assert result.status == "interrupted"
    (interrupted,) = [event for event in events if isinstance(event, PromptInterrupted)]
    assert interrupted.node_id == "3"


def test_a_warning_reaches_listeners_and_the_result_without_failing_the_run(run: Runner) -> None:
    prompt = {
        "1": {"class_type": "Warn", "inputs": {"value": 0}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    events: list[Event] = []
    result = run(prompt, events)
    assert result.status == "success"
    (warning,) = result.warnings
    assert (warning.node_id, warning.class_type, warning.text) == ("1", "Warn", "the value is zero")
    assert [event for event in events if isinstance(event, NodeWarning)] == [warning]
    assert warning.message() == (
        "execution_warning",
        {"prompt_id": result.prompt_id, "node_id": "1", "node_type": "Warn", "message": "the value is zero"},
    )

"""Editor workflows convert as ComfyUI's front end converts them: a bypassed node passes its input
of the output's type through, a muted node is left out with what needs it, and every unknown node
type is named at once."""

from __future__ import annotations

from typing import Any

import pytest
from depthgraph.engine.formats.workflow_convert import WorkflowError, workflow_to_prompt

from tests.engine.node_pack import make_registry

REGISTRY = make_registry()


def node(
    node_id: int,
    kind: str,
    widgets: list[Any],
    inputs: tuple[tuple[str, str, int | None], ...] = (),
    outputs: tuple[str, ...] = (),
    mode: int = 0,
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": kind,
        "mode": mode,
        "widgets_values": widgets,
        "inputs": [{"name": name, "type": kind_, "link": link} for name, kind_, link in inputs],
        "outputs": [{"name": output, "type": output} for output in outputs],
    }


def chain(middle_mode: int) -> dict[str, Any]:
    """Number 1 -> Add 2 -> Add 3 -> Show 4, Add 2 in `middle_mode`."""
    return {
        "nodes": [
            node(1, "Number", [5], outputs=("INT",)),
            node(2, "Add", [0, 10], inputs=(("a", "INT", 1),), outputs=("INT",), mode=middle_mode),
            node(3, "Add", [0, 100], inputs=(("a", "INT", 2),), outputs=("INT",)),
            node(4, "Show", [], inputs=(("value", "*", 3),)),
        ],
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"], [3, 3, 0, 4, 0, "INT"]],
    }


def test_a_bypassed_node_passes_its_input_of_the_same_type_through() -> None:
    prompt = workflow_to_prompt(chain(4), REGISTRY)
    assert set(prompt) == {"1", "3", "4"}
    assert prompt["3"]["inputs"]["a"] == ["1", 0], "Add 3 now reads Number 1, as if Add 2 were not there"


def test_bypassed_nodes_in_a_row_are_all_passed_through() -> None:
    workflow = chain(4)
    workflow["nodes"][2]["mode"] = 4
    prompt = workflow_to_prompt(workflow, REGISTRY)
    assert set(prompt) == {"1", "4"} and prompt["4"]["inputs"]["value"] == ["1", 0]


def test_a_bypassed_node_with_no_input_of_that_type_leaves_its_reader_to_its_widget() -> None:
    workflow = chain(4)
    workflow["nodes"][1]["inputs"][0]["type"] = "FLOAT"
    prompt = workflow_to_prompt(workflow, REGISTRY)
    assert prompt["3"]["inputs"]["a"] == 0, "nothing to pass through: the widget's own value stands"


def test_a_muted_node_is_left_out_with_every_node_that_needs_it() -> None:
    workflow = chain(2)
    workflow["nodes"].append(node(6, "Number", [1], outputs=("INT",)))
    workflow["nodes"].append(node(7, "Show", [], inputs=(("value", "*", 5),)))
    workflow["links"].append([5, 6, 0, 7, 0, "INT"])  # a branch of its own
    prompt = workflow_to_prompt(workflow, REGISTRY)
    assert set(prompt) == {"1", "6", "7"}, "Add 3 and Show 4 needed the muted Add 2; Show 7 did not"


def test_an_optional_input_fed_by_a_muted_node_is_left_unlinked() -> None:
    workflow = {
        "nodes": [
            node(1, "Text", ["suffix", False, "plain"], outputs=("STRING",), mode=2),
            node(
                2, "Text", ["hello", False, "plain"], inputs=(("suffix", "STRING", 1),), outputs=("STRING",)
            ),
        ],
        "links": [[1, 1, 0, 2, 3, "STRING"]],
    }
    prompt = workflow_to_prompt(workflow, REGISTRY)
    assert set(prompt) == {"2"} and "suffix" not in prompt["2"]["inputs"]


def test_every_unknown_node_type_is_named_at_once() -> None:
    workflow = chain(0)
    workflow["nodes"][1]["type"] = "Addd"
    workflow["nodes"][3]["type"] = "KSamplerAdvanced"
    with pytest.raises(WorkflowError) as refused:
        workflow_to_prompt(workflow, REGISTRY)
    message = str(refused.value)
    assert "2 node(s) of unknown types" in message and "'Addd'" in message and "'KSamplerAdvanced'" in message


def test_a_bypassed_node_fed_by_its_own_output_is_refused() -> None:
    workflow = {
        "nodes": [
            node(1, "Add", [0, 1], inputs=(("a", "INT", 1),), outputs=("INT",), mode=4),
            node(2, "Show", [], inputs=(("value", "*", 1),)),
        ],
        "links": [[1, 1, 0, 1, 0, "INT"]],
    }
    with pytest.raises(WorkflowError, match="fed by its own output"):
        workflow_to_prompt(workflow, REGISTRY)


def test_widget_values_stored_by_name_fill_widgets_only() -> None:
    workflow = {"nodes": [node(1, "Number", [], outputs=("INT",)), node(2, "Show", [])], "links": []}
    workflow["nodes"][0]["widgets_values"] = {"value": 4}
    workflow["nodes"][1]["widgets_values"] = {"value": 4}
    prompt = workflow_to_prompt(workflow, REGISTRY)
    assert prompt["1"]["inputs"] == {"value": 4}
    assert prompt["2"]["inputs"] == {}, "Show's `value` is a socket, not a widget"

"""Subgraphs and group nodes in editor workflows convert as ComfyUI's front end flattens them: inner
nodes run as `<instance>:<inner id>`, links through the subgraph's inputs and outputs reach the real
nodes, the instance's widget values win, and a malformed definition is refused with a message that
says what to fix.

The workflows under tests/fixtures/workflows are written in the front end's own format; each has the
prompt it converts to beside it (`*.prompt.json`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.app.plugins import load_node_packs
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.formats.workflow_convert import WorkflowError, workflow_to_prompt

from tests.engine.node_pack import make_registry

REGISTRY = make_registry()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"
GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SUB = "5d7a1f0e-3c2b-4a19-8e6d-0f1e2d3c4b5a"  # the id of the one test subgraph
OTHER = "8c1b2a3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"


@pytest.fixture(scope="module")
def built_in() -> NodeRegistry:
    """The built-in node packs, whose types the fixture workflows use."""
    registry = NodeRegistry()
    report = load_node_packs(registry)
    if report.problems:
        pytest.skip(f"the built-in node packs did not load: {report.problems[0]}")
    return registry


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def flat_depth2img(renamed: dict[str, str]) -> dict[str, Any]:
    """graphs/depth2img.json's nodes, with some node ids changed (in their links too)."""
    nodes = json.loads((GRAPHS / "depth2img.json").read_text())["nodes"]

    def relink(value: Any) -> Any:
        return [renamed.get(value[0], value[0]), value[1]] if isinstance(value, list) else value

    return {
        renamed.get(node_id, node_id): {**entry, "inputs": {k: relink(v) for k, v in entry["inputs"].items()}}
        for node_id, entry in nodes.items()
    }


# Workflows built from the test node pack, in the front end's shape.


def node(
    node_id: int,
    kind: str,
    widgets: list[Any] | None = None,
    inputs: tuple[tuple[str, str, int | None], ...] = (),
    outputs: tuple[str, ...] = (),
    mode: int = 0,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": node_id,
        "type": kind,
        "mode": mode,
        "inputs": [{"name": name, "type": type_, "link": link} for name, type_, link in inputs],
        "outputs": [{"name": output, "type": output, "links": []} for output in outputs],
    }
    if widgets is not None:
        entry["widgets_values"] = widgets
    return entry


def link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int) -> dict[str, Any]:
    return {
        "id": link_id,
        "origin_id": origin,
        "origin_slot": origin_slot,
        "target_id": target,
        "target_slot": target_slot,
        "type": "INT",
    }


def definition(
    subgraph_id: str | None,
    nodes: list[dict[str, Any]],
    links: list[dict[str, Any]],
    inputs: tuple[str, ...] = ("a",),
    outputs: tuple[str, ...] = ("result",),
    name: str = "Adder",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "version": 1,
        "revision": 0,
        "name": name,
        "inputNode": {"id": -10, "bounding": [0, 0, 120, 60]},
        "outputNode": {"id": -20, "bounding": [600, 0, 120, 60]},
        "inputs": [{"name": slot, "type": "INT"} for slot in inputs],
        "outputs": [{"name": slot, "type": "INT"} for slot in outputs],
        "widgets": [],
        "nodes": nodes,
        "links": links,
    }
    if subgraph_id is not None:
        entry["id"] = subgraph_id
    return entry


def adder(b_widget: int = 1) -> dict[str, Any]:
    """A subgraph of one Add whose `a` (a widget input) is the subgraph's input `a`:
    -10 → Add 11 → -20."""
    return definition(
        SUB,
        [node(11, "Add", [0, b_widget], inputs=(("a", "INT", 101),), outputs=("INT",))],
        [link(101, -10, 0, 11, 0), link(102, 11, 0, -20, 0)],
    )


def workflow_with(
    subgraphs: list[dict[str, Any]], instance: dict[str, Any], *extra: dict[str, Any]
) -> dict[str, Any]:
    """Number 1 → instance 5 → Show 6, links in the schema 0.4 list form."""
    return {
        "last_node_id": 6,
        "nodes": [
            node(1, "Number", [3], outputs=("INT",)),
            instance,
            node(6, "Show", inputs=(("value", "*", 3),)),
            *extra,
        ],
        "links": [[2, 1, 0, 5, 0, "INT"], [3, 5, 0, 6, 0, "INT"]],
        "definitions": {"subgraphs": subgraphs},
        "version": 0.4,
    }


def adder_instance(link: int | None = 2, widgets: list[Any] | None = None, mode: int = 0) -> dict[str, Any]:
    entry = node(5, SUB, widgets, inputs=(("a", "INT", link),), outputs=("INT",), mode=mode)
    entry["inputs"][0]["widget"] = {"name": "a"}
    return entry


# The fixture workflows.


@pytest.mark.parametrize("name", ["subgraph_depth2img", "nested_subgraph", "group_node"])
def test_each_fixture_workflow_converts_to_its_recorded_prompt(name: str, built_in: NodeRegistry) -> None:
    assert workflow_to_prompt(load(f"{name}.json"), built_in) == load(f"{name}.prompt.json")


def test_a_workflow_of_subgraphs_runs_the_same_nodes_as_the_flat_depth2img(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("subgraph_depth2img.json"), built_in)
    inner = {"3": "20:21", "4": "20:22", "5": "30:31", "6": "30:32"}
    assert prompt == flat_depth2img(inner), "the inner nodes run as <instance>:<inner id>"


def test_the_instance_s_widget_values_win_over_the_inner_widgets_own(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("subgraph_depth2img.json"), built_in)
    assert prompt["20:21"]["inputs"]["multiple"] == 64, "the promoted input's value, not the inner 8"
    assert prompt["30:31"]["inputs"]["text"].startswith("photo of a knight"), "set through proxyWidgets"


def test_one_subgraph_input_feeding_two_inner_nodes_reaches_both(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("subgraph_depth2img.json"), built_in)
    assert prompt["30:31"]["inputs"]["clip"] == prompt["30:32"]["inputs"]["clip"] == ["1", 1]


def test_a_subgraph_output_used_twice_feeds_both_readers(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("subgraph_depth2img.json"), built_in)
    assert prompt["9"]["inputs"]["depth"] == prompt["12"]["inputs"]["depth"] == ["20:22", 0]


def test_a_muted_instance_is_left_out_with_its_inner_nodes_and_what_needs_it(built_in: NodeRegistry) -> None:
    workflow = load("subgraph_depth2img.json")
    next(entry for entry in workflow["nodes"] if entry["id"] == 30)["mode"] = 2
    prompt = workflow_to_prompt(workflow, built_in)
    assert not any(node_id.startswith("30:") for node_id in prompt)
    assert {"9", "10", "11"}.isdisjoint(prompt), "the sampler needed the muted prompts, and the save it"
    assert {"12", "13"} <= set(prompt), "the depth branch did not need them"


def test_nested_subgraphs_run_under_the_ids_of_every_instance_on_the_way(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("nested_subgraph.json"), built_in)
    assert set(prompt) == {"1", "2", "50:51:53", "50:52", "12", "13"}
    assert prompt["50:51:53"]["inputs"]["multiple"] == 64, "the outermost instance's value reaches through"


def test_a_bypassed_inner_node_passes_its_input_through(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("nested_subgraph.json"), built_in)
    assert "50:51:54" not in prompt, "the bypassed ImageInvert does not run"
    assert prompt["50:52"]["inputs"]["image"] == ["50:51:53", 0], "its reader takes what fed it"


def test_a_group_node_runs_its_inner_nodes_by_their_place_in_the_group(built_in: NodeRegistry) -> None:
    prompt = workflow_to_prompt(load("group_node.json"), built_in)
    assert prompt == flat_depth2img({"5": "30:0", "6": "30:1"}), "the group's widget values set the texts"


def test_a_group_node_of_the_older_workflow_slash_type_converts_the_same(built_in: NodeRegistry) -> None:
    workflow = load("group_node.json")
    next(entry for entry in workflow["nodes"] if entry["id"] == 30)["type"] = "workflow/Prompts"
    assert workflow_to_prompt(workflow, built_in) == load("group_node.prompt.json")


# How values and links are resolved, on the test node pack.


def test_an_unlinked_instance_input_takes_the_instance_s_widget_value() -> None:
    prompt = workflow_to_prompt(workflow_with([adder()], adder_instance(None, [7])), REGISTRY)
    assert prompt["5:11"]["inputs"] == {"a": 7, "b": 1}
    assert prompt["6"]["inputs"]["value"] == ["5:11", 0]


def test_an_instance_input_linked_from_outside_wins_over_its_widget_value() -> None:
    prompt = workflow_to_prompt(workflow_with([adder()], adder_instance(2, [7])), REGISTRY)
    assert prompt["5:11"]["inputs"]["a"] == ["1", 0]


def test_without_a_stored_value_every_widget_an_input_feeds_gets_the_first_ones_value() -> None:
    subgraph = definition(
        SUB,
        [
            node(11, "Add", [4, 1], inputs=(("a", "INT", 101),), outputs=("INT",)),
            node(12, "Add", [9, 1], inputs=(("a", "INT", 102), ("b", "INT", 103)), outputs=("INT",)),
        ],
        [
            link(101, -10, 0, 11, 0),
            link(102, -10, 0, 12, 0),
            link(103, 11, 0, 12, 1),
            link(104, 12, 0, -20, 0),
        ],
    )
    prompt = workflow_to_prompt(workflow_with([subgraph], adder_instance(None)), REGISTRY)
    assert prompt["5:11"]["inputs"]["a"] == prompt["5:12"]["inputs"]["a"] == 4, (
        "the instance's widget shows the first inner widget's value, and hands it to both"
    )


def test_an_input_passed_straight_through_to_an_output_reaches_the_reader() -> None:
    subgraph = definition(SUB, [], [link(101, -10, 0, -20, 0)])
    prompt = workflow_to_prompt(workflow_with([subgraph], adder_instance()), REGISTRY)
    assert prompt["6"]["inputs"]["value"] == ["1", 0]


def test_a_bypassed_instance_passes_its_input_of_the_same_type_through() -> None:
    prompt = workflow_to_prompt(workflow_with([adder()], adder_instance(mode=4)), REGISTRY)
    assert set(prompt) == {"1", "6"} and prompt["6"]["inputs"]["value"] == ["1", 0]


def test_a_legacy_proxy_widget_sets_the_inner_widget_it_names() -> None:
    instance = adder_instance(2, [50])
    instance["properties"] = {"proxyWidgets": [["11", "b"]]}
    prompt = workflow_to_prompt(workflow_with([adder()], instance), REGISTRY)
    assert prompt["5:11"]["inputs"] == {"a": ["1", 0], "b": 50}


def test_an_inner_node_whose_id_is_taken_is_renumbered_after_the_last_node_id() -> None:
    subgraph = adder()
    subgraph["nodes"][0]["id"] = 6  # Show 6 has it
    subgraph["links"] = [link(101, -10, 0, 6, 0), link(102, 6, 0, -20, 0)]
    prompt = workflow_to_prompt(workflow_with([subgraph], adder_instance()), REGISTRY)
    assert "5:7" in prompt and prompt["6"]["inputs"]["value"] == ["5:7", 0], (
        "as the front end does: the next id after last_node_id (6)"
    )


def test_a_muted_inner_node_is_left_out_with_what_needs_it() -> None:
    subgraph = adder()
    subgraph["nodes"][0]["mode"] = 2
    prompt = workflow_to_prompt(workflow_with([subgraph], adder_instance()), REGISTRY)
    assert set(prompt) == {"1"}


def sum_group(b_link: int | None) -> dict[str, Any]:
    """A legacy group "Sum": Number 0 → Add 1's `a` inside; Add's `b`, converted to an input, is the
    group's one input; Add's output its one output. Number 1 → group 5 → Show 6."""
    inner = [
        node(0, "Number", [2], outputs=("INT",)),
        node(1, "Add", [0, 1], inputs=(("a", "INT", 40), ("b", "INT", 41)), outputs=("INT",)),
    ]
    for slot in inner[1]["inputs"]:
        slot["widget"] = {"name": slot["name"]}  # converted widgets, as the old front end wrote them
    group = node(5, "workflow>Sum", [5, "fixed", 7], inputs=(("b", "INT", b_link),), outputs=("INT",))
    workflow = workflow_with([], group)
    workflow["extra"] = {"groupNodes": {"Sum": {"nodes": inner, "links": [[0, 0, 1, 0, 1, "INT"]]}}}
    return workflow


def test_a_group_node_s_widgets_set_its_inner_widgets_and_its_inputs_feed_them() -> None:
    prompt = workflow_to_prompt(sum_group(2), REGISTRY)
    assert prompt["5:0"]["inputs"] == {"value": 5}, "the group's first widget (its control value skipped)"
    assert prompt["5:1"]["inputs"] == {"a": ["5:0", 0], "b": ["1", 0]}
    assert prompt["6"]["inputs"]["value"] == ["5:1", 0]


def test_a_group_node_s_unlinked_converted_input_takes_the_group_s_widget_value() -> None:
    prompt = workflow_to_prompt(sum_group(None), REGISTRY)
    assert prompt["5:1"]["inputs"] == {"a": ["5:0", 0], "b": 7}


# Refusals.


def test_a_definition_without_an_id_is_refused_saying_where_it_is() -> None:
    with pytest.raises(WorkflowError, match=r"definitions\.subgraphs\[0\] \('Adder'\) has no id"):
        workflow_to_prompt(workflow_with([definition(None, [], [])], adder_instance()), REGISTRY)


def test_a_link_from_a_node_missing_from_the_subgraph_is_refused() -> None:
    subgraph = adder()
    subgraph["links"].append(link(103, 99, 0, 11, 1))
    with pytest.raises(
        WorkflowError, match=r"subgraph 'Adder': link 103 comes from node 99, which is not in"
    ):
        workflow_to_prompt(workflow_with([subgraph], adder_instance()), REGISTRY)


def test_subgraphs_that_contain_each_other_are_refused() -> None:
    first = definition(SUB, [node(11, OTHER, inputs=(), outputs=("INT",))], [], name="First")
    second = definition(OTHER, [node(21, SUB, inputs=(), outputs=("INT",))], [], name="Second")
    with pytest.raises(WorkflowError) as refused:
        workflow_to_prompt(workflow_with([first, second], adder_instance()), REGISTRY)
    message = str(refused.value)
    assert "subgraphs contain themselves" in message and "'First' holds node 11" in message
    assert "'Second' holds node 21" in message and "delete one of these nodes" in message


def test_an_input_that_feeds_itself_through_a_pass_through_is_refused() -> None:
    subgraph = definition(SUB, [], [link(101, -10, 0, -20, 0)])
    workflow = workflow_with([subgraph], adder_instance(4))
    workflow["links"].append([4, 5, 0, 5, 0, "INT"])
    workflow["nodes"][2]["inputs"][0]["link"] = 4
    with pytest.raises(WorkflowError, match="feeds itself"):
        workflow_to_prompt(workflow, REGISTRY)


def test_an_inner_node_of_an_unknown_type_is_named_by_its_execution_id() -> None:
    subgraph = adder()
    subgraph["nodes"][0]["type"] = "Addd"
    with pytest.raises(WorkflowError, match=r"node 5:11 \('Addd'\)"):
        workflow_to_prompt(workflow_with([subgraph], adder_instance()), REGISTRY)


def test_an_instance_of_a_missing_definition_says_so() -> None:
    with pytest.raises(WorkflowError, match="a subgraph whose definition is missing"):
        workflow_to_prompt(workflow_with([], adder_instance()), REGISTRY)


def test_a_group_node_link_between_missing_inner_nodes_is_refused(built_in: NodeRegistry) -> None:
    workflow = copy.deepcopy(load("group_node.json"))
    workflow["extra"]["groupNodes"]["Prompts"]["links"].append([0, 0, 7, 0, 5, "CONDITIONING"])
    with pytest.raises(WorkflowError, match=r"group node 'Prompts': links\[2\]"):
        workflow_to_prompt(workflow, built_in)

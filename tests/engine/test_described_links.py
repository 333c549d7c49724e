"""Validation follows what outputs describe along the links, so a node's rule across its inputs (a
sampler that needs a depth model) refuses a wrong pairing before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Input, NodeOutput, NodeRegistry, Output, Unusable, node
from depthgraph.engine.core.validation import Code, validate

CALLS: list[str] = []


def describe_kind(known: Mapping[str, Any], files: FileStore) -> Any:
    return {"kind": known["kind"]}


def describe_extra(known: Mapping[str, Any], files: FileStore) -> Any:
    if known["kind"] == "plain":
        return Unusable("a plain thing has no extra: use another source for it")
    return {"kind": known["kind"]}


def describe_passed_on(known: Mapping[str, Any], files: FileStore) -> Any:
    return known.get("thing")  # what it was given, if known


def describe_broken(known: Mapping[str, Any], files: FileStore) -> Any:
    raise RuntimeError("a describe that fails tells nothing")


@node(
    "MakeThing",
    category="test",
    description="Makes a thing of a kind, and its extra.",
    inputs=[Input.combo("kind", ["plain", "fancy"])],
    outputs=[Output("THING", describe=describe_kind), Output("EXTRA", describe=describe_extra)],
)
def make_thing(kind: str) -> tuple[str, str]:
    CALLS.append("MakeThing")
    return kind, kind


@node(
    "PassThing",
    category="test",
    description="Passes a thing on.",
    inputs=[Input.socket("thing", "THING")],
    outputs=[Output("THING", describe=describe_passed_on)],
)
def pass_thing(thing: str) -> tuple[str]:
    return (thing,)


@node(
    "Mystery",
    category="test",
    description="A thing nothing is known of before it runs.",
    outputs=[Output("THING", describe=describe_broken)],
)
def mystery() -> tuple[str]:
    return ("plain",)


def needs_fancy(known: Mapping[str, Any], files: FileStore) -> Mapping[str, str]:
    thing = known.get("thing")
    if thing is not None and thing["kind"] != "fancy":
        return {"thing": f"this node takes fancy things, not {thing['kind']} ones"}
    if known["amount"] > 3 and thing is not None:
        return {"amount": "a fancy thing takes at most 3"}
    return {}


@node(
    "UseFancy",
    category="test",
    description="Uses a fancy thing.",
    inputs=[
        Input.socket("thing", "THING"),
        Input.int("amount", 1),
        Input.socket("extra", "EXTRA", optional=True),
    ],
    output_node=True,
    inputs_check=needs_fancy,
)
def use_fancy(thing: str, amount: int, extra: str | None = None) -> NodeOutput:
    CALLS.append("UseFancy")
    return NodeOutput((), {})


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    for definition in (make_thing, pass_thing, mystery, use_fancy):
        registry.add(definition)
    return registry


def prompt(kind: str, via: str | None = None, **use: Any) -> dict[str, Any]:
    graph: dict[str, Any] = {"1": {"class_type": "MakeThing", "inputs": {"kind": kind}}}
    source = ["1", 0]
    if via is not None:
        graph["2"] = {"class_type": via, "inputs": {"thing": ["1", 0]} if via == "PassThing" else {}}
        source = ["2", 0]
    graph["3"] = {"class_type": "UseFancy", "inputs": {"thing": source, "amount": 1, **use}}
    return graph


def test_a_nodes_rule_sees_what_its_linked_inputs_describe(registry: NodeRegistry) -> None:
    (issue,) = validate(prompt("plain"), registry).issues
    assert (issue.code, issue.node_id, issue.input_name) == (Code.INCOMPATIBLE_INPUT, "3", "thing")
    assert issue.message == "this node takes fancy things, not plain ones"
    assert validate(prompt("fancy"), registry).ok


def test_descriptions_follow_links_through_nodes_that_pass_them_on(registry: NodeRegistry) -> None:
    (issue,) = validate(prompt("plain", via="PassThing"), registry).issues
    assert issue.input_name == "thing"


def test_a_problem_with_a_typed_in_value_is_a_custom_validation_failure(registry: NodeRegistry) -> None:
    (issue,) = validate(prompt("fancy", amount=5), registry).issues
    assert (issue.code, issue.input_name) == (Code.CUSTOM_VALIDATION_FAILED, "amount")


def test_a_link_from_an_unusable_output_is_refused_with_its_reason(registry: NodeRegistry) -> None:
    issues = validate(prompt("plain", extra=["1", 1]), registry).issues
    (issue,) = [issue for issue in issues if issue.input_name == "extra"]
    assert (issue.code, issue.node_id, issue.input_name) == (Code.INCOMPATIBLE_INPUT, "3", "extra")
    assert "has no extra" in issue.message
    assert validate(prompt("fancy", extra=["1", 1]), registry).ok


def test_what_cannot_be_told_before_running_is_left_to_the_run(registry: NodeRegistry) -> None:
    assert validate(prompt("plain", via="Mystery"), registry).ok
    assert CALLS == []  # validation runs no node

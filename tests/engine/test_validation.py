"""What validation reports for a broken prompt, and what it hands the scheduler for a good one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.files import FileStore
from engine.graph import ExecutableGraph, Link
from engine.registry import NodeRegistry
from engine.validation import Code, Validation, validate
from tests.engine import node_pack
from tests.engine.conftest import Runner

Prompt = dict[Any, Any]
NUMBER = {"class_type": "Number", "inputs": {}}
Where = tuple[Code, str | None, str | None]


def show(source: str | int) -> dict[str, Any]:
    return {"class_type": "Show", "inputs": {"value": [source, 0]}}


def shown(class_type: str, **inputs: Any) -> Prompt:
    """Node 1 of `class_type` with `inputs`, shown by node 2."""
    return {"1": {"class_type": class_type, "inputs": inputs}, "2": show("1")}


def where(validation: Validation) -> list[Where]:
    return [(issue.code, issue.node_id, issue.input_name) for issue in validation.issues]


def runnable(validation: Validation) -> ExecutableGraph:
    assert validation.graph is not None, [str(issue) for issue in validation.issues]
    return validation.graph


def assert_sources_first(graph: ExecutableGraph) -> None:
    """Every node of the graph, each after the nodes it reads from."""
    assert sorted(graph.order) == sorted(graph.nodes)
    position = {node_id: index for index, node_id in enumerate(graph.order)}
    for node in graph.nodes.values():
        assert all(position[link.source] < position[node.node_id] for link in node.links.values())


def assert_one_issue(validation: Validation, expected: Where, words: str) -> None:
    """The prompt is refused for exactly one reason, at `expected`, with `words` in the message."""
    assert validation.graph is None
    assert not validation.ok
    assert where(validation) == [expected], [str(issue) for issue in validation.issues]
    assert words in validation.issues[0].message


# Every error code, each from the smallest graph that shows it.


@pytest.mark.parametrize(
    ("prompt", "node_id", "words"),
    [
        ([shown("Number")], None, "got list"),
        ({}, None, "got an empty object"),
        ({"1": "Number"}, "1", "node entry is not an object"),
        ({"1": {"inputs": {}}}, "1", "node has no 'class_type'"),
        ({"1": {"class_type": "Number", "inputs": [1]}}, "1", "'inputs' must be an object"),
        ({"1": {"class_type": "Number", "inputs": None}}, "1", "'inputs' must be an object"),
    ],
    ids=["list", "empty", "entry-not-object", "no-class-type", "inputs-list", "inputs-null"],
)
def test_a_prompt_of_the_wrong_shape_is_an_invalid_prompt(
    prompt: Any, node_id: str | None, words: str, registry: NodeRegistry, files: FileStore
) -> None:
    assert_one_issue(validate(prompt, registry, files), (Code.INVALID_PROMPT, node_id, None), words)


def test_a_target_that_is_not_in_the_graph_is_an_invalid_prompt(
    registry: NodeRegistry, files: FileStore
) -> None:
    validation = validate(shown("Number"), registry, files, targets=["9"])
    assert_one_issue(validation, (Code.INVALID_PROMPT, "9", None), "target node 9 is not in the graph")
    # A target that is there but broken is blamed only for what is wrong with it.
    validation = validate(shown("Mystery"), registry, files, targets=["1"])
    assert where(validation) == [(Code.UNKNOWN_NODE_TYPE, "1", None)]


def test_an_unknown_node_type_is_named(registry: NodeRegistry, files: FileStore) -> None:
    validation = validate(shown("Mystery"), registry, files)
    assert_one_issue(validation, (Code.UNKNOWN_NODE_TYPE, "1", None), "unknown node type 'Mystery'")
    assert validation.issues[0].class_type == "Mystery"


def test_a_required_socket_without_a_link_is_missing(registry: NodeRegistry, files: FileStore) -> None:
    validation = validate({"1": {"class_type": "Show", "inputs": {}}}, registry, files)
    assert_one_issue(validation, (Code.REQUIRED_INPUT_MISSING, "1", "value"), "this input is required")


@pytest.mark.parametrize(
    ("link", "words"),
    [
        (["9", 0], "links to node 9, which is not in the graph"),
        (["1", 1], "links to output 1 of node 1 (Number), which has 1 output(s)"),
        (["1", -1], "links to output -1 of node 1 (Number)"),
        (["1"], "a link is [node id, output index], got ['1']"),
        (["1", "x"], "a link is [node id, output index], got ['1', 'x']"),
        (["1", 0, 0], "a link is [node id, output index]"),
        (["1", True], "a link is [node id, output index]"),
        ([None, 0], "a link is [node id, output index]"),
    ],
)
def test_a_broken_link_is_a_bad_linked_input(
    link: list[Any], words: str, registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {"1": NUMBER, "2": {"class_type": "Show", "inputs": {"value": link}}}
    assert_one_issue(validate(prompt, registry, files), (Code.BAD_LINKED_INPUT, "2", "value"), words)


def test_text_linked_into_a_number_input_is_a_type_mismatch(registry: NodeRegistry, files: FileStore) -> None:
    prompt = {
        "1": {"class_type": "Text", "inputs": {}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
        "3": show("2"),
    }
    words = "expects INT but is linked to output 0 of node 1 (Text), which gives STRING"
    assert_one_issue(validate(prompt, registry, files), (Code.RETURN_TYPE_MISMATCH, "2", "a"), words)


NOT_TYPE, BELOW, ABOVE, NOT_LISTED = (
    Code.INVALID_INPUT_TYPE,
    Code.VALUE_SMALLER_THAN_MIN,
    Code.VALUE_BIGGER_THAN_MAX,
    Code.VALUE_NOT_IN_LIST,
)


@pytest.mark.parametrize(
    ("class_type", "name", "value", "code", "words"),
    [
        ("Number", "value", "abc", NOT_TYPE, "'abc' is not a whole number"),
        ("Number", "value", True, NOT_TYPE, "True is not a whole number"),
        ("Number", "value", 2.5, NOT_TYPE, "2.5 is not a whole number"),
        ("Number", "value", {"v": 1}, NOT_TYPE, "{'v': 1} is not a whole number"),
        ("Scale", "factor", float("nan"), NOT_TYPE, "nan is not a number"),
        ("Scale", "factor", "inf", NOT_TYPE, "'inf' is not a number"),
        pytest.param("Scale", "factor", 10**400, NOT_TYPE, "0000 is not a number", id="10**400"),
        ("Text", "shout", "maybe", NOT_TYPE, "'maybe' is not true or false"),
        ("Hold", "previous", "x", NOT_TYPE, "'x' is not a link from a node's HOLDER output"),
        ("Number", "value", -1001, BELOW, "-1001 is below the minimum -1000"),
        ("Scale", "factor", "-0.5", BELOW, "-0.5 is below the minimum 0.0"),
        ("Add", "b", 101, ABOVE, "101 is above the maximum 100"),
        ("Scale", "factor", 10.5, ABOVE, "10.5 is above the maximum 10.0"),
        ("Text", "style", "fancy", NOT_LISTED, "'fancy' is not one of the choices ['plain', 'quoted']"),
        ("ReadText", "name", "a.txt", NOT_LISTED, "'a.txt' is not available: there are no choices"),
    ],
)
def test_a_value_the_input_cannot_take_is_refused_with_the_reason(
    class_type: str, name: str, value: Any, code: Code, words: str, registry: NodeRegistry, files: FileStore
) -> None:
    assert_one_issue(validate(shown(class_type, **{name: value}), registry, files), (code, "1", name), words)


def test_a_file_combo_offers_the_text_files_in_the_input_folder(
    registry: NodeRegistry, files: FileStore
) -> None:
    for name in ("a.txt", "b.txt", "picture.png"):
        (files.input_dir / name).write_text(name)
    assert validate(shown("ReadText", name="b.txt"), registry, files).ok
    validation = validate(shown("ReadText", name="c.txt"), registry, files)
    words = "'c.txt' is not one of the choices ['a.txt', 'b.txt']"
    assert_one_issue(validation, (NOT_LISTED, "1", "name"), words)


@pytest.mark.parametrize(
    "loop",
    [{"2": "2"}, {"2": "3", "3": "2"}, {"2": "4", "3": "2", "4": "3"}],
    ids=["self", "two-nodes", "three-nodes"],
)
def test_a_loop_feeding_an_output_reports_every_node_on_it_and_no_other(
    loop: dict[str, str], registry: NodeRegistry, files: FileStore
) -> None:
    # 1 feeds the loop from outside and 9 reads it: neither is on the loop.
    prompt: Prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}}, "9": show("2")}
    for node_id, source in loop.items():
        prompt[node_id] = {"class_type": "Add", "inputs": {"a": [source, 0], "b": ["1", 0]}}
    validation = validate(prompt, registry, files)
    assert validation.graph is None
    assert sorted(where(validation)) == [(Code.DEPENDENCY_CYCLE, node_id, None) for node_id in sorted(loop)]
    assert all("loops back on itself" in issue.message for issue in validation.issues)


def test_a_graph_without_an_output_node_would_do_nothing(registry: NodeRegistry, files: FileStore) -> None:
    validation = validate({"1": NUMBER}, registry, files)
    assert_one_issue(validation, (Code.PROMPT_NO_OUTPUTS, None, None), "the graph has no output node")


def test_every_problem_is_reported_at_once(registry: NodeRegistry, files: FileStore) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 2_000_000}},
        "2": {"class_type": "Add", "inputs": {"a": ["8", 0], "b": 500}},
        "3": {"class_type": "Show", "inputs": {}},
        "4": {"class_type": "Mystery", "inputs": {}},
        "5": show("1"),
        "6": show("2"),
    }
    assert set(where(validate(prompt, registry, files))) == {
        (Code.VALUE_BIGGER_THAN_MAX, "1", "value"),
        (Code.BAD_LINKED_INPUT, "2", "a"),
        (Code.VALUE_BIGGER_THAN_MAX, "2", "b"),
        (Code.REQUIRED_INPUT_MISSING, "3", "value"),
        (Code.UNKNOWN_NODE_TYPE, "4", None),
    }


def test_node_errors_have_comfyuis_shape(registry: NodeRegistry, files: FileStore) -> None:
    validation = validate({"1": {"class_type": "Show", "inputs": {}}}, registry, files)
    error = {
        "type": "required_input_missing",
        "message": "this input is required",
        "details": "node 1 (Show), input 'value': this input is required [required_input_missing]",
        "extra_info": {"input_name": "value"},
    }
    assert validation.node_errors() == {
        "1": {"errors": [error], "dependent_outputs": [], "class_type": "Show"}
    }
    # A problem with the whole prompt belongs to no node.
    assert validate({"1": {"class_type": "Number"}}, registry, files).node_errors() == {}


# What a user relies on when typing values in.


@pytest.mark.parametrize(
    ("class_type", "name", "given", "held"),
    [
        ("Number", "value", "42", 42),
        ("Number", "value", -1000, -1000),  # the bounds themselves are allowed
        ("Add", "b", 100, 100),
        ("Number", "value", " 7 ", 7),
        ("Number", "value", 3.0, 3),
        ("Number", "value", "3.0", 3),
        ("Scale", "factor", "2.5", 2.5),
        ("Scale", "factor", 2, 2.0),
        ("Text", "shout", "yes", True),
        ("Text", "shout", "false", False),
        ("Text", "shout", 1, True),
        ("Text", "text", 7, "7"),
        ("Text", "text", 2.5, "2.5"),
    ],
)
def test_typed_in_values_are_held_as_their_declared_type(
    class_type: str, name: str, given: Any, held: Any, registry: NodeRegistry, files: FileStore
) -> None:
    value = runnable(validate(shown(class_type, **{name: given}), registry, files)).nodes["1"].constants[name]
    assert (value, type(value)) == (held, type(held))


def test_numbers_typed_as_text_run_as_numbers(run: Runner) -> None:
    prompt = {**shown("Number", value="41"), "3": show("2")}
    prompt["2"] = {"class_type": "Add", "inputs": {"a": ["1", 0], "b": "1"}}
    assert run(prompt).outputs == {"3": {"text": ["42"]}}


def test_omitted_widgets_take_their_defaults_and_omitted_optional_sockets_stay_absent(
    registry: NodeRegistry, files: FileStore
) -> None:
    graph = runnable(validate(shown("Text"), registry, files))
    assert graph.nodes["1"].constants == {"text": "hello", "shout": False, "style": "plain"}
    assert graph.nodes["1"].links == {}


def test_a_node_no_output_needs_is_not_checked_but_an_unknown_type_anywhere_is(
    registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {**shown("Number", value=5), "3": {"class_type": "Number", "inputs": {"value": "abc"}}}
    assert list(runnable(validate(prompt, registry, files)).nodes) == ["1", "2"]

    prompt["4"] = {"class_type": "Mystery", "inputs": {}}
    assert where(validate(prompt, registry, files)) == [(Code.UNKNOWN_NODE_TYPE, "4", None)]


def test_targets_limit_what_is_checked(registry: NodeRegistry, files: FileStore) -> None:
    prompt = {**shown("Number", value=5), "3": {"class_type": "Add", "inputs": {"b": 999}}, "4": show("3")}
    assert where(validate(prompt, registry, files)) == [(Code.VALUE_BIGGER_THAN_MAX, "3", "b")]
    graph = runnable(validate(prompt, registry, files, targets=["2"]))
    assert (graph.order, graph.targets) == (["1", "2"], ["2"])


def test_whole_number_ids_and_links_are_read_as_text_and_unknown_inputs_are_ignored(
    run: Runner, registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {
        1: {"class_type": "Number", "inputs": {"value": 5}},
        2: {"class_type": "Add", "inputs": {"a": [1, 0], "b": 2, "colour": "blue"}},
        3: show(2),
    }
    graph = runnable(validate(prompt, registry, files, targets=[3]))
    assert (graph.order, graph.targets) == (["1", "2", "3"], ["3"])
    assert (graph.nodes["2"].links, graph.nodes["2"].constants) == ({"a": Link("1", 0)}, {"b": 2})
    assert run(prompt).outputs == {"3": {"text": ["7"]}}
    # A link to a numbered node that is broken blames that node only.
    prompt[1]["class_type"] = "Mystery"
    assert where(validate(prompt, registry, files)) == [(Code.UNKNOWN_NODE_TYPE, "1", None)]


def test_independent_nodes_keep_the_file_order(registry: NodeRegistry, files: FileStore) -> None:
    prompt = {"5": NUMBER, "2": NUMBER, "9": show("5"), "1": show("2")}
    assert runnable(validate(prompt, registry, files)).order == ["5", "2", "9", "1"]


def test_a_file_listing_readers_before_their_sources_still_gets_a_valid_order(
    registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {"4": show("3"), "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}}}
    prompt |= {"1": NUMBER, "2": NUMBER, "6": show("2")}
    graph = runnable(validate(prompt, registry, files))
    assert sorted(graph.nodes) == ["1", "2", "3", "4", "6"]
    assert_sources_first(graph)
    assert graph.order.index("1") < graph.order.index("2")  # independent of each other: file order


# Whatever arrives (from a file, a client, a fuzzer), validation answers with issues, never a crash.

INPUTS = {
    definition.class_name: [spec.name for spec in definition.inputs]
    for definition in node_pack.make_registry()
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
node_ids = st.sampled_from(["1", "2", "3"]) | st.integers(1, 3)
links = st.tuples(node_ids, st.integers(-1, 1)).map(list) | st.lists(node_ids | json_values, max_size=3)
values = st.integers(-2000, 2000) | st.sampled_from(["plain", "3", "yes", "a.txt"]) | links | json_values


def node_of(class_type: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from([*INPUTS.get(class_type, []), "extra"])
    return st.fixed_dictionaries(
        {"class_type": st.just(class_type)}, optional={"inputs": st.dictionaries(names, values, max_size=4)}
    )


nodes = st.sampled_from([*INPUTS, "Mystery"]).flatmap(node_of)
# Random nodes and one output node reading one of them, so that some prompts are valid.
prompts = st.builds(
    lambda prompt, source: {**prompt, "9": show(source)}, st.dictionaries(node_ids, nodes), node_ids
)


def assert_answered(validation: Validation) -> None:
    """Either a runnable graph and no issues, or issues that each have a code and say what is wrong."""
    if validation.graph is not None:
        assert validation.issues == []
        assert_sources_first(validation.graph)
    else:
        assert validation.issues
        assert all(
            isinstance(issue.code, Code) and issue.message and str(issue) for issue in validation.issues
        )
        validation.node_errors()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=prompts)
def test_validating_any_prompt_of_known_nodes_answers_without_crashing(
    prompt: Prompt, registry: NodeRegistry, files: FileStore
) -> None:
    assert_answered(validate(prompt, registry, files))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=json_values | st.dictionaries(node_ids, nodes | json_values, max_size=4))
def test_validating_any_json_value_answers_without_crashing(
    prompt: Any, registry: NodeRegistry, files: FileStore
) -> None:
    assert_answered(validate(prompt, registry, files))


def test_problems_above_an_unknown_node_are_still_reported(registry: NodeRegistry, files: FileStore) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 5_000_000}},
        "2": {"class_type": "Mystery", "inputs": {"x": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    codes = {(issue.code, issue.node_id) for issue in validate(prompt, registry, files).issues}
    assert codes == {(Code.UNKNOWN_NODE_TYPE, "2"), (Code.VALUE_BIGGER_THAN_MAX, "1")}

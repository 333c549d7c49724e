"""What validation reports for a broken prompt, and what it hands the scheduler for a good one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.core.coercion import shown as shown_value
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.graph import ExecutableGraph, Link
from depthgraph.engine.core.limits import Limits
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.core.validation import Code, Validation, validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
        pytest.param(
            "Scale",
            "factor",
            10**400,
            NOT_TYPE,
            "<a whole number of 401 digits> is not a number",
            id="10**400",
        ),
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


# Output-size budgets: what a node's constants ask for is refused before anything runs.


def test_a_node_asking_for_more_pixels_than_the_budget_is_refused_naming_size_budget_and_setting(
    registry: NodeRegistry, files: FileStore
) -> None:
    limits = Limits(max_output_pixels=10_000)
    prompt = {"1": {"class_type": "Canvas", "inputs": {"width": 2000, "height": 1000}}, "2": show("1")}
    validation = validate(prompt, registry, files, limits=limits)
    assert_one_issue(validation, (Code.OUTPUT_TOO_LARGE, "1", None), "2,000,000 pixels (2 MP)")
    message = validation.issues[0].message
    assert "budget of 10,000 pixels" in message and "max_output_pixels" in message
    assert str(validation.issues[0]).startswith("node 1 (Canvas): this node would make")

    prompt["1"]["inputs"] = {"width": 100, "height": 100}  # exactly the budget
    assert validate(prompt, registry, files, limits=limits).ok


def test_without_limits_the_default_budget_of_64_megapixels_applies(
    registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {"1": {"class_type": "Canvas", "inputs": {"width": 8192, "height": 8192}}, "2": show("1")}
    assert validate(prompt, registry, files).ok
    prompt["1"]["inputs"]["height"] = 8193
    assert where(validate(prompt, registry, files)) == [(Code.OUTPUT_TOO_LARGE, "1", None)]


def test_an_output_size_that_depends_on_a_link_is_left_to_the_run(
    registry: NodeRegistry, files: FileStore
) -> None:
    limits = Limits(max_output_pixels=10)
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 1}},
        "2": {"class_type": "Canvas", "inputs": {"width": ["1", 0], "height": 3}},
        "3": {"class_type": "Enlarge", "inputs": {"picture": ["2", 0], "factor": 1000}},
        "4": show("3"),
    }
    assert validate(prompt, registry, files, limits=limits).ok


def test_a_node_with_a_bad_input_is_not_also_blamed_for_its_size(
    registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {"1": {"class_type": "Canvas", "inputs": {"width": 10**7, "height": 10**6}}, "2": show("1")}
    assert where(validate(prompt, registry, files)) == [(Code.VALUE_BIGGER_THAN_MAX, "1", "width")]


# Filename prefixes that would leave the output folder are refused before anything runs.


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("../../x", "climbs out of its folder with '..'"),
        ("renders/../../x", "climbs out of its folder with '..'"),
        ("/tmp/x", "is absolute"),
        ("C:\\x", "is absolute"),
        ("C:x", "is absolute"),
        ("\\\\server\\share\\x", "is absolute"),
        ("cat\x00.png", "contains a NUL byte"),
        ("outside/cat", "leads outside the output folder through a symlink in 'outside'"),
        ("outside/deeper/cat", "leads outside the output folder through a symlink in 'outside/deeper'"),
    ],
)
def test_a_filename_prefix_leaving_the_output_folder_is_refused_at_validation(
    prefix: str, words: str, registry: NodeRegistry, files: FileStore, tmp_path: Path
) -> None:
    files.output_dir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (files.output_dir / "outside").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    prompt = {
        "1": NUMBER,
        "2": {"class_type": "SaveAs", "inputs": {"value": ["1", 0], "filename_prefix": prefix}},
    }
    validation = validate(prompt, registry, files)
    assert_one_issue(validation, (Code.CUSTOM_VALIDATION_FAILED, "2", "filename_prefix"), words)
    assert "inside the output folder" in validation.issues[0].message
    assert not any((tmp_path / "elsewhere").iterdir()) and sorted(files.output_dir.iterdir()) == [
        files.output_dir / "outside"
    ]


@pytest.mark.parametrize("prefix", ["cat", "renders/cat", "inside/cat", "", "renders\\cat", "a/b/c/d"])
def test_a_filename_prefix_inside_the_output_folder_is_accepted(
    prefix: str, registry: NodeRegistry, files: FileStore
) -> None:
    files.output_dir.mkdir()
    (files.output_dir / "real").mkdir()
    (files.output_dir / "inside").symlink_to(files.output_dir / "real", target_is_directory=True)
    prompt = {
        "1": NUMBER,
        "2": {"class_type": "SaveAs", "inputs": {"value": ["1", 0], "filename_prefix": prefix}},
    }
    assert validate(prompt, registry, files).ok


# Numbers too large to be widget values, and values of any JSON shape, are answered with issues.


@pytest.mark.parametrize(
    ("class_type", "name", "value", "code", "words"),
    [
        ("Number", "value", 10**5000, ABOVE, "<a whole number of 5,001 digits> is above the maximum 1000000"),
        ("Add", "a", 10**5000, ABOVE, "is above the maximum 18446744073709551615"),
        ("Add", "a", -(10**5000), BELOW, "<a negative whole number of 5,001 digits> is below the minimum"),
        ("Add", "a", 2**64, ABOVE, "18446744073709551616 is above the maximum 18446744073709551615"),
        ("Add", "a", 1e300, ABOVE, "<a whole number of 301 digits> is above the maximum"),
        ("Add", "a", float("inf"), NOT_TYPE, "inf is not a whole number"),
        ("Add", "a", float("-inf"), NOT_TYPE, "-inf is not a whole number"),
        ("Add", "a", float("nan"), NOT_TYPE, "nan is not a whole number"),
        ("Add", "a", "1e400", NOT_TYPE, "'1e400' is not a whole number"),
        ("Add", "a", "9" * 5001, NOT_TYPE, "...9999"),
        ("Scale", "factor", 10**5000, NOT_TYPE, "<a whole number of 5,001 digits> is not a number"),
        ("Scale", "factor", float("inf"), NOT_TYPE, "inf is not a number"),
        ("Scale", "factor", "1e400", NOT_TYPE, "'1e400' is not a number"),
        ("Text", "text", 10**5000, NOT_TYPE, "<a whole number of 5,001 digits> is not text"),
    ],
    ids=lambda value: shown_value(value)[:40],
)
def test_numbers_beyond_any_widget_are_refused_with_a_short_message(
    class_type: str, name: str, value: Any, code: Code, words: str, registry: NodeRegistry, files: FileStore
) -> None:
    validation = validate(shown(class_type, **{name: value}), registry, files)
    assert_one_issue(validation, (code, "1", name), words)
    assert len(validation.issues[0].message) < 200


def test_the_largest_64_bit_whole_numbers_are_accepted_where_no_bounds_are_declared(
    registry: NodeRegistry, files: FileStore
) -> None:
    for value in (2**64 - 1, -(2**63)):
        assert runnable(validate(shown("Add", a=value), registry, files)).nodes["1"].constants["a"] == value
    assert where(validate(shown("Add", a=-(2**63) - 1), registry, files)) == [(BELOW, "1", "a")]


def nested(depth: int, make: Any) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (nested(100_000, lambda inner: [inner]), Code.BAD_LINKED_INPUT),
        (nested(100_000, lambda inner: [inner, 0]), Code.BAD_LINKED_INPUT),
        (nested(100_000, lambda inner: {"a": inner}), NOT_TYPE),
        ([["1", 0], 0], Code.BAD_LINKED_INPUT),
        ([[["1", 0]], [0]], Code.BAD_LINKED_INPUT),
        ([10**5000, 0], Code.BAD_LINKED_INPUT),
        (["1", 10**5000], Code.BAD_LINKED_INPUT),
        ([{"1": 0}, 0], Code.BAD_LINKED_INPUT),
        ([1.0, 0], Code.BAD_LINKED_INPUT),
        (["1" * 100_000, 0], Code.BAD_LINKED_INPUT),
    ],
    ids=[
        "deep-list",
        "deep-link",
        "deep-object",
        "link-in-link",
        "lists",
        "huge-id",
        "huge-output",
        "object-id",
        "float-id",
        "long-id",
    ],
)
def test_a_value_of_any_shape_is_an_issue_with_a_short_message_never_a_crash(
    value: Any, code: Code, registry: NodeRegistry, files: FileStore
) -> None:
    prompt = {"1": NUMBER, "2": {"class_type": "Show", "inputs": {"value": value}}}
    if code is NOT_TYPE:
        prompt = shown("Number", value=value)
    validation = validate(prompt, registry, files)
    assert [issue.code for issue in validation.issues] == [code]
    assert len(validation.issues[0].message) < 300


def test_node_ids_and_targets_that_are_not_ids_are_issues(registry: NodeRegistry, files: FileStore) -> None:
    prompt: Prompt = {10**5000: NUMBER, "9": show("1"), "1": NUMBER}
    validation = validate(prompt, registry, files)
    assert where(validation) == [(Code.INVALID_PROMPT, None, None)]
    assert (
        "node ids are text or whole numbers, got <a whole number of 5,001 digits>"
        in validation.issues[0].message
    )
    validation = validate(
        shown("Number"), registry, files, targets=[nested(100_000, lambda inner: [inner]), "2"]
    )
    assert where(validation) == [(Code.INVALID_PROMPT, None, None)]


# Loops are found in time linear in the size of the graph, and named in a short message.


def test_a_loop_is_named_in_link_order_from_the_node_listed_first(
    registry: NodeRegistry, files: FileStore
) -> None:
    prompt: Prompt = {"1": NUMBER, "9": show("2")}
    for node_id, source in {"2": "4", "3": "2", "4": "3"}.items():
        prompt[node_id] = {"class_type": "Add", "inputs": {"a": [source, 0], "b": ["1", 0]}}
    messages = {issue.message for issue in validate(prompt, registry, files).issues}
    assert messages == {"the graph loops back on itself (2 -> 3 -> 4 -> 2); remove one of these links"}


def chain_with_a_back_link(length: int, loop_over_all: bool) -> Prompt:
    """Nodes 1 -> 2 -> ... -> length, shown at the end; node 1 reads back from the last node (a loop
    through them all) or from node 2 (a loop of two with a long chain hanging below it)."""
    back = str(length) if loop_over_all else "2"
    prompt: Prompt = {"1": {"class_type": "Add", "inputs": {"a": [back, 0]}}}
    for index in range(2, length + 1):
        prompt[str(index)] = {"class_type": "Add", "inputs": {"a": [str(index - 1), 0]}}
    prompt["end"] = show(str(length))
    return prompt


def test_a_chain_of_100000_nodes_with_one_back_link_is_reported(
    registry: NodeRegistry, files: FileStore
) -> None:
    validation = validate(chain_with_a_back_link(100_000, loop_over_all=False), registry, files)
    assert where(validation) == [(Code.DEPENDENCY_CYCLE, "1", None), (Code.DEPENDENCY_CYCLE, "2", None)]
    assert validation.issues[0].message == (
        "the graph loops back on itself (1 -> 2 -> 1); remove one of these links"
    )
    validation = validate(chain_with_a_back_link(100_000, loop_over_all=True), registry, files)
    assert len(validation.issues) == 100_000
    assert validation.issues[0].message == (
        "the graph loops back on itself (1 -> 2 -> 3 -> 4 -> 5 -> 6 -> ... (99,988 more) -> 99995 -> 99996 "
        "-> 99997 -> 99998 -> 99999 -> 100000 -> 1); remove one of these links"
    )


class TooMuchWork(Exception):
    pass


def lines_run(work: Any, most: int) -> int:
    """How many Python lines `work()` runs (its own and those of every library it calls), stopping it
    once it has run `most`, so that work growing too fast fails quickly instead of running on."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        count += 1
        if count > most:
            raise TooMuchWork
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("loop_over_all", [False, True], ids=["loop-above-a-chain", "loop-through-all"])
def test_finding_a_loop_takes_work_linear_in_the_size_of_the_graph(
    loop_over_all: bool, registry: NodeRegistry, files: FileStore
) -> None:
    small, large = chain_with_a_back_link(2_000, loop_over_all), chain_with_a_back_link(20_000, loop_over_all)
    small_work = lines_run(lambda: validate(small, registry, files), 1_000 * 2_000)
    # Ten times the nodes: about ten times the work when linear, a hundred times when quadratic.
    large_work = lines_run(lambda: validate(large, registry, files), 12 * small_work)
    assert 8 * small_work < large_work <= 12 * small_work

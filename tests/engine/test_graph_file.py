"""Graph files: what loads, what saves back unchanged, what is refused with a useful message, and how
old files keep loading after the format changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import NodeRegistry
from depthgraph.engine.core.validation import validate
from depthgraph.engine.formats import migrations
from depthgraph.engine.formats.graph_file import (
    GraphDocument,
    GraphFileError,
    dump_graph,
    load_graph,
    new_document,
    parse_graph,
    save_graph,
)
from depthgraph.engine.formats.migrations import FORMAT_VERSION, MigrationError, migrate
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.conftest import Runner

REPOSITORY = Path(__file__).resolve().parents[2]
GOLDEN_V1 = REPOSITORY / "tests" / "golden" / "depthgraph_v1.json"
SHIPPED_GRAPHS = sorted((REPOSITORY / "graphs").glob("*.json"))

PROMPT = {
    "1": {"class_type": "Number", "inputs": {"value": 2}},
    "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}, "_meta": {"title": "Result"}},
}


def depthgraph(**fields: Any) -> dict[str, Any]:
    return {"format": "depthgraph", "version": FORMAT_VERSION, "nodes": PROMPT, **fields}


def refusal(text: str) -> str:
    with pytest.raises(GraphFileError) as raised:
        parse_graph(text, "my.json")
    return str(raised.value)


# Loading and saving changes nothing.


def test_the_repository_ships_graphs() -> None:
    assert SHIPPED_GRAPHS


@pytest.mark.parametrize("path", [*SHIPPED_GRAPHS, GOLDEN_V1], ids=lambda path: path.name)
def test_every_shipped_graph_saves_back_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    document = parse_graph(text, path.name)
    assert document.kind == "depthgraph"
    assert dump_graph(document) == text


@pytest.mark.parametrize(
    "data",
    [
        {"2": PROMPT["2"], "1": PROMPT["1"]},
        depthgraph(title="Two", editor={"zoom": 1.5}, layout={"groups": []}, notes=["kept", 1]),
        {"version": FORMAT_VERSION, "x-origin": "elsewhere", "format": "depthgraph", "nodes": PROMPT},
    ],
    ids=["api", "depthgraph-with-unknown-keys", "depthgraph-in-another-key-order"],
)
def test_a_file_saves_back_with_the_same_keys_in_the_same_order(data: dict[str, Any]) -> None:
    saved = json.loads(dump_graph(parse_graph(json.dumps(data))))
    assert saved == data
    assert list(saved) == list(data)
    assert "description" not in saved


def test_a_new_document_loads_back_as_it_was_made(tmp_path: Path) -> None:
    document = new_document(PROMPT, title="Two", description="Shows the number two.")
    save_graph(document, tmp_path / "two.json")
    loaded = load_graph(tmp_path / "two.json")
    assert (loaded.kind, loaded.prompt, loaded.title, loaded.description) == (
        "depthgraph",
        PROMPT,
        "Two",
        "Shows the number two.",
    )
    assert loaded.layout == {}
    assert json.loads(dump_graph(loaded))["version"] == FORMAT_VERSION


def test_edits_to_a_document_are_what_gets_saved() -> None:
    document = parse_graph(json.dumps(depthgraph(title="Old", extra=True)))
    document.title, document.description = "New", "Now described."
    document.layout = {"nodes": {"1": {"pos": [10, 20]}}, "groups": []}
    loaded = parse_graph(json.dumps(document.to_json()))
    assert (loaded.title, loaded.description, loaded.layout) == ("New", "Now described.", document.layout)
    assert loaded.raw["extra"] is True


def test_a_document_made_in_code_without_a_raw_file_still_saves_a_depthgraph_file() -> None:
    loaded = parse_graph(dump_graph(GraphDocument("depthgraph", PROMPT, title="Bare")))
    assert (loaded.kind, loaded.prompt, loaded.title) == ("depthgraph", PROMPT, "Bare")


def test_only_a_depthgraph_file_has_an_editor_workflow_to_embed_in_images() -> None:
    assert parse_graph(json.dumps(PROMPT)).workflow() is None
    assert parse_graph(json.dumps(depthgraph(title="T"))).workflow() == depthgraph(title="T")


# What is refused, and what the message says.


def test_malformed_json_names_the_line_and_column() -> None:
    message = refusal('{\n  "1": {"class_type": "Number",\n         "inputs": }\n}')
    assert "my.json is not valid JSON" in message
    assert "line 3, column 20" in message


@pytest.mark.parametrize("text", ["", "  \n\t"], ids=["empty", "blank"])
def test_an_empty_file_is_refused(text: str) -> None:
    assert "my.json is empty" in refusal(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[]", "list"), ('"graph"', "string"), ("42", "number"), ("null", "null"), ("true", "boolean")],
)
def test_a_file_that_is_not_a_json_object_says_what_it_holds(text: str, kind: str) -> None:
    assert f"holds a JSON {kind} at the top level" in refusal(text)


def test_an_editor_workflow_is_refused_with_how_to_export_it() -> None:
    message = refusal(json.dumps({"last_node_id": 2, "nodes": [{"id": 1}], "links": [], "version": 0.4}))
    assert "editor workflow" in message
    assert "export it in API form" in message


@pytest.mark.parametrize("nodes", [None, [], "1"], ids=["missing", "list", "string"])
def test_a_depthgraph_file_needs_a_nodes_object(nodes: Any) -> None:
    data = depthgraph()
    if nodes is None:
        del data["nodes"]
    else:
        data["nodes"] = nodes
    assert "my.json has no 'nodes' object" in refusal(json.dumps(data))


def test_a_depthgraph_layout_must_be_an_object() -> None:
    assert "'layout' that is not an object" in refusal(json.dumps(depthgraph(layout=[])))


@pytest.mark.parametrize(
    "text",
    ["1" * 5000, "[" * 100_000, '{"1": {"inputs": {"value": ' + "9" * 5000 + "}}}"],
    ids=["huge-number", "deep-nesting", "huge-number-inside"],
)
def test_json_past_pythons_limits_is_refused_as_a_graph_file_error(text: str) -> None:
    assert refusal(text).startswith("my.json ")


def test_a_missing_file_a_folder_and_a_binary_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    for name, words in [
        ("missing.json", "does not exist"),
        (".", "is a folder"),
        ("binary.json", "is not a text file"),
    ]:
        with pytest.raises(GraphFileError, match=words) as raised:
            load_graph(tmp_path / name)
        assert str(tmp_path) in str(raised.value)


@settings(max_examples=200, deadline=None)
@given(text=st.text() | st.text(alphabet='{}[]":,0123456789.eE-+ \n\\tfrunlsa'))
def test_reading_any_text_either_gives_a_graph_or_a_graph_file_error(text: str) -> None:
    try:
        document = parse_graph(text)
    except GraphFileError as error:
        assert str(error)
    else:
        assert isinstance(document.prompt, dict)


# Format versions and migrations.


def test_a_file_from_a_newer_depthgraph_asks_for_an_upgrade() -> None:
    message = refusal(json.dumps(depthgraph(version=FORMAT_VERSION + 1)))
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert "upgrade depthgraph" in message


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None, "missing"])
def test_a_file_without_a_whole_positive_version_is_refused(version: Any) -> None:
    data = depthgraph(version=version)
    if version == "missing":
        del data["version"]
    assert "'version' must be a whole number from 1 up" in refusal(json.dumps(data))


def rename_graph_to_nodes(document: dict[str, Any]) -> dict[str, Any]:
    """An example step 1 -> 2: version 1 kept its nodes under "graph"."""
    document["nodes"] = document.pop("graph")
    return document


def test_a_migration_step_brings_an_old_document_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: rename_graph_to_nodes})
    old = {"format": "depthgraph", "version": 1, "graph": PROMPT}
    migrated = migrate(old, current=2)
    assert migrated == {"format": "depthgraph", "version": 2, "nodes": PROMPT}
    assert old == {"format": "depthgraph", "version": 1, "graph": PROMPT}  # the input is left alone


def test_steps_run_in_order_through_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    def add_history(document: dict[str, Any]) -> dict[str, Any]:
        return {**document, "history": [*document.get("history", []), document["version"]]}

    monkeypatch.setattr(migrations, "MIGRATIONS", {1: add_history, 2: add_history, 3: add_history})
    assert migrate({"version": 2}, current=4) == {"version": 4, "history": [2, 3]}
    assert migrate({"version": 4}, current=4) == {"version": 4}


def test_a_gap_in_the_chain_is_a_migration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: rename_graph_to_nodes})
    with pytest.raises(MigrationError, match="no migration from format version 2 to 3"):
        migrate({"version": 1, "graph": PROMPT}, current=3)


def test_an_old_file_loads_through_the_migrations_once_the_format_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: rename_graph_to_nodes})
    monkeypatch.setattr(migrations, "FORMAT_VERSION", 2)
    document = parse_graph(
        json.dumps({"format": "depthgraph", "version": 1, "title": "Old", "graph": PROMPT})
    )
    assert (document.prompt, document.title, document.raw["version"]) == (PROMPT, "Old", 2)


# The golden file: a hand-written version-1 file that must load, validate and run forever.
# When FORMAT_VERSION is bumped, this file must keep loading through the migrations: leave it as it
# is, add the step to engine.formats.migrations and a new golden file for the new version beside it.


def test_the_version_1_golden_file_loads_validates_and_runs(
    run: Runner, registry: NodeRegistry, files: FileStore
) -> None:
    document = load_graph(GOLDEN_V1)
    assert json.loads(GOLDEN_V1.read_text(encoding="utf-8"))["version"] == 1
    assert (document.kind, document.title) == ("depthgraph", "Add one to a number")
    assert document.description.startswith("A golden version-1 file")
    assert document.layout["nodes"]["2"] == {"pos": [320, 80], "size": [240, 106]}
    assert document.layout["groups"][0]["title"] == "Arithmetic"

    validation = validate(document.prompt, registry, files)
    assert validation.graph is not None, [str(issue) for issue in validation.issues]
    assert validation.graph.order == ["1", "2", "3"]
    assert validation.graph.nodes["2"].title == "Add one"
    assert run(document.prompt).outputs == {"3": {"text": ["42"]}}

"""Declaring nodes, exporting their schema, and loading node packs (built-in and custom)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from depthgraph.engine.app.plugins import PackReport, load_custom_nodes, load_node_packs
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import DuplicateNodeError, Input, NodeRegistry, Output, node
from depthgraph.engine.core.schema import object_info

from tests.engine import node_pack


def test_a_node_is_declared_once_with_everything_the_editor_needs() -> None:
    @node(
        "Twice",
        display_name="Twice",
        category="math",
        description="Doubles a number.",
        inputs=[Input.int("value", 2, min=0, max=10)],
        outputs=[Output("INT", "doubled")],
        version=3,
    )
    def twice(value: int) -> tuple[int]:
        return (value * 2,)

    assert twice.class_name == "Twice" and twice.version == 3
    assert twice.function(value=4) == (8,)
    assert twice.inputs_by_name["value"].max == 10
    assert not twice.wants_context
    assert twice.module == __name__


def test_a_node_declares_its_output_size_and_a_prefix_is_a_text_widget_to_the_editor(
    registry: NodeRegistry, files: FileStore
) -> None:
    assert node_pack.canvas.output_size is not None
    assert node_pack.canvas.output_size({"width": 30, "height": 20}) == 600
    assert node_pack.number.output_size is None
    schema = object_info(registry, files)["SaveAs"]["input"]["required"]
    assert schema["filename_prefix"] == ["STRING", {"default": "test"}]
    check = node_pack.save_as.inputs_by_name["filename_prefix"].check
    assert check is not None and check("renders/cat", files) is None
    assert "climbs out" in (check("../cat", files) or "")


def test_repeated_input_names_are_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="repeat"):
        node("Twin", category="x", description="x", inputs=[Input.int("a", 0), Input.int("a", 1)])(
            lambda a: (a,)
        )


def test_a_name_cannot_be_registered_twice(registry: NodeRegistry) -> None:
    with pytest.raises(DuplicateNodeError, match="already registered"):
        registry.add(node_pack.number)


def test_the_schema_has_the_shape_of_comfyui_object_info(registry: NodeRegistry, files: FileStore) -> None:
    (files.input_dir / "note.txt").write_text("hi")
    info = object_info(registry, files)
    add = info["Add"]
    assert add["input"]["required"]["b"] == ["INT", {"default": 1, "min": -100, "max": 100, "step": 1}]
    assert add["input_order"] == {"required": ["a", "b"]}
    assert add["output"] == ["INT"] and add["output_name"] == ["INT"] and add["output_is_list"] == [False]
    assert add["output_node"] is False and add["category"] == "test"
    assert add["description"] == "Adds two whole numbers."
    text = info["Text"]
    assert text["input"]["required"]["text"] == ["STRING", {"default": "hello", "multiline": True}]
    assert text["input"]["required"]["style"] == [["plain", "quoted"], {"default": "plain"}]
    assert text["input"]["optional"] == {"suffix": ["STRING"]}
    assert text["output_name"] == ["text"]
    assert info["Show"]["output_node"] is True
    # Dynamic combos list what is there now.
    assert info["ReadText"]["input"]["required"]["name"][0] == ["note.txt"]


def write(folder: Path, name: str, source: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


CUSTOM_NODE = """
    from depthgraph.engine.core.registry import Input, Output, node

    @node("Triple", category="custom", description="Triples.", inputs=[Input.int("v", 1)],
          outputs=[Output("INT")])
    def triple(v):
        return (v * 3,)
"""


def test_custom_node_modules_and_packages_are_loaded(tmp_path: Path, registry: NodeRegistry) -> None:
    write(tmp_path, "triple.py", CUSTOM_NODE)
    write(tmp_path, "pack/__init__.py", "from . import extra\n")
    write(
        tmp_path,
        "pack/extra.py",
        CUSTOM_NODE.replace("Triple", "Quadruple").replace("triple", "quadruple").replace("* 3", "* 4"),
    )
    report = PackReport()
    load_custom_nodes(registry, tmp_path, report)
    assert report.problems == []
    triple = registry.get("Triple")
    quadruple = registry.get("Quadruple")
    assert triple is not None and quadruple is not None
    assert triple.function(v=2) == (6,) and quadruple.function(v=2) == (8,)
    assert not registry.is_builtin("Triple")


def test_a_failing_custom_module_is_reported_and_skipped(tmp_path: Path, registry: NodeRegistry) -> None:
    write(tmp_path, "a_broken.py", "raise RuntimeError('boom at import')\n")
    write(tmp_path, "b_syntax.py", "def oops(:\n")
    write(tmp_path, "c_good.py", CUSTOM_NODE)
    report = PackReport()
    load_custom_nodes(registry, tmp_path, report)
    assert len(report.problems) == 2
    assert "a_broken.py" in report.problems[0] and "boom at import" in report.problems[0]
    assert "b_syntax.py" in report.problems[1] and "SyntaxError" in report.problems[1]
    assert "Triple" in registry


def test_a_custom_node_cannot_replace_a_built_in(tmp_path: Path, registry: NodeRegistry) -> None:
    write(tmp_path, "impostor.py", CUSTOM_NODE.replace('"Triple"', '"Add"'))
    report = PackReport()
    load_custom_nodes(registry, tmp_path, report)
    assert any("Add" in problem and "built-in" in problem for problem in report.problems)
    add = registry.get("Add")
    assert add is not None and add.function is node_pack.add.function


def test_the_built_in_pack_is_found_through_its_entry_point(tmp_path: Path) -> None:
    registry = NodeRegistry()
    report = load_node_packs(registry, [tmp_path / "no-such-folder"])
    assert report.problems == []
    for name in ("LoadImage", "SaveImage", "PreviewImage", "ImageInvert", "ImageScale"):
        assert registry.is_builtin(name), name

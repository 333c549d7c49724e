"""The `depthgraph` command as a user sees it: exit codes, messages on stdout and stderr, files written.

Most tests call `engine.app.cli.main` in a scratch folder holding the example graph and photo
(tests/cli_fixtures.py); a few run the installed console script to show what a shell sees (exit
status, no Python traceback).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import numpy as np
import pytest
import torch
from depthgraph.engine.app.example_inputs import EXAMPLE_INPUTS
from PIL import Image

from tests.cli_fixtures import DEPTHGRAPH, EXAMPLE_GRAPH, EXAMPLE_IMAGE, REPOSITORY, Cli


def example_graph() -> dict[str, Any]:
    return json.loads(EXAMPLE_GRAPH.read_text(encoding="utf-8"))


def write_graph(path: Path, graph: dict[str, Any]) -> None:
    path.write_text(json.dumps(graph), encoding="utf-8")


def saved_pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def red_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (255, 0, 0)).save(path)
    return path


# run


def test_run_saves_a_png_with_the_graph_embedded_and_prints_its_path(
    depthgraph: Cli, workspace: Path
) -> None:
    outcome = depthgraph("run", "graph.json")

    assert outcome.code == 0, outcome.stderr
    [saved] = saved_pngs(workspace / "output")
    assert outcome.stdout.strip() == f"4: {Path('output') / saved.name}"
    with Image.open(saved) as image:
        assert image.size == (384, 384)
        assert json.loads(image.text["prompt"]) == example_graph()["nodes"]
        assert json.loads(image.text["workflow"]) == example_graph()


def test_running_twice_never_overwrites_the_first_result(depthgraph: Cli, workspace: Path) -> None:
    assert depthgraph("run", "graph.json").code == 0
    assert depthgraph("run", "graph.json").code == 0

    names = [path.name for path in saved_pngs(workspace / "output")]
    assert names == ["inverted_00001.png", "inverted_00002.png"]


def test_json_prints_one_object_with_the_saved_paths_and_what_ran(depthgraph: Cli) -> None:
    outcome = depthgraph("run", "graph.json", "--json")

    assert outcome.code == 0, outcome.stderr
    result = json.loads(outcome.stdout)  # fails unless stdout is exactly one JSON document
    assert result["status"] == "success"
    assert list(result["outputs"]) == ["4"]
    [path] = result["outputs"]["4"]["images"]
    assert Path(path).is_file()
    assert result["executed"] == ["1", "2", "3", "4"]
    assert result["cached"] == []
    assert isinstance(result["seconds"], float)


def test_run_prints_every_file_it_saved_depth_maps_included(depthgraph: Cli, workspace: Path) -> None:
    shutil.copy(REPOSITORY / "graphs" / "depth_edit.json", workspace / "depth_edit.json")
    for name in ("motorcycle.jpg", "motorcycle_depth.png"):  # small, so the tiny model is quick
        with Image.open(REPOSITORY / "input" / name) as picture:
            picture.resize((128, 88)).save(workspace / "input" / name)

    outcome = depthgraph(
        "run", "depth_edit.json", "--set", "8.steps=1", "--set", "12.format=16-bit PNG + .npy"
    )

    assert outcome.code == 0, outcome.stderr
    output = Path("output")
    assert outcome.stdout.splitlines() == [
        f"11: {output / 'depth_edit_00001.png'}",
        f"12: {output / 'depth_edit_depth_00001.png'}",
        f"12: {output / 'depth_edit_depth_00001.npy'}",
    ]
    depth = np.load(workspace / "output" / "depth_edit_depth_00001.npy")
    assert depth.ndim == 2 and depth.dtype == np.float32  # the raw map, as SaveDepth wrote it


def test_json_lists_saved_depth_files_as_paths_beside_the_images(depthgraph: Cli, workspace: Path) -> None:
    np.save(workspace / "input" / "depth.npy", np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48))
    graph = {
        "1": {"class_type": "LoadDepth", "inputs": {"depth": "depth.npy", "convention": "white is near"}},
        "2": {
            "class_type": "SaveDepth",
            "inputs": {
                "depth": ["1", 0],
                "filename_prefix": "maps/depth",
                "format": "16-bit PNG + .npy",
                "convention": "white is near",
            },
        },
    }
    write_graph(workspace / "depth.json", graph)

    outcome = depthgraph("run", "depth.json", "--json")

    assert outcome.code == 0, outcome.stderr
    maps = Path("output") / "maps"
    assert json.loads(outcome.stdout)["outputs"] == {
        "2": {"images": [str(maps / "depth_00001.png")], "depth_files": [str(maps / "depth_00001.npy")]}
    }


def test_set_changes_a_constant_input_before_running(depthgraph: Cli, workspace: Path) -> None:
    assert depthgraph("run", "graph.json", "--set", "2.width=256").code == 0

    with Image.open(saved_pngs(workspace / "output")[0]) as image:
        assert image.size == (256, 384)
        # The embedded graph holds the value as its type, as if the file had said 256.
        assert json.loads(image.text["prompt"])["2"]["inputs"]["width"] == 256


def test_set_may_name_an_image_outside_the_input_folder(depthgraph: Cli, workspace: Path) -> None:
    photo = red_photo(workspace / "elsewhere" / "photo.png")

    outcome = depthgraph("run", "graph.json", "--set", f"1.image={photo}")

    assert outcome.code == 0, outcome.stderr
    with Image.open(saved_pngs(workspace / "output")[0]) as image:
        assert image.convert("RGB").getpixel((192, 192)) == (0, 255, 255)  # red, inverted


def test_a_graph_file_may_not_name_an_image_outside_the_input_folder(
    depthgraph: Cli, workspace: Path
) -> None:
    graph = example_graph()
    graph["nodes"]["1"]["inputs"]["image"] = str(red_photo(workspace / "elsewhere" / "photo.png"))
    write_graph(workspace / "graph.json", graph)

    outcome = depthgraph("run", "graph.json")

    assert outcome.code == 1
    assert "node 1 (LoadImage), input 'image'" in outcome.stderr
    assert "[value_not_in_list]" in outcome.stderr
    assert not (workspace / "output").exists()


@pytest.mark.parametrize(
    ("override", "explanation"),
    [
        ("2width=3", "write NODE_ID.INPUT=VALUE"),
        ("2.width", "write NODE_ID.INPUT=VALUE"),
        ("9.width=3", "the graph has no node '9' (its nodes: 1, 2, 3, 4)"),
        ("2.size=3", "has no input 'size'; its inputs are: image, upscale_method, width, height, crop"),
    ],
)
def test_a_bad_set_is_a_usage_error_that_names_the_problem(
    depthgraph: Cli, workspace: Path, override: str, explanation: str
) -> None:
    outcome = depthgraph("run", "graph.json", "--set", override)

    assert outcome.code == 2
    message = outcome.stderr.strip()
    assert message.startswith(f"depthgraph: error: --set {override!r}")
    assert explanation in message
    assert "\n" not in message
    assert not (workspace / "output").exists()


# folders and settings


def test_input_and_output_folders_can_be_chosen(depthgraph: Cli, workspace: Path) -> None:
    (workspace / "input").rename(workspace / "photos")

    outcome = depthgraph("run", "graph.json", "--input-dir", "photos", "--output-dir", "renders")

    assert outcome.code == 0, outcome.stderr
    assert len(saved_pngs(workspace / "renders")) == 1
    assert not (workspace / "output").exists()


def test_a_depthgraph_yaml_in_the_current_folder_sets_the_output_folder(
    depthgraph: Cli, workspace: Path
) -> None:
    (workspace / "depthgraph.yaml").write_text("output_dir: renders\n", encoding="utf-8")

    assert depthgraph("run", "graph.json").code == 0
    assert len(saved_pngs(workspace / "renders")) == 1


def test_config_names_a_settings_file_whose_paths_are_relative_to_it(
    depthgraph: Cli, workspace: Path
) -> None:
    config = workspace / "settings" / "studio.yaml"
    config.parent.mkdir()
    config.write_text("output_dir: renders\n", encoding="utf-8")

    assert depthgraph("--config", config, "run", "graph.json").code == 0
    assert len(saved_pngs(workspace / "settings" / "renders")) == 1


@pytest.mark.parametrize(
    ("text", "explanation"),
    [
        ("output_dir: renders\nsharpness: 3\n", "unknown setting 'sharpness'"),
        ("output_dir: [\n", "not valid YAML"),
    ],
)
def test_a_bad_settings_file_is_a_usage_error_naming_the_file(
    depthgraph: Cli, workspace: Path, text: str, explanation: str
) -> None:
    (workspace / "depthgraph.yaml").write_text(text, encoding="utf-8")

    outcome = depthgraph("run", "graph.json")

    assert outcome.code == 2
    assert "config file depthgraph.yaml" in outcome.stderr
    assert explanation in outcome.stderr


# validate


def broken_graph() -> dict[str, Any]:
    """The example graph with three problems: a width too large, an unknown node, a missing input."""
    graph = example_graph()
    graph["nodes"]["2"]["inputs"]["width"] = 99999
    graph["nodes"]["5"] = {"class_type": "NoSuchNode", "inputs": {}}
    graph["nodes"]["6"] = {"class_type": "PreviewImage", "inputs": {}}
    return graph


def test_validate_says_a_good_graph_is_valid(depthgraph: Cli, workspace: Path) -> None:
    outcome = depthgraph("validate", "graph.json")

    assert outcome.code == 0
    assert outcome.stdout.strip() == "graph.json: valid; 4 node(s) to run, outputs: 4 (SaveImage)"
    assert not (workspace / "output").exists()


def test_validate_lists_every_problem_with_node_and_code(depthgraph: Cli, workspace: Path) -> None:
    write_graph(workspace / "graph.json", broken_graph())

    outcome = depthgraph("validate", "graph.json")

    assert outcome.code == 1
    assert "graph.json is not valid (3 problem(s))" in outcome.stderr
    lines = outcome.stderr.splitlines()
    for where, code in [
        ("node 2 (ImageScale), input 'width'", "value_bigger_than_max"),
        ("node 5 (NoSuchNode)", "unknown_node_type"),
        ("node 6 (PreviewImage), input 'images'", "required_input_missing"),
    ]:
        assert any(where in line and line.endswith(f"[{code}]") for line in lines), (where, lines)


def test_validate_json_gives_each_problem_as_data(depthgraph: Cli, workspace: Path) -> None:
    write_graph(workspace / "graph.json", broken_graph())

    outcome = depthgraph("validate", "graph.json", "--json")

    assert outcome.code == 1
    report = json.loads(outcome.stdout)
    assert report["valid"] is False
    assert {(error["code"], error["node_id"], error["input_name"]) for error in report["errors"]} == {
        ("value_bigger_than_max", "2", "width"),
        ("unknown_node_type", "5", None),
        ("required_input_missing", "6", "images"),
    }


def test_validate_names_a_loop_in_a_chain_of_10002_nodes(depthgraph: Cli, workspace: Path) -> None:
    # Invert Image 1 reads node 2, which reads node 1; 10,000 more hang below them, then the output.
    nodes: dict[str, Any] = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}}
    for index in range(2, 10_002):
        nodes[str(index)] = {"class_type": "ImageInvert", "inputs": {"image": [str(index - 1), 0]}}
    nodes["10002"] = {"class_type": "PreviewImage", "inputs": {"images": ["10001", 0]}}
    write_graph(workspace / "graph.json", nodes)

    outcome = depthgraph("validate", "graph.json")

    assert outcome.code == 1
    assert "graph.json is not valid (2 problem(s))" in outcome.stderr
    message = "the graph loops back on itself (1 -> 2 -> 1); remove one of these links [dependency_cycle]"
    assert f"node 1 (ImageInvert): {message}" in outcome.stderr
    assert f"node 2 (ImageInvert): {message}" in outcome.stderr


# malformed graph files


@pytest.mark.parametrize(
    ("text", "explanation"),
    [
        ('{"1": {"class_type": \n', "graph.json is not valid JSON: Expecting value at line 2, column 1"),
        ("[1, 2]", "graph.json holds a JSON list at the top level"),
        ("", "graph.json is empty"),
    ],
)
def test_a_malformed_graph_file_fails_with_one_clear_line(
    depthgraph: Cli, workspace: Path, text: str, explanation: str
) -> None:
    (workspace / "graph.json").write_text(text, encoding="utf-8")

    outcome = depthgraph("run", "graph.json")

    assert outcome.code == 1
    assert outcome.stdout == ""
    [line] = outcome.stderr.splitlines()
    assert explanation in line


def test_a_missing_graph_file_is_a_usage_error(depthgraph: Cli) -> None:
    outcome = depthgraph("run", "no-such-graph.json")

    assert outcome.code == 2
    assert "graph file no-such-graph.json does not exist" in outcome.stderr
    assert "the graph library has controlnet_depth, custom_depth, depth2img," in outcome.stderr


@pytest.mark.parametrize(
    "name", ["invert_and_scale", "invert_and_scale.json", "graphs/invert_and_scale.json"]
)
def test_a_library_graph_runs_by_name_from_any_folder(depthgraph: Cli, workspace: Path, name: str) -> None:
    assert not (workspace / "graphs").exists()  # as for an installed package: the graphs are inside it
    outcome = depthgraph("validate", name)
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.startswith(f"{name}: valid;")


def test_a_new_home_gets_the_example_inputs_and_an_existing_input_folder_is_left_alone(
    depthgraph: Cli, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = workspace / "fresh-home"
    monkeypatch.setenv("DEPTHGRAPH_HOME", str(home))
    outcome = depthgraph("validate", "foreground_only")  # loads motorcycle.jpg and its depth map
    assert outcome.code == 0, outcome.stderr
    assert f"made the input folder {home / 'input'}, with the 6 example inputs" in outcome.stderr
    assert sorted(path.name for path in (home / "input").iterdir()) == sorted(EXAMPLE_INPUTS)

    (home / "input" / "motorcycle.jpg").unlink()  # the user's folder now: nothing is put back
    outcome = depthgraph("validate", "foreground_only")
    assert outcome.code == 1 and "made the input folder" not in outcome.stderr
    assert "motorcycle.jpg" in outcome.stdout + outcome.stderr
    assert not (home / "input" / "motorcycle.jpg").exists()


# nodes that fail while running


@pytest.mark.parametrize(
    ("name", "content"),
    [("example.jpg", EXAMPLE_IMAGE.read_bytes()[:300]), ("notes.png", b"remember the milk\n")],
)
def test_a_node_that_fails_names_itself_and_the_traceback_is_optional(
    depthgraph: Cli, workspace: Path, name: str, content: bytes
) -> None:
    (workspace / "input" / name).write_bytes(content)

    outcome = depthgraph("run", "graph.json", "--set", f"1.image={name}")

    assert outcome.code == 1
    assert f"depthgraph: node 1 (LoadImage) failed: ImageReadError: {name} is not an image" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    detailed = depthgraph("run", "graph.json", "--set", f"1.image={name}", "--traceback")
    assert detailed.code == 1
    assert "Traceback (most recent call last)" in detailed.stderr


# nodes


def test_nodes_lists_the_builtin_nodes_by_category(depthgraph: Cli) -> None:
    outcome = depthgraph("nodes")

    assert outcome.code == 0
    categories: dict[str, list[str]] = {}
    for line in outcome.stdout.splitlines():
        if not line.startswith(" "):
            category = categories.setdefault(line, [])
        elif not line.startswith("      "):
            category.append(line.split()[0])
    assert categories["image"] == [
        "ImageBatch",
        "ImageCompositeMasked",
        "ImageInvert",
        "ImageSizeForModel",
        "LoadImage",
        "PreviewImage",
        "SaveImage",
    ]
    assert categories["image/upscaling"] == ["ImageScale"]
    assert categories["depth"] == [
        "DepthEstimate",
        "DepthToControlImage",
        "DepthToImage",
        "LoadDepth",
        "SaveDepth",
    ]
    assert len(categories["depth/edit"]) == 8 and len(categories["mask"]) == 10
    assert categories["image/grid"] == ["ImageGrid", "SweepImages"]
    assert categories["latent/inpaint"] == ["SetLatentNoiseMask"]


def test_nodes_json_has_the_shape_of_comfyui_object_info(depthgraph: Cli, workspace: Path) -> None:
    red_photo(workspace / "input" / "other.png")

    outcome = depthgraph("nodes", "--json")

    assert outcome.code == 0
    info = json.loads(outcome.stdout)
    scale = info["ImageScale"]
    width_type, width_options = scale["input"]["required"]["width"]
    assert width_type == "INT"
    assert width_options | {"default": 512, "min": 0, "max": 16384, "step": 1} == width_options
    methods, method_options = scale["input"]["required"]["upscale_method"]
    assert methods == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    assert method_options["default"] == "nearest-exact"
    assert scale["input_order"] == {"required": ["image", "upscale_method", "width", "height", "crop"]}
    images, image_options = info["LoadImage"]["input"]["required"]["image"]
    assert images == ["example.jpg", "other.png"]
    assert image_options["image_upload"] is True
    output_nodes = {name for name, schema in info.items() if schema["output_node"]}
    assert output_nodes == {"SaveImage", "PreviewImage", "SaveDepth", "SaveImageWebsocket"}
    assert info["SweepImages"]["input"]["required"]["images"] == ["IMAGE", {"lazy": True, "tooltip": ANY}]
    assert {"LoadImage", "ImageInvert", "ImageScale", "CheckpointLoader", "DepthSampler"} <= set(info)


# devices


def test_device_cpu_runs_the_graph(depthgraph: Cli, workspace: Path) -> None:
    assert depthgraph("run", "graph.json", "--device", "cpu").code == 0
    assert len(saved_pngs(workspace / "output")) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_without_a_gpu_is_a_usage_error(depthgraph: Cli, workspace: Path) -> None:
    outcome = depthgraph("run", "graph.json", "--device", "cuda")

    assert outcome.code == 2
    assert "device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu" in outcome.stderr
    assert not (workspace / "output").exists()


# arguments


@pytest.mark.parametrize("args", [[], ["paint"], ["run"]], ids=["no command", "unknown command", "no graph"])
def test_missing_or_unknown_arguments_show_the_usage(depthgraph: Cli, args: list[str]) -> None:
    outcome = depthgraph(*args)

    assert outcome.code == 2
    assert outcome.stderr.startswith("usage: depthgraph")


# the installed command, as a shell sees it


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", "graph.json"], 0),
        (["run", "bad.json"], 1),
        (["run", "graph.json", "--set", "1.image=notes.png"], 1),
        (["run", "no-such-graph.json"], 2),
        ([], 2),
    ],
    ids=["success", "bad json", "node fails", "missing graph", "no command"],
)
def test_the_console_script_exits_with_the_documented_code_and_no_traceback(
    workspace: Path, args: list[str], code: int
) -> None:
    (workspace / "bad.json").write_text("{", encoding="utf-8")
    (workspace / "input" / "notes.png").write_text("not a picture", encoding="utf-8")

    finished = subprocess.run(
        [*DEPTHGRAPH, *args], cwd=workspace, capture_output=True, text=True, timeout=120
    )

    assert finished.returncode == code, finished.stderr
    assert "Traceback" not in finished.stderr
    assert code == 0 or finished.stderr.strip()  # a failure always says why


@pytest.mark.parametrize("args", [["nodes"], ["nodes", "--json"]])
def test_a_reader_that_stops_early_gets_no_traceback(workspace: Path, args: list[str]) -> None:
    """`depthgraph nodes | head -1`: the pipe closes before everything is written."""
    process = subprocess.Popen(
        [*DEPTHGRAPH, *args], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)

    assert stderr == ""
    assert process.returncode == 141  # 128 + SIGPIPE, as for a tool the signal ended


def editor_workflow() -> dict[str, Any]:
    """LoadImage -> ImageInvert -> SaveImage as ComfyUI's front end saves it (litegraph lists)."""
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "nodes": [
            {
                "id": 1,
                "type": "LoadImage",
                "pos": [0, 0],
                "mode": 0,
                "widgets_values": ["example.jpg", "image"],
            },
            {
                "id": 2,
                "type": "ImageInvert",
                "pos": [300, 0],
                "mode": 0,
                "inputs": [{"name": "image", "link": 1}],
            },
            {
                "id": 3,
                "type": "SaveImage",
                "pos": [600, 0],
                "mode": 0,
                "inputs": [{"name": "images", "link": 2}],
                "widgets_values": ["from_editor"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "version": 0.4,
    }


def test_validate_and_run_take_an_editor_workflow_as_the_server_converts_it(
    depthgraph: Cli, workspace: Path
) -> None:
    write_graph(workspace / "workflow.json", editor_workflow())
    outcome = depthgraph("validate", "workflow.json")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.strip() == "workflow.json: valid; 3 node(s) to run, outputs: 3 (SaveImage)"
    outcome = depthgraph("run", "workflow.json", "--set", "3.filename_prefix=converted")
    assert outcome.code == 0, outcome.stderr
    (saved,) = saved_pngs(workspace / "output")
    assert saved.name == "converted_00001.png"
    with Image.open(workspace / "input" / "example.jpg") as original, Image.open(saved) as inverted:
        assert np.array_equal(255 - np.asarray(original.convert("RGB")), np.asarray(inverted.convert("RGB")))


def test_an_editor_workflow_with_an_unknown_node_is_refused_with_its_name(
    depthgraph: Cli, workspace: Path
) -> None:
    workflow = editor_workflow()
    workflow["nodes"][1]["type"] = "ImageInvertt"
    write_graph(workspace / "workflow.json", workflow)
    outcome = depthgraph("validate", "workflow.json")
    assert outcome.code == 1
    assert "ImageInvertt" in outcome.stderr and "Traceback" not in outcome.stderr

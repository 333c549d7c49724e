"""Load Depth Estimator in graphs: its DEPTH_MODEL feeds Estimate Depth as a checkpoint's does, its
depth conditions depth-to-image, and it is not run again when only the sampling changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.cli import main
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.events import Event, NodeExecuting
from depthgraph.engine.core.validation import Code
from depthgraph.engine.formats.graph_file import load_graph
from depthgraph.engine.models.tiny_depth import TINY_ESTIMATORS
from PIL import Image
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
LOADER = "17"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    yield Engine(Settings.under(tmp_path, device="cpu"))


def depth2img_with(estimator: str, steps: int = 2) -> dict[str, Any]:
    """The shipped depth-to-image graph, its depth from Load Depth Estimator."""
    prompt = copy.deepcopy(json.loads((ROOT / "graphs" / "depth2img.json").read_text())["nodes"])
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = steps
    prompt[LOADER] = {"class_type": "DepthModelLoader", "inputs": {"depth_model_name": estimator}}
    prompt["4"]["inputs"]["depth_model"] = [LOADER, 0]
    return prompt


def test_changing_only_the_sampler_settings_does_not_reload_or_rerun_the_estimator(engine: Engine) -> None:
    prompt = depth2img_with("tiny-depth-anything-v2")
    first = engine.run(prompt)
    assert first.status == "success", first.error
    assert {LOADER, "4"} <= set(first.executed)
    reads = engine.models.reads
    prompt["9"]["inputs"]["cfg"] = 3.0
    prompt["8"]["inputs"]["seed"] = 7
    again = engine.run(prompt)
    assert again.status == "success", again.error
    assert LOADER not in again.executed and "4" not in again.executed
    assert sorted(again.executed, key=int) == ["8", "9", "10", "11"]
    assert engine.models.reads == reads


def test_changing_the_estimator_reruns_depth_and_what_follows_it_only(engine: Engine) -> None:
    prompt = depth2img_with("tiny-dpt-hybrid")
    engine.run(prompt)
    prompt[LOADER]["inputs"]["depth_model_name"] = "tiny-zoedepth"
    result = engine.run(prompt)
    assert result.status == "success", result.error
    assert sorted(result.executed, key=int) == ["4", "9", "10", "11", "12", "13", LOADER]


def test_an_unknown_estimator_is_refused_at_validation_listing_the_choices(engine: Engine) -> None:
    prompt = depth2img_with("depth-anything-giant")
    (issue,) = engine.validate(prompt).issues
    assert (issue.code, issue.node_id, issue.input_name) == (
        Code.VALUE_NOT_IN_LIST,
        LOADER,
        "depth_model_name",
    )
    assert all(repr(name) in issue.message for name in TINY_ESTIMATORS)
    assert str((engine.files.models_dir / "depth").resolve()) in issue.message


def test_a_corrupt_estimator_file_fails_its_node_with_a_message_naming_it(engine: Engine) -> None:
    folder = engine.files.models_dir / "depth"
    folder.mkdir(parents=True)
    save_file({"something.weight": torch.zeros(1)}, str(folder / "odd.safetensors"))
    result = engine.run(depth2img_with("odd.safetensors"))
    assert result.status == "error" and result.error is not None
    assert (result.error.node_id, result.error.exception_type) == (LOADER, "ModelError")
    message = result.error.exception_message
    assert str(folder / "odd.safetensors") in message and "Expected one of" in message
    assert "Traceback" not in message


@pytest.mark.slow
def test_the_estimator_comparison_graph_estimates_each_depth_once_for_both_grids(engine: Engine) -> None:
    shutil_input(engine)
    document = load_graph(ROOT / "graphs" / "depth_estimators.json")
    prompt = json.loads(json.dumps(document.prompt))
    prompt["8"]["inputs"]["steps"] = 2
    events: list[Event] = []
    result = engine.run(prompt, on_event=events.append)
    assert result.status == "success", result.error
    started = [event.node_id for event in events if isinstance(event, NodeExecuting)]
    estimators = len(TINY_ESTIMATORS)
    assert started.count("4") == estimators  # each estimator's depth once, shared by both sweeps
    assert started.count("9") == estimators
    for node_id in ("1", "5", "6", "7"):  # the SD2-depth model, text and VAE encoding: once
        assert started.count(node_id) == 1
    cell = 128  # example.jpg (512²) shrunk 4×
    for save in ("11", "21"):
        (item,) = result.outputs[save]["images"]
        with Image.open(engine.files.output_dir / item["filename"]) as grid:
            assert estimators * cell < grid.width < estimators * cell + 300
            assert cell < grid.height < cell + 100


def shutil_input(engine: Engine) -> None:
    """The example photo, 4× smaller (as the graph library's tests run the shipped graphs)."""
    with Image.open(ROOT / "input" / "example.jpg") as image:
        image.resize((image.width // 4, image.height // 4)).save(engine.files.input_dir / "example.jpg")


def test_models_list_shows_the_depth_estimators_after_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--models-dir", str(tmp_path / "models"), "list"]) == 0
    models, estimators, controlnets = capsys.readouterr().out.split("\n\n")
    assert models.split()[0] == "tiny-random"
    lines = estimators.splitlines()
    assert lines[0].startswith("depth estimators (DepthModelLoader; more in ")
    assert [line.split()[0] for line in lines[1:]] == list(TINY_ESTIMATORS)
    assert "metric" in lines[-1] and "noise" in lines[-1]
    assert controlnets.splitlines()[0].startswith("ControlNets (ControlNetLoader; more in ")
    assert "tiny-controlnet-sdxl  (ControlNet for Stable Diffusion XL;" in controlnets

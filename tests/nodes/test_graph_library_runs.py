"""Every graph in graphs/ validates and runs on the tiny model, and does what its description says.

The graphs run as shipped except for fewer sampling steps and the example images scaled down 4× (the
same files, from input/, so the masks and depth maps still line up with their photos).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.events import Event, NodeExecuting
from depthgraph.engine.formats.graph_file import load_graph
from depthgraph.nodes.mask_ops import feather_mask
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted(path.name for path in (ROOT / "graphs").glob("*.json"))
SCALE = 4


def _shrunk(source: Path, target: Path) -> None:
    """The example file at a quarter of its size, keeping 16-bit files 16-bit."""
    with Image.open(source) as image:
        size = (max(1, image.width // SCALE), max(1, image.height // SCALE))
        if image.mode.startswith("I;16"):
            array = np.asarray(image.convert("I").resize(size, Image.Resampling.BILINEAR), dtype=np.int64)
            Image.fromarray(array.clip(0, 65535).astype(np.uint16)).save(target)
        else:
            image.resize(size, Image.Resampling.BILINEAR).save(target)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "input").mkdir()
    for source in (ROOT / "input").iterdir():
        _shrunk(source, tmp_path / "input" / source.name)
    yield Engine(Settings.under(tmp_path, device="cpu"))


def library_prompt(name: str, steps: int = 2) -> dict[str, Any]:
    document = load_graph(ROOT / "graphs" / name)
    prompt = json.loads(json.dumps(document.prompt))
    for entry in prompt.values():
        if entry["class_type"] == "NoiseLatent":
            entry["inputs"]["steps"] = steps
    return prompt


def saved(engine: Engine, result: Any, node_id: str) -> list[Path]:
    return [engine.files.output_dir / item["filename"] for item in result.outputs[node_id]["images"]]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def test_the_library_holds_the_graphs_of_every_use_case() -> None:
    assert set(GRAPHS) >= {
        "depth2img.json",
        "img2img.json",
        "depth_inpaint.json",
        "style_transfer.json",
        "pose_transfer.json",
        "custom_depth.json",
        "depth_edit.json",
        "strength_sweep.json",
        "foreground_only.json",
    }


@pytest.mark.parametrize("name", GRAPHS)
def test_each_graph_has_a_title_and_a_description_and_is_valid(name: str, engine: Engine) -> None:
    document = load_graph(ROOT / "graphs" / name)
    assert document.title and len(document.description) > 80
    validation = engine.validate(document.prompt)
    assert validation.graph is not None, [str(issue) for issue in validation.issues]
    assert set(document.layout["nodes"]) == set(document.prompt)  # the editor draws every node


@pytest.mark.slow
@pytest.mark.parametrize("name", GRAPHS)
def test_each_graph_runs_on_the_tiny_model_and_saves_its_images(name: str, engine: Engine) -> None:
    result = engine.run(library_prompt(name))
    assert result.status == "success", result.error
    assert result.outputs
    for ui in result.outputs.values():
        for item in ui.get("images", []):
            path = engine.files.output_dir / item["subfolder"] / item["filename"]
            with Image.open(path) as image:
                assert image.width > 0 and image.height > 0
    assert result.warnings == []


def test_depth_inpainting_keeps_every_pixel_outside_the_feathered_mask(engine: Engine) -> None:
    result = engine.run(library_prompt("depth_inpaint.json"))
    assert result.status == "success", result.error
    (output,) = saved(engine, result, "11")
    original = pixels(engine.files.input_dir / "example.jpg")
    with Image.open(engine.files.input_dir / "example_mask.png") as mask_file:
        mask = np.asarray(mask_file.convert("L"), dtype=np.float32) / 255.0
    inpainted = pixels(output)
    assert inpainted.shape == original.shape
    far_from_mask = _distance_at_least(mask > 0, 12 + 2)  # beyond the feather radius (pixels)
    assert np.abs(inpainted - original)[far_from_mask].max() <= 1.5 / 255
    inside = mask > 0.99
    assert np.abs(inpainted - original)[inside].mean() > 0.05  # the masked region was regenerated


def _distance_at_least(selected: np.ndarray, pixels_away: int) -> np.ndarray:
    """Pixels farther than `pixels_away` (chessboard distance) from any selected pixel."""
    grown = selected.copy()
    for _ in range(pixels_away):
        padded = np.pad(grown, 1)
        grown = np.max(
            [padded[y : y + grown.shape[0], x : x + grown.shape[1]] for y in range(3) for x in range(3)],
            axis=0,
        )
    return ~grown


# Places in motorcycle.jpg (512×344), picked by eye from the photo: parts of the motorcycle, and what
# stands well behind it in the garage.
_MOTORCYCLE_PARTS = {
    "seat": (170, 135),
    "tank": (290, 130),
    "engine": (260, 215),
    "headlight": (370, 105),
    "floor in front of it": (250, 320),
}
_GARAGE_BEHIND = {
    "wall": (40, 40),
    "shelf boxes": (430, 60),
    "red crate on the shelf": (400, 150),
    "bench": (40, 150),
}


def test_foreground_only_regenerates_the_garage_and_keeps_the_motorcycle(engine: Engine) -> None:
    result = engine.run(library_prompt("foreground_only.json"))
    assert result.status == "success", result.error
    (output,) = saved(engine, result, "11")
    (mask_file,) = saved(engine, result, "19")
    background = pixels(mask_file)[..., 0]  # 1 = regenerated
    regenerated = pixels(output)
    original = pixels(engine.files.input_dir / "motorcycle.jpg")
    scale = original.shape[1] / 512  # the photo as this test scaled it
    top = (original.shape[0] - regenerated.shape[0]) // 2  # Size for Model crops the centre
    left = (original.shape[1] - regenerated.shape[1]) // 2
    original = original[top : top + regenerated.shape[0], left : left + regenerated.shape[1]]

    def around(x: int, y: int) -> np.ndarray:
        column, row = round(x * scale) - left, round(y * scale) - top
        return background[row - 1 : row + 2, column - 1 : column + 2]

    # The mask comes from the scene's measured depth, so it follows the motorcycle on any model.
    for part, place in _MOTORCYCLE_PARTS.items():
        assert around(*place).max() < 0.05, part
    for thing, place in _GARAGE_BEHIND.items():
        assert around(*place).min() > 0.95, thing
    # Paste Back blends through the mask feathered by 8 pixels: a pixel may only move as far as that
    # mask lets it, so the motorcycle is the photo's own.
    feathered = feather_mask(torch.from_numpy(background)[None], 8)[0].numpy()
    assert np.all(np.abs(regenerated - original).max(axis=-1) <= feathered + 1.5 / 255)
    assert np.abs(regenerated - original)[background > 0.99].mean() > 0.05


def test_the_strength_sweep_compares_three_methods_sharing_work_in_a_labelled_four_by_three_grid(
    engine: Engine,
) -> None:
    events: list[Event] = []
    result = engine.run(library_prompt("strength_sweep.json"), on_event=events.append)
    assert result.status == "success", result.error
    started = [event.node_id for event in events if isinstance(event, NodeExecuting)]
    # Loading, the one depth map, the control image, text and VAE encoding: once for the whole grid.
    for shared in ("1", "2", "3", "4", "5", "6", "7", "21", "25", "27", "41", "42", "43", "44", "45", "47"):
        assert started.count(shared) == 1, shared
    for sampler, noising in (("29", "28"), ("9", "8"), ("49", "48")):  # img2img, depth2img, ControlNet rows
        assert started.count(sampler) == 4, sampler  # one per strength
        assert started.count(noising) == 4, noising
    (grid_file,) = saved(engine, result, "11")
    grid = pixels(grid_file)
    cell = 128  # the 512-pixel photo, scaled down 4×
    assert grid.shape[1] > 4 * cell and grid.shape[0] > 3 * cell
    assert grid.shape[1] < 4 * cell + 400 and grid.shape[0] < 3 * cell + 100  # labels and gaps, not more
    assert (grid[:12] < 0.5).any()  # column labels drawn in the top margin
    shipped = library_prompt("strength_sweep.json")
    rows = [shipped[loader]["inputs"]["ckpt_name"] for loader in ("21", "1", "41")]
    assert rows == ["tiny-sd21", "tiny-random", "tiny-sd15"]


def test_depth_editing_keeps_the_subject_and_squeezes_the_background_into_the_far_quarter(
    engine: Engine,
) -> None:
    prompt = library_prompt("depth_edit.json")
    prompt["90"] = {  # the normalised map before the edit, to compare with
        "class_type": "SaveDepth",
        "inputs": {"depth": ["14", 0], "filename_prefix": "before", "format": "16-bit PNG"},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.error
    (edited_file,) = saved(engine, result, "12")
    (before_file,) = saved(engine, result, "90")
    with Image.open(edited_file) as edited_image, Image.open(before_file) as before_image:
        assert edited_image.mode == "I;16"
        edited = np.asarray(edited_image, dtype=np.float32) / 65535.0
        before = np.asarray(before_image, dtype=np.float32) / 65535.0
    subject = before >= 0.65  # fully inside the selected range (far 0.6, soft by 0.05 each side)
    background = before <= 0.55
    assert subject.any() and background.any()
    assert np.abs(edited - before)[subject].max() <= 2 / 65535
    assert np.abs(edited - 0.25 * before)[background].max() <= 2 / 65535
    # The measured depth puts the motorcycle in the kept range and the garage in the squeezed one.
    scale = before.shape[1] / 512
    for part, (x, y) in _MOTORCYCLE_PARTS.items():
        assert subject[round(y * scale), round(x * scale)], part
    for thing, (x, y) in _GARAGE_BEHIND.items():
        assert background[round(y * scale), round(x * scale)], thing


def test_a_sweep_over_more_cells_than_the_limit_fails_before_sampling(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    for source in (ROOT / "input").iterdir():
        _shrunk(source, tmp_path / "input" / source.name)
    engine = Engine(Settings.under(tmp_path, device="cpu", max_grid_cells=6))
    events: list[Event] = []
    prompt = library_prompt("strength_sweep.json")
    prompt["15"]["inputs"].update(y_input="9.cfg", y_values="5, 7.5")  # the depth2img row: 4 × 2 cells
    result = engine.run(prompt, on_event=events.append)
    assert result.error is not None and result.error.node_id == "15"
    assert "4 × 2 = 8 cells, more than the limit of 6" in result.error.exception_message
    assert "max_grid_cells" in result.error.exception_message
    assert not any(isinstance(event, NodeExecuting) and event.node_id == "9" for event in events)

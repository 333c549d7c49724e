"""What the output-size budget (max_output_pixels) and the filename prefix check mean for the built-in
nodes: too large an output is refused before anything is allocated, and a prefix that would save
outside the output folder is refused before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.events import Progress
from depthgraph.engine.core.limits import Limits, OutputTooLargeError, check_output_size
from depthgraph.engine.core.registry import NodeDefinition
from depthgraph.engine.core.validation import Code
from depthgraph.nodes import image
from depthgraph.nodes.depth_edit import depth_blend, depth_match_image
from depthgraph.nodes.grid import image_grid
from depthgraph.nodes.image import image_scale, image_size_for_model
from depthgraph.nodes.latent import repeat_latent_batch
from depthgraph.nodes.latent_value import Latent
from depthgraph.nodes.mask import image_composite_masked, mask_composite, solid_mask
from depthgraph.nodes.vae import vae_decode

BUDGET = 64 * 2**20  # the default max_output_pixels


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield Engine(Settings.under(tmp_path, device="cpu"))


def solid_mask_preview(width: int, height: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": width, "height": height}},
        "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def test_a_solid_mask_of_16384_by_16384_is_refused_at_validation(engine: Engine) -> None:
    validation = engine.validate(solid_mask_preview(16384, 16384))

    assert [(issue.code, issue.node_id) for issue in validation.issues] == [(Code.OUTPUT_TOO_LARGE, "1")]
    text = str(validation.issues[0])
    assert text.startswith("node 1 (SolidMask): this node would make 268,435,456 pixels (268 MP)")
    assert "budget of 67,108,864 pixels" in text and "max_output_pixels" in text
    assert engine.validate(solid_mask_preview(8192, 8192)).ok


def test_scaling_a_linked_image_beyond_the_budget_fails_before_scaling(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    scaled: list[tuple[int, int]] = []
    real_scale = image.scale_image

    def scale_image(picture: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
        scaled.append((width, height))
        return real_scale(picture, width, height, method, crop)

    monkeypatch.setattr(image, "scale_image", scale_image)
    prompt = solid_mask_preview(2048, 2048)
    # A width of 0 follows the height: 16384 × 16384, known only once the image is there.
    prompt["4"] = {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["2", 0],
            "upscale_method": "bilinear",
            "width": 0,
            "height": 16384,
            "crop": "disabled",
        },
    }
    prompt["3"]["inputs"]["images"] = ["4", 0]
    assert engine.validate(prompt).ok

    result = engine.run(prompt)

    assert result.status == "error" and result.error is not None
    assert (result.error.node_id, result.error.class_type) == ("4", "ImageScale")
    assert result.error.exception_type == "OutputTooLargeError"
    assert "268,435,456 pixels" in result.error.exception_message
    assert scaled == []
    assert not engine.files.temp_dir.exists() or not any(engine.files.temp_dir.iterdir())


def meta(*shape: int) -> torch.Tensor:
    """A tensor with a shape and no memory: what the size declarations read."""
    return torch.empty(shape, device="meta")


def latent(*shape: int) -> Latent:
    return Latent(meta(*shape))


# Each node's inputs just within the budget, and just beyond it.
SIZES: list[tuple[NodeDefinition, dict[str, Any], dict[str, Any]]] = [
    (solid_mask, {"width": 8192, "height": 8192}, {"width": 8192, "height": 8193}),
    (
        image_scale,
        {"image": meta(1, 64, 32, 3), "width": 0, "height": 11585},
        {"image": meta(1, 64, 32, 3), "width": 0, "height": 11586},
    ),
    (
        image_size_for_model,
        {"image": meta(1, 8193, 8192, 3), "multiple": 64, "method": "crop"},
        {"image": meta(1, 8193, 8192, 3), "multiple": 64, "method": "pad"},
    ),
    (
        repeat_latent_batch,
        {"samples": latent(1, 4, 512, 512), "amount": 4},
        {"samples": latent(1, 4, 512, 512), "amount": 5},
    ),
    (vae_decode, {"samples": latent(1, 4, 1024, 1024)}, {"samples": latent(2, 4, 1024, 1024)}),
    (
        mask_composite,
        {"destination": meta(1, 8192, 8192), "source": meta(1, 8, 8)},
        {"destination": meta(1, 8192, 8192), "source": meta(2, 8, 8)},
    ),
    (
        image_composite_masked,
        {"destination": meta(1, 4096, 4096, 3), "source": meta(1, 8, 8, 3), "mask": meta(4, 8, 8)},
        {"destination": meta(1, 4096, 4096, 3), "source": meta(1, 8, 8, 3), "mask": meta(5, 8, 8)},
    ),
    (
        depth_blend,
        {"depth_a": meta(1, 1, 8192, 8192), "depth_b": meta(1, 1, 8, 8)},
        {"depth_a": meta(1, 1, 8192, 8192), "depth_b": meta(2, 1, 8, 8)},
    ),
    (
        depth_match_image,
        {"depth": meta(1, 1, 1, 4096), "image": meta(1, 4096, 4096, 3), "method": "stretch"},
        {"depth": meta(1, 1, 1, 4096), "image": meta(1, 4096, 4096, 3), "method": "crop"},
    ),
    (
        image_grid,
        {"images": meta(64, 1024, 1024, 3), "columns": 0, "gap": 0},
        {"images": meta(64, 1024, 1024, 3), "columns": 0, "gap": 8},
    ),
]


@pytest.mark.parametrize(
    ("definition", "within", "beyond"), SIZES, ids=[definition.class_name for definition, _, _ in SIZES]
)
def test_each_node_that_makes_or_enlarges_pixels_is_stopped_just_beyond_the_budget(
    definition: NodeDefinition, within: dict[str, Any], beyond: dict[str, Any]
) -> None:
    check_output_size(definition, within, Limits())
    with pytest.raises(OutputTooLargeError, match="max_output_pixels"):
        check_output_size(definition, beyond, Limits())


def test_a_sweep_stops_as_soon_as_its_cells_would_be_more_than_the_budget(tmp_path: Path) -> None:
    engine = Engine(Settings.under(tmp_path, device="cpu", max_output_pixels=3 * 64 * 64))
    prompt = solid_mask_preview(64, 64)
    prompt["3"] = {
        "class_type": "SweepImages",
        "inputs": {"images": ["2", 0], "x_input": "1.value", "x_values": "0.1, 0.2, 0.3, 0.4"},
    }
    prompt["4"] = {"class_type": "ImageGrid", "inputs": {"images": ["3", 0], "labels": ["3", 1], "gap": 0}}
    prompt["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}
    events: list[Any] = []

    result = engine.run(prompt, on_event=events.append)

    assert result.error is not None and result.error.node_id == "3"
    assert result.error.exception_type == "OutputTooLargeError"
    assert result.error.exception_message.startswith("4 cells of 64×64: this node would make 16,384 pixels")
    assert not [event for event in events if isinstance(event, Progress) and event.node_id == "3"]


def saving(class_type: str, prefix: str) -> dict[str, Any]:
    """A mask saved as an image, or a depth map loaded from input/flat.npy saved again."""
    if class_type == "SaveImage":
        return {
            "1": {"class_type": "SolidMask", "inputs": {"width": 8, "height": 8}},
            "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
        }
    return {
        "1": {"class_type": "LoadDepth", "inputs": {"depth": "flat.npy"}},
        "3": {"class_type": "SaveDepth", "inputs": {"depth": ["1", 0], "filename_prefix": prefix}},
    }


@pytest.mark.parametrize("class_type", ["SaveImage", "SaveDepth"])
@pytest.mark.parametrize("prefix", ["../../x", "/tmp/x", "C:\\x", "cat\x00", "elsewhere/cat"])
def test_a_save_prefix_leaving_the_output_folder_is_refused_before_anything_runs(
    class_type: str, prefix: str, engine: Engine, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    engine.files.output_dir.mkdir()
    (engine.files.output_dir / "elsewhere").symlink_to(outside, target_is_directory=True)
    engine.files.input_dir.mkdir()
    np.save(engine.files.input_dir / "flat.npy", np.zeros((8, 8), dtype=np.float32))

    validation = engine.validate(saving(class_type, prefix))

    assert [(issue.code, issue.node_id, issue.input_name) for issue in validation.issues] == [
        (Code.CUSTOM_VALIDATION_FAILED, "3", "filename_prefix")
    ]
    assert "inside the output folder" in validation.issues[0].message
    assert not any(outside.iterdir())
    assert engine.validate(saving(class_type, "renders/cat")).ok

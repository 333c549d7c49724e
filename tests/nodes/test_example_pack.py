"""The example node pack in examples/custom_nodes loads as custom nodes and its two nodes run: Add
Border frames a photo, and Depth Ensemble runs the depth chain behind its lazy input once per value
and averages the maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.schema import object_info
from depthgraph.nodes.depth_edit import depth_blur
from depthgraph.nodes.depth_ops import normalize_min_max
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom_nodes"
PACK = "depthgraph_custom_nodes.example_pack"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    settings = Settings.under(tmp_path, device="cpu", custom_nodes_dirs=[EXAMPLES])
    settings.input_dir.mkdir()
    photo = np.zeros((12, 20, 3), dtype=np.uint8)
    photo[..., 0] = 255  # red
    Image.fromarray(photo).save(settings.input_dir / "photo.png")
    ramp = np.linspace(0.0, 1.0, 16 * 24, dtype=np.float32).reshape(16, 24) ** 2
    np.save(settings.input_dir / "depth.npy", ramp)
    return Engine(settings)


def framed_depth_graph(values: str = "0, 3") -> dict[str, Any]:
    """A photo framed by Add Border; a depth map blurred at each radius in `values`, averaged by Depth
    Ensemble, matched to the framed photo and saved as .npy."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "ImageBorder", "inputs": {"image": ["1", 0], "border": 2, "gray": 0.5}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "LoadDepth", "inputs": {"depth": "depth.npy"}},
        "5": {"class_type": "DepthBlur", "inputs": {"depth": ["4", 0], "method": "gaussian", "radius": 1}},
        "6": {
            "class_type": "DepthEnsemble",
            "inputs": {"depth": ["5", 0], "target": "5.radius", "values": values},
        },
        "7": {"class_type": "DepthMatchImage", "inputs": {"depth": ["6", 0], "image": ["2", 0]}},
        "8": {"class_type": "SaveDepth", "inputs": {"depth": ["7", 0], "format": ".npy"}},
    }


def test_the_example_pack_loads_as_custom_nodes(engine: Engine) -> None:
    assert engine.pack_report.problems == []
    assert engine.pack_report.loaded[f"{PACK}.image_border"] == ["ImageBorder"]
    assert engine.pack_report.loaded[f"{PACK}.depth_ensemble"] == ["DepthEnsemble"]
    assert not engine.registry.is_builtin("ImageBorder")
    info = object_info(engine.registry, engine.files)
    assert info["DepthEnsemble"]["input"]["required"]["depth"] == [
        "DEPTH",
        {"lazy": True, "tooltip": "the end of the chain that makes the depth map"},
    ]
    assert (
        info["ImageBorder"]["input"]["required"]["border"][1] | {"default": 16, "min": 0, "max": 1024}
        == (info["ImageBorder"]["input"]["required"]["border"][1])
    )


def test_a_graph_through_both_example_nodes_frames_the_photo_and_averages_the_depth(engine: Engine) -> None:
    result = engine.run(framed_depth_graph())

    assert result.status == "success", result.error
    (preview,) = result.outputs["3"]["images"]
    framed = np.asarray(Image.open(engine.files.temp_dir / preview["subfolder"] / preview["filename"]))
    assert framed.shape == (16, 24, 3)  # 12 × 20 and 2 pixels on every side
    assert (framed[0, 0] == 128).all() and (framed[8, 12] == (255, 0, 0)).all()
    (saved,) = result.outputs["8"]["depth_files"]
    averaged = np.load(engine.files.output_dir / saved["subfolder"] / saved["filename"])
    depth = torch.from_numpy(np.load(engine.files.input_dir / "depth.npy"))[None, None]
    maps = [normalize_min_max(depth_blur(depth, "gaussian", radius)[0]) for radius in (0, 3)]
    expected = ((maps[0] + maps[1]) / 2)[0, 0].numpy()
    assert averaged.shape == (16, 24)  # the depth map was 24 × 16, as the framed photo
    np.testing.assert_allclose(averaged, expected, atol=1e-5)


def test_depth_ensemble_checks_the_values_against_the_swept_input(engine: Engine) -> None:
    result = engine.run(framed_depth_graph(values="2, 500"))

    assert result.status == "error"
    assert result.error is not None and result.error.node_id == "6"
    assert "value '500' for 5.radius" in result.error.exception_message


def test_add_border_declares_the_size_it_makes(engine: Engine) -> None:
    border = engine.registry.get("ImageBorder")
    assert border is not None and border.output_size is not None
    assert border.output_size({"image": torch.zeros(2, 12, 20, 3), "border": 2}) == 2 * 16 * 24
    assert border.output_size({"border": 2}) is None  # at validation the image is not there yet

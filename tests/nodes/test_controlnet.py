"""ControlNet in graphs: the shipped controlnet_depth.json, what validation refuses before anything runs,
what a change of the ControlNet's settings re-runs, the control image made from depth, and the
schedule share and sizes a ControlNet applies at."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.validation import Code
from depthgraph.nodes.controlnet import ControlNetAddition, depth_to_control_image
from depthgraph.nodes.image import image_batch
from depthgraph.nodes.unet_additions import UNetCall
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    yield Engine(Settings.under(tmp_path, device="cpu"))


def controlnet_graph(steps: int = 2) -> dict[str, Any]:
    prompt = copy.deepcopy(json.loads((ROOT / "graphs" / "controlnet_depth.json").read_text())["nodes"])
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = steps
    return prompt


def test_the_graph_saves_the_result_and_its_control_image(engine: Engine) -> None:
    result = engine.run(controlnet_graph())
    assert result.status == "success", result.error
    (control,) = result.outputs["13"]["images"]
    with Image.open(engine.files.output_dir / control["filename"]) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape == (64, 64, 3)  # the photo's size for the model (96 wide, cropped to 64)
    assert pixels.min() == 0 and pixels.max() == 255  # stretched: farthest black, nearest white
    assert (pixels[..., 0] == pixels[..., 2]).all()  # gray
    assert result.outputs["11"]["images"]


def test_changing_only_the_controlnet_strength_reruns_the_sampler_and_what_follows(engine: Engine) -> None:
    prompt = controlnet_graph()
    first = engine.run(prompt)
    assert first.status == "success", first.error
    reads = engine.models.reads
    prompt["16"]["inputs"]["strength"] = 0.5
    again = engine.run(prompt)
    assert again.status == "success", again.error
    # Not the depth estimation (4), the control image (12), the text encoders (5, 6) or the loaders.
    assert sorted(again.executed, key=int) == ["9", "10", "11", "16"]
    assert engine.models.reads == reads
    prompt["16"]["inputs"]["end_percent"] = 0.5
    assert sorted(engine.run(prompt).executed, key=int) == ["9", "10", "11", "16"]


def test_the_controlnet_strength_steers_the_result(engine: Engine) -> None:
    pictures = []
    for strength in (0.0, 1.0, 2.0):
        prompt = controlnet_graph()
        prompt["16"]["inputs"]["strength"] = strength
        result = engine.run(prompt)
        assert result.status == "success", result.error
        with Image.open(engine.files.output_dir / result.outputs["11"]["images"][0]["filename"]) as picture:
            pictures.append(np.asarray(picture, dtype=np.float32))
    assert np.abs(pictures[0] - pictures[1]).mean() > 1.0
    assert np.abs(pictures[1] - pictures[2]).mean() > 1.0


def issues_of(engine: Engine, prompt: dict[str, Any]) -> list[tuple[str, str | None, str | None, str]]:
    return [
        (issue.code, issue.node_id, issue.input_name, issue.message)
        for issue in engine.validate(prompt).issues
    ]


def test_an_sdxl_controlnet_on_an_sd15_model_is_refused_before_anything_runs(engine: Engine) -> None:
    prompt = controlnet_graph()
    prompt["15"]["inputs"]["control_net_name"] = "tiny-controlnet-sdxl"
    ((code, node_id, name, message),) = issues_of(engine, prompt)
    assert (code, node_id, name) == (Code.INCOMPATIBLE_INPUT, "16", "control_net")
    assert "this ControlNet is for Stable Diffusion XL" in message
    assert "Stable Diffusion 1.x's text encoder" in message
    assert "load a ControlNet made for Stable Diffusion 1.x" in message


def test_an_sd15_controlnet_on_an_sdxl_model_is_refused(engine: Engine) -> None:
    prompt = controlnet_graph()
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-sdxl"
    ((code, node_id, name, message),) = issues_of(engine, prompt)
    assert (code, node_id, name) == (Code.INCOMPATIBLE_INPUT, "16", "control_net")
    assert "for Stable Diffusion 1.x" in message and "Stable Diffusion XL's text encoder" in message


def test_a_controlnet_with_the_depth_sampler_on_sd2_depth_is_accepted(engine: Engine) -> None:
    """An SD 2.x ControlNet reads SD2-depth's text space and fits its UNet's blocks."""
    prompt = json.loads((ROOT / "graphs" / "depth2img.json").read_text())["nodes"]
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = 2
    prompt["20"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny-controlnet-sd21"}}
    prompt["21"] = {"class_type": "DepthToControlImage", "inputs": {"depth": ["4", 0]}}
    prompt["22"] = {
        "class_type": "ControlNetApply",
        "inputs": {"positive": ["5", 0], "negative": ["6", 0], "control_net": ["20", 0], "image": ["21", 0]},
    }
    prompt["9"]["inputs"].update(positive=["22", 0], negative=["22", 1])
    result = engine.run(prompt)
    assert result.status == "success", result.error


def test_a_start_after_the_end_is_refused(engine: Engine) -> None:
    prompt = controlnet_graph()
    prompt["16"]["inputs"].update(start_percent=0.8, end_percent=0.3)
    ((code, node_id, name, message),) = issues_of(engine, prompt)
    assert (code, node_id, name) == (Code.CUSTOM_VALIDATION_FAILED, "16", "start_percent")
    assert "would never apply" in message


def test_a_missing_controlnet_lists_the_choices_and_the_folder(engine: Engine) -> None:
    prompt = controlnet_graph()
    prompt["15"]["inputs"]["control_net_name"] = "control_v11f1p_sd15_depth"
    ((code, node_id, name, message),) = issues_of(engine, prompt)
    assert (code, node_id, name) == (Code.VALUE_NOT_IN_LIST, "15", "control_net_name")
    assert "tiny-controlnet-sd15" in message
    assert str((engine.files.models_dir / "controlnet").resolve()) in message


def test_a_stable_diffusion_checkpoint_in_the_controlnet_folder_is_refused_saying_so(engine: Engine) -> None:
    from safetensors.torch import save_file

    folder = engine.files.models_dir / "controlnet"
    folder.mkdir(parents=True)
    save_file(
        {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)},
        folder / "sd15.safetensors",
    )
    prompt = controlnet_graph()
    prompt["15"]["inputs"]["control_net_name"] = "sd15.safetensors"
    ((_, node_id, name, message),) = issues_of(engine, prompt)
    assert (node_id, name) == ("15", "control_net_name")
    assert "not a ControlNet" in message and "Load Checkpoint" in message


def test_the_control_image_is_the_depth_stretched_near_white_at_the_image_size() -> None:
    depth = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    (image,) = depth_to_control_image(depth, 0.0, 100.0, None)
    assert image.shape == (1, 2, 2, 3)
    assert torch.allclose(image[0, :, :, 1], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    (sized,) = depth_to_control_image(depth, 0.0, 100.0, torch.zeros(1, 6, 8, 3))
    assert sized.shape == (1, 6, 8, 3)
    assert sized.min() == 0.0 and sized.max() == 1.0
    ramp = torch.arange(100.0).view(1, 1, 10, 10)
    (clipped,) = depth_to_control_image(ramp, 10.0, 90.0, None)
    assert (clipped[0, 0, :, 0] == 0).all() and (clipped[0, -1, :, 0] == 1).all()


def test_the_controlnet_applies_inside_its_share_of_the_steps_as_diffusers_counts_them() -> None:
    addition = ControlNetAddition(None, torch.zeros(1, 3, 8, 8), 1.0, 0.2, 0.8)  # type: ignore[arg-type]
    assert [addition.applies_at(step, 10) for step in range(10)] == [False, False] + [True] * 6 + [False] * 2


def test_the_control_image_is_resized_to_the_latents_and_repeated_over_the_batch() -> None:
    image = torch.rand(2, 3, 32, 48)
    addition = ControlNetAddition(None, image, 1.0, 0.0, 1.0)  # type: ignore[arg-type]
    hint = addition._hint(torch.zeros(4, 4, 8, 8))  # two images, both guidance halves
    assert hint.shape == (4, 3, 64, 64)
    assert torch.equal(hint[0], hint[2]) and not torch.equal(hint[0], hint[1])
    with pytest.raises(ValueError, match="control image has a batch of 2 but the latents have 3"):
        addition._hint(torch.zeros(3, 4, 8, 8))


def test_an_addition_on_both_halves_is_asked_once_for_the_whole_batch() -> None:
    from depthgraph.nodes.unet_additions import additional_unet_inputs

    seen: list[int] = []

    class Counting:
        def unet_inputs(self, call: UNetCall) -> dict[str, Any]:
            seen.append(call.sample.shape[0])
            return {"mid_block_additional_residual": call.sample.clone()}

    shared, own = Counting(), Counting()
    calls = [
        UNetCall(torch.full((1, 4, 2, 2), float(n)), torch.tensor(1), torch.zeros(1, 77, 8), None, 0, 4)
        for n in range(2)
    ]
    joined = additional_unet_inputs([((shared,), calls[0]), ((shared, own), calls[1])])
    assert seen == [2, 1]  # shared: both halves at once; own: the positive half alone
    residual = joined["mid_block_additional_residual"]
    assert residual.shape == (2, 4, 2, 2)
    assert torch.equal(residual[0], calls[0].sample[0])
    assert torch.equal(residual[1], 2 * calls[1].sample[0])  # two additions on one half are summed


def test_batch_images_joins_two_batches_at_the_first_ones_size() -> None:
    first, second = torch.rand(2, 16, 16, 3), torch.rand(1, 32, 32, 3)
    (joined,) = image_batch(first, second)
    assert joined.shape == (3, 16, 16, 3)
    assert torch.equal(joined[:2], first)

"""Plain image-to-image beside depth-to-image: what each model family can be wired to is said at
validation, inpainting by noise mask keeps what is not masked, and what a conditioning carries for the
UNet (the ControlNet hook) reaches every UNet call."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.validation import Code
from depthgraph.engine.models.manager import ModelHandle, ModelManager
from depthgraph.nodes.conditioning_value import Conditioning
from depthgraph.nodes.latent import noise_latent
from depthgraph.nodes.sampling import sample
from depthgraph.nodes.text import encode_prompt
from depthgraph.nodes.unet_additions import UNetCall
from depthgraph.nodes.vae import encode_image
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "input").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "input" / "photo.png")
    yield Engine(Settings.under(tmp_path, device="cpu"))


def shipped(name: str, steps: int = 2) -> dict[str, Any]:
    prompt = copy.deepcopy(json.loads((ROOT / "graphs" / name).read_text())["nodes"])
    prompt["2"]["inputs"]["image"] = "photo.png"
    prompt["8"]["inputs"]["steps"] = steps
    return prompt


def issues_of(engine: Engine, prompt: dict[str, Any]) -> dict[tuple[str | None, str | None], Any]:
    return {(issue.node_id, issue.input_name): issue for issue in engine.validate(prompt).issues}


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sd21", "tiny-sd21-v", "tiny-sdxl"])
def test_the_img2img_graph_runs_on_every_tiny_family(engine: Engine, model: str) -> None:
    prompt = shipped("img2img.json")
    prompt["1"]["inputs"]["ckpt_name"] = model
    result = engine.run(prompt)
    assert result.status == "success", result.error
    assert len(result.outputs["11"]["images"]) == 1


def test_the_img2img_graph_has_the_settings_nodes_of_depth2img() -> None:
    """A script sets model, image, seed, steps, strength, cfg and scheduler on the same node ids."""
    img2img, depth2img = shipped("img2img.json"), shipped("depth2img.json")
    for node_id, names in {
        "1": ["ckpt_name"],
        "2": ["image"],
        "8": ["seed", "steps", "strength", "scheduler"],
    }.items():
        assert img2img[node_id]["class_type"] == depth2img[node_id]["class_type"]
        assert all(name in img2img[node_id]["inputs"] for name in names)
    assert "cfg" in img2img["9"]["inputs"] and "cfg" in depth2img["9"]["inputs"]
    assert (img2img["9"]["class_type"], depth2img["9"]["class_type"]) == ("Sampler", "DepthSampler")


def test_a_depth_sampler_on_a_model_without_depth_is_refused_before_running(engine: Engine) -> None:
    prompt = shipped("depth2img.json")
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-sd15"
    issues = issues_of(engine, prompt)
    model = issues[("9", "model")]
    assert model.code == Code.INCOMPATIBLE_INPUT
    assert "this model takes no depth: it is Stable Diffusion 1.x" in model.message
    assert "use Sampler for image-to-image, or a depth ControlNet" in model.message.replace("Use", "use")
    estimator = issues[("4", "depth_model")]
    assert "bundles no depth estimator" in estimator.message and "DepthModelLoader" in estimator.message
    assert engine.models.loaded() == []  # nothing was loaded to find out


def test_the_plain_sampler_on_the_depth_model_is_refused_before_running(engine: Engine) -> None:
    prompt = shipped("img2img.json")
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-random"
    (issue,) = engine.validate(prompt).issues
    assert (issue.node_id, issue.input_name, issue.code) == ("9", "model", Code.INCOMPATIBLE_INPUT)
    assert "this is a depth model" in issue.message and "use DepthSampler" in issue.message


def test_a_prompt_encoded_for_another_family_is_refused_before_running(engine: Engine) -> None:
    prompt = shipped("img2img.json")
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-sdxl"
    prompt["12"] = {"class_type": "CheckpointLoader", "inputs": {"ckpt_name": "tiny-sd15"}}
    prompt["5"]["inputs"]["clip"] = ["12", 1]
    (issue,) = engine.validate(prompt).issues
    assert (issue.node_id, issue.input_name) == ("9", "positive")
    assert "encoded by Stable Diffusion 1.x's text encoder" in issue.message
    assert "encode the prompt with this model's CLIP" in issue.message
    prompt["12"]["inputs"]["ckpt_name"] = "tiny-random"  # SD 2.x and SD2-depth share OpenCLIP ViT-H
    prompt["1"]["inputs"]["ckpt_name"] = "tiny-sd21"
    assert engine.validate(prompt).ok


def test_sdxl_size_conditioning_on_another_family_is_refused(engine: Engine) -> None:
    prompt = shipped("img2img.json")
    prompt["5"] = {
        "class_type": "CLIPTextEncodeSDXL",
        "inputs": {"clip": ["1", 1], "text_g": "a", "text_l": "a"},
    }
    (issue,) = engine.validate(prompt).issues
    assert (issue.node_id, issue.input_name) == ("5", "clip")
    assert "needs an SDXL model" in issue.message


def test_a_model_depthgraph_does_not_run_is_refused_at_the_loader(engine: Engine) -> None:
    from depthgraph.engine.models.family_configs import SD1_UNET

    folder = engine.settings.models_dir / "sd15-inpainting"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text(json.dumps({**SD1_UNET, "in_channels": 9}))
    prompt = shipped("img2img.json")
    prompt["1"]["inputs"]["ckpt_name"] = "sd15-inpainting"
    (issue,) = engine.validate(prompt).issues
    assert (issue.node_id, issue.input_name, issue.code) == ("1", "ckpt_name", Code.CUSTOM_VALIDATION_FAILED)
    assert "is an inpainting model" in issue.message and "SetLatentNoiseMask" in issue.message


def test_the_samplers_refuse_a_wrong_model_at_run_time_too() -> None:
    """For graphs whose model validation cannot tell (a custom loader): the sampler checks the UNet."""
    plain = ModelHandle(ModelManager(), "tiny-sd15")
    (latent,) = noise_latent(plain, encode_image(plain, torch.rand(1, 32, 32, 3)), 1, 0.5, 2, "ddim")
    text = encode_prompt(plain, "")
    with pytest.raises(ValueError, match="this model takes no depth"):
        sample(plain, text, text, torch.rand(1, 1, 8, 8), latent, 5.0)
    depth = ModelHandle(plain.manager, "tiny-random")
    with pytest.raises(ValueError, match="this is a depth model"):
        sample(depth, encode_prompt(depth, ""), encode_prompt(depth, ""), None, latent, 5.0)


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl"])
def test_inpainting_with_a_noise_mask_keeps_the_unmasked_region(model: str) -> None:
    handle = ModelHandle(ModelManager(), model)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    encoded = encode_image(handle, image)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 32:] = 1.0  # regenerate the right half only
    (noised,) = noise_latent(handle, encoded.with_noise_mask(mask), 4, 0.9, 4, "euler")
    text, negative = encode_prompt(handle, "a pumpkin"), encode_prompt(handle, "")
    result = sample(handle, text, negative, None, noised, 5.0)
    original = noised.require_noising().init
    assert torch.equal(result[..., :3], original[..., :3])  # clear of the seam (latent column 3-4)
    assert (result[..., 5:] - original[..., 5:]).abs().mean() > 0.05


class RecordingAddition:
    """A stand-in for a ControlNet: records what it is called with, adds a residual to the middle block."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.calls: list[UNetCall] = []

    def unet_inputs(self, call: UNetCall) -> Mapping[str, Any] | None:
        self.calls.append(call)
        if self.scale == 0.0:
            return None
        batch, _, height, width = call.sample.shape
        # The tiny SD 2 UNet's down-block outputs (conv_in, two resnets and a downsampler at 32 channels,
        # two resnets at 64) and its middle: diffusers adds the middle only with the down residuals.
        sizes = (
            [(32, height, width)] * 3 + [(32, height // 2, width // 2)] + [(64, height // 2, width // 2)] * 2
        )
        down = [torch.full((batch, *size), self.scale) for size in sizes]
        return {
            "down_block_additional_residuals": down,
            "mid_block_additional_residual": torch.full((batch, 64, height // 2, width // 2), self.scale),
        }


def test_what_a_conditioning_adds_reaches_every_unet_call() -> None:
    """The hook ControlNetApply will use: each half's additions are asked at every step and their
    residuals added to the UNet's call; an addition that gives nothing changes nothing."""
    handle = ModelHandle(ModelManager(), "tiny-sd21")
    (latent,) = noise_latent(handle, encode_image(handle, torch.rand(1, 32, 32, 3)), 2, 0.75, 4, "ddim")
    positive, negative = encode_prompt(handle, "a cat"), encode_prompt(handle, "")
    plain = sample(handle, positive, negative, None, latent, 5.0)
    idle = RecordingAddition(0.0)
    untouched = sample(handle, positive.with_addition(idle), negative, None, latent, 5.0)
    assert torch.equal(plain, untouched)
    assert [call.step for call in idle.calls] == [0, 1, 2] and idle.calls[0].steps == 3
    assert torch.equal(idle.calls[0].embeddings, positive.embeddings)
    pushing = RecordingAddition(0.5)
    pushed = sample(handle, positive.with_addition(pushing), negative, None, latent, 5.0)
    assert (pushed - plain).abs().max() > 1e-3
    assert isinstance(positive.with_addition(pushing), Conditioning)

"""Image-to-image under a ControlNet gives diffusers' StableDiffusionControlNetImg2ImgPipeline's image
(SD 1.5, and two ControlNets stacked as its MultiControlNet runs them) and
StableDiffusionXLControlNetImg2ImgPipeline's (SDXL), on the same model and ControlNet folders, photo,
control image, prompt, seed, steps, strength, guidance, ControlNet strength and start/end (fp32 CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.models.tiny_controlnets import build_tiny_controlnet
from depthgraph.nodes.schedulers import make_scheduler
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetImg2ImgPipeline,
)
from PIL import Image

from tests.models.family_files import save_folder
from tests.nodes.parity import KEPT, keep_image, write_photo

PROMPT, NEGATIVE = "photo of two men wrestling", "blurry, lowres"
MODELS = {"sd15": "tiny-sd15", "sdxl": "tiny-sdxl"}
CONTROLNETS = {"cn-sd15": "tiny-controlnet-sd15", "cn-sdxl": "tiny-controlnet-sdxl"}
TOLERANCE = 1 / 255  # one step of an 8-bit image


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models and ControlNets saved in diffusers layout (models/ and models/controlnet/)."""
    models = tmp_path_factory.mktemp("models")
    for folder, name in MODELS.items():
        save_folder(name, models / folder)
    for folder, name in CONTROLNETS.items():
        build_tiny_controlnet(name).save_pretrained(models / "controlnet" / folder)
    # A second SD 1.5 ControlNet with other weights, for stacking.
    second = build_tiny_controlnet("tiny-controlnet-sd15")
    with torch.no_grad():
        for parameter in second.parameters():
            parameter.mul_(-0.7)
    second.save_pretrained(models / "controlnet" / "cn-sd15-b")
    return models


def control_picture(input_dir: Path, name: str, seed: int) -> Image.Image:
    """A 64×64 control image: a bright disc on a gradient (as a depth map of one near object looks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    centre = rng.uniform(20, 44, 2)
    disc = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 < 15**2) * 200.0
    gray = np.clip(disc + y * 0.8, 0, 255).astype(np.uint8)
    picture = Image.fromarray(np.stack([gray] * 3, -1))
    picture.save(input_dir / name)
    return picture


@pytest.fixture
def workspace(tmp_path: Path, model_folder: Path) -> Iterator[tuple[Engine, Image.Image, list[Image.Image]]]:
    photo = write_photo(tmp_path / "input")
    controls = [control_picture(tmp_path / "input", f"control{n}.png", n) for n in range(2)]
    engine = Engine(Settings.under(tmp_path, models_dir=model_folder, device="cpu"))
    engine.registry.add(keep_image, builtin=False)
    yield engine, photo, controls
    KEPT.clear()


Applied = tuple[str, float, float, float]  # ControlNet folder, strength, start, end


def graph(
    model: str, applied: list[Applied], seed: int, strength: float, steps: int, cfg: float, scheduler: str
) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoader", "inputs": {"ckpt_name": model}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "7": {
            "class_type": "NoiseLatent",
            "inputs": {
                "model": ["1", 0],
                "latent": ["6", 0],
                "seed": seed,
                "strength": strength,
                "steps": steps,
                "scheduler": scheduler,
            },
        },
    }
    positive, negative = ["4", 0], ["5", 0]
    for index, (name, weight, start, end) in enumerate(applied):
        loader, image, apply = f"2{index}", f"3{index}", f"4{index}"
        prompt[loader] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}}
        prompt[image] = {"class_type": "LoadImage", "inputs": {"image": f"control{index}.png"}}
        prompt[apply] = {
            "class_type": "ControlNetApply",
            "inputs": {
                "positive": positive,
                "negative": negative,
                "control_net": [loader, 0],
                "image": [image, 0],
                "strength": weight,
                "start_percent": start,
                "end_percent": end,
            },
        }
        positive, negative = [apply, 0], [apply, 1]
    prompt["8"] = {
        "class_type": "Sampler",
        "inputs": {
            "model": ["1", 0],
            "positive": positive,
            "negative": negative,
            "latent_image": ["7", 0],
            "cfg": cfg,
        },
    }
    prompt["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}}
    prompt["10"] = {"class_type": "KeepImage", "inputs": {"image": ["9", 0]}}
    return prompt


def diffusers_image(
    models: Path,
    model: str,
    applied: list[Applied],
    photo: Image.Image,
    controls: list[Image.Image],
    seed: int,
    strength: float,
    steps: int,
    cfg: float,
    scheduler: str,
) -> np.ndarray:
    nets = [ControlNetModel.from_pretrained(models / "controlnet" / name) for name, *_ in applied]
    kind: Any = (
        StableDiffusionXLControlNetImg2ImgPipeline
        if model == "sdxl"
        else StableDiffusionControlNetImg2ImgPipeline
    )
    single = len(nets) == 1
    pipeline = kind.from_pretrained(models / model, controlnet=nets[0] if single else nets)
    pipeline.scheduler = make_scheduler(scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)

    def each(values: list[Any]) -> Any:
        return values[0] if single else values

    result = pipeline(
        PROMPT,
        image=photo,
        control_image=each(controls[: len(nets)]),
        negative_prompt=NEGATIVE,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=cfg,
        controlnet_conditioning_scale=each([weight for _, weight, _, _ in applied]),
        control_guidance_start=each([start for _, _, start, _ in applied]),
        control_guidance_end=each([end for *_, end in applied]),
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return np.asarray(result.images)


CASES = [
    # model, ControlNets applied, seed, strength, steps, guidance, scheduler
    ("sd15", [("cn-sd15", 1.0, 0.0, 1.0)], 0, 0.75, 6, 7.5, "pndm"),
    ("sd15", [("cn-sd15", 0.6, 0.2, 0.8)], 1, 1.0, 5, 5.0, "euler_ancestral"),
    ("sd15", [("cn-sd15", 1.2, 0.0, 0.6), ("cn-sd15-b", 0.8, 0.3, 1.0)], 2, 0.9, 6, 7.5, "dpmpp_2m_karras"),
    ("sd15", [("cn-sd15", 1.0, 0.0, 1.0)], 3, 1.0, 4, 1.0, "ddim"),  # no guidance: one half
    ("sdxl", [("cn-sdxl", 1.0, 0.0, 1.0)], 4, 0.7, 5, 5.0, "euler"),
    ("sdxl", [("cn-sdxl", 0.5, 0.0, 0.5)], 5, 1.0, 4, 7.5, "dpmpp_2m"),
]


@pytest.mark.parametrize(("model", "applied", "seed", "strength", "steps", "cfg", "scheduler"), CASES)
def test_the_graph_reproduces_the_diffusers_controlnet_img2img_pipeline(
    workspace: tuple[Engine, Image.Image, list[Image.Image]],
    model_folder: Path,
    model: str,
    applied: list[Applied],
    seed: int,
    strength: float,
    steps: int,
    cfg: float,
    scheduler: str,
) -> None:
    engine, photo, controls = workspace
    result = engine.run(graph(model, applied, seed, strength, steps, cfg, scheduler))
    assert result.status == "success", result.error
    ours = KEPT["image"].numpy()
    theirs = diffusers_image(
        model_folder, model, applied, photo, controls, seed, strength, steps, cfg, scheduler
    )

    assert ours.shape == theirs.shape == (1, 64, 64, 3)
    assert theirs.std() > 0.01
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_the_controlnet_changes_the_picture(workspace: tuple[Engine, Image.Image, list[Image.Image]]) -> None:
    """Against a vacuous pass: without the ControlNet, or at strength 0, the image is plain img2img's;
    with it, another one."""
    engine, _, _ = workspace
    pictures = []
    for applied in ([], [("cn-sd15", 0.0, 0.0, 1.0)], [("cn-sd15", 1.0, 0.0, 1.0)]):
        result = engine.run(graph("sd15", applied, 9, 0.8, 4, 7.5, "ddim"))
        assert result.status == "success", result.error
        pictures.append(KEPT["image"].clone())
    assert torch.equal(pictures[0], pictures[1])
    assert (pictures[0] - pictures[2]).abs().max() > 0.02

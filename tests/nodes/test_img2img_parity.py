"""The image-to-image graph gives diffusers' StableDiffusionImg2ImgPipeline's image (SD 1.5 and SD 2.1,
epsilon and v-prediction) and StableDiffusionXLImg2ImgPipeline's (SDXL, with its size conditioning) on
the same model folder, image, prompt, seed, steps, strength, guidance and scheduler (fp32 CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.nodes.schedulers import make_scheduler
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from PIL import Image

from tests.models.family_files import save_folder
from tests.nodes.parity import KEPT, keep_image, write_photo

PROMPT, NEGATIVE = "photo of two men wrestling", "blurry, lowres"
MODELS = {  # folder name -> the built-in tiny model saved there
    "sd15": "tiny-sd15",
    "sd21": "tiny-sd21",
    "sd21-v": "tiny-sd21-v",
    "sdxl": "tiny-sdxl",
}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each tiny family saved in diffusers layout, as `from_pretrained` and our manager both read it."""
    models = tmp_path_factory.mktemp("models")
    for folder, name in MODELS.items():
        save_folder(name, models / folder)
    return models


@pytest.fixture
def workspace(tmp_path: Path, model_folder: Path) -> Iterator[tuple[Engine, Image.Image]]:
    photo = write_photo(tmp_path / "input")
    engine = Engine(Settings.under(tmp_path, models_dir=model_folder, device="cpu"))
    engine.registry.add(keep_image, builtin=False)
    yield engine, photo
    KEPT.clear()


def graph(model: str, seed: int, strength: float, steps: int, cfg: float, scheduler: str) -> dict[str, Any]:
    return {
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
        "8": {
            "class_type": "Sampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "latent_image": ["7", 0],
                "cfg": cfg,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "KeepImage", "inputs": {"image": ["9", 0]}},
    }


def diffusers_image(
    folder: Path, photo: Image.Image, seed: int, strength: float, steps: int, cfg: float, scheduler: str
) -> np.ndarray:
    kind: Any = StableDiffusionXLImg2ImgPipeline if folder.name == "sdxl" else StableDiffusionImg2ImgPipeline
    pipeline = kind.from_pretrained(folder)
    pipeline.scheduler = make_scheduler(scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    result = pipeline(
        PROMPT,
        image=photo,
        negative_prompt=NEGATIVE,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=cfg,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return np.asarray(result.images)


CASES = [
    # model folder, seed, strength, steps, guidance, scheduler
    ("sd15", 0, 0.75, 6, 7.5, "pndm"),
    ("sd15", 1, 1.0, 5, 5.0, "euler_ancestral"),
    ("sd21", 2, 0.6, 6, 7.5, "dpmpp_2m_karras"),
    ("sd21", 3, 1.0, 4, 1.0, "ddim"),
    ("sd21-v", 4, 0.8, 5, 7.5, "ddim"),
    ("sd21-v", 5, 0.5, 6, 6.0, "euler"),
    ("sdxl", 6, 0.7, 5, 5.0, "euler"),
    ("sdxl", 7, 1.0, 4, 7.5, "dpmpp_2m"),
]
TOLERANCE = 1 / 255  # one step of an 8-bit image


@pytest.mark.parametrize(("model", "seed", "strength", "steps", "cfg", "scheduler"), CASES)
def test_the_graph_reproduces_the_diffusers_img2img_pipeline(
    workspace: tuple[Engine, Image.Image],
    model_folder: Path,
    model: str,
    seed: int,
    strength: float,
    steps: int,
    cfg: float,
    scheduler: str,
) -> None:
    engine, photo = workspace
    result = engine.run(graph(model, seed, strength, steps, cfg, scheduler))
    assert result.status == "success", result.error
    ours = KEPT["image"].numpy()
    theirs = diffusers_image(model_folder / model, photo, seed, strength, steps, cfg, scheduler)

    assert ours.shape == theirs.shape == (1, 64, 64, 3)
    assert theirs.std() > 0.01  # a real picture (of noise), not a constant both sides could agree on
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_the_v_prediction_model_samples_as_v_prediction(model_folder: Path) -> None:
    """The same weights read as epsilon paint another picture: the prediction type is honoured."""
    from depthgraph.engine.models.manager import ModelManager

    manager = ModelManager(model_folder)
    assert manager.load("sd21-v", "scheduler").config.prediction_type == "v_prediction"
    assert manager.info("sd21-v").prediction_type == "v_prediction"
    assert manager.info("sd21").prediction_type == "epsilon"


def test_sdxl_size_conditioning_reaches_the_unet(workspace: tuple[Engine, Image.Image]) -> None:
    """CLIPTextEncodeSDXL's sizes are SDXL's time ids: other sizes, another picture; the image's own
    size with no crop, the picture CLIPTextEncode gives (diffusers' default)."""
    engine, _ = workspace
    prompt = graph("sdxl", 3, 0.8, 3, 5.0, "euler")
    pictures = []
    for sizes in (None, (64, 64, 0, 0, 64, 64), (1024, 1024, 32, 16, 64, 64)):
        if sizes is not None:
            width, height, crop_w, crop_h, target_width, target_height = sizes
            prompt["4"] = {
                "class_type": "CLIPTextEncodeSDXL",
                "inputs": {
                    "clip": ["1", 1],
                    "width": width,
                    "height": height,
                    "crop_w": crop_w,
                    "crop_h": crop_h,
                    "target_width": target_width,
                    "target_height": target_height,
                    "text_g": PROMPT,
                    "text_l": PROMPT,
                },
            }
        result = engine.run(prompt)
        assert result.status == "success", result.error
        pictures.append(KEPT["image"].clone())
    assert torch.allclose(pictures[0], pictures[1], atol=1e-6)
    assert (pictures[0] - pictures[2]).abs().max() > 1e-3

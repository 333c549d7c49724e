"""The depth-to-image graph gives diffusers' StableDiffusionDepth2ImgPipeline's image on the same model
folder, image, prompt, seed, steps, strength, guidance and scheduler (fp32 CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depthgraph.engine.app.config import Settings
from depthgraph.engine.app.engine import Engine
from depthgraph.engine.core.registry import Output, node
from depthgraph.engine.core.sockets import DEPTH
from depthgraph.engine.models.tiny import BUILDERS, build_tiny
from depthgraph.nodes.schedulers import make_scheduler
from diffusers import StableDiffusionDepth2ImgPipeline
from PIL import Image

from tests.nodes.parity import KEPT, keep_image, write_photo

SUPPLIED: dict[str, torch.Tensor] = {}
PROMPT, NEGATIVE = "photo of two men wrestling", "blurry, lowres"


@node("SuppliedDepth", category="test", description="A depth map the test supplies.", outputs=[Output(DEPTH)])
def supplied_depth() -> tuple[torch.Tensor]:
    return (SUPPLIED["depth"],)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved in diffusers layout, as `from_pretrained` and our manager both read it."""
    models = tmp_path_factory.mktemp("models")
    pipeline = StableDiffusionDepth2ImgPipeline(**{name: build_tiny(name) for name in BUILDERS})
    pipeline.save_pretrained(models / "tiny-depth")
    return models


@pytest.fixture
def workspace(tmp_path: Path, model_folder: Path) -> Iterator[tuple[Engine, Image.Image]]:
    photo = write_photo(tmp_path / "input")
    engine = Engine(Settings.under(tmp_path, models_dir=model_folder, device="cpu"))
    engine.registry.add(keep_image, builtin=False)
    engine.registry.add(supplied_depth, builtin=False)
    yield engine, photo
    KEPT.clear()
    SUPPLIED.clear()


def graph(
    seed: int, strength: float, steps: int, cfg: float, scheduler: str, depth_from: list[Any]
) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoader", "inputs": {"ckpt_name": "tiny-depth"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "3": {"class_type": "DepthEstimate", "inputs": {"depth_model": ["1", 3], "image": ["2", 0]}},
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
            "class_type": "DepthSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "depth": depth_from,
                "latent_image": ["7", 0],
                "cfg": cfg,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "KeepImage", "inputs": {"image": ["9", 0]}},
        "11": {"class_type": "SuppliedDepth", "inputs": {}},
    }


def diffusers_image(
    folder: Path,
    photo: Image.Image,
    seed: int,
    strength: float,
    steps: int,
    cfg: float,
    scheduler: str,
    depth_map: torch.Tensor | None,
) -> np.ndarray:
    pipeline = StableDiffusionDepth2ImgPipeline.from_pretrained(folder)
    pipeline.scheduler = make_scheduler(scheduler, pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    result = pipeline(
        PROMPT,
        image=photo,
        depth_map=depth_map,
        negative_prompt=NEGATIVE,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=cfg,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return np.asarray(result.images)


CASES = [
    # seed, strength, steps, guidance, scheduler, depth supplied
    (0, 0.75, 6, 7.5, "pndm", False),
    (1, 1.0, 5, 5.0, "euler_ancestral", False),
    (2, 0.6, 6, 7.5, "dpmpp_2m_karras", True),
    (3, 1.0, 4, 1.0, "ddim", True),
]


@pytest.mark.parametrize(("seed", "strength", "steps", "cfg", "scheduler", "supplied"), CASES)
def test_the_graph_reproduces_the_diffusers_pipeline(
    workspace: tuple[Engine, Image.Image],
    model_folder: Path,
    seed: int,
    strength: float,
    steps: int,
    cfg: float,
    scheduler: str,
    supplied: bool,
) -> None:
    engine, photo = workspace
    depth_map = None
    depth_from: list[Any] = ["3", 0]
    if supplied:
        generator = torch.Generator().manual_seed(99)
        depth_map = torch.rand(1, 24, 24, generator=generator) + torch.linspace(0, 2, 24)[None, :, None]
        SUPPLIED["depth"] = depth_map[:, None]
        depth_from = ["11", 0]

    result = engine.run(graph(seed, strength, steps, cfg, scheduler, depth_from))
    assert result.status == "success", result.error
    ours = KEPT["image"].numpy()
    theirs = diffusers_image(
        model_folder / "tiny-depth", photo, seed, strength, steps, cfg, scheduler, depth_map
    )

    assert ours.shape == theirs.shape == (1, 64, 64, 3)
    assert theirs.std() > 0.01  # a real picture (of noise), not a constant both sides could agree on
    assert np.abs(ours - theirs).max() <= 1e-4

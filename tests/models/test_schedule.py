"""Every sampler follows SD2-depth's training schedule on every kind of model source, and DDIM takes
the original's path: Stability's DDIM sampler never clips the predicted image.

The original's DDIM (eta 0) is written out below from Stability's `ldm/models/diffusion/ddim.py`:
timesteps `range(0, 1000, 1000 // steps) + 1`, alphas from `linspace(sqrt(0.00085), sqrt(0.012))**2`,
the step before the first trained one using `alphas_cumprod[0]`, and
`x_prev = sqrt(a_prev) * (x - sqrt(1 - a_t) * e) / sqrt(a_t) + sqrt(1 - a_prev) * e`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from depthgraph.engine.models.manager import ModelManager
from depthgraph.engine.models.sd2_depth import SCHEDULER
from depthgraph.nodes.schedulers import SCHEDULERS, make_scheduler

# stabilityai/stable-diffusion-2-depth's scheduler/scheduler_config.json, as a folder download has it
STABILITY_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
SCHEDULE_KEYS = (
    "beta_start",
    "beta_end",
    "beta_schedule",
    "num_train_timesteps",
    "steps_offset",
    "set_alpha_to_one",
    "prediction_type",
)


def prediction(x: torch.Tensor, t: Any) -> torch.Tensor:
    """A stand-in for the UNet: a smooth function of the latents and the timestep whose predicted
    image leaves [-1, 1] early on, where clipping would change the path."""
    return 0.9 * x + 0.3 * math.cos(float(t) / 97.0)


def start_latent() -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def diffusers_path(
    scheduler: Any, steps: int, model: Callable[..., torch.Tensor] = prediction
) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    x = start_latent() * scheduler.init_noise_sigma
    generator = torch.Generator().manual_seed(3)
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(x, t)
        options = {"generator": generator} if "generator" in scheduler.step.__code__.co_varnames else {}
        x = scheduler.step(model(scaled, t), t, x, **options).prev_sample
    return x


def original_ddim(steps: int) -> tuple[list[int], torch.Tensor]:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    timesteps = [t + 1 for t in range(0, 1000, 1000 // steps)]
    previous = [alphas_cumprod[0], *[alphas_cumprod[t] for t in timesteps[:-1]]]
    x = start_latent()
    for index in reversed(range(len(timesteps))):
        a_t, a_prev = alphas_cumprod[timesteps[index]], previous[index]
        e = prediction(x, timesteps[index])
        predicted_image = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x = a_prev.sqrt() * predicted_image + (1 - a_prev).sqrt() * e
    return timesteps[::-1], x


def sources(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The scheduler config each kind of model gives the sampler."""
    models = tmp_path / "models"
    folder = models / "stable-diffusion-2-depth"
    (folder / "scheduler").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(STABILITY_CONFIG))
    older = models / "converted-earlier"  # written before clip_sample was: diffusers' DDIM would clip
    (older / "scheduler").mkdir(parents=True)
    (older / "model_index.json").write_text("{}")
    without = {key: value for key, value in STABILITY_CONFIG.items() if key != "clip_sample"}
    (older / "scheduler" / "scheduler_config.json").write_text(json.dumps(without))
    (models / "512-depth-ema.safetensors").write_bytes(b"")  # the schedule is read without the weights
    manager = ModelManager(models)
    names = ["tiny-random", "stable-diffusion-2-depth", "converted-earlier", "512-depth-ema.safetensors"]
    return {name: dict(manager.load(name, "scheduler").config) for name in names}


def test_every_source_gives_the_schedule_stabilitys_model_was_trained_with(tmp_path: Path) -> None:
    for name, config in sources(tmp_path).items():
        for key in SCHEDULE_KEYS:
            assert config[key] == STABILITY_CONFIG[key], (name, key)
    assert {key: SCHEDULER[key] for key in STABILITY_CONFIG if key != "_diffusers_version"} == {
        key: value for key, value in STABILITY_CONFIG.items() if key != "_diffusers_version"
    }


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_sampler_on_every_source_takes_the_path_of_diffusers_configured_as_stability(
    tmp_path: Path, name: str
) -> None:
    reference = diffusers_path(make_scheduler(name, STABILITY_CONFIG), 8)
    for source, config in sources(tmp_path).items():
        ours = diffusers_path(make_scheduler(name, config), 8)
        assert torch.allclose(ours, reference, rtol=0, atol=1e-12), (name, source)


def test_ddim_takes_the_original_path_without_clipping(tmp_path: Path) -> None:
    timesteps, original = original_ddim(4)
    for source, config in sources(tmp_path).items():
        scheduler = make_scheduler("ddim", config)
        scheduler.set_timesteps(4)
        assert scheduler.timesteps.tolist() == timesteps == [751, 501, 251, 1]
        ours = diffusers_path(scheduler, 4)
        assert (ours - original).abs().max() <= 1e-5, source  # diffusers keeps alphas in float32


def test_clipping_would_leave_the_original_path(tmp_path: Path) -> None:
    """The case above is one where clipping matters, so it would catch a clipping DDIM."""
    _, original = original_ddim(4)
    clipping = make_scheduler("ddim", {**STABILITY_CONFIG, "clip_sample": True})
    difference = (diffusers_path(clipping, 4) - original).norm() / original.norm()
    assert difference > 0.1

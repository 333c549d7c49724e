"""The samplers users can pick, as diffusers scheduler classes built from the model's own config,
and the strength rule that says where in the schedule denoising starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthgraph.nodes.heavy import torch

SCHEDULERS = ("pndm", "ddim", "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_karras", "unipc")


def make_scheduler(name: str, config: Mapping[str, Any]) -> Any:
    """A fresh scheduler `name` with the model's training schedule (betas, offsets, prediction type).

    A config that does not say `clip_sample` (folders converted by older tools) is read as not
    clipping: Stability's samplers never clip the predicted image, while diffusers' DDIM would."""
    config = {"clip_sample": False, **config}
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        PNDMScheduler,
        UniPCMultistepScheduler,
    )

    if name == "pndm":
        return PNDMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "euler_ancestral":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name in ("dpmpp_2m", "dpmpp_2m_karras"):
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=name.endswith("karras")
        )
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def denoising_timesteps(scheduler: Any, steps: int, strength: float, device: Any) -> torch.Tensor:
    """Set `scheduler` up for `steps` and return the timesteps that run at `strength`.

    The rule of diffusers and Stability: init = min(int(steps * strength), steps); denoising starts at
    timesteps[steps - init] (times the scheduler's order), so strength 0.75 of 50 steps runs 37 steps.
    """
    scheduler.set_timesteps(steps, device=device)
    trained = int(scheduler.config.num_train_timesteps)
    if int(scheduler.timesteps.max()) >= trained:
        # PNDM (and other schedulers with a steps offset) step past the last trained timestep when
        # steps == num_train_timesteps; diffusers would index out of range deep inside add_noise.
        raise ValueError(
            f"{steps} steps take the {type(scheduler).__name__} past the model's {trained} trained "
            f"timesteps; use at most {trained - 1} steps"
        )
    start = max(steps - min(int(steps * strength), steps), 0)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    timesteps: torch.Tensor = scheduler.timesteps[start * scheduler.order :]
    return timesteps

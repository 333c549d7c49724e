"""Where randomness enters (sampling the VAE posterior and the noise from one seeded generator), and
the noise mask that limits where the sampler may change the latents."""

from __future__ import annotations

from typing import Any

import torch
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.registry import Combo, Float, Int, Output, Socket, node
from depthgraph.engine.core.sockets import LATENT, MASK, MODEL
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes import output_sizes
from depthgraph.nodes.schedulers import SCHEDULERS, denoising_timesteps, make_scheduler
from depthgraph.nodes.spatial import fit_mask, match_batch
from depthgraph.nodes.vae import LATENT_SCALE

MAX_SEED = 2**64 - 1
FULL_STRENGTH = ("image+noise", "noise only")


@node(
    "NoiseLatent",
    display_name="Noise Latent",
    category="latent",
    description="Noises encoded latents for a seed, strength, steps and scheduler; the sampler follows them.",
    outputs=[Output(LATENT)],
)
def noise_latent(
    model: ModelHandle = Socket(MODEL),
    latent: dict[str, Any] = Socket(LATENT),
    seed: int = Int(0, min=0, max=MAX_SEED),
    strength: float = Float(
        1.0, min=0.0, max=1.0, step=0.01, display="slider", tooltip="1.0 = regenerate everything"
    ),
    steps: int = Int(50, min=1, max=1000),
    scheduler: str = Combo(SCHEDULERS),
    full_strength: str = Combo(
        FULL_STRENGTH,
        tooltip="at strength 1.0: image+noise matches diffusers; noise only matches Stability",
    ),
) -> tuple[dict[str, Any]]:
    """Noise encoded latents to where `strength` starts denoising, as diffusers does.

    One CPU generator seeded with `seed` draws, in diffusers' order, the VAE posterior sample, then the
    noise; its state travels with the latent so the sampler's own random draws (ancestral samplers)
    continue the same stream. A CPU generator makes a seed give the same image on every device.
    At strength 1.0 diffusers still noises the image to the first timestep (some of it survives);
    "noise only" starts from pure noise instead, as Stability's and ComfyUI's samplers do.
    """
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.utils.torch_utils import randn_tensor

    if "posterior" not in latent:
        raise ValueError("this latent has no VAE posterior to noise; link it from a VAEEncode node")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    posterior = DiagonalGaussianDistribution(latent["posterior"])
    init = posterior.sample(generator) * latent["scaling_factor"]
    noise = randn_tensor(init.shape, generator=generator, device=init.device, dtype=init.dtype)
    scheduler_object = make_scheduler(scheduler, model.get("scheduler").config)
    timesteps = denoising_timesteps(scheduler_object, steps, strength, init.device)
    if len(timesteps) == 0:
        samples = init  # strength 0: nothing to denoise
    elif full_strength == "noise only" and strength >= 1.0:
        samples = noise * scheduler_object.init_noise_sigma
    else:
        samples = scheduler_object.add_noise(init, noise, timesteps[:1].repeat(init.shape[0]))
    result = {key: value for key, value in latent.items() if key not in ("samples", "posterior")}
    result.update(
        samples=samples,
        init=init,
        noise=noise,
        schedule={"scheduler": scheduler, "steps": steps, "strength": strength},
        generator_state=generator.get_state(),
    )
    return (result,)


MAX_BATCH = 64


@node(
    "RepeatLatentBatch",
    display_name="Repeat Latent Batch",
    category="latent",
    description="Repeats encoded latents into a batch: one run, several images (one seed, different noise).",
    outputs=[Output(LATENT)],
    output_size=output_sizes.repeat_latent_batch,
)
def repeat_latent_batch(
    samples: dict[str, Any] = Socket(LATENT), amount: int = Int(1, min=1, max=MAX_BATCH)
) -> tuple[dict[str, Any]]:
    """Each image of an encoded batch `amount` times in a row (what diffusers calls
    num_images_per_prompt): the noising node then draws a different posterior sample and noise for
    each copy, so one seed gives `amount` different images."""
    if "noise" in samples or "schedule" in samples:
        raise ValueError(
            "these latents are already noised; repeat them before the Noise Latent node, so each copy "
            "gets its own noise"
        )
    repeated = {}
    for key, value in samples.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            value = value.repeat_interleave(amount, dim=0)
        repeated[key] = value
    return (repeated,)


@node(
    "SetLatentNoiseMask",
    display_name="Set Latent Noise Mask",
    category="latent/inpaint",
    description=(
        "Marks where the sampler may change the latents (mask 1 = regenerate); the rest is re-imposed from "
        "the original after every step, so only the masked area changes."
    ),
    outputs=[Output(LATENT)],
)
def set_latent_noise_mask(
    samples: dict[str, Any] = Socket(LATENT), mask: torch.Tensor = Socket(MASK), *, context: NodeContext
) -> tuple[dict[str, Any]]:
    """The latent with a noise mask [B, 1, H, W] at image size (the sampler scales it to the latents);
    a mask that selects nothing is warned about."""
    latents = samples["samples"]
    height, width = latents.shape[-2] * LATENT_SCALE, latents.shape[-1] * LATENT_SCALE
    fix = (
        "pass the mask through the same Size Image for Model node as the image; a mask made from a "
        "depth map needs the depth matched to the image first (Match Depth to Image)"
    )
    sized = fit_mask(mask.float(), height, width, "the image of these latents", fix)
    sized = match_batch(sized, latents.shape[0], "mask", "samples")
    if not bool((sized > 0).any()):
        context.warn(
            "the mask is all zeros, so nothing will be regenerated: the sampler returns the input latents"
        )
    return ({**samples, "noise_mask": sized[:, None].contiguous()},)

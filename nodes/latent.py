"""Where randomness enters (sampling the VAE posterior and the noise from one seeded generator), and
the noise mask that limits where the sampler may change the latents."""

from __future__ import annotations

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.registry import Combo, Float, Int, Output, Socket, node
from depthgraph.engine.core.sockets import LATENT, MASK, MODEL
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes import output_sizes
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.latent_value import Latent, Noising, Schedule, as_latent
from depthgraph.nodes.schedulers import SCHEDULERS
from depthgraph.nodes.spatial import fit_mask, match_batch

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
    latent: Latent = Socket(LATENT),
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
) -> tuple[Latent]:
    """Noise encoded latents to where `strength` starts denoising, as diffusers does.

    One CPU generator seeded with `seed` draws, in diffusers' order, the VAE posterior sample, then the
    noise; its state travels with the latent so the sampler's own random draws (ancestral samplers)
    continue the same stream. A CPU generator makes a seed give the same image on every device.
    At strength 1.0 diffusers still noises the image to the first timestep (some of it survives);
    "noise only" starts from pure noise instead, as Stability's and ComfyUI's samplers do.
    """
    from diffusers.utils.torch_utils import randn_tensor

    latent = as_latent(latent)
    posterior = latent.require_posterior()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    init = posterior.sample(generator)
    noise = randn_tensor(init.shape, generator=generator, device=init.device, dtype=init.dtype)
    schedule = Schedule(scheduler, steps, strength)
    scheduler_object, timesteps = schedule.build(model.get("scheduler").config, init.device)
    if len(timesteps) == 0:
        samples = init  # strength 0: nothing to denoise
    elif full_strength == "noise only" and strength >= 1.0:
        samples = noise * scheduler_object.init_noise_sigma
    else:
        samples = scheduler_object.add_noise(init, noise, timesteps[:1].repeat(init.shape[0]))
    return (latent.noised(samples, Noising(init, noise, schedule, generator.get_state())),)


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
    samples: Latent = Socket(LATENT), amount: int = Int(1, min=1, max=MAX_BATCH)
) -> tuple[Latent]:
    """Each image of an encoded batch `amount` times in a row (what diffusers calls
    num_images_per_prompt): the noising node then draws a different posterior sample and noise for
    each copy, so one seed gives `amount` different images."""
    return (as_latent(samples).repeated(amount),)


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
    samples: Latent = Socket(LATENT), mask: torch.Tensor = Socket(MASK), *, context: NodeContext
) -> tuple[Latent]:
    """The latent with a noise mask [B, 1, H, W] at image size (the sampler scales it to the latents);
    a mask that selects nothing is warned about."""
    latent = as_latent(samples)
    height, width = latent.image_size
    fix = (
        "pass the mask through the same Size Image for Model node as the image; a mask made from a "
        "depth map needs the depth matched to the image first (Match Depth to Image)"
    )
    sized = fit_mask(mask.float(), height, width, "the image of these latents", fix)
    sized = match_batch(sized, latent.batch, "mask", "samples")
    if not bool((sized > 0).any()):
        context.warn(
            "the mask is all zeros, so nothing will be regenerated: the sampler returns the input latents"
        )
    return (latent.with_noise_mask(sized[:, None].contiguous()),)

"""Sampling: the UNet denoises noised latents along their schedule, under classifier-free guidance.

One loop (`sample`) serves both samplers: DepthSampler gives SD2-depth's UNet the depth map as a fifth
input channel (diffusers' depth2img pipeline); Sampler runs the 4-channel UNets of SD 1.x, 2.x
(epsilon or v-prediction, as the model's scheduler config says) and SDXL (with its pooled text and
size embedding, as diffusers' SDXL img2img pipeline computes them) as diffusers' img2img pipelines do.
What a conditioning carries beyond its embeddings (`Conditioning.additions`, a ControlNet's residuals)
is added to every UNet call (`nodes.unet_additions`). Which model a sampler takes is checked at
validation (`nodes.pairing`) and again here.
"""

from __future__ import annotations

import inspect
import io
import time
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.events import PreviewFrame
from depthgraph.engine.core.registry import Float, Output, Socket, node
from depthgraph.engine.core.sockets import CONDITIONING, DEPTH, LATENT, MODEL
from depthgraph.engine.models.common import DEPTH_UNET_CHANNELS
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes.conditioning_value import Conditioning, as_conditioning
from depthgraph.nodes.heavy import F, torch
from depthgraph.nodes.image_tensors import tensor_to_pil
from depthgraph.nodes.latent_value import Latent, as_latent
from depthgraph.nodes.pairing import (
    DEPTH_MODEL_IN_SAMPLER,
    NO_DEPTH_INPUT,
    depth_sampler_check,
    sampler_check,
)
from depthgraph.nodes.spatial import resize_planes
from depthgraph.nodes.unet_additions import UNetCall, additional_unet_inputs


def prepare_depth(depth: torch.Tensor, size: tuple[int, int], batch: int) -> torch.Tensor:
    """The depth map as the UNet takes it: bicubic to latent size, each map stretched to -1..1
    (diffusers' rule). A constant map becomes zeros instead of NaN."""
    resized = F.interpolate(depth.float(), size=size, mode="bicubic", align_corners=False)
    low = torch.amin(resized, dim=(1, 2, 3), keepdim=True)
    high = torch.amax(resized, dim=(1, 2, 3), keepdim=True)
    span = high - low
    normalised = torch.where(span > 0, 2.0 * (resized - low) / torch.where(span > 0, span, 1.0) - 1.0, 0.0)
    if normalised.shape[0] < batch:
        normalised = normalised.repeat(batch // normalised.shape[0], 1, 1, 1)
    return normalised


PREVIEW_INTERVAL = 0.25  # seconds between step previews

# How SD's four latent channels map to RGB, roughly (a linear fit; what ComfyUI's fast previews use).
LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


def latent_preview(latents: torch.Tensor) -> PreviewFrame:
    """A small JPEG of the first latent, without decoding it: 1/8 of the image size."""
    factors = torch.tensor(LATENT_RGB, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("chw,cr->hwr", latents[0].float(), factors)
    picture = tensor_to_pil(((rgb + 1.0) / 2.0).clamp(0.0, 1.0))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return PreviewFrame("JPEG", buffer.getvalue())


def _step_options(scheduler: Any, generator: torch.Generator) -> dict[str, Any]:
    parameters = inspect.signature(scheduler.step).parameters
    options: dict[str, Any] = {}
    if "eta" in parameters:
        options["eta"] = 0.0
    if "generator" in parameters:
        options["generator"] = generator
    return options


class _PreviewClock:
    """Step previews at most every `interval` seconds (and on the first and last step): each one
    copies latents to the host and waits for the device, which a GPU should not do every step."""

    def __init__(self, total: int, interval: float = PREVIEW_INTERVAL) -> None:
        self.total = total
        self.interval = interval
        self.last = -interval

    def due(self, step: int) -> bool:
        now = time.monotonic()
        if step in (1, self.total) or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def _sdxl_inputs(
    halves: list[Conditioning], batch: int, image_size: tuple[int, int], device: Any, dtype: Any
) -> list[dict[str, torch.Tensor]]:
    """Each half's `added_cond_kwargs` for SDXL's UNet, as diffusers' SDXL img2img pipeline makes
    them: the pooled text embedding and the six size numbers, repeated over the batch."""
    added = []
    for conditioning in halves:
        pooled = conditioning.require_pooled().to(device=device, dtype=dtype).expand(batch, -1)
        ids = torch.tensor([conditioning.time_ids(image_size)], dtype=dtype, device=device).repeat(batch, 1)
        added.append({"text_embeds": pooled, "time_ids": ids})
    return added


def _joined(added: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([half[key] for half in added]) for key in added[0]}


def sample(
    model: ModelHandle,
    positive: Any,
    negative: Any,
    depth: torch.Tensor | None,
    latent: Latent,
    guidance: float,
    context: NodeContext | None = None,
) -> torch.Tensor:
    """Denoise `latent` (from NoiseLatent) along its schedule; see diffusers' depth2img and img2img
    loops. `depth` is SD2-depth's depth map (None for the 4-channel UNets of the other families).

    With a noise mask in the latent (1 = regenerate), the kept region is replaced after every step by
    the original latents noised to the next timestep, so only the masked area changes.

    Everything the loop needs is put on the device before it starts. The scheduler gets each
    timestep as a host value (its tables live on the host, so looking one up needs no wait for the
    device); the UNet gets it as a device tensor. The UNet runs through the model's runner, which
    replays a CUDA graph where the acceleration settings ask for one.
    """
    noising = latent.require_noising()
    runner = model.unet_runner()
    unet = runner.unet
    takes_depth = unet.config.in_channels == DEPTH_UNET_CHANNELS
    if takes_depth and depth is None:
        raise ValueError(DEPTH_MODEL_IN_SAMPLER)
    if depth is not None and not takes_depth:
        raise ValueError(NO_DEPTH_INPUT)
    device, dtype = unet.device, unet.dtype
    scheduler, timesteps = noising.schedule.build(model.get("scheduler").config, device)
    host_timesteps = timesteps.cpu()
    latents = latent.samples.to(device=device, dtype=dtype)
    batch = latents.shape[0]
    guided = guidance > 1.0
    halves = [as_conditioning(negative), as_conditioning(positive)] if guided else [as_conditioning(positive)]
    embedded = [half.embeddings.to(device=device, dtype=dtype).expand(batch, -1, -1) for half in halves]
    embeddings = torch.cat(embedded)
    added = None
    if unet.config.addition_embed_type == "text_time":  # SDXL
        added = _sdxl_inputs(halves, batch, latent.image_size, device, dtype)
    extra = {"added_cond_kwargs": _joined(added)} if added else {}
    depth_map = None
    if depth is not None:
        depth_map = prepare_depth(depth.to(device), tuple(latents.shape[-2:]), batch).to(dtype)
        if depth_map.shape[0] != batch:
            raise ValueError(
                f"the depth map has a batch of {depth.shape[0]} but the latents have {batch}; give one "
                "depth map for all images, or estimate it from the same batch of images"
            )
        depth_map = torch.cat([depth_map] * len(halves))
    memory_format = torch.channels_last if model.manager.plan.channels_last else torch.contiguous_format
    options = _step_options(scheduler, noising.generator())
    mask = latent.noise_mask
    if mask is not None:
        mask = resize_planes(mask.to(device), *latents.shape[-2:]).to(dtype)
        init = noising.init.to(device=device, dtype=dtype)
        noise = noising.noise.to(device=device, dtype=dtype)
    with_additions = any(half.additions for half in halves)
    clock = _PreviewClock(len(timesteps))
    with torch.inference_mode():
        for index, (timestep, host_timestep) in enumerate(zip(timesteps, host_timesteps, strict=True)):
            model_input = torch.cat([latents] * len(halves))
            model_input = scheduler.scale_model_input(model_input, host_timestep)
            call_extra = extra
            if with_additions:
                calls = [
                    UNetCall(part, timestep, text, added[n] if added else None, index, len(timesteps))
                    for n, (part, text) in enumerate(
                        zip(model_input.chunk(len(halves)), embedded, strict=True)
                    )
                ]
                pairs = [(half.additions, call) for half, call in zip(halves, calls, strict=True)]
                call_extra = {**extra, **additional_unet_inputs(pairs)}
            if depth_map is not None:
                model_input = torch.cat([model_input, depth_map], dim=1)
            model_input = model_input.contiguous(memory_format=memory_format)
            predicted = runner(model_input, timestep, embeddings, call_extra)
            if guided:
                unconditional, conditional = predicted.chunk(2)
                predicted = unconditional + guidance * (conditional - unconditional)
            latents = scheduler.step(predicted, host_timestep, latents, **options).prev_sample
            if mask is not None:
                kept = init
                if index + 1 < len(timesteps):
                    kept = scheduler.add_noise(init, noise, timesteps[index + 1 : index + 2].repeat(batch))
                latents = (1.0 - mask) * kept + mask * latents
            if context is not None:
                step = index + 1
                preview = latent_preview(latents) if context.previews and clock.due(step) else None
                context.progress(step, len(timesteps), preview)
    return latents


@node(
    "DepthSampler",
    display_name="Depth Sampler",
    category="sampling",
    description="Denoises latents with the depth map as conditioning, following the latent's noise schedule.",
    outputs=[Output(LATENT)],
    inputs_check=depth_sampler_check,
)
def depth_sampler(
    model: ModelHandle = Socket(MODEL),
    positive: Conditioning = Socket(CONDITIONING),
    negative: Conditioning = Socket(CONDITIONING),
    depth: torch.Tensor = Socket(DEPTH),
    latent_image: Latent = Socket(LATENT),
    cfg: float = Float(7.5, min=0.0, max=100.0, step=0.1, tooltip="guidance scale; ≤ 1 turns guidance off"),
    *,
    context: NodeContext,
) -> tuple[Latent]:
    samples = sample(model, positive, negative, depth, as_latent(latent_image), cfg, context)
    return (Latent(samples),)


@node(
    "Sampler",
    display_name="Sampler",
    category="sampling",
    description=(
        "Denoises latents with a Stable Diffusion 1.x, 2.x or XL model (image-to-image), following the "
        "latent's noise schedule."
    ),
    outputs=[Output(LATENT)],
    inputs_check=sampler_check,
)
def sampler(
    model: ModelHandle = Socket(MODEL),
    positive: Conditioning = Socket(CONDITIONING),
    negative: Conditioning = Socket(CONDITIONING),
    latent_image: Latent = Socket(LATENT),
    cfg: float = Float(7.5, min=0.0, max=100.0, step=0.1, tooltip="guidance scale; ≤ 1 turns guidance off"),
    *,
    context: NodeContext,
) -> tuple[Latent]:
    """Plain image-to-image for the 4-channel UNets; with SetLatentNoiseMask, inpainting."""
    samples = sample(model, positive, negative, None, as_latent(latent_image), cfg, context)
    return (Latent(samples),)

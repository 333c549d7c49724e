"""The VAE: images to latents and back.

Large images go through the VAE in tiles (see `engine.models.acceleration.tiling_for`), so decoding
1024×1024 does not run out of GPU memory. In half precision the VAE can overflow into NaN (a black
or noise image): the result is then checked, and the VAE switched to float32 for good and run again,
with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.registry import Output, Socket, node
from depthgraph.engine.core.sockets import IMAGE, LATENT, VAE
from depthgraph.engine.models.acceleration import tiling_for
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes import output_sizes
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.latent_value import LATENT_SCALE, Latent, as_latent


def check_model_size(height: int, width: int, what: str = "the image") -> None:
    if height == 0 or width == 0:
        raise ValueError(f"{what} is {width}×{height}: it has no pixels")
    if height % LATENT_SCALE or width % LATENT_SCALE:
        raise ValueError(
            f"{what} is {width}×{height}; the model needs sides that are multiples of {LATENT_SCALE} "
            "— add an ImageSizeForModel node before it"
        )


NAN_WARNING = (
    "the VAE produced NaN in {dtype}; it was run again in float32 and stays in float32 for this model "
    "(slower; set dtype: bfloat16 to avoid it)"
)


def run_vae(
    vae_handle: ModelHandle,
    pixels: tuple[int, int],
    work: Callable[[Any], torch.Tensor],
    context: NodeContext | None = None,
) -> torch.Tensor:
    """`work(vae)` for images of `pixels` (height, width), tiled if they are large, retried in float32
    if half precision gave NaN or infinity."""
    vae = vae_handle.get("vae")
    tiling_for(vae, vae_handle.manager.plan, pixels)
    with torch.inference_mode():
        result = work(vae)
    if vae.dtype == torch.float32 or bool(torch.isfinite(result).all()):
        return result
    message = NAN_WARNING.format(dtype=str(vae.dtype).removeprefix("torch."))
    if context is not None:
        context.warn(message)
    vae = vae_handle.manager.upcast_vae(vae_handle.name)
    with torch.inference_mode():
        return work(vae)


def encode_image(vae_handle: ModelHandle, image: torch.Tensor, context: NodeContext | None = None) -> Latent:
    """The latents of images [B, H, W, 3]: the VAE posterior's mean scaled into latent space
    (deterministic), with the posterior to be sampled with the seed later."""
    check_model_size(image.shape[1], image.shape[2])

    def encode(vae: Any) -> torch.Tensor:
        pixels = image.movedim(-1, 1).to(device=vae.device, dtype=vae.dtype) * 2.0 - 1.0
        parameters: torch.Tensor = vae.encode(pixels).latent_dist.parameters
        return parameters

    parameters = run_vae(vae_handle, (image.shape[1], image.shape[2]), encode, context)
    return Latent.encoded(parameters, vae_handle.get("vae").config.scaling_factor)


@node(
    "VAEEncode",
    display_name="VAE Encode",
    category="latent",
    description="Encodes an image into latents; deterministic, so a new seed does not re-run it.",
    outputs=[Output(LATENT)],
)
def vae_encode(
    pixels: torch.Tensor = Socket(IMAGE), vae: ModelHandle = Socket(VAE), *, context: NodeContext
) -> tuple[Latent]:
    return (encode_image(vae, pixels, context),)


def decode_latents(
    vae_handle: ModelHandle, latents: torch.Tensor, context: NodeContext | None = None
) -> torch.Tensor:
    """Latents [B, 4, h, w] to images [B, 8h, 8w, 3] in 0..1 (float32)."""

    def decode(vae: Any) -> torch.Tensor:
        scaled = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor
        decoded: torch.Tensor = vae.decode(scaled).sample
        return decoded

    pixels = (latents.shape[-2] * LATENT_SCALE, latents.shape[-1] * LATENT_SCALE)
    decoded = run_vae(vae_handle, pixels, decode, context)
    return (decoded.float() / 2.0 + 0.5).clamp(0.0, 1.0).movedim(1, -1)


@node(
    "VAEDecode",
    display_name="VAE Decode",
    category="latent",
    description="Decodes latents into an image.",
    outputs=[Output(IMAGE)],
    output_size=output_sizes.vae_decode,
)
def vae_decode(
    samples: Latent = Socket(LATENT), vae: ModelHandle = Socket(VAE), *, context: NodeContext
) -> tuple[torch.Tensor]:
    return (decode_latents(vae, as_latent(samples).samples, context),)

"""The VAE: images to latents and back."""

from __future__ import annotations

import torch

from engine.models.manager import ModelHandle
from engine.registry import Input, Output, node
from engine.sockets import IMAGE, LATENT, VAE

LATENT_SCALE = 8  # SD2's VAE turns 8×8 pixels into one latent


def check_model_size(height: int, width: int, what: str = "the image") -> None:
    if height == 0 or width == 0:
        raise ValueError(f"{what} is {width}×{height}: it has no pixels")
    if height % LATENT_SCALE or width % LATENT_SCALE:
        raise ValueError(
            f"{what} is {width}×{height}; the model needs sides that are multiples of {LATENT_SCALE} "
            "— add an ImageSizeForModel node before it"
        )


def encode_image(vae_handle: ModelHandle, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The VAE posterior of images [B, H, W, 3]: its parameters (mean and log-variance, to be sampled
    with the seed later) and its mean scaled into latent space (deterministic)."""
    check_model_size(image.shape[1], image.shape[2])
    vae = vae_handle.get("vae")
    pixels = image.movedim(-1, 1).to(device=vae.device, dtype=vae.dtype) * 2.0 - 1.0
    with torch.inference_mode():
        posterior = vae.encode(pixels).latent_dist
    scale = vae.config.scaling_factor
    return {"samples": posterior.mean * scale, "posterior": posterior.parameters, "scaling_factor": scale}


@node(
    "VAEEncode",
    display_name="VAE Encode",
    category="latent",
    description="Encodes an image into latents; deterministic, so a new seed does not re-run it.",
    inputs=[Input.socket("pixels", IMAGE), Input.socket("vae", VAE)],
    outputs=[Output(LATENT)],
)
def vae_encode(pixels: torch.Tensor, vae: ModelHandle) -> tuple[dict[str, torch.Tensor]]:
    return (encode_image(vae, pixels),)


def decode_latents(vae_handle: ModelHandle, latents: torch.Tensor) -> torch.Tensor:
    """Latents [B, 4, h, w] to images [B, 8h, 8w, 3] in 0..1 (float32)."""
    vae = vae_handle.get("vae")
    with torch.inference_mode():
        decoded = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    return (decoded.float() / 2.0 + 0.5).clamp(0.0, 1.0).movedim(1, -1)


@node(
    "VAEDecode",
    display_name="VAE Decode",
    category="latent",
    description="Decodes latents into an image.",
    inputs=[Input.socket("samples", LATENT), Input.socket("vae", VAE)],
    outputs=[Output(IMAGE)],
)
def vae_decode(samples: dict[str, torch.Tensor], vae: ModelHandle) -> tuple[torch.Tensor]:
    return (decode_latents(vae, samples["samples"]),)

"""Depth estimation (MiDaS DPT-hybrid) and a grayscale preview of a depth map."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from engine.models.manager import ModelHandle
from engine.registry import Input, Output, node
from engine.sockets import DEPTH, DEPTH_MODEL, IMAGE
from nodes.image_tensors import tensor_to_pil

PREPROCESSING = ("diffusers", "stability")


@contextlib.contextmanager
def _any_input_size(estimator: Any, height: int, width: int) -> Iterator[None]:
    """transformers' DPT-hybrid refuses inputs other than its configured 384×384, although its
    position embeddings are resized to any grid; Stability's aspect-keeping preprocessing needs that."""
    embeddings = estimator.dpt.embeddings
    configured = embeddings.image_size
    embeddings.image_size = (height, width)
    try:
        yield
    finally:
        embeddings.image_size = configured


def estimate_depth(depth_model: ModelHandle, image: torch.Tensor, preprocessing: str) -> torch.Tensor:
    """Relative inverse depth [B, 1, h, w] (larger = nearer) at the estimator's resolution.

    "diffusers": the image is squashed to 384×384, as the diffusers pipeline does. "stability": the
    aspect ratio is kept (sides multiples of 32, at least 384), as Stability's own code does. Images go
    to the processor as 8-bit Pillow images, never in half precision.
    """
    processor = depth_model.get("feature_extractor")
    estimator = depth_model.get("depth_estimator")
    options: dict[str, Any] = {}
    if preprocessing == "stability":
        options = {"keep_aspect_ratio": True, "ensure_multiple_of": 32}
    pictures = [tensor_to_pil(item) for item in image]
    pixels = processor(images=pictures, return_tensors="pt", **options).pixel_values
    pixels = pixels.to(device=estimator.device, dtype=torch.float32)
    with torch.inference_mode(), _any_input_size(estimator, pixels.shape[-2], pixels.shape[-1]):
        predicted = estimator(pixels).predicted_depth
    return predicted.unsqueeze(1).float()


@node(
    "DepthEstimate",
    display_name="Estimate Depth",
    category="depth",
    description="Estimates a depth map (MiDaS DPT-hybrid) from an image; larger values are nearer.",
    inputs=[
        Input.socket("depth_model", DEPTH_MODEL),
        Input.socket("image", IMAGE),
        Input.combo(
            "preprocessing",
            PREPROCESSING,
            tooltip="diffusers: squash to 384×384 (matches diffusers); stability: keep the aspect ratio",
        ),
    ],
    outputs=[Output(DEPTH)],
)
def depth_estimate(depth_model: ModelHandle, image: torch.Tensor, preprocessing: str) -> tuple[torch.Tensor]:
    return (estimate_depth(depth_model, image, preprocessing),)


def depth_to_image(depth: torch.Tensor) -> torch.Tensor:
    """Each depth map stretched to 0..1 as a gray image [B, H, W, 3], white = near."""
    low = torch.amin(depth, dim=(1, 2, 3), keepdim=True)
    high = torch.amax(depth, dim=(1, 2, 3), keepdim=True)
    span = torch.where(high > low, high - low, torch.ones_like(high))
    gray = ((depth - low) / span).clamp(0.0, 1.0)
    return gray[:, 0, :, :, None].expand(-1, -1, -1, 3).float()


@node(
    "DepthToImage",
    display_name="Depth as Image",
    category="depth",
    description="Shows a depth map as a grayscale image (white = near), to preview or save it.",
    inputs=[Input.socket("depth", DEPTH)],
    outputs=[Output(IMAGE)],
)
def depth_as_image(depth: torch.Tensor) -> tuple[torch.Tensor]:
    return (depth_to_image(depth),)

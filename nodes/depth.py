"""Depth estimation (MiDaS DPT-hybrid) and a grayscale preview of a depth map."""

from __future__ import annotations

from typing import Any

import torch
from depthgraph.engine.core.registry import Combo, Output, Socket, node
from depthgraph.engine.core.sockets import DEPTH, DEPTH_MODEL, IMAGE
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes.depth_ops import normalize_min_max
from depthgraph.nodes.image_tensors import tensor_to_pil

PREPROCESSING = ("diffusers", "stability")


def _predict(estimator: Any, pixels: torch.Tensor) -> torch.Tensor:
    """DPT-hybrid's predicted depth [B, h, w] for pixels of any size that is a multiple of 16.

    transformers' DPT-hybrid only takes its configured 384×384: its embeddings check the size and its
    neck assumes a square grid, although the position embeddings are resized to any grid. Square inputs
    use the model's own forward; others (Stability's aspect-keeping preprocessing) run the same stages
    with the real grid.
    """
    height, width = pixels.shape[-2:]
    if height == width:
        return estimator(pixels).predicted_depth
    embeddings = estimator.dpt.embeddings
    configured = embeddings.image_size
    embeddings.image_size = (height, width)
    try:
        outputs = estimator.dpt(pixels, output_hidden_states=True)
    finally:
        embeddings.image_size = configured
    features = list(outputs.intermediate_activations)  # the BiT stages, then chosen ViT layers
    indices = estimator.config.backbone_out_indices[2:]
    features.extend(state for index, state in enumerate(outputs.hidden_states[1:]) if index in indices)
    patch = estimator.config.patch_size
    predicted: torch.Tensor = estimator.head(estimator.neck(features, height // patch, width // patch))
    return predicted


@node(
    "DepthEstimate",
    display_name="Estimate Depth",
    category="depth",
    description="Estimates a depth map (MiDaS DPT-hybrid) from an image; larger values are nearer.",
    outputs=[Output(DEPTH)],
)
def estimate_depth(
    depth_model: ModelHandle = Socket(DEPTH_MODEL),
    image: torch.Tensor = Socket(IMAGE),
    preprocessing: str = Combo(
        PREPROCESSING,
        tooltip="diffusers: squash to 384×384 (matches diffusers); stability: keep the aspect ratio",
    ),
) -> tuple[torch.Tensor]:
    """Relative inverse depth [B, 1, h, w] (larger = nearer) at the estimator's resolution.

    "diffusers": the image is squashed to 384×384, as the diffusers pipeline does. "stability": the
    aspect ratio is kept (scaled as little as possible towards 384, sides multiples of 32), as
    Stability's own code does (MiDaS "minimal" resize). Images go
    to the processor as 8-bit Pillow images, never in half precision. The result is float32 on the
    estimator's device, where later nodes find it without a copy.
    """
    processor = depth_model.get("feature_extractor")
    estimator = depth_model.get("depth_estimator")
    options: dict[str, Any] = {}
    if preprocessing == "stability":
        options = {"keep_aspect_ratio": True, "ensure_multiple_of": 32}
    pictures = [tensor_to_pil(item) for item in image]
    pixels = processor(images=pictures, return_tensors="pt", **options).pixel_values
    pixels = pixels.to(device=estimator.device, dtype=torch.float32)
    # On CUDA the weights are half precision and autocast keeps the norms in float32 (as diffusers).
    autocast = torch.autocast("cuda", dtype=depth_model.dtype, enabled=estimator.device.type == "cuda")
    with torch.inference_mode(), autocast:
        predicted = _predict(estimator, pixels)
    return (predicted.unsqueeze(1).float(),)


@node(
    "DepthToImage",
    display_name="Depth as Image",
    category="depth",
    description="Shows a depth map as a grayscale image (white = near), to preview or save it.",
    outputs=[Output(IMAGE)],
)
def depth_as_image(depth: torch.Tensor = Socket(DEPTH)) -> tuple[torch.Tensor]:
    """Each depth map stretched to 0..1 as a gray image [B, H, W, 3], white = near."""
    return (normalize_min_max(depth)[:, 0, :, :, None].expand(-1, -1, -1, 3),)

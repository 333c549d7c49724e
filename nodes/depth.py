"""Depth estimation (any DEPTH_MODEL: a checkpoint's MiDaS DPT-hybrid or a Load Depth Estimator one)
and a grayscale preview of a depth map."""

from __future__ import annotations

from depthgraph.engine.core.registry import Combo, Output, Socket, node
from depthgraph.engine.core.sockets import DEPTH, DEPTH_MODEL, IMAGE
from depthgraph.engine.models.depth_estimators import DepthEstimatorHandle
from depthgraph.engine.models.depth_estimators import estimate_depth as estimate_inverse_depth
from depthgraph.engine.models.manager import ModelHandle
from depthgraph.nodes.depth_ops import normalize_min_max
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.image_tensors import tensor_to_pil

PREPROCESSING = ("diffusers", "stability")


@node(
    "DepthEstimate",
    display_name="Estimate Depth",
    category="depth",
    description=(
        "Estimates a depth map from an image with a checkpoint's MiDaS DPT-hybrid or a Load Depth "
        "Estimator one; larger values are nearer (metric estimators: 1/m)."
    ),
    outputs=[Output(DEPTH)],
)
def estimate_depth(
    depth_model: ModelHandle | DepthEstimatorHandle = Socket(DEPTH_MODEL),
    image: torch.Tensor = Socket(IMAGE),
    preprocessing: str = Combo(
        PREPROCESSING,
        tooltip=(
            "DPT (MiDaS) estimators: diffusers squashes to 384×384 (matches diffusers), stability keeps "
            "the aspect ratio. Depth Anything, ZoeDepth and Depth Pro always prepare images their own way"
        ),
    ),
) -> tuple[torch.Tensor]:
    """Relative inverse depth [B, 1, h, w] (larger = nearer) at the estimator's resolution.

    "diffusers": the image is squashed to 384×384, as the diffusers pipeline does. "stability": the
    aspect ratio is kept (scaled as little as possible towards 384, sides multiples of 32), as
    Stability's own code does (MiDaS "minimal" resize). Both apply to the DPT (MiDaS) estimators;
    the others use their own image processor's settings (Depth Anything: 518 on the side scaled
    least, multiples of 14; ZoeDepth: padded, then 384×512 keeping the aspect ratio, and its map is
    brought back to the image's size; Depth Pro: 1536×1536). ZoeDepth and Depth Pro predict metres:
    the map is their inverse, 1/m. Images go to the processor as 8-bit Pillow images, never in half
    precision. The result is float32 on the estimator's device, where later nodes find it without a copy.
    """
    pictures = [tensor_to_pil(item) for item in image]
    return (estimate_inverse_depth(depth_model, pictures, keep_aspect_ratio=preprocessing == "stability"),)


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

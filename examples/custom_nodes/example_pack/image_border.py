"""Add Border: an image node that makes its images larger, so it declares its output size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from depthgraph.engine.api import IMAGE, Float, Int, NodeContext, Output, Socket, node


def bordered_size(inputs: Mapping[str, Any]) -> int | None:
    """The framed images' pixels (width × height × batch). At validation the image is a link that has
    not run yet, so only the border is known: then it cannot tell."""
    image = inputs.get("image")
    if image is None:
        return None
    border = int(inputs["border"])
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    return batch * (height + 2 * border) * (width + 2 * border)


@node(
    "ImageBorder",
    display_name="Add Border",
    category="image/example",
    description="Frames each image with a border of one gray level, making it larger on every side.",
    outputs=[Output(IMAGE)],
    output_size=bordered_size,
)
def image_border(
    image: torch.Tensor = Socket(IMAGE),
    border: int = Int(16, min=0, max=1024, tooltip="pixels added on each side; 0 leaves the image as it is"),
    gray: float = Float(1.0, min=0.0, max=1.0, step=0.05, tooltip="0 = black, 1 = white"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    """Images [B, H, W, 3] in the middle of images [B, H + 2·border, W + 2·border, 3] of `gray`."""
    if border == 0:
        context.warn("the border is 0 pixels wide, so the images pass unchanged; raise border to frame them")
        return (image,)
    batch, height, width, channels = image.shape
    shape = (batch, height + 2 * border, width + 2 * border, channels)
    framed = torch.full(shape, gray, dtype=image.dtype, device=image.device)
    for index in range(batch):
        framed[index, border : border + height, border : border + width] = image[index]
        context.progress(index + 1, batch)  # the bar in the editor, and where Stop ends a long batch
    return (framed,)

"""Mask nodes (ComfyUI's names and inputs): load a mask from an image, invert, grow or shrink, feather,
combine, threshold, convert to and from images, a solid mask, and pasting an image onto another
through a mask. The tensor work is in `nodes/mask_ops.py`."""

from __future__ import annotations

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.registry import Boolean, Combo, Float, Int, Output, Socket, node
from depthgraph.engine.core.sockets import IMAGE, MASK
from depthgraph.nodes import mask_ops, output_sizes
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.image import MAX_SIDE, input_file_hash, input_image_file
from depthgraph.nodes.image_tensors import read_image

PLACEMENT_TOOLTIP = "position of the source's top-left corner on the destination, in pixels"


@node(
    "LoadImageMask",
    display_name="Load Image (as Mask)",
    category="mask",
    description="Loads one channel of an image from the input folder as a mask; transparent = regenerate.",
    outputs=[Output(MASK)],
    fingerprint=input_file_hash("image"),
)
def load_image_mask(
    image: str = input_image_file(),
    channel: str = Combo(
        ("alpha", *mask_ops.COLOUR_CHANNELS),
        tooltip="alpha: transparent = 1 (regenerate); a colour: its value, white = 1",
    ),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    """The first frame's channel as a mask [1, H, W], read as Load Image reads it (upright, 16-bit
    grayscale kept to 65535); an empty alpha mask is warned about, as a colour channel was likely meant."""
    pixels, alpha_masks = read_image(context.files.resolve_input(image), context.files.max_image_pixels)
    if channel == "alpha":
        mask = alpha_masks[:1]
        if not mask.any():
            context.warn(
                f"{image} has no transparency, so its alpha mask is empty (nothing to regenerate); "
                "pick the red, green or blue channel if the mask is painted in colour"
            )
        return (mask,)
    # A copy, so the mask does not keep the whole decoded image alive in the cache.
    return (pixels[:1, :, :, mask_ops.COLOUR_CHANNELS.index(channel)].contiguous(),)


@node(
    "InvertMask",
    display_name="Invert Mask",
    category="mask",
    description="Inverts a mask (1 - value): what was kept is regenerated and the other way round.",
    outputs=[Output(MASK)],
)
def invert_mask(mask: torch.Tensor = Socket(MASK)) -> tuple[torch.Tensor]:
    return (1.0 - mask,)


@node(
    "GrowMask",
    display_name="Grow Mask",
    category="mask",
    description="Grows the mask by some pixels, or shrinks it with a negative value (soft masks too).",
    outputs=[Output(MASK)],
)
def grow_mask(
    mask: torch.Tensor = Socket(MASK),
    expand: int = Int(0, min=-256, max=256, tooltip="pixels to grow by; negative shrinks"),
    tapered_corners: bool = Boolean(
        True, tooltip="grow diagonally more slowly (cross-shaped steps, rounder corners)"
    ),
) -> tuple[torch.Tensor]:
    return (mask_ops.grow_mask(mask, expand, tapered_corners),)


@node(
    "FeatherMask",
    display_name="Feather Mask",
    category="mask",
    description=(
        "Softens the mask's edges (Gaussian blur) so a composite or inpaint blends in; unlike ComfyUI's "
        "FeatherMask it feathers the mask's own edges, not the canvas borders."
    ),
    outputs=[Output(MASK)],
)
def feather_mask(
    mask: torch.Tensor = Socket(MASK),
    radius: int = Int(8, min=0, max=256, tooltip="width of the soft ramp on each side of an edge; 0 = off"),
) -> tuple[torch.Tensor]:
    """ComfyUI's FeatherMask ramps the canvas borders (left/top/right/bottom inputs); this one blurs
    the mask's own edges (the inpainting "mask blur" of other tools), which is what pasting an
    inpainted result back needs."""
    return (mask_ops.feather_mask(mask, radius),)


def _warn_if_off_destination(destination: torch.Tensor, x: int, y: int, context: NodeContext) -> None:
    """Warn when a source placed at (x, y) misses the destination entirely (nothing changes)."""
    height, width = destination.shape[1], destination.shape[2]
    if x >= width or y >= height:
        context.warn(
            f"the source placed at x={x}, y={y} lies outside the {width}×{height} destination, which is "
            "returned unchanged; use an x below the width and a y below the height"
        )


@node(
    "MaskComposite",
    display_name="Combine Masks",
    category="mask",
    description="Combines a source mask into a destination mask at a position (union, intersection…).",
    outputs=[Output(MASK)],
    output_size=output_sizes.mask_composite,
)
def mask_composite(
    destination: torch.Tensor = Socket(MASK),
    source: torch.Tensor = Socket(MASK),
    x: int = Int(0, min=0, max=MAX_SIDE, tooltip=PLACEMENT_TOOLTIP),
    y: int = Int(0, min=0, max=MAX_SIDE, tooltip=PLACEMENT_TOOLTIP),
    operation: str = Combo(
        tuple(mask_ops.MASK_OPERATIONS),
        tooltip=(
            "and = intersection (minimum), or = union (maximum), subtract = difference "
            "(destination - source), xor = |destination - source|; clamped to 0..1"
        ),
    ),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    _warn_if_off_destination(destination, x, y, context)
    return (mask_ops.combine_masks(destination, source, x, y, operation),)


@node(
    "ThresholdMask",
    display_name="Threshold Mask",
    category="mask",
    description="Makes a mask hard: 1 where it is above the value, else 0.",
    outputs=[Output(MASK)],
)
def threshold_mask(
    mask: torch.Tensor = Socket(MASK),
    value: float = Float(0.5, min=0.0, max=1.0, step=0.01, tooltip="values above this become 1"),
) -> tuple[torch.Tensor]:
    return ((mask > value).float(),)


@node(
    "MaskToImage",
    display_name="Convert Mask to Image",
    category="mask",
    description="Shows a mask as a grayscale image (white = 1), to preview, save or resize it.",
    outputs=[Output(IMAGE)],
)
def mask_to_image(mask: torch.Tensor = Socket(MASK)) -> tuple[torch.Tensor]:
    return (mask.float()[..., None].expand(-1, -1, -1, 3),)


@node(
    "ImageToMask",
    display_name="Convert Image to Mask",
    category="mask",
    description="Takes one colour channel of an image as a mask (white = 1).",
    outputs=[Output(MASK)],
)
def image_to_mask(
    image: torch.Tensor = Socket(IMAGE), channel: str = Combo(mask_ops.COLOUR_CHANNELS)
) -> tuple[torch.Tensor]:
    return (image[..., mask_ops.COLOUR_CHANNELS.index(channel)].contiguous(),)


@node(
    "SolidMask",
    display_name="Solid Mask",
    category="mask",
    description="A mask of one value everywhere, of a given size.",
    outputs=[Output(MASK)],
    output_size=output_sizes.solid_mask,
)
def solid_mask(
    value: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    width: int = Int(512, min=1, max=MAX_SIDE),
    height: int = Int(512, min=1, max=MAX_SIDE),
) -> tuple[torch.Tensor]:
    return (torch.full((1, height, width), value, dtype=torch.float32),)


@node(
    "ImageCompositeMasked",
    display_name="Composite Images (Masked)",
    category="image",
    description="Pastes the source image onto the destination at a position, through the mask if given.",
    outputs=[Output(IMAGE)],
    output_size=output_sizes.image_composite_masked,
)
def image_composite_masked(
    destination: torch.Tensor = Socket(IMAGE),
    source: torch.Tensor = Socket(IMAGE),
    x: int = Int(0, min=0, max=MAX_SIDE, tooltip=PLACEMENT_TOOLTIP),
    y: int = Int(0, min=0, max=MAX_SIDE, tooltip=PLACEMENT_TOOLTIP),
    resize_source: bool = Boolean(
        False, tooltip="resize the source to the destination's size first (bilinear)"
    ),
    mask: torch.Tensor | None = Socket(
        MASK, optional=True, tooltip="1 = take the source, 0 = keep the destination; sized like the source"
    ),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    """Pasting the inpainted result back onto the original pixels: with x = y = 0 and the inpainting
    mask, pixels where the mask is 0 are exactly the destination's."""
    _warn_if_off_destination(destination, x, y, context)
    return (mask_ops.composite_images(destination, source, x, y, resize_source, mask),)

"""How big the images, masks, depth maps and latents a node makes will be, before it makes them.

Each function here is a node's `output_size` (see `engine.core.registry.node`): given the node's inputs by
name it returns the pixels (width × height × batch) of the largest thing the node makes, or None when
it cannot tell. During validation only the typed-in constants are there (a linked tensor is missing,
and reading a missing constant raises KeyError, which counts as "cannot tell"); an unknown batch is
counted as 1, so what is refused then is too large whatever the links bring. Just before the node
runs the same function gets the real tensors. A latent counts at the size of its image (8× each side),
so a latent within the budget decodes to an image within it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthgraph.nodes.latent_value import LATENT_SCALE, Latent

Dims = tuple[int, int, int]  # batch, height, width


def _sides(value: Any, rank: int) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != rank:
        return None
    return tuple(int(side) for side in shape)


def image_dims(value: Any) -> Dims | None:
    """(batch, height, width) of an IMAGE [B, H, W, 3]; None if it is not here (yet)."""
    shape = _sides(value, 4)
    return None if shape is None else (shape[0], shape[1], shape[2])


def mask_dims(value: Any) -> Dims | None:
    """(batch, height, width) of a MASK [B, H, W]."""
    shape = _sides(value, 3)
    return None if shape is None else (shape[0], shape[1], shape[2])


def depth_dims(value: Any) -> Dims | None:
    """(batch, height, width) of a DEPTH [B, 1, H, W]."""
    shape = _sides(value, 4)
    return None if shape is None else (shape[0], shape[2], shape[3])


def latent_dims(value: Any) -> Dims | None:
    """(batch, height, width) of the image a LATENT (a `Latent`, or a node pack's dict with "samples")
    stands for."""
    shape = _sides(value.get("samples"), 4) if isinstance(value, Latent | Mapping) else None
    if shape is None:
        return None
    return shape[0], shape[2] * LATENT_SCALE, shape[3] * LATENT_SCALE


def pixels(dims: Dims) -> int:
    batch, height, width = dims
    return batch * height * width


def _batch(*found: Dims | None) -> int:
    """The largest batch among the inputs that are here (a batch of one goes with every other)."""
    return max((dims[0] for dims in found if dims is not None), default=1)


def solid_mask(inputs: Mapping[str, Any]) -> int:
    return int(inputs["width"]) * int(inputs["height"])


def image_scale(inputs: Mapping[str, Any]) -> int | None:
    """A side of 0 follows the other side, keeping the image's aspect ratio (as `scale_image`)."""
    width, height = int(inputs["width"]), int(inputs["height"])
    found = image_dims(inputs.get("image"))
    if found is None:
        return width * height if width and height else None
    batch, old_height, old_width = found
    if not (width or height) or not (old_height and old_width):
        return None  # unchanged, or an empty image the node itself refuses
    if not width:
        width = max(1, round(old_width * height / old_height))
    if not height:
        height = max(1, round(old_height * width / old_width))
    return batch * width * height


def image_size_for_model(inputs: Mapping[str, Any]) -> int | None:
    """Padding rounds each side up to the multiple; cropping and resizing round it down."""
    found = image_dims(inputs.get("image"))
    if found is None:
        return None
    batch, height, width = found
    multiple = int(inputs["multiple"])
    if inputs["method"] == "pad":
        height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    else:
        height, width = height // multiple * multiple, width // multiple * multiple
    return batch * height * width


def mask_composite(inputs: Mapping[str, Any]) -> int | None:
    """The destination's size, at the larger batch of destination and source."""
    destination = mask_dims(inputs.get("destination"))
    if destination is None:
        return None
    return _batch(destination, mask_dims(inputs.get("source"))) * destination[1] * destination[2]


def image_composite_masked(inputs: Mapping[str, Any]) -> int | None:
    """The destination's size, at the largest batch of destination, source and mask."""
    destination = image_dims(inputs.get("destination"))
    if destination is None:
        return None
    batch = _batch(destination, image_dims(inputs.get("source")), mask_dims(inputs.get("mask")))
    return batch * destination[1] * destination[2]


def depth_match_image(inputs: Mapping[str, Any]) -> int | None:
    """The image's size and batch; "crop" first scales the map to cover it, which may be far larger
    (a thin map covering a square image)."""
    depth, image = depth_dims(inputs.get("depth")), image_dims(inputs.get("image"))
    if depth is None or image is None:
        return None
    depth_batch, old_height, old_width = depth
    batch, height, width = image
    largest = max(batch, depth_batch) * height * width
    if inputs["method"] == "crop" and old_height and old_width:
        scale = max(height / old_height, width / old_width)
        covering = max(height, round(old_height * scale)) * max(width, round(old_width * scale))
        largest = max(largest, depth_batch * covering)
    return largest


def depth_blend(inputs: Mapping[str, Any]) -> int | None:
    """depth_a's size, at the larger batch of the two maps."""
    first = depth_dims(inputs.get("depth_a"))
    if first is None:
        return None
    return _batch(first, depth_dims(inputs.get("depth_b"))) * first[1] * first[2]


def repeat_latent_batch(inputs: Mapping[str, Any]) -> int | None:
    found = latent_dims(inputs.get("samples"))
    return None if found is None else pixels(found) * int(inputs["amount"])


def vae_decode(inputs: Mapping[str, Any]) -> int | None:
    found = latent_dims(inputs.get("samples"))
    return None if found is None else pixels(found)


def image_batch(inputs: Mapping[str, Any]) -> int | None:
    """Both batches at the first one's size."""
    first, second = image_dims(inputs.get("image1")), image_dims(inputs.get("image2"))
    if first is None or second is None:
        return None
    return (first[0] + second[0]) * first[1] * first[2]

"""Masks as tensors: growing and shrinking, feathering, combining two masks, and pasting one image onto
another through a mask. The nodes in `nodes/mask.py` wrap these functions.

Masks are float32 [B, H, W] in 0..1 (1 = regenerate or selected, 0 = keep) and images [B, H, W, 3], as
in `engine.core.sockets`. Every function works on soft masks (grey levels), not only on 0/1 ones. Results
are on the device of the first (or destination) tensor.
"""

from __future__ import annotations

from collections.abc import Callable

from depthgraph.nodes.heavy import F, torch
from depthgraph.nodes.spatial import fit_mask, gaussian_blur, match_batch, resize_planes

COLOUR_CHANNELS = ("red", "green", "blue")
MASK_FIX = (
    "make the mask from the same image as the source, or pass it through the same Size Image for Model node"
)
# For soft masks: and = intersection, or = union, subtract = difference; the result is clamped to 0..1.
MASK_OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "multiply": lambda destination, source: destination * source,
    "add": lambda destination, source: destination + source,
    "subtract": lambda destination, source: destination - source,
    "and": lambda destination, source: torch.minimum(destination, source),
    "or": lambda destination, source: torch.maximum(destination, source),
    "xor": lambda destination, source: (destination - source).abs(),
}

_OUTSIDE = float("-inf")


def _shifted(planes: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """Planes [..., H, W] moved: out[i, j] = planes[i + down, j + right], -inf where that is outside."""
    height, width = planes.shape[-2:]
    moved = torch.full_like(planes, _OUTSIDE)
    if abs(down) >= height or abs(right) >= width:
        return moved
    moved[..., max(0, -down) : height - max(0, down), max(0, -right) : width - max(0, right)] = planes[
        ..., max(0, down) : height - max(0, -down), max(0, right) : width - max(0, -right)
    ]
    return moved


def _window_max(planes: torch.Tensor, step: tuple[int, int], first: int, last: int) -> torch.Tensor:
    """Each pixel p's maximum of planes[p + t·step] for t in first..last (pixels outside are ignored).

    A sparse table: after k doublings, table[p] is the maximum over t in 0..2**k - 1, and two shifted
    look-ups of it cover any window up to twice as long, so a window of n pixels costs log2(n) passes.
    """
    down, right = step
    reach = max(abs(first), abs(last))
    rows, columns = reach * abs(down), reach * abs(right)
    height, width = planes.shape[-2:]
    table = F.pad(planes, (columns, columns, rows, rows), value=_OUTSIDE)
    span = 1
    while 2 * span <= last - first + 1:
        table = torch.maximum(table, _shifted(table, span * down, span * right))
        span *= 2
    start, end = first, last - span + 1
    window = torch.maximum(
        _shifted(table, start * down, start * right), _shifted(table, end * down, end * right)
    )
    return window[..., rows : rows + height, columns : columns + width]


def _dilate(mask: torch.Tensor, steps: int, tapered_corners: bool) -> torch.Tensor:
    """The mask after `steps` 3×3 maximum filters (cross-shaped when tapered_corners, else square),
    pixels outside the mask ignored, done as one maximum over the combined neighbourhood.

    `steps` squares make a (2·steps + 1)² square, taken as a row window then a column window. `steps`
    crosses make the diamond |dy| + |dx| <= steps. With u = dy + dx and v = dy - dx, its offsets are
    those with |u|, |v| <= steps and u, v of equal parity: the even ones are a window along the (1, 1)
    diagonal followed by one along (1, -1); the odd ones are the same one row further down.
    """
    margin = steps + 1  # room for every intermediate offset, so none is cut off at the border
    canvas = F.pad(mask, (margin, margin, margin, margin), value=_OUTSIDE)
    if not tapered_corners:
        grown = _window_max(_window_max(canvas, (0, 1), -steps, steps), (1, 0), -steps, steps)
    else:
        half = steps // 2
        grown = _window_max(_window_max(canvas, (1, 1), -half, half), (1, -1), -half, half)
        first, last = -((steps + 1) // 2), (steps - 1) // 2
        odd = _window_max(_window_max(canvas, (1, 1), first, last), (1, -1), first, last)
        grown = torch.maximum(grown, _shifted(odd, 1, 0))
    return grown[..., margin:-margin, margin:-margin]


def grow_mask(mask: torch.Tensor, expand: int, tapered_corners: bool) -> torch.Tensor:
    """The mask grown by `expand` pixels (shrunk when negative), equal to ComfyUI's GrowMask: |expand|
    repeated 3×3 grey dilations (or erosions) with a cross-shaped kernel when tapered_corners, else a
    square one, the border handled as scipy's default (pixels outside the mask do not count)."""
    if expand == 0:
        return mask
    if expand > 0:
        return _dilate(mask.float(), expand, tapered_corners)
    # Erosion is dilation of the negated mask; negation is exact, so the minimum is too.
    return -_dilate(-mask.float(), -expand, tapered_corners)


def feather_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """The mask's edges softened by a Gaussian blur (sigma radius / 2, edges repeated at the border), so
    a hard edge becomes a ramp symmetrical around it; radius 0 leaves the mask unchanged."""
    if radius <= 0:
        return mask
    return gaussian_blur(mask[:, None].float(), radius, padding="replicate")[:, 0].clamp(0.0, 1.0)


def _match_batches(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors (named as the user sees them) brought to the largest batch among them."""
    largest = max(tensors, key=lambda name: tensors[name].shape[0])
    batch = tensors[largest].shape[0]
    return {name: match_batch(tensor, batch, name, largest) for name, tensor in tensors.items()}


def _visible_size(
    destination_height: int, destination_width: int, source_height: int, source_width: int, x: int, y: int
) -> tuple[int, int]:
    """Height and width of the part of a source placed at (x, y) that lies on the destination (0 when
    none does)."""
    return max(0, min(source_height, destination_height - y)), max(
        0, min(source_width, destination_width - x)
    )


def combine_masks(
    destination: torch.Tensor, source: torch.Tensor, x: int, y: int, operation: str
) -> torch.Tensor:
    """The destination with the source placed at (x, y) (top-left corner; parts outside are cut off)
    combined into it by `operation` (see MASK_OPERATIONS), clamped to 0..1. A batch of one goes with
    every item of the other."""
    matched = _match_batches(
        {"destination": destination.float(), "source": source.to(destination.device).float()}
    )
    destination, source = matched["destination"], matched["source"]
    height, width = _visible_size(*destination.shape[-2:], *source.shape[-2:], x, y)
    combined = destination.clone(memory_format=torch.contiguous_format)
    if height and width:
        region = combined[:, y : y + height, x : x + width]
        combined[:, y : y + height, x : x + width] = MASK_OPERATIONS[operation](
            region, source[:, :height, :width]
        )
    return combined.clamp(0.0, 1.0)


def composite_images(
    destination: torch.Tensor,
    source: torch.Tensor,
    x: int,
    y: int,
    resize_source: bool,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """The source image pasted onto the destination with its top-left corner at (x, y), clipped to the
    destination, through the mask when given (1 = source, 0 = destination, soft values blend): where
    the mask is 0 the destination's pixels are kept exactly.

    resize_source first brings the source to the destination's size (bilinear). The mask is fitted to
    the source's size; a mask of another shape is an error. A batch of one goes with every item of the
    others. The result is on the destination's device.
    """
    destination_height, destination_width = destination.shape[1:3]
    source = source.to(destination.device).float()
    if resize_source:
        planes = resize_planes(source.movedim(-1, 1), destination_height, destination_width)
        source = planes.movedim(1, -1).clamp(0.0, 1.0)
    named = {"destination": destination.float(), "source": source}
    if mask is not None:
        named["mask"] = fit_mask(
            mask.to(destination.device).float(),
            source.shape[1],
            source.shape[2],
            "the source image",
            MASK_FIX,
        )
    matched = _match_batches(named)
    destination, source = matched["destination"], matched["source"]
    height, width = _visible_size(
        destination_height, destination_width, source.shape[1], source.shape[2], x, y
    )
    pasted = destination.clone(memory_format=torch.contiguous_format)
    if not (height and width):
        return pasted
    source = source[:, :height, :width]
    if mask is not None:
        weight = matched["mask"][:, :height, :width, None]
        region = pasted[:, y : y + height, x : x + width]
        # Written out rather than lerp: weight 0 gives exactly the destination, weight 1 the source.
        source = weight * source + (1.0 - weight) * region
    pasted[:, y : y + height, x : x + width] = source
    return pasted

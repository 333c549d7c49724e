"""Depth-map editing nodes (DEPTH -> DEPTH) and a depth range as a mask; the tensor work is in
`nodes/depth_ops.py`, whose docstring gives the convention: positions in depth are on each map's 0..1
range as "Depth as Image" shows it (0 = farthest, 1 = nearest)."""

from __future__ import annotations

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.registry import Boolean, Combo, Float, Int, Output, Socket, String, node
from depthgraph.engine.core.sockets import DEPTH, IMAGE, MASK
from depthgraph.nodes import depth_ops, output_sizes
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.spatial import match_batch

POSITION_TOOLTIP = "on the normalised map: 0 = farthest, 1 = nearest"


@node(
    "DepthNormalize",
    display_name="Normalize Depth",
    category="depth/edit",
    description="Stretches each depth map to 0..1 (far to near), optionally ignoring outliers.",
    outputs=[Output(DEPTH)],
)
def depth_normalize(
    depth: torch.Tensor = Socket(DEPTH),
    method: str = Combo(
        ("min-max", "percentile"),
        tooltip="percentile clips the values beyond the two percentiles first (robust to outliers)",
    ),
    low_percentile: float = Float(2.0, min=0.0, max=50.0, step=0.5, tooltip="becomes 0 (percentile)"),
    high_percentile: float = Float(98.0, min=50.0, max=100.0, step=0.5, tooltip="becomes 1 (percentile)"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    if method == "min-max":
        return (depth_ops.normalize_min_max(depth),)
    low, high = depth_ops.percentile_bounds(depth, low_percentile, high_percentile)
    farthest, nearest = depth_ops.map_extremes(depth)
    if bool(((high <= low) & (nearest > farthest)).any()):
        context.warn(
            f"percentiles {low_percentile:g} and {high_percentile:g} of a depth map are equal (most "
            "of it is one depth), so it normalises to all zeros; move the percentiles apart or use min-max"
        )
    return (depth_ops.stretch_between(depth, low, high),)


@node(
    "DepthInvert",
    display_name="Invert Depth",
    category="depth/edit",
    description="Turns near into far and far into near, keeping the map's own range.",
    outputs=[Output(DEPTH)],
)
def depth_invert(depth: torch.Tensor = Socket(DEPTH)) -> tuple[torch.Tensor]:
    return (depth_ops.invert_depth(depth),)


@node(
    "DepthLevels",
    display_name="Depth Levels",
    category="depth/edit",
    description="Levels on the normalised depth map: input black and white points, gamma, output range.",
    outputs=[Output(DEPTH)],
)
def depth_levels(
    depth: torch.Tensor = Socket(DEPTH),
    in_black: float = Float(0.0, min=0.0, max=1.0, tooltip="this depth and farther become out_black"),
    in_white: float = Float(1.0, min=0.0, max=1.0, tooltip="this depth and nearer become out_white"),
    gamma: float = Float(1.0, min=0.1, max=10.0, tooltip="above 1 brings the middle depths nearer"),
    out_black: float = Float(0.0, min=0.0, max=1.0, tooltip="the farthest output value"),
    out_white: float = Float(
        1.0, min=0.0, max=1.0, tooltip="the nearest output value; below out_black inverts"
    ),
) -> tuple[torch.Tensor]:
    return (depth_ops.apply_levels(depth, in_black, in_white, gamma, out_black, out_white),)


@node(
    "DepthClamp",
    display_name="Clamp Depth Planes",
    category="depth/edit",
    description="Flattens everything nearer than a near plane and farther than a far plane onto them.",
    outputs=[Output(DEPTH)],
)
def depth_clamp(
    depth: torch.Tensor = Socket(DEPTH),
    near: float = Float(1.0, min=0.0, max=1.0, tooltip=f"nearer depths become this; {POSITION_TOOLTIP}"),
    far: float = Float(0.0, min=0.0, max=1.0, tooltip=f"farther depths become this; {POSITION_TOOLTIP}"),
) -> tuple[torch.Tensor]:
    return (depth_ops.clamp_planes(depth, near, far),)


@node(
    "DepthBlur",
    display_name="Blur Depth",
    category="depth/edit",
    description="Smooths a depth map: gaussian softens everything, median removes noise but keeps edges.",
    outputs=[Output(DEPTH)],
)
def depth_blur(
    depth: torch.Tensor = Socket(DEPTH),
    method: str = Combo(("gaussian", "median"), tooltip="median keeps the edges between objects sharp"),
    radius: int = Int(4, min=0, max=64, tooltip="in pixels of the depth map; 0 leaves it unchanged"),
) -> tuple[torch.Tensor]:
    return (depth_ops.blur_depth(depth, method, radius),)


@node(
    "DepthMatchImage",
    display_name="Match Depth to Image",
    category="depth/edit",
    description="Resizes a depth map to an image's width and height: stretched, cropped or padded.",
    outputs=[Output(DEPTH)],
    output_size=output_sizes.depth_match_image,
)
def depth_match_image(
    depth: torch.Tensor = Socket(DEPTH),
    image: torch.Tensor = Socket(IMAGE),
    method: str = Combo(
        ("stretch", "crop", "pad"),
        tooltip="stretch ignores the aspect ratio (as the estimator's square map is meant); crop fills "
        "and cuts the sides; pad fits and repeats the edge",
    ),
) -> tuple[torch.Tensor]:
    resized = depth_ops.match_depth_size(depth, image.shape[1], image.shape[2], method)
    return (match_batch(resized, image.shape[0], "depth", "image"),)


@node(
    "DepthBlend",
    display_name="Blend Depth",
    category="depth/edit",
    description="Combines two depth maps at the first one's size (each stretched to 0..1 first, if asked).",
    outputs=[Output(DEPTH)],
    output_size=output_sizes.depth_blend,
)
def depth_blend(
    depth_a: torch.Tensor = Socket(DEPTH),
    depth_b: torch.Tensor = Socket(DEPTH, tooltip="stretched to depth_a's size"),
    mode: str = Combo(
        ("mix", "min", "max", "masked"),
        tooltip="mix: weighted average; min/max: the farther/nearer of the two; masked: b where the "
        "mask is 1",
    ),
    factor: float = Float(0.5, min=0.0, max=1.0, tooltip="how much of depth_b (mix and masked)"),
    normalize: bool = Boolean(
        True,
        tooltip="stretch each map to 0..1 first (maps of different scales); off for maps already "
        "edited into 0..1, to keep their ranges",
    ),
    mask: torch.Tensor | None = Socket(
        MASK, optional=True, tooltip="where depth_b shows through (mode masked)"
    ),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    if mask is not None and mode != "masked":
        context.warn(f"the mask is only used by mode 'masked'; mode '{mode}' ignores it")
    return (depth_ops.blend_depth(depth_a, depth_b, mode, factor, mask, normalize),)


@node(
    "DepthCurve",
    display_name="Depth Curve",
    category="depth/edit",
    description="Reshapes the normalised depth map with a smooth monotone curve through x:y points.",
    outputs=[Output(DEPTH)],
)
def depth_curve(
    depth: torch.Tensor = Socket(DEPTH),
    points: str = String(
        "0:0, 0.5:0.5, 1:1",
        tooltip="x:y pairs separated by commas, in 0..1 (0 = farthest); y must only rise or only fall",
    ),
) -> tuple[torch.Tensor]:
    xs, ys = depth_ops.parse_curve(points)
    return (depth_ops.apply_curve(depth, xs, ys),)


def _range_warning(mask: torch.Tensor, far: float, near: float, mode: str) -> str | None:
    """What to tell the user when a range mask came out all zeros or all ones, else None."""
    if bool((mask == 0).all()):
        value = "zeros"
    elif bool((mask == 1).all()):
        value = "ones"
    else:
        return None
    range_text = f"far {far:g} .. near {near:g}"
    if (value == "ones") == (mode == "inside"):
        what, fix = f"the range {range_text} holds every depth of the map", "narrow the range"
    else:
        what, fix = f"no depth of the map lies in the range {range_text}", "move or widen the range"
    return f"the depth range mask is all {value}: {what}; {fix} (Depth as Image shows where depths lie)"


@node(
    "DepthRangeMask",
    display_name="Depth Range to Mask",
    category="mask",
    description="Selects the pixels between a far and a near depth as a mask, with soft edges.",
    outputs=[Output(MASK)],
)
def depth_range_mask(
    depth: torch.Tensor = Socket(DEPTH),
    far: float = Float(0.5, min=0.0, max=1.0, tooltip=f"the range's far end; {POSITION_TOOLTIP}"),
    near: float = Float(1.0, min=0.0, max=1.0, tooltip=f"the range's near end; {POSITION_TOOLTIP}"),
    softness: float = Float(0.05, min=0.0, max=0.5, tooltip="width of the fade at each end; 0 = hard"),
    mode: str = Combo(("inside", "outside"), tooltip="outside selects the rest (e.g. the background)"),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    mask = depth_ops.range_mask(depth, far, near, softness, mode)
    warning = _range_warning(mask, far, near, mode)
    if warning is not None:
        context.warn(warning)
    return (mask,)

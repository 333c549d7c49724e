"""Editing depth maps as tensors: normalising, inverting, levels, clamping, blurring, resizing to an
image, blending, curves and selecting a depth range as a mask. The nodes in `nodes/depth_edit.py` wrap
these functions.

Depth maps are [B, 1, H, W] relative inverse depth (larger = nearer, any scale). Functions that take
positions in depth (levels, clamp, curve, range mask) work on each map's 0..1 range as "Depth as Image"
shows it: every batch item is min-max normalised on its own, so its farthest value is 0 and its nearest
1, and their results are in 0..1. A constant map normalises to all zeros (never NaN). Inverting and
blurring keep the map's own scale. Everything is float32 on the input's device.
"""

from __future__ import annotations

import math
from itertools import pairwise

from depthgraph.nodes.heavy import F, torch
from depthgraph.nodes.spatial import gaussian_blur, match_batch, pad_mode, resize_planes, stretch_depth

CURVE_EXAMPLE = "0:0, 0.5:0.7, 1:1"
# Windows gathered at once by the median blur (float32 values): 64 MB per chunk of rows.
MEDIAN_CHUNK_VALUES = 1 << 24


def map_extremes(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each map's smallest and largest value, shaped [B, 1, 1, 1]."""
    return torch.amin(depth, dim=(1, 2, 3), keepdim=True), torch.amax(depth, dim=(1, 2, 3), keepdim=True)


def stretch_between(depth: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Depth clipped to low..high and stretched to 0..1 (per map; where high == low, all zeros)."""
    depth = depth.float()
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return (depth.clamp(min=low, max=high) - low) / span


def normalize_min_max(depth: torch.Tensor) -> torch.Tensor:
    """Each map stretched to 0..1: its farthest value becomes 0 and its nearest 1."""
    low, high = map_extremes(depth.float())
    return stretch_between(depth, low, high)


def _sorted_quantile(sorted_values: torch.Tensor, fraction: float) -> torch.Tensor:
    """The quantile of rows of sorted values [B, N], interpolated linearly (numpy's default)."""
    position = fraction * (sorted_values.shape[1] - 1)
    below = math.floor(position)
    above = min(below + 1, sorted_values.shape[1] - 1)
    low_value, high_value = sorted_values[:, below], sorted_values[:, above]
    return (low_value + (high_value - low_value) * (position - below)).view(-1, 1, 1, 1)


def percentile_bounds(
    depth: torch.Tensor, low_percentile: float, high_percentile: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each map's values at two percentiles, shaped [B, 1, 1, 1]."""
    if low_percentile >= high_percentile:
        raise ValueError(
            f"the low percentile ({low_percentile:g}) must be below the high percentile "
            f"({high_percentile:g}); lower low_percentile or raise high_percentile"
        )
    # Sorting once serves both percentiles, and unlike torch.quantile it has no size limit.
    sorted_values = depth.float().flatten(1).sort(dim=1).values
    return (
        _sorted_quantile(sorted_values, low_percentile / 100.0),
        _sorted_quantile(sorted_values, high_percentile / 100.0),
    )


def normalize_percentile(depth: torch.Tensor, low_percentile: float, high_percentile: float) -> torch.Tensor:
    """Each map clipped to two of its percentiles and stretched to 0..1, so outliers do not squash it."""
    low, high = percentile_bounds(depth, low_percentile, high_percentile)
    return stretch_between(depth, low, high)


def invert_depth(depth: torch.Tensor) -> torch.Tensor:
    """Near becomes far within each map's own range (min + max - depth), keeping its scale."""
    depth = depth.float()
    low, high = map_extremes(depth)
    return low + high - depth


def apply_levels(
    depth: torch.Tensor,
    in_black: float,
    in_white: float,
    gamma: float,
    out_black: float,
    out_white: float,
) -> torch.Tensor:
    """Photoshop-style levels on the normalised map; out_black above out_white inverts it."""
    if in_white <= in_black:
        raise ValueError(
            f"in_white ({in_white:g}) must be above in_black ({in_black:g}); raise in_white or lower in_black"
        )
    stretched = ((normalize_min_max(depth) - in_black) / (in_white - in_black)).clamp(0.0, 1.0)
    return out_black + stretched ** (1.0 / gamma) * (out_white - out_black)


def _check_far_and_near(far: float, near: float) -> None:
    if far > near:
        raise ValueError(
            f"far ({far:g}) is nearer than near ({near:g}); positions go from 0 = farthest to "
            "1 = nearest, so lower far or raise near"
        )


def clamp_planes(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """The normalised map with everything nearer than `near` set to `near` and everything farther
    than `far` set to `far`."""
    _check_far_and_near(far, near)
    return normalize_min_max(depth).clamp(far, near)


def median_blur(planes: torch.Tensor, radius: int, chunk_values: int = MEDIAN_CHUNK_VALUES) -> torch.Tensor:
    """[B, C, H, W] with each value replaced by the median of its (2·radius + 1)² window.

    The windows are gathered a band of rows at a time, at most about `chunk_values` values per band,
    so a large map with a large radius does not need its whole window stack in memory at once.
    """
    if radius <= 0:
        return planes
    batch, channels, height, width = planes.shape
    size = 2 * radius + 1
    mode = pad_mode(height, width, radius)
    padded = F.pad(planes.float().reshape(batch * channels, 1, height, width), (radius,) * 4, mode=mode)
    rows_per_band = max(1, chunk_values // (batch * channels * width * size * size))
    bands = []
    for top in range(0, height, rows_per_band):
        rows = min(rows_per_band, height - top)
        band = padded[:, 0, top : top + rows + 2 * radius]
        windows = band.unfold(1, size, 1).unfold(2, size, 1)  # [N, rows, W, size, size], a view
        bands.append(windows.reshape(batch * channels, rows, width, size * size).median(dim=-1).values)
    return torch.cat(bands, dim=1).reshape(batch, channels, height, width)


def blur_depth(depth: torch.Tensor, method: str, radius: int) -> torch.Tensor:
    """A depth map blurred in its own scale: "gaussian" (sigma radius / 2) or "median", which smooths
    noise but keeps the edges between objects sharp."""
    if method == "median":
        return median_blur(depth, radius)
    return gaussian_blur(depth.float(), radius)


def _pad_to(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, 1, h, w] padded to height × width around its centre, repeating the edge."""
    top, left = (height - depth.shape[2]) // 2, (width - depth.shape[3]) // 2
    padding = (left, width - depth.shape[3] - left, top, height - depth.shape[2] - top)
    return F.pad(depth, padding, mode="replicate")


def match_depth_size(depth: torch.Tensor, height: int, width: int, method: str) -> torch.Tensor:
    """A depth map [B, 1, H, W] brought to height × width (bicubic).

    "stretch" ignores the aspect ratio (the estimator's convention); "crop" scales to cover the
    target and keeps the centre; "pad" scales to fit inside it and repeats the edge around it.
    """
    depth = depth.float()
    if method == "stretch":
        return stretch_depth(depth, height, width)
    old_height, old_width = depth.shape[2], depth.shape[3]
    if method == "crop":
        scale = max(height / old_height, width / old_width)
        new_height = max(height, round(old_height * scale))
        new_width = max(width, round(old_width * scale))
        scaled = stretch_depth(depth, new_height, new_width)
        top, left = (new_height - height) // 2, (new_width - width) // 2
        return scaled[:, :, top : top + height, left : left + width]
    scale = min(height / old_height, width / old_width)
    new_height = min(height, max(1, round(old_height * scale)))
    new_width = min(width, max(1, round(old_width * scale)))
    return _pad_to(stretch_depth(depth, new_height, new_width), height, width)


def blend_depth(
    depth_a: torch.Tensor,
    depth_b: torch.Tensor,
    mode: str,
    factor: float,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Two depth maps combined at depth_a's size, both normalised to 0..1 first (their scales differ)
    unless `normalize` is off (for maps an edit node already put in 0..1, whose range is the edit).

    "mix": a·(1 - factor) + b·factor; "min" and "max": elementwise (max keeps whichever is nearer);
    "masked": b where the mask is 1 and a where it is 0, the mask scaled by factor.
    """
    if mode == "masked" and mask is None:
        raise ValueError(
            "mode 'masked' needs a mask; link a MASK to the mask input, or choose mode mix, min or max"
        )
    batch = max(depth_a.shape[0], depth_b.shape[0])
    depth_a = match_batch(depth_a, batch, "depth_a", "depth_b")
    depth_b = match_batch(depth_b, batch, "depth_b", "depth_a")
    height, width = depth_a.shape[2], depth_a.shape[3]
    # Stretching before normalising keeps bicubic overshoot inside 0..1.
    a = depth_a.float()
    b = stretch_depth(depth_b, height, width)
    if normalize:
        a, b = normalize_min_max(a), normalize_min_max(b)
    if mode == "min":
        return torch.minimum(a, b)
    if mode == "max":
        return torch.maximum(a, b)
    if mode == "masked" and mask is not None:
        weight = resize_planes(mask[:, None], height, width).clamp(0.0, 1.0)
        weight = match_batch(weight, batch, "mask", "depth_a") * factor
        return a * (1.0 - weight) + b * weight
    return a * (1.0 - factor) + b * factor


def _point_text(x: float, y: float) -> str:
    return f"{x:g}:{y:g}"


def _read_point(piece: str) -> tuple[float, float]:
    parts = piece.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(
            f"could not read the curve point {piece!r}; write x:y pairs separated by commas, "
            f"e.g. {CURVE_EXAMPLE}"
        ) from None


def _check_monotone(points: list[tuple[float, float]]) -> None:
    """Refuse y values that both rise and fall, naming the first two segments that disagree."""
    direction, since = 0.0, 0
    for index in range(len(points) - 1):
        step = points[index + 1][1] - points[index][1]
        if step == 0:
            continue
        if direction == 0:
            direction, since = step, index
        elif (step > 0) != (direction > 0):
            first, turn = ("rises", "falls") if direction > 0 else ("falls", "rises")
            raise ValueError(
                f"the curve {first} from {_point_text(*points[since])} to {_point_text(*points[since + 1])} "
                f"then {turn} from {_point_text(*points[index])} to {_point_text(*points[index + 1])}; a "
                "depth curve must only rise or only fall, or the scene's depth order folds over: "
                "change or remove one of these points"
            )


def parse_curve(text: str) -> tuple[list[float], list[float]]:
    """The x and y values of "x:y, x:y, ..." sorted by x, after checking they make a depth curve:
    at least two points, each x once, everything in 0..1, y only rising or only falling."""
    points = sorted(_read_point(piece.strip()) for piece in text.split(",") if piece.strip())
    if len(points) < 2:
        raise ValueError(
            f"the curve has {len(points)} point{'' if len(points) == 1 else 's'}; give at least two "
            f"x:y pairs, e.g. {CURVE_EXAMPLE}"
        )
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"the curve point {_point_text(x, y)} is outside 0..1; x and y are positions on the "
                "normalised depth map (0 = farthest, 1 = nearest)"
            )
    for (x, _), (next_x, _) in pairwise(points):
        if x == next_x:
            raise ValueError(f"the curve's x values repeat ({x:g}); give each x once")
    _check_monotone(points)
    return [x for x, _ in points], [y for _, y in points]


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _end_slope(width: float, next_width: float, secant: float, next_secant: float) -> float:
    """PCHIP's slope at an end point: a one-sided three-point estimate kept shape-preserving."""
    slope = ((2.0 * width + next_width) * secant - width * next_secant) / (width + next_width)
    # scipy also caps the slope at 3·secant where the secants change sign; a depth curve's never do.
    return slope if _sign(slope) == _sign(secant) else 0.0


def curve_slopes(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Fritsch–Carlson (PCHIP) slopes at each point, so the cubic pieces never overshoot: a weighted
    harmonic mean of the neighbouring secants, 0 where the curve turns flat (as scipy's PchipInterpolator)."""
    widths = xs[1:] - xs[:-1]
    secants = (ys[1:] - ys[:-1]) / widths
    if len(xs) == 2:
        return secants.repeat(2)
    before, after = secants[:-1], secants[1:]
    weight_before = 2.0 * widths[1:] + widths[:-1]
    weight_after = widths[1:] + 2.0 * widths[:-1]
    same_sign = before * after > 0
    safe_before = torch.where(same_sign, before, torch.ones_like(before))
    safe_after = torch.where(same_sign, after, torch.ones_like(after))
    interior = (weight_before + weight_after) / (weight_before / safe_before + weight_after / safe_after)
    first = _end_slope(*widths[:2].tolist(), *secants[:2].tolist())
    last = _end_slope(*widths.flip(0)[:2].tolist(), *secants.flip(0)[:2].tolist())
    return torch.cat(
        [
            ys.new_tensor([first]),
            torch.where(same_sign, interior, torch.zeros_like(interior)),
            ys.new_tensor([last]),
        ]
    )


def apply_curve(depth: torch.Tensor, xs: list[float], ys: list[float]) -> torch.Tensor:
    """The normalised map passed through the monotone cubic through (xs, ys), flat beyond the ends."""
    normalized = normalize_min_max(depth)
    knots = torch.tensor(xs, dtype=torch.float64)
    values = torch.tensor(ys, dtype=torch.float64)
    slopes = curve_slopes(knots, values)
    knots, values, slopes = (tensor.to(normalized) for tensor in (knots, values, slopes))
    position = normalized.clamp(knots[0], knots[-1])
    piece = (torch.searchsorted(knots, position, right=True) - 1).clamp(0, len(xs) - 2)
    width = knots[piece + 1] - knots[piece]
    t = (position - knots[piece]) / width
    # Cubic Hermite basis on each piece.
    h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
    h01, h11 = t**2 * (3 - 2 * t), t**2 * (t - 1)
    curve = h00 * values[piece] + h10 * width * slopes[piece] + h01 * values[piece + 1]
    return (curve + h11 * width * slopes[piece + 1]).clamp(0.0, 1.0)


def _smoothstep(low: float, high: float, values: torch.Tensor) -> torch.Tensor:
    t = ((values - low) / (high - low)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def range_mask(depth: torch.Tensor, far: float, near: float, softness: float, mode: str) -> torch.Tensor:
    """A mask [B, H, W]: 1 where far <= normalised depth <= near ("inside"; "outside" is the rest).

    Each bound fades over a smoothstep ramp `softness` wide, centred on it (0 = hard edges). A bound
    at the end of the map (far 0, near 1) has nothing beyond it to fade into, so it gets no ramp and
    the farthest or nearest pixels stay fully selected.
    """
    _check_far_and_near(far, near)
    normalized = normalize_min_max(depth)[:, 0]
    half = softness / 2.0
    if softness <= 0 or far <= 0:
        above_far = (normalized >= far).float()
    else:
        above_far = _smoothstep(far - half, far + half, normalized)
    if softness <= 0 or near >= 1:
        below_near = (normalized <= near).float()
    else:
        below_near = 1.0 - _smoothstep(near - half, near + half, normalized)
    inside = above_far * below_near
    return 1.0 - inside if mode == "outside" else inside

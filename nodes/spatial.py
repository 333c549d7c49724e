"""Bringing masks and depth maps to the size of what they are used with, or saying why they cannot be.

Depth maps are stretched to their image by convention (the depth estimator squashes to 384×384 and
the sampler stretches back), so any size of depth map fits any image. A mask marks pixels, so it is
only resized when it has the same shape as its target (the aspect ratios agree to within 2%); a mask of
another shape was made for another picture and gets an error that names the fix.
"""

from __future__ import annotations

from depthgraph.nodes.heavy import F, torch

ASPECT_TOLERANCE = 0.02


def size_text(height: int, width: int) -> str:
    return f"{width}×{height}"


def same_shape(height: int, width: int, target_height: int, target_width: int) -> bool:
    """Whether a height × width picture is a resized target (aspect ratios within 2%)."""
    return abs(width * target_height - target_width * height) <= ASPECT_TOLERANCE * target_width * height


def resize_planes(planes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, C, H, W] to height × width: bilinear, antialiased when shrinking."""
    if tuple(planes.shape[-2:]) == (height, width):
        return planes
    shrinking = height < planes.shape[-2] or width < planes.shape[-1]
    return F.interpolate(
        planes.float(), size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )


def match_batch(tensor: torch.Tensor, batch: int, what: str, target: str) -> torch.Tensor:
    """Repeat a batch of one to `batch`; any other mismatch is an error."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(
        f"{what} has a batch of {tensor.shape[0]} but {target} has {batch}; give one {what} for all, "
        "or one per image"
    )


def fit_mask(mask: torch.Tensor, height: int, width: int, target: str, fix: str) -> torch.Tensor:
    """A mask [B, H, W] at height × width, resized if it has the target's shape; otherwise a
    ValueError naming both sizes and `fix` (what the user should do)."""
    mask_height, mask_width = mask.shape[-2:]
    if (mask_height, mask_width) == (height, width):
        return mask
    if not same_shape(mask_height, mask_width, height, width):
        raise ValueError(
            f"the mask is {size_text(mask_height, mask_width)} but {target} is {size_text(height, width)}; "
            f"{fix}"
        )
    return resize_planes(mask[:, None], height, width)[:, 0].clamp(0.0, 1.0)


def stretch_depth(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A depth map [B, 1, H, W] stretched to height × width (bicubic, as the sampler does)."""
    if tuple(depth.shape[-2:]) == (height, width):
        return depth
    return F.interpolate(depth.float(), size=(height, width), mode="bicubic", align_corners=False)


def pad_mode(height: int, width: int, pad: int) -> str:
    """Reflect padding where the planes are big enough for it, else repeat the edge."""
    return "reflect" if pad < height and pad < width else "replicate"


def gaussian_blur(planes: torch.Tensor, radius: int, padding: str = "auto") -> torch.Tensor:
    """[B, C, H, W] blurred with a separable Gaussian of sigma radius / 2 (kernel 2·radius + 1).

    Edges are padded by reflection ("auto", falling back to repeating the edge on tiny planes) or by
    repeating the edge ("replicate"), so a constant plane stays exactly constant.
    """
    if radius <= 0:
        return planes
    sigma = radius / 2.0
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=planes.device)
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    batch, channels, height, width = planes.shape
    mode = pad_mode(height, width, radius) if padding == "auto" else padding
    flat = planes.float().reshape(batch * channels, 1, height, width)
    flat = F.pad(flat, (radius, radius, 0, 0), mode=mode)
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.pad(flat, (0, 0, radius, radius), mode=mode)
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(batch, channels, height, width)

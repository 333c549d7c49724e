"""The one place where images cross between files, Pillow and tensors.

Images are float32 tensors [B, H, W, 3] in 0..1 and masks [B, H, W] (1 = regenerate), as in ComfyUI.
Conversions always go through float32 numpy arrays, never half precision: Pillow and friends cannot
take float16 data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from depthgraph.nodes.heavy import torch
from PIL import Image, ImageOps, ImageSequence, PngImagePlugin, UnidentifiedImageError


class ImageReadError(ValueError):
    """A file that is not an image we can read."""


def pil_to_array(image: Image.Image) -> np.ndarray:
    """An RGB Pillow image as a float32 array [H, W, 3] in 0..1 (16-bit images keep their range)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        array = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(array, 0.0, 1.0)[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One image [H, W, 3] (any device or dtype) as an 8-bit RGB Pillow image."""
    array = image.detach().to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0).numpy()
    return Image.fromarray(np.round(array * 255.0).astype(np.uint8), mode="RGB")


def resize_with_pillow(
    images: torch.Tensor, width: int, height: int, resample: Image.Resampling
) -> torch.Tensor:
    """Resize a batch [B, H, W, 3] with one of Pillow's filters (8-bit, as Pillow works)."""
    resized = [pil_to_array(tensor_to_pil(image).resize((width, height), resample)) for image in images]
    return torch.from_numpy(np.stack(resized)).to(images.device)


def pixel_problem(name: str, height: int, width: int, max_pixels: int | None, frames: int = 1) -> str | None:
    """Why a picture of this size is refused before it is decoded (no pixels, or too many), or None.
    An animation counts every frame: 120 frames of 1024² are 126 MP to decode."""
    if width == 0 or height == 0:
        return f"{name} is {width}×{height}: it has no pixels"
    if max_pixels is None or width * height * frames <= max_pixels:
        return None
    if frames > 1:
        return (
            f"{name} has {frames} frames of {width}×{height} ({width * height * frames / 1e6:.0f} MP in "
            f"all), more than the {max_pixels / 1e6:.0f} MP limit; keep fewer frames, scale it down or "
            "raise max_image_pixels (settings)"
        )
    return (
        f"{name} is {width}×{height} ({width * height / 1e6:.0f} MP), more than the "
        f"{max_pixels / 1e6:.0f} MP limit; scale it down or raise max_image_pixels (settings)"
    )


def bomb_problem(name: str, max_pixels: int | None) -> str:
    """The message for a picture so large that Pillow refuses to open it (a decompression bomb)."""
    limit = f"the {max_pixels / 1e6:.0f} MP limit" if max_pixels is not None else "what can be decoded"
    return f"{name} has far more pixels than {limit}; scale it down or raise max_image_pixels (settings)"


def read_image(path: Path, max_pixels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image file: EXIF orientation applied, every frame of the first frame's size as a batch,
    and the mask from its alpha channel (transparent = 1, to regenerate; no alpha = all zeros).
    Images with no pixels, or more than `max_pixels` (all frames together), are refused before they
    are decoded."""
    try:
        with Image.open(path) as opened:
            frames = getattr(opened, "n_frames", 1)  # from the header of PNG and WebP animations
            problem = pixel_problem(path.name, opened.height, opened.width, max_pixels, frames)
            if problem:
                raise ImageReadError(problem)
            images: list[np.ndarray] = []
            masks: list[np.ndarray] = []
            for frame in ImageSequence.Iterator(opened):
                upright = ImageOps.exif_transpose(frame)
                if upright.mode == "P" or "transparency" in upright.info:
                    upright = upright.convert("RGBA")  # palette or tRNS transparency becomes alpha
                array = pil_to_array(upright)
                if images and array.shape != images[0].shape:
                    continue  # frames of another size cannot join the batch
                if "A" in upright.getbands():
                    alpha = np.asarray(upright.getchannel("A"), dtype=np.float32) / 255.0
                    masks.append(1.0 - alpha)
                else:
                    masks.append(np.zeros(array.shape[:2], dtype=np.float32))
                images.append(array)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError(bomb_problem(path.name, max_pixels)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"{path.name} is not an image that can be read ({error}); use PNG, JPEG or WebP"
        ) from None
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))


def png_metadata(fields: Mapping[str, Any]) -> PngImagePlugin.PngInfo:
    """PNG text chunks with each non-empty field as JSON ("prompt", "workflow"), as ComfyUI writes."""
    info = PngImagePlugin.PngInfo()
    for key, value in fields.items():
        if value:
            info.add_text(key, json.dumps(value))
    return info

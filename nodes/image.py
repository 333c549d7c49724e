"""Image nodes: load, save, preview, invert and scale (ComfyUI's names and inputs)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.events import PreviewFrame
from depthgraph.engine.core.files import FileStore, FolderKind
from depthgraph.engine.core.registry import (
    Combo,
    FilenamePrefix,
    Fingerprint,
    Int,
    NodeOutput,
    Output,
    Socket,
    node,
)
from depthgraph.engine.core.sockets import IMAGE, MASK
from depthgraph.nodes import output_sizes
from depthgraph.nodes.heavy import F, torch
from depthgraph.nodes.image_tensors import png_metadata, read_image, resize_with_pillow, tensor_to_pil
from depthgraph.nodes.parameters import generation_parameters
from depthgraph.nodes.spatial import fit_mask
from PIL import Image

SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
MAX_SIDE = 16384


def _input_images(files: FileStore) -> Sequence[str]:
    return files.list_inputs()


def _where_inputs_are(files: FileStore, name: str) -> str:
    return (
        f"{name!r} is not an image in the input folder {files.input_dir.resolve()}; put or upload it "
        "there (on the command line, --set NODE.image=PATH may name any file)"
    )


def input_image_file() -> Any:
    """The input of nodes that read an image file (their `image` parameter's default): the input
    folder's images, with the editor's upload button and a message saying where to put a missing one."""
    return Combo(
        _input_images,
        upload="image",
        tooltip="a file in the input folder",
        missing_hint=_where_inputs_are,
    )


def input_file_hash(input_name: str) -> Fingerprint:
    """A fingerprint for nodes that read the input-folder file named by `input_name`: the file's
    content hash, so editing the file re-runs the node."""

    def file_hash(inputs: Mapping[str, Any], files: FileStore) -> str:
        digest = hashlib.sha256()
        with files.resolve_input(inputs[input_name]).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    return file_hash


@node(
    "LoadImage",
    display_name="Load Image",
    category="image",
    description="Loads a PNG, JPEG or WebP from the input folder, upright; transparency becomes the mask.",
    outputs=[Output(IMAGE), Output(MASK)],
    fingerprint=input_file_hash("image"),
)
def load_image(image: str = input_image_file(), *, context: NodeContext) -> tuple[torch.Tensor, torch.Tensor]:
    return read_image(context.files.resolve_input(image), context.files.max_image_pixels)


def _save(
    images: torch.Tensor, prefix: str, kind: FolderKind, compress_level: int, context: NodeContext
) -> NodeOutput:
    metadata = png_metadata({"prompt": dict(context.prompt), "workflow": context.workflow})
    parameters = generation_parameters(context.prompt, context.node_id, images.shape[2], images.shape[1])
    if parameters:
        metadata.add_text("parameters", parameters)
    saved = []
    for index, image in enumerate(images):
        write = partial(
            tensor_to_pil(image).save, format="PNG", pnginfo=metadata, compress_level=compress_level
        )
        _, subfolder, filename = context.files.write_output(prefix, ".png", kind, write)
        saved.append({"filename": filename, "subfolder": subfolder, "type": kind})
        context.progress(index + 1, len(images))
    return NodeOutput((), {"images": saved})


@node(
    "SaveImage",
    display_name="Save Image",
    category="image",
    description="Saves images as PNG in the output folder (never overwriting), with the graph embedded.",
    output_node=True,
)
def save_image(
    images: torch.Tensor = Socket(IMAGE),
    filename_prefix: str = FilenamePrefix(
        "depthgraph",
        tooltip="file name start; may include a subfolder of the output folder, e.g. renders/cat",
    ),
    *,
    context: NodeContext,
) -> NodeOutput:
    return _save(images, filename_prefix, "output", 4, context)


@node(
    "PreviewImage",
    display_name="Preview Image",
    category="image",
    description="Shows images without keeping them: they go to the temp folder.",
    output_node=True,
)
def preview_image(images: torch.Tensor = Socket(IMAGE), *, context: NodeContext) -> NodeOutput:
    return _save(images, "preview", "temp", 1, context)


@node(
    "SaveImageWebsocket",
    display_name="Send Image over WebSocket",
    category="api node/image",
    description="Sends each image as PNG straight to the client that queued the prompt (a binary "
    "WebSocket frame, as ComfyUI's node of this name); nothing is saved.",
    output_node=True,
)
def save_image_websocket(images: torch.Tensor = Socket(IMAGE), *, context: NodeContext) -> NodeOutput:
    for index, image in enumerate(images):
        encoded = io.BytesIO()
        tensor_to_pil(image).save(encoded, format="PNG", compress_level=1)
        context.send_image(PreviewFrame("PNG", encoded.getvalue()))
        context.progress(index + 1, len(images))
    return NodeOutput((), {})


@node(
    "ImageInvert",
    display_name="Invert Image",
    category="image",
    description="Inverts an image's colours (1 - value).",
    outputs=[Output(IMAGE)],
)
def image_invert(image: torch.Tensor = Socket(IMAGE)) -> tuple[torch.Tensor]:
    return (1.0 - image,)


def _center_crop(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop [B, H, W, C] to the aspect ratio of width × height, keeping the centre."""
    old_height, old_width = image.shape[1], image.shape[2]
    if old_width * height > width * old_height:  # too wide
        keep = max(1, round(old_height * width / height))
        left = (old_width - keep) // 2
        return image[:, :, left : left + keep]
    keep = max(1, round(old_width * height / width))
    top = (old_height - keep) // 2
    return image[:, top : top + keep]


def scale_image(image: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """Resize [B, H, W, C] to width × height; a side of 0 follows the other, keeping the aspect ratio."""
    old_height, old_width = image.shape[1], image.shape[2]
    if width == 0 and height == 0:
        return image
    if width == 0:
        width = max(1, round(old_width * height / old_height))
    if height == 0:
        height = max(1, round(old_height * width / old_width))
    if crop == "center":
        image = _center_crop(image, width, height)
    if method == "lanczos":  # torch has no lanczos filter; Pillow's is the reference one
        return resize_with_pillow(image, width, height, Image.Resampling.LANCZOS)
    channels_first = image.movedim(-1, 1)
    # Antialiasing makes downscaling smooth instead of aliased; torch offers it for these two modes.
    antialias = method in ("bilinear", "bicubic")
    resized_tensor = F.interpolate(channels_first, size=(height, width), mode=method, antialias=antialias)
    return resized_tensor.movedim(1, -1).clamp(0.0, 1.0)


@node(
    "ImageScale",
    display_name="Upscale Image",
    category="image/upscaling",
    description="Resizes images to a width and height (0 keeps the aspect ratio), cropping to fit if asked.",
    outputs=[Output(IMAGE)],
    output_size=output_sizes.image_scale,
)
def image_scale(
    image: torch.Tensor = Socket(IMAGE),
    upscale_method: str = Combo(SCALE_METHODS),
    width: int = Int(512, min=0, max=MAX_SIDE, step=1, tooltip="0 follows the height"),
    height: int = Int(512, min=0, max=MAX_SIDE, step=1, tooltip="0 follows the width"),
    crop: str = Combo(("disabled", "center")),
) -> tuple[torch.Tensor]:
    return (scale_image(image, width, height, upscale_method, crop),)


@node(
    "ImageBatch",
    display_name="Batch Images",
    category="image",
    description="Joins two batches of images into one (the second resized to the first's size if need be).",
    outputs=[Output(IMAGE)],
    output_size=output_sizes.image_batch,
)
def image_batch(
    image1: torch.Tensor = Socket(IMAGE), image2: torch.Tensor = Socket(IMAGE)
) -> tuple[torch.Tensor]:
    """image1's images, then image2's, as ComfyUI's ImageBatch joins them: image2 is scaled to
    image1's size (bilinear, cropping the centre to keep its aspect ratio) when the sizes differ."""
    height, width = int(image1.shape[1]), int(image1.shape[2])
    if tuple(image2.shape[1:3]) != (height, width):
        image2 = scale_image(image2, width, height, "bilinear", "center")
    return (torch.cat([image1, image2.to(image1.device, image1.dtype)]),)


def fit_to_multiple(image: torch.Tensor, multiple: int, method: str) -> torch.Tensor:
    """Bring [B, H, W, C] to sides that are multiples of `multiple`: crop the centre down, pad the
    edges up (repeating the border pixels), or resize down with lanczos (what diffusers does)."""
    height, width = image.shape[1], image.shape[2]
    if method == "pad":
        new_height, new_width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    else:
        new_height, new_width = height // multiple * multiple, width // multiple * multiple
    if new_height == 0 or new_width == 0:
        raise ValueError(
            f"the image is {width}×{height}, smaller than one {multiple}-pixel block; "
            "use method 'pad' or scale it up first"
        )
    if (new_height, new_width) == (height, width):
        return image
    if method == "crop":
        top, left = (height - new_height) // 2, (width - new_width) // 2
        return image[:, top : top + new_height, left : left + new_width]
    if method == "pad":
        top, left = (new_height - height) // 2, (new_width - width) // 2
        padded = F.pad(
            image.movedim(-1, 1),
            (left, new_width - width - left, top, new_height - height - top),
            mode="replicate",
        )
        return padded.movedim(1, -1)
    return resize_with_pillow(image, new_width, new_height, Image.Resampling.LANCZOS)


@node(
    "ImageSizeForModel",
    display_name="Size Image for Model",
    category="image",
    description=(
        "Brings an image (and its mask) to sides that are multiples of 8 (or 64) by cropping, padding or "
        "resizing."
    ),
    outputs=[Output(IMAGE), Output(MASK)],
    output_size=output_sizes.image_size_for_model,
)
def image_size_for_model(
    image: torch.Tensor = Socket(IMAGE),
    multiple: int = Int(8, min=8, max=64, step=8, tooltip="8 is what the model needs; 64 is safest"),
    method: str = Combo(("crop", "pad", "resize")),
    mask: torch.Tensor | None = Socket(
        MASK, optional=True, tooltip="sized the same way, so it still fits the image"
    ),
) -> tuple[torch.Tensor, torch.Tensor]:
    sized = fit_to_multiple(image, multiple, method)
    if mask is None:
        return sized, torch.zeros(sized.shape[:3], dtype=sized.dtype, device=sized.device)
    fix = "load the mask from the same picture, or scale it to the image first"
    mask = fit_mask(mask, image.shape[1], image.shape[2], "the image", fix)
    planes = fit_to_multiple(mask[..., None].expand(-1, -1, -1, 3), multiple, method)
    return sized, planes[..., 0].contiguous()

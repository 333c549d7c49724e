"""Depth maps to and from files: grayscale PNG and TIFF, and numpy's .npy.

A DEPTH socket carries relative inverse depth (larger = nearer, any scale). A file holds depth in one
of three conventions, chosen on LoadDepth: "white is near" (MiDaS and SD2 maps: already ours), "white
is far" (a distance-like map, inverted per map as min + max - d) and "metric distance" (distances such
as metres from a depth sensor, turned into inverse depth 1 / d). SaveDepth writes each map as a 16-bit
grayscale PNG stretched to 0..65535, and/or its raw float32 values as .npy.

Pillow quietly reduces 16-bit colour PNGs to 8 bits, so the PNG header is read here first: a depth map
must be one channel, and a colour picture of depth cannot be turned back into depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.engine.core.registry import Combo, FilenamePrefix, NodeOutput, Output, Socket, node
from depthgraph.engine.core.sockets import DEPTH
from depthgraph.nodes.heavy import torch
from depthgraph.nodes.image import input_file_hash
from depthgraph.nodes.image_tensors import pixel_problem, png_metadata
from PIL import Image, UnidentifiedImageError

DEPTH_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".npy"})
LOAD_CONVENTIONS = ("white is near", "white is far", "metric distance")
SAVE_CONVENTIONS = ("white is near", "white is far")
SAVE_FORMATS = ("16-bit PNG", ".npy", "16-bit PNG + .npy")
SUPPORTED = "a grayscale PNG (8 or 16-bit), a grayscale TIFF (8, 16-bit or float) or a .npy array"
NPY_SHAPES = "[H, W], [1, H, W], [H, W, 1], [B, H, W] or [B, 1, H, W]"
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L")
COLOUR_MODES = ("RGB", "RGBA", "P", "PA")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PICKLE_START = b"\x80"  # the PROTO opcode that begins every pickle of protocol 2 and later
PNG_COLOUR_TYPES = {2: "RGB", 4: "grayscale with alpha", 6: "RGBA"}


class DepthReadError(ValueError):
    """A file that is not a depth map we can read."""


def _check_size(name: str, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse maps with no pixels, or with more than `max_pixels`, before their data is read."""
    problem = pixel_problem(name, height, width, max_pixels)
    if problem:
        raise DepthReadError(problem)


def _check_finite(values: np.ndarray, name: str) -> None:
    """Refuse NaN and ±inf (holes a sensor or tool left), saying how many there are."""
    nan, infinite = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if nan or infinite:
        raise DepthReadError(
            f"{name} has {nan} NaN and {infinite} infinite values; fill the holes (e.g. with "
            "numpy.nan_to_num, or an inpainting tool) and save it again"
        )


def _unreadable(path: Path, error: Exception) -> DepthReadError:
    return DepthReadError(f"{path.name} is not a depth map that can be read ({error}); use {SUPPORTED}")


def _refuse_16_bit_colour_png(path: Path) -> None:
    """Pillow reads 16-bit RGB, RGBA and gray-with-alpha PNGs as 8-bit RGB(A), losing the depth's
    precision without a word, so the IHDR chunk is read here: byte 24 is the bit depth, 25 the colour
    type."""
    with path.open("rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR" or head[24] != 16:
        return
    colour = PNG_COLOUR_TYPES.get(head[25])
    if colour is not None:
        raise DepthReadError(
            f"{path.name} is a 16-bit {colour} PNG; depth maps must be one channel: save it as 16-bit "
            "grayscale (Pillow mode 'I;16', or cv2.imwrite of a uint16 [H, W] array)"
        )


def _gray_values(image: Image.Image, name: str) -> np.ndarray:
    """The first frame of a grayscale picture as float32 [H, W]: 8-bit / 255, 16-bit / 65535, float
    values as they are. Colour pictures are accepted only when their three channels are equal."""
    if image.mode in ("1", "L", "LA"):  # converting to "L" keeps the gray and drops any alpha
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if image.mode in SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "I":  # 16-bit PNGs often open as 32-bit "I"; wider values are scaled by their max
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max())
        return (values / (65535.0 if top <= 65535.0 else top)).astype(np.float32)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode in COLOUR_MODES:
        rgb = np.asarray(image.convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            raise DepthReadError(
                f"{name} is a coloured picture of depth (a colour map such as 'turbo'), which cannot be "
                "read back into depth; export the raw grayscale or 16-bit map, or a .npy, instead"
            )
        return rgb[..., 0].astype(np.float32) / 255.0
    raise DepthReadError(
        f"{name} is a picture in Pillow mode {image.mode!r}; depth maps must be one channel: use {SUPPORTED}"
    )


def _read_picture(path: Path, max_pixels: int | None) -> np.ndarray:
    """A PNG or TIFF depth map as float32 [1, H, W] (a multi-frame TIFF gives its first frame)."""
    try:
        _refuse_16_bit_colour_png(path)
        with Image.open(path) as opened:
            _check_size(path.name, opened.height, opened.width, max_pixels)
            values = _gray_values(opened, path.name)
    except DepthReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise _unreadable(path, error) from None
    return values[None]


def _npy_header(handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The shape and dtype an .npy file declares, read without reading its data."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    else:  # 2.0 and 3.0 share the layout; 3.0 only allows UTF-8 in structured field names
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return shape, dtype


def _maps_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """[B, H, W] for an accepted .npy shape, or None. A 3-D shape ending in 1 is [H, W, 1]."""
    if len(shape) == 2:
        return (1, shape[0], shape[1])
    if len(shape) == 3:
        return (1, shape[0], shape[1]) if shape[2] == 1 else (shape[0], shape[1], shape[2])
    if len(shape) == 4 and shape[1] == 1:
        return (shape[0], shape[2], shape[3])
    return None


def _checked_maps_shape(
    name: str, shape: tuple[int, ...], dtype: np.dtype[Any], max_pixels: int | None
) -> tuple[int, int, int]:
    """The [B, H, W] an .npy header declares, refusing object, non-numeric and complex arrays, other
    shapes, and maps of a refused size."""
    if dtype.hasobject:
        raise DepthReadError(
            f"{name} is a pickled array of Python objects, which is not loaded (unpickling can run code); "
            "save a plain numeric array: numpy.save(path, numpy.asarray(depth, dtype='float32'))"
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise DepthReadError(
            f"{name} holds {dtype} values; depth maps need real numbers: save array.astype('float32')"
        )
    maps = _maps_shape(shape)
    if maps is None:
        raise DepthReadError(f"{name} has the shape {shape}; a depth array must be {NPY_SHAPES}")
    batch, height, width = maps
    if batch == 0:
        raise DepthReadError(f"{name} has the shape {shape}: it holds no maps")
    _check_size(name, height, width, max_pixels)
    return maps


def _read_array(path: Path, max_pixels: int | None) -> np.ndarray:
    """A .npy depth array as float32 [B, H, W], its shape and dtype checked before its data is read."""
    try:
        with path.open("rb") as handle:
            if handle.read(1) == PICKLE_START:
                raise DepthReadError(
                    f"{path.name} is pickled Python data, not a .npy array; save the array with "
                    "numpy.save(path, numpy.asarray(depth, dtype='float32'))"
                )
            handle.seek(0)
            shape, dtype = _npy_header(handle)
            maps_shape = _checked_maps_shape(path.name, shape, dtype, max_pixels)
            handle.seek(0)
            array = np.load(handle, allow_pickle=False)
    except DepthReadError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise _unreadable(path, error) from None
    return np.ascontiguousarray(array.reshape(maps_shape), dtype=np.float32)


def to_inverse_depth(values: np.ndarray, convention: str, name: str) -> np.ndarray:
    """Maps [B, H, W] in a file's convention as relative inverse depth (larger = nearer)."""
    if convention == "white is near":
        return values
    if convention == "white is far":
        low = values.min(axis=(1, 2), keepdims=True)
        high = values.max(axis=(1, 2), keepdims=True)
        inverted: np.ndarray = low + high - values
        return inverted
    if convention == "metric distance":
        zeros, negative = int((values == 0).sum()), int((values < 0).sum())
        if zeros or negative:
            raise DepthReadError(
                f"{name} has zero or negative distances ({zeros} zero, {negative} negative; sensors often "
                "mark missing readings with 0); metric distances must all be above 0: fill the holes (e.g. "
                "with an inpainting tool) and save it again, or choose 'white is near' or 'white is far' if "
                "the values are not distances"
            )
        with np.errstate(over="ignore"):  # overflows become inf, which is reported below
            inverse: np.ndarray = 1.0 / values
        infinite = int(np.isinf(inverse).sum())
        if infinite:
            raise DepthReadError(
                f"{name} has distances too close to 0 to invert ({infinite} values where 1 / distance is "
                "infinite); raise them (e.g. numpy.maximum(depth, 1e-6)) and save it again"
            )
        return inverse
    raise ValueError(f"unknown depth convention {convention!r}; use one of {', '.join(LOAD_CONVENTIONS)}")


def read_depth_file(path: Path, convention: str, max_pixels: int | None = None) -> np.ndarray:
    """A depth file (.png, .tif, .tiff or .npy) as relative inverse depth, float32 [B, H, W]."""
    if path.suffix.lower() == ".npy":
        values = _read_array(path, max_pixels)
    else:
        values = _read_picture(path, max_pixels)
    _check_finite(values, path.name)
    # A copy: Pillow's arrays are read-only, and torch wants writable memory.
    return np.array(to_inverse_depth(values, convention, path.name), dtype=np.float32, order="C")


def constant_maps(maps: np.ndarray) -> list[int]:
    """The indices of the maps [B, H, W] that hold one value everywhere."""
    return [index for index, values in enumerate(maps) if values.min() == values.max()]


def depth_to_uint16(depth_map: np.ndarray, convention: str) -> np.ndarray:
    """One map [H, W] stretched to 0..65535 between its own min and max (a constant map gives 0),
    white = near or, for "white is far", white = far."""
    values = depth_map.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    normalised = (values - low) / (high - low if high > low else 1.0)
    if convention == "white is far":
        normalised = 1.0 - normalised
    return np.round(normalised * 65535.0).astype(np.uint16)


def _input_depth_maps(files: FileStore) -> Sequence[str]:
    return files.list_inputs(DEPTH_EXTENSIONS)


def _where_depth_maps_are(files: FileStore, name: str) -> str:
    return (
        f"{name!r} is not a depth map (.png, .tif, .tiff or .npy) in the input folder "
        f"{files.input_dir.resolve()}; put or upload it there (on the command line, --set NODE.depth=PATH "
        "may name any file)"
    )


def _constant_warning(name: str, constant: list[int], batch: int) -> str:
    """What to tell a user whose file has maps without any depth in them."""
    numbers = ", ".join(str(index + 1) for index in constant)
    which = name if batch == 1 else f"map {numbers} of {batch} in {name}"
    return f"{which} is constant (one value everywhere): it carries no depth; the sampler sees a flat plane"


@node(
    "LoadDepth",
    display_name="Load Depth Map",
    category="depth",
    description="Loads a depth map from a grayscale PNG or TIFF, or a .npy array, in the input folder.",
    outputs=[Output(DEPTH)],
    fingerprint=input_file_hash("depth"),
)
def load_depth(
    depth: str = Combo(
        _input_depth_maps,
        upload="image",
        tooltip="a .png, .tif, .tiff or .npy file in the input folder",
        missing_hint=_where_depth_maps_are,
    ),
    convention: str = Combo(
        LOAD_CONVENTIONS,
        tooltip="white is near: MiDaS/SD2 maps; white is far: distance-like maps (inverted); "
        "metric distance: distances such as metres (becomes 1 / distance)",
    ),
    *,
    context: NodeContext,
) -> tuple[torch.Tensor]:
    path = context.files.resolve_input(depth)
    maps = read_depth_file(path, convention, context.files.max_image_pixels)
    constant = constant_maps(maps)
    if constant:
        context.warn(_constant_warning(path.name, constant, len(maps)))
    return (torch.from_numpy(maps)[:, None],)


def _entry(subfolder: str, filename: str) -> dict[str, str]:
    return {"filename": filename, "subfolder": subfolder, "type": "output"}


@node(
    "SaveDepth",
    display_name="Save Depth Map",
    category="depth",
    description="Saves depth maps as 16-bit grayscale PNG and/or raw .npy in the output folder (never "
    "overwriting).",
    output_node=True,
)
def save_depth(
    depth: torch.Tensor = Socket(DEPTH),
    filename_prefix: str = FilenamePrefix(
        "depth", tooltip="file name start; may include a subfolder of the output folder, e.g. depth/cat"
    ),
    format: str = Combo(
        SAVE_FORMATS, tooltip="16-bit PNG: each map stretched to 0..65535; .npy: the raw values, scale kept"
    ),
    convention: str = Combo(SAVE_CONVENTIONS, tooltip="which end is white in the PNG (not the .npy)"),
    *,
    context: NodeContext,
) -> NodeOutput:
    maps = depth.detach().to(device="cpu", dtype=torch.float32)[:, 0].numpy()
    metadata = png_metadata({"prompt": dict(context.prompt), "workflow": context.workflow})
    pictures: list[dict[str, str]] = []
    arrays: list[dict[str, str]] = []
    for index, depth_map in enumerate(maps):
        if format in ("16-bit PNG", "16-bit PNG + .npy"):
            picture = Image.fromarray(depth_to_uint16(depth_map, convention))
            write_png = partial(picture.save, format="PNG", pnginfo=metadata)
            _, subfolder, filename = context.files.write_output(filename_prefix, ".png", "output", write_png)
            pictures.append(_entry(subfolder, filename))
        if format in (".npy", "16-bit PNG + .npy"):
            write_npy = partial(np.save, arr=np.ascontiguousarray(depth_map))
            _, subfolder, filename = context.files.write_output(filename_prefix, ".npy", "output", write_npy)
            arrays.append(_entry(subfolder, filename))
        context.progress(index + 1, len(maps))
    shown = {key: entries for key, entries in (("images", pictures), ("depth_files", arrays)) if entries}
    return NodeOutput((), shown)

"""Depth-map files: what a user gets from loading and saving depth maps as PNG, TIFF and .npy."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import torch
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.nodes.depth_io import DepthReadError, load_depth, save_depth, to_inverse_depth
from PIL import Image

Loader = Callable[..., torch.Tensor]


@pytest.fixture
def progress() -> list[tuple[int, int]]:
    return []


@pytest.fixture
def context(files: FileStore, warnings: list[str], progress: list[tuple[int, int]]) -> NodeContext:
    return NodeContext(
        prompt_id="p1",
        node_id="4",
        class_type="SaveDepth",
        files=files,
        prompt={"4": {"class_type": "SaveDepth", "inputs": {"filename_prefix": "depth"}}},
        workflow={"nodes": [{"id": 4, "type": "SaveDepth"}], "links": []},
        warned=warnings.append,
        report=lambda value, total, preview: progress.append((value, total)),
    )


@pytest.fixture
def load(context: NodeContext) -> Loader:
    """Run LoadDepth on a name in the input folder and return its depth."""

    def run(name: str, convention: str = "white is near") -> torch.Tensor:
        return load_depth.function(depth=name, convention=convention, context=context)[0]

    return run


def save(context: NodeContext, depth: torch.Tensor, format: str, convention: str = "white is near") -> dict:
    """Run SaveDepth with the prefix "depth" and return what it shows."""
    result = save_depth.function(
        depth=depth, filename_prefix="depth", format=format, convention=convention, context=context
    )
    assert result.ui is not None
    return dict(result.ui)


def png_16_bit_colour(width: int, height: int, colour_type: int, samples: list[int]) -> bytes:
    """A 16-bit PNG with colour type 2 (RGB), 4 (gray + alpha) or 6 (RGBA), which Pillow cannot write."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row_samples = len(samples) // height
    rows = b"".join(
        b"\x00" + struct.pack(f">{row_samples}H", *samples[row * row_samples : (row + 1) * row_samples])
        for row in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# LoadDepth: reading each format


def test_an_8_bit_grayscale_png_loads_as_value_over_255(files: FileStore, load: Loader) -> None:
    Image.fromarray(np.array([[0, 51, 255]], dtype=np.uint8)).save(files.input_dir / "gray.png")

    depth = load("gray.png")

    assert depth.shape == (1, 1, 1, 3) and depth.dtype == torch.float32
    torch.testing.assert_close(depth, torch.tensor([[[[0.0, 0.2, 1.0]]]]))


def test_a_16_bit_grayscale_png_loads_as_value_over_65535(files: FileStore, load: Loader) -> None:
    Image.fromarray(np.array([[0, 13107, 65535]], dtype=np.uint16)).save(files.input_dir / "d16.png")

    torch.testing.assert_close(load("d16.png"), torch.tensor([[[[0.0, 0.2, 1.0]]]]))


def test_a_float_tiff_keeps_its_values(files: FileStore, load: Loader) -> None:
    values = np.array([[0.25, 3.5], [120.0, -2.0]], dtype=np.float32)
    Image.fromarray(values).save(files.input_dir / "float.tif")

    torch.testing.assert_close(load("float.tif"), torch.from_numpy(values)[None, None])


def test_a_32_bit_integer_tiff_is_read_as_16_bit_unless_its_values_are_wider(
    files: FileStore, load: Loader
) -> None:
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(files.input_dir / "narrow.tif")
    Image.fromarray(np.array([[0, 50_000, 200_000]], dtype=np.int32)).save(files.input_dir / "wide.tif")

    torch.testing.assert_close(load("narrow.tif"), torch.tensor([[[[0.0, 1.0]]]]))
    torch.testing.assert_close(load("wide.tif"), torch.tensor([[[[0.0, 0.25, 1.0]]]]))


def test_gray_saved_as_rgb_or_with_alpha_loads_as_grayscale(files: FileStore, load: Loader) -> None:
    gray = np.array([[0, 51, 255]], dtype=np.uint8)
    Image.fromarray(np.repeat(gray[..., None], 3, axis=-1)).save(files.input_dir / "rgb.png")
    alpha = np.full_like(gray, 7)
    Image.fromarray(np.stack([gray, alpha], axis=-1), "LA").save(files.input_dir / "la.png")

    expected = torch.tensor([[[[0.0, 0.2, 1.0]]]])
    torch.testing.assert_close(load("rgb.png"), expected)
    torch.testing.assert_close(load("la.png"), expected)


def test_a_black_and_white_png_loads_as_zero_and_one(files: FileStore, load: Loader) -> None:
    Image.fromarray(np.array([[False, True]])).save(files.input_dir / "bilevel.png")

    torch.testing.assert_close(load("bilevel.png"), torch.tensor([[[[0.0, 1.0]]]]))


def test_a_multi_frame_tiff_gives_its_first_frame(files: FileStore, load: Loader) -> None:
    frames = [Image.fromarray(np.full((2, 2), value, dtype=np.float32)) for value in (1.0, 2.0)]
    frames[0].save(files.input_dir / "stack.tif", save_all=True, append_images=frames[1:])

    torch.testing.assert_close(load("stack.tif"), torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 3), (1, 1, 2, 3)),
        ((1, 2, 3), (1, 1, 2, 3)),
        ((2, 3, 1), (1, 1, 2, 3)),
        ((4, 2, 3), (4, 1, 2, 3)),
        ((4, 1, 2, 3), (4, 1, 2, 3)),
    ],
)
def test_each_accepted_npy_shape_becomes_a_batch_of_one_channel_maps(
    files: FileStore, load: Loader, shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    values = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1.0
    np.save(files.input_dir / "array.npy", values)

    depth = load("array.npy")

    assert depth.shape == expected and depth.dtype == torch.float32
    torch.testing.assert_close(depth.flatten(), torch.from_numpy(values.flatten()).float())


def test_an_integer_npy_loads_its_values_unscaled(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "mm.npy", np.array([[1200, 3400]], dtype=np.uint16))

    torch.testing.assert_close(load("mm.npy"), torch.tensor([[[[1200.0, 3400.0]]]]))


# LoadDepth: conventions


def test_white_is_far_inverts_each_map_within_its_own_range(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "far.npy", np.array([[[1.0, 2.0, 5.0]], [[10.0, 20.0, 30.0]]]))

    depth = load("far.npy", "white is far")

    torch.testing.assert_close(depth, torch.tensor([[[[5.0, 4.0, 1.0]]], [[[30.0, 20.0, 10.0]]]]))


def test_metric_distance_becomes_one_over_the_distance(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "metres.npy", np.array([[0.5, 2.0, 4.0]], dtype=np.float32))

    torch.testing.assert_close(load("metres.npy", "metric distance"), torch.tensor([[[[2.0, 0.5, 0.25]]]]))


def test_an_unknown_convention_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="use one of white is near, white is far, metric distance"):
        to_inverse_depth(np.ones((1, 1, 1), dtype=np.float32), "white is blue", "x.npy")


# SaveDepth, and files that round-trip through it


def test_a_16_bit_png_round_trip_gives_the_normalised_map_within_one_step(
    context: NodeContext, files: FileStore, load: Loader
) -> None:
    depth = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.5, 11.0]]]])

    ui = save(context, depth, "16-bit PNG")
    (files.output_dir / "depth_00001.png").rename(files.input_dir / "back.png")
    loaded = load("back.png")

    assert ui == {"images": [{"filename": "depth_00001.png", "subfolder": "", "type": "output"}]}
    torch.testing.assert_close(loaded, (depth - 1.0) / 10.0, atol=1 / 65535, rtol=0)


def test_the_png_is_16_bit_grayscale_stretched_from_min_to_max(
    context: NodeContext, files: FileStore
) -> None:
    save(context, torch.tensor([[[[2.0, 3.0, 6.0]]]]), "16-bit PNG")

    with Image.open(files.output_dir / "depth_00001.png") as saved:
        assert saved.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(saved), [[0, 16384, 65535]])


def test_white_is_far_on_save_puts_the_nearest_point_at_black(context: NodeContext, files: FileStore) -> None:
    save(context, torch.tensor([[[[2.0, 3.0, 6.0]]]]), "16-bit PNG", "white is far")

    with Image.open(files.output_dir / "depth_00001.png") as saved:
        np.testing.assert_array_equal(np.asarray(saved), [[65535, 49151, 0]])


def test_an_npy_round_trip_is_exact_and_keeps_the_scale(
    context: NodeContext, files: FileStore, load: Loader
) -> None:
    depth = torch.tensor([[[[0.1, 3.7], [250.25, -1.5]]]])

    ui = save(context, depth, ".npy", "white is far")  # the convention is for the PNG only
    saved = np.load(files.output_dir / "depth_00001.npy")
    (files.output_dir / "depth_00001.npy").rename(files.input_dir / "back.npy")

    assert ui == {"depth_files": [{"filename": "depth_00001.npy", "subfolder": "", "type": "output"}]}
    assert saved.shape == (2, 2) and saved.dtype == np.float32
    assert torch.equal(load("back.npy"), depth)


def test_png_and_npy_save_one_of_each_per_map_and_report_progress(
    context: NodeContext, files: FileStore, progress: list[tuple[int, int]]
) -> None:
    ui = save(context, torch.rand(2, 1, 3, 4), "16-bit PNG + .npy")

    assert [entry["filename"] for entry in ui["images"]] == ["depth_00001.png", "depth_00002.png"]
    assert [entry["filename"] for entry in ui["depth_files"]] == ["depth_00001.npy", "depth_00002.npy"]
    assert sorted(path.name for path in files.output_dir.iterdir()) == [
        "depth_00001.npy",
        "depth_00001.png",
        "depth_00002.npy",
        "depth_00002.png",
    ]
    assert progress == [(1, 2), (2, 2)]


def test_saving_twice_counts_up_and_never_overwrites(context: NodeContext, files: FileStore) -> None:
    save(context, torch.tensor([[[[1.0, 2.0]]]]), ".npy")
    second = save(context, torch.tensor([[[[7.0, 8.0]]]]), ".npy")

    assert second["depth_files"][0]["filename"] == "depth_00002.npy"
    np.testing.assert_array_equal(np.load(files.output_dir / "depth_00001.npy"), [[1.0, 2.0]])


def test_the_prompt_and_workflow_are_embedded_in_the_png(context: NodeContext, files: FileStore) -> None:
    save(context, torch.rand(1, 1, 2, 2), "16-bit PNG")

    with Image.open(files.output_dir / "depth_00001.png") as saved:
        text = dict(saved.text)  # type: ignore[attr-defined]
    assert json.loads(text["prompt"]) == context.prompt
    assert json.loads(text["workflow"]) == context.workflow


# LoadDepth: warnings, fingerprint and choices


def test_a_constant_map_loads_but_warns_that_it_carries_no_depth(
    files: FileStore, load: Loader, warnings: list[str]
) -> None:
    np.save(files.input_dir / "flat.npy", np.full((2, 2), 0.5, dtype=np.float32))
    np.save(files.input_dir / "batch.npy", np.array([[[1.0, 2.0]], [[3.0, 3.0]]], dtype=np.float32))

    torch.testing.assert_close(load("flat.npy"), torch.full((1, 1, 2, 2), 0.5))
    load("batch.npy")

    assert len(warnings) == 2
    assert warnings[0].startswith("flat.npy is constant") and "flat plane" in warnings[0]
    assert warnings[1].startswith("map 2 of 2 in batch.npy is constant")


def test_a_map_with_depth_in_it_loads_without_a_warning(
    files: FileStore, load: Loader, warnings: list[str]
) -> None:
    np.save(files.input_dir / "ramp.npy", np.array([[0.0, 1.0]], dtype=np.float32))

    load("ramp.npy")

    assert warnings == []


def test_the_fingerprint_changes_only_when_the_file_content_changes(files: FileStore) -> None:
    path = files.input_dir / "map.npy"
    np.save(path, np.zeros((2, 2), dtype=np.float32))
    assert load_depth.fingerprint is not None
    fingerprint = load_depth.fingerprint({"depth": "map.npy"}, files)

    os.utime(path, (1_000_000, 1_000_000))
    assert load_depth.fingerprint({"depth": "map.npy"}, files) == fingerprint

    np.save(path, np.ones((2, 2), dtype=np.float32))
    assert load_depth.fingerprint({"depth": "map.npy"}, files) != fingerprint


def test_the_depth_choices_list_png_tiff_and_npy_files(files: FileStore) -> None:
    (files.input_dir / "sub").mkdir()
    for name in ("a.png", "b.TIF", "c.tiff", "sub/d.npy", "photo.jpg", "notes.txt"):
        (files.input_dir / name).write_bytes(b"")

    assert list(load_depth.inputs_by_name["depth"].choices(files)) == [
        "a.png",
        "b.TIF",
        "c.tiff",
        "sub/d.npy",
    ]


def test_a_missing_depth_file_hint_says_where_to_put_it(files: FileStore) -> None:
    hint = load_depth.inputs_by_name["depth"].missing_hint
    assert hint is not None

    assert "put or upload it there" in hint(files, "gone.npy") and ".npy" in hint(files, "gone.npy")


# LoadDepth: files that are refused, and why


@pytest.mark.parametrize(("colour_type", "colour"), [(2, "RGB"), (4, "grayscale with alpha"), (6, "RGBA")])
def test_a_16_bit_colour_png_is_refused_with_how_to_save_it_as_grayscale(
    files: FileStore, load: Loader, colour_type: int, colour: str
) -> None:
    channels = {2: 3, 4: 2, 6: 4}[colour_type]
    (files.input_dir / "colour16.png").write_bytes(
        png_16_bit_colour(1, 1, colour_type, [1000, 65535, 0, 40000][:channels])
    )

    with pytest.raises(DepthReadError, match=rf"16-bit {colour} PNG; depth maps must be one channel.*'I;16'"):
        load("colour16.png")


def test_a_coloured_depth_picture_is_refused_with_what_to_export_instead(
    files: FileStore, load: Loader
) -> None:
    turbo = np.array([[(48, 18, 59), (122, 4, 3)]], dtype=np.uint8)
    Image.fromarray(turbo).save(files.input_dir / "turbo.png")

    with pytest.raises(DepthReadError, match=r"cannot be read back into depth; export the raw grayscale"):
        load("turbo.png")


def test_a_picture_in_another_mode_is_refused_naming_the_mode(files: FileStore, load: Loader) -> None:
    Image.new("CMYK", (2, 2)).save(files.input_dir / "print.tif")

    with pytest.raises(
        DepthReadError, match=r"Pillow mode 'CMYK'; depth maps must be one channel: use a gray"
    ):
        load("print.tif")


@pytest.mark.parametrize(
    ("values", "counts"),
    [([1.0, np.nan, np.nan], "2 NaN and 0 infinite"), ([np.inf, -np.inf, 1.0], "0 NaN and 2 infinite")],
    ids=["nan", "inf"],
)
def test_nan_or_infinite_values_are_refused_with_how_many_and_how_to_fill_them(
    files: FileStore, load: Loader, values: list[float], counts: str
) -> None:
    np.save(files.input_dir / "holes.npy", np.array([values], dtype=np.float32))

    with pytest.raises(DepthReadError, match=rf"holes.npy has {counts} values; fill the holes .*nan_to_num"):
        load("holes.npy")


def test_nan_in_a_float_tiff_is_refused_too(files: FileStore, load: Loader) -> None:
    Image.fromarray(np.array([[np.nan, 1.0]], dtype=np.float32)).save(files.input_dir / "holes.tif")

    with pytest.raises(DepthReadError, match=r"1 NaN and 0 infinite values; fill the holes"):
        load("holes.tif")


def test_a_pickled_object_array_is_refused_without_unpickling_it(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "objects.npy", np.array([[1.0, None]], dtype=object), allow_pickle=True)

    with pytest.raises(DepthReadError, match=r"pickled array of Python objects.*save a plain numeric array"):
        load("objects.npy")


def test_a_pickle_named_npy_is_refused_with_how_to_save_an_array(files: FileStore, load: Loader) -> None:
    (files.input_dir / "pickled.npy").write_bytes(pickle.dumps(np.zeros((2, 2)), protocol=4))

    with pytest.raises(DepthReadError, match=r"pickled Python data, not a \.npy array; save the array with"):
        load("pickled.npy")


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, np.str_])
def test_arrays_that_are_not_real_numbers_are_refused(files: FileStore, load: Loader, dtype: type) -> None:
    np.save(files.input_dir / "odd.npy", np.zeros((2, 2), dtype=dtype))

    with pytest.raises(DepthReadError, match=r"depth maps need real numbers: save array.astype\('float32'\)"):
        load("odd.npy")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3,), (2, 2, 2, 2, 2)])
def test_an_npy_of_another_shape_is_refused_naming_its_shape_and_the_accepted_ones(
    files: FileStore, load: Loader, shape: tuple[int, ...]
) -> None:
    np.save(files.input_dir / "cube.npy", np.zeros(shape, dtype=np.float32))

    with pytest.raises(DepthReadError, match=rf"shape {re_shape(shape)}; a depth array must be \[H, W\],"):
        load("cube.npy")


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 2, 2)])
def test_an_npy_with_no_pixels_is_refused(files: FileStore, load: Loader, shape: tuple[int, ...]) -> None:
    np.save(files.input_dir / "empty.npy", np.zeros(shape, dtype=np.float32))

    with pytest.raises(DepthReadError, match=r"empty\.npy .*(no pixels|no maps)"):
        load("empty.npy")


@pytest.mark.parametrize("name", ["big.png", "big.npy"])
def test_a_map_above_the_pixel_limit_is_refused(files: FileStore, load: Loader, name: str) -> None:
    files.max_image_pixels = 50_000
    values = np.zeros((200, 300), dtype=np.uint16)
    if name.endswith(".png"):
        Image.fromarray(values).save(files.input_dir / name)
    else:
        np.save(files.input_dir / name, values)

    with pytest.raises(DepthReadError, match=r"is 300×200 .* limit; scale it down or raise max_image_pixels"):
        load(name)


# A TIFF header whose one tag (a width of 2) leaves out everything a picture needs.
TIFF_WITHOUT_PICTURE = b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x03\x00\x01\x00\x00\x00\x02" + bytes(7)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\nnot really"),
        ("broken.tif", TIFF_WITHOUT_PICTURE),
        ("broken.npy", b""),
    ],
)
def test_a_corrupt_file_is_refused_naming_it_and_the_supported_formats(
    files: FileStore, load: Loader, name: str, content: bytes
) -> None:
    (files.input_dir / name).write_bytes(content)

    with pytest.raises(
        DepthReadError, match=rf"{name} is not a depth map that can be read .*use a grayscale PNG"
    ):
        load(name)


def test_a_truncated_npy_is_refused_as_unreadable(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "cut.npy", np.zeros((20, 20), dtype=np.float32))
    path = files.input_dir / "cut.npy"
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(DepthReadError, match=r"cut\.npy is not a depth map that can be read"):
        load("cut.npy")


def test_zero_or_negative_metric_distances_are_refused_with_how_many(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "sensor.npy", np.array([[0.0, 2.0, 0.0, -1.0]], dtype=np.float32))

    with pytest.raises(DepthReadError, match=r"\(2 zero, 1 negative; .*above 0: fill the holes"):
        load("sensor.npy", "metric distance")


def test_distances_too_small_to_invert_are_refused_as_infinite(files: FileStore, load: Loader) -> None:
    np.save(files.input_dir / "tiny.npy", np.array([[1e-45, 2.0]], dtype=np.float32))

    with pytest.raises(DepthReadError, match=r"too close to 0 to invert \(1 values .*numpy.maximum"):
        load("tiny.npy", "metric distance")

"""Image nodes: what a user gets from loading, saving, previewing, inverting and scaling images."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore, UnsafePathError
from depthgraph.nodes.image import (
    SCALE_METHODS,
    image_invert,
    image_scale,
    load_image,
    preview_image,
    save_image,
)
from depthgraph.nodes.image_tensors import ImageReadError
from PIL import ExifTags, Image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
Loader = Callable[[str], tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture
def context(files: FileStore) -> NodeContext:
    return NodeContext(
        prompt_id="p1",
        node_id="9",
        class_type="SaveImage",
        files=files,
        prompt={"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cat"}}},
        workflow={"nodes": [{"id": 9, "type": "SaveImage"}], "links": []},
    )


@pytest.fixture
def load(context: NodeContext) -> Loader:
    """Run LoadImage on a name in the input folder."""

    def run(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_image.function(image=name, context=context)

    return run


def saved_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


# LoadImage


def test_an_rgb_png_loads_as_a_float_image_with_an_empty_mask(files: FileStore, load: Loader) -> None:
    pixels = np.array([[RED, GREEN, BLUE], [(0, 0, 0), (255, 255, 255), (51, 102, 204)]], dtype=np.uint8)
    Image.fromarray(pixels).save(files.input_dir / "photo.png")

    image, mask = load("photo.png")

    assert image.shape == (1, 2, 3, 3) and image.dtype == torch.float32
    torch.testing.assert_close(image[0], torch.from_numpy(pixels / 255.0).float())
    assert mask.shape == (1, 2, 3) and not mask.any()


def test_transparent_pixels_become_the_mask(files: FileStore, load: Loader) -> None:
    pixels = np.zeros((1, 3, 4), dtype=np.uint8)
    pixels[0, :, 3] = [0, 51, 255]  # transparent, mostly transparent, opaque
    Image.fromarray(pixels, "RGBA").save(files.input_dir / "cutout.png")

    _, mask = load("cutout.png")

    torch.testing.assert_close(mask, torch.tensor([[[1.0, 0.8, 0.0]]]))


def test_a_jpeg_rotated_by_its_exif_orientation_comes_out_upright(files: FileStore, load: Loader) -> None:
    # Stored 32 wide and 16 tall, red left and blue right; orientation 6 means "turn 90° clockwise to view".
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16], pixels[:, 16:] = RED, BLUE
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(pixels).save(files.input_dir / "phone.jpg", exif=exif, quality=95)

    image, _ = load("phone.jpg")

    assert image.shape == (1, 32, 16, 3)  # portrait now
    torch.testing.assert_close(image[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(image[0, -1, -1], torch.tensor([0.0, 0.0, 1.0]), atol=0.05, rtol=0)


def test_a_webp_loads(files: FileStore, load: Loader) -> None:
    Image.new("RGB", (5, 4), GREEN).save(files.input_dir / "leaf.webp", lossless=True)

    image, mask = load("leaf.webp")

    assert image.shape == (1, 4, 5, 3) and mask.shape == (1, 4, 5)
    torch.testing.assert_close(image[0, 2, 2], torch.tensor([0.0, 1.0, 0.0]))


def test_a_16_bit_grayscale_png_keeps_its_range(files: FileStore, load: Loader) -> None:
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(files.input_dir / "depth.png")

    image, _ = load("depth.png")

    expected = torch.tensor([0.0, 32768 / 65535, 1.0]).unsqueeze(-1).expand(3, 3)
    torch.testing.assert_close(image[0, 0], expected)


def test_a_palette_png_with_a_transparent_colour_gives_a_mask(files: FileStore, load: Loader) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([*RED, *GREEN])
    palette.putdata([0, 1])
    palette.save(files.input_dir / "sticker.png", transparency=0)

    image, mask = load("sticker.png")

    torch.testing.assert_close(mask, torch.tensor([[[1.0, 0.0]]]))
    torch.testing.assert_close(image[0, 0, 1], torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("extension", [".gif", ".webp"])
def test_every_frame_of_an_animation_becomes_one_image_of_the_batch(
    files: FileStore, load: Loader, extension: str
) -> None:
    frames = [Image.new("RGB", (4, 3), colour) for colour in (RED, GREEN, BLUE)]
    path = files.input_dir / f"blink{extension}"
    # lossless keeps WebP's colours exact; GIF ignores it.
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)

    image, mask = load(path.name)

    assert image.shape == (3, 3, 4, 3) and mask.shape == (3, 3, 4)
    torch.testing.assert_close(image[:, 1, 1], torch.eye(3))


def test_a_file_that_is_not_an_image_raises_an_error_naming_it(files: FileStore, load: Loader) -> None:
    (files.input_dir / "notes.png").write_text("shopping list, not a picture")

    with pytest.raises(ImageReadError, match=r"notes\.png"):
        load("notes.png")


def test_the_fingerprint_changes_only_when_the_file_content_changes(files: FileStore) -> None:
    path = files.input_dir / "photo.png"
    Image.new("RGB", (2, 2), RED).save(path)
    assert load_image.fingerprint is not None
    fingerprint = load_image.fingerprint({"image": "photo.png"}, files)

    os.utime(path, (1_000_000, 1_000_000))  # touching the file is not changing it
    assert load_image.fingerprint({"image": "photo.png"}, files) == fingerprint

    Image.new("RGB", (2, 2), BLUE).save(path)
    assert load_image.fingerprint({"image": "photo.png"}, files) != fingerprint


def test_the_image_choices_list_the_files_in_the_input_folder(files: FileStore) -> None:
    (files.input_dir / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.webp", "readme.txt"):
        (files.input_dir / name).write_bytes(b"")

    assert list(load_image.inputs_by_name["image"].choices(files)) == ["a.jpg", "b.png", "sub/c.webp"]


# SaveImage and PreviewImage


def test_saving_twice_counts_up_and_never_overwrites(context: NodeContext, files: FileStore) -> None:
    first = save_image.function(images=torch.zeros(1, 2, 2, 3), filename_prefix="cat", context=context)
    first_bytes = (files.output_dir / "cat_00001.png").read_bytes()
    second = save_image.function(images=torch.ones(1, 2, 2, 3), filename_prefix="cat", context=context)

    assert first.ui == {"images": [{"filename": "cat_00001.png", "subfolder": "", "type": "output"}]}
    assert second.ui == {"images": [{"filename": "cat_00002.png", "subfolder": "", "type": "output"}]}
    assert (files.output_dir / "cat_00001.png").read_bytes() == first_bytes
    assert saved_pixels(files.output_dir / "cat_00002.png").min() == 1.0


def test_a_prefix_with_a_subfolder_saves_into_it(context: NodeContext, files: FileStore) -> None:
    result = save_image.function(
        images=torch.zeros(1, 2, 2, 3), filename_prefix="renders/cat", context=context
    )

    assert result.ui["images"] == [{"filename": "cat_00001.png", "subfolder": "renders", "type": "output"}]
    assert (files.output_dir / "renders" / "cat_00001.png").is_file()


def test_the_prompt_and_workflow_are_embedded_as_png_text(context: NodeContext, files: FileStore) -> None:
    save_image.function(images=torch.zeros(1, 2, 2, 3), filename_prefix="cat", context=context)

    with Image.open(files.output_dir / "cat_00001.png") as saved:
        assert saved.format == "PNG"
        text = dict(saved.text)  # type: ignore[attr-defined]
    assert json.loads(text["prompt"]) == context.prompt
    assert json.loads(text["workflow"]) == context.workflow


def test_a_batch_of_two_writes_two_files(context: NodeContext, files: FileStore) -> None:
    result = save_image.function(images=torch.rand(2, 3, 4, 3), filename_prefix="pair", context=context)

    names = [entry["filename"] for entry in result.ui["images"]]
    assert names == ["pair_00001.png", "pair_00002.png"]
    assert sorted(path.name for path in files.output_dir.iterdir()) == names


def test_a_prefix_that_climbs_out_is_refused_and_writes_nothing(context: NodeContext, tmp_path: Path) -> None:
    before = set(tmp_path.rglob("*"))

    with pytest.raises(UnsafePathError):
        save_image.function(images=torch.zeros(1, 2, 2, 3), filename_prefix="../escape", context=context)

    assert set(tmp_path.rglob("*")) == before


def test_saved_pixels_match_the_image_within_one_step(context: NodeContext, files: FileStore) -> None:
    images = torch.rand(1, 5, 7, 3, generator=torch.Generator().manual_seed(0))

    save_image.function(images=images, filename_prefix="noise", context=context)

    np.testing.assert_allclose(saved_pixels(files.output_dir / "noise_00001.png"), images[0], atol=1 / 255)


def test_previews_go_to_the_temp_folder(context: NodeContext, files: FileStore) -> None:
    result = preview_image.function(images=torch.zeros(1, 2, 2, 3), context=context)

    assert result.ui == {"images": [{"filename": "preview_00001.png", "subfolder": "", "type": "temp"}]}
    assert (files.temp_dir / "preview_00001.png").is_file()
    assert not files.output_dir.exists()


# ImageInvert and ImageScale


def test_invert_turns_each_value_into_one_minus_it() -> None:
    image = torch.tensor([[[[0.0, 0.25, 1.0]]]])

    (inverted,) = image_invert.function(image=image)

    torch.testing.assert_close(inverted, torch.tensor([[[[1.0, 0.75, 0.0]]]]))


def scale(
    image: torch.Tensor, width: int, height: int, method: str = "bilinear", crop: str = "disabled"
) -> torch.Tensor:
    """Run ImageScale and return its one output."""
    return image_scale.function(image=image, upscale_method=method, width=width, height=height, crop=crop)[0]


def test_scaling_to_a_width_and_height_gives_exactly_that_size() -> None:
    assert scale(torch.rand(2, 10, 20, 3), 7, 13).shape == (2, 13, 7, 3)


@pytest.mark.parametrize(("width", "height", "expected"), [(0, 50, (50, 100)), (40, 0, (20, 40))])
def test_a_zero_side_follows_the_other_keeping_the_aspect_ratio(
    width: int, height: int, expected: tuple[int, int]
) -> None:
    assert scale(torch.rand(1, 100, 200, 3), width, height).shape[1:3] == expected


def test_zero_width_and_height_leave_the_image_unchanged() -> None:
    image = torch.rand(1, 6, 9, 3)

    assert torch.equal(scale(image, 0, 0), image)


def test_a_center_crop_to_a_square_keeps_the_middle() -> None:
    image = torch.zeros(1, 8, 16, 3)
    image[..., 1] = 1.0  # green middle
    image[:, :, :4] = torch.tensor([1.0, 0.0, 0.0])  # red left quarter
    image[:, :, 12:] = torch.tensor([0.0, 0.0, 1.0])  # blue right quarter

    cropped = scale(image, 4, 4, "nearest-exact", "center")

    assert cropped.shape == (1, 4, 4, 3)
    torch.testing.assert_close(cropped, torch.tensor([0.0, 1.0, 0.0]).expand(1, 4, 4, 3))


@pytest.mark.parametrize("method", SCALE_METHODS)
@pytest.mark.parametrize(("width", "height"), [(5, 3), (31, 17)], ids=["down", "up"])
def test_every_scale_method_gives_the_size_asked_within_range(method: str, width: int, height: int) -> None:
    # A checkerboard has the sharp edges that make bicubic and lanczos overshoot.
    checkerboard = (torch.arange(9)[:, None] + torch.arange(11)[None, :]) % 2
    image = checkerboard.float()[None, :, :, None].expand(2, 9, 11, 3).contiguous()

    scaled = scale(image, width, height, method)

    assert scaled.shape == (2, height, width, 3) and scaled.dtype == torch.float32
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0


def test_an_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    from depthgraph.nodes.image_tensors import ImageReadError, read_image

    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(
        ImageReadError, match=r"big.png is 300×200 .* limit; scale it down or raise max_image_pixels"
    ):
        read_image(path, max_pixels=50_000)
    images, _ = read_image(path, max_pixels=60_000)
    assert images.shape == (1, 200, 300, 3)

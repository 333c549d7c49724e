"""Mask nodes: what a user gets from loading, growing, feathering, combining and converting masks, and
from pasting an image onto another through a mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.nodes.image_tensors import ImageReadError
from depthgraph.nodes.mask import (
    feather_mask,
    grow_mask,
    image_composite_masked,
    image_to_mask,
    invert_mask,
    load_image_mask,
    mask_composite,
    mask_to_image,
    solid_mask,
    threshold_mask,
)
from depthgraph.nodes.mask_ops import MASK_OPERATIONS
from PIL import Image


@pytest.fixture
def context(files: FileStore, warnings: list[str]) -> NodeContext:
    return NodeContext(
        prompt_id="p1", node_id="4", class_type="LoadImageMask", files=files, warned=warnings.append
    )


def load(name: str, channel: str, context: NodeContext) -> torch.Tensor:
    """Run LoadImageMask and return its one output."""
    return load_image_mask.function(image=name, channel=channel, context=context)[0]


def masks(*rows: list[float]) -> torch.Tensor:
    """A batch of one mask from rows of values."""
    return torch.tensor([list(rows)], dtype=torch.float32)


# LoadImageMask


def test_transparent_pixels_load_as_one_and_opaque_as_zero(
    files: FileStore, context: NodeContext, warnings: list[str]
) -> None:
    pixels = np.full((3, 3, 4), 200, dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[1, 1, 3] = 0  # a transparent hole in the middle
    pixels[0, 0, 3] = 51  # mostly transparent
    Image.fromarray(pixels, "RGBA").save(files.input_dir / "hole.png")

    mask = load("hole.png", "alpha", context)

    assert mask.shape == (1, 3, 3) and mask.dtype == torch.float32
    torch.testing.assert_close(mask, masks([0.8, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]))
    assert warnings == []


def test_alpha_of_an_image_without_transparency_is_empty_and_warns_to_pick_a_colour(
    files: FileStore, context: NodeContext, warnings: list[str]
) -> None:
    Image.new("RGB", (4, 2), (255, 255, 255)).save(files.input_dir / "painted.png")

    mask = load("painted.png", "alpha", context)

    assert mask.shape == (1, 2, 4) and not mask.any()
    assert len(warnings) == 1
    assert "painted.png has no transparency" in warnings[0]
    assert "pick the red, green or blue channel" in warnings[0]


@pytest.mark.parametrize(("channel", "expected"), [("red", 1.0), ("green", 0.2), ("blue", 0.0)])
def test_a_colour_channel_loads_its_values_with_white_as_one(
    files: FileStore, context: NodeContext, warnings: list[str], channel: str, expected: float
) -> None:
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, 1] = (255, 51, 0)
    pixels[1, 0] = (255, 255, 255)
    Image.fromarray(pixels).save(files.input_dir / "painted.png")

    mask = load("painted.png", channel, context)

    torch.testing.assert_close(mask, masks([0.0, expected], [1.0, 0.0]))
    assert warnings == []


def test_a_16_bit_grayscale_png_channel_scales_by_65535(files: FileStore, context: NodeContext) -> None:
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(files.input_dir / "fine.png")

    mask = load("fine.png", "red", context)

    torch.testing.assert_close(mask, masks([0.0, 32768 / 65535, 1.0]))


def test_only_the_first_frame_of_an_animation_becomes_the_mask(
    files: FileStore, context: NodeContext
) -> None:
    frames = [Image.new("RGB", (3, 2), colour) for colour in ((255, 0, 0), (0, 0, 0))]
    frames[0].save(files.input_dir / "blink.gif", save_all=True, append_images=frames[1:], duration=100)

    mask = load("blink.gif", "red", context)

    torch.testing.assert_close(mask, torch.ones(1, 2, 3))


def test_a_file_that_is_not_an_image_raises_an_error_naming_it_and_the_formats(
    files: FileStore, context: NodeContext
) -> None:
    (files.input_dir / "mask.png").write_text("not a picture")

    with pytest.raises(ImageReadError, match=r"mask\.png is not an image .* use PNG, JPEG or WebP"):
        load("mask.png", "alpha", context)


def test_an_image_above_the_pixel_limit_is_refused_with_the_setting_to_raise(
    files: FileStore, context: NodeContext
) -> None:
    Image.new("RGBA", (300, 200)).save(files.input_dir / "huge.png")
    files.max_image_pixels = 50_000

    with pytest.raises(ImageReadError, match=r"huge\.png is 300×200 .* raise max_image_pixels"):
        load("huge.png", "alpha", context)


# InvertMask, ThresholdMask, SolidMask and the conversions


def test_invert_turns_each_value_into_one_minus_it() -> None:
    (inverted,) = invert_mask.function(mask=masks([0.0, 0.25, 1.0]))

    torch.testing.assert_close(inverted, masks([1.0, 0.75, 0.0]))


def test_threshold_keeps_only_values_above_it_as_ones() -> None:
    (hard,) = threshold_mask.function(mask=masks([0.2, 0.5, 0.51, 1.0]), value=0.5)

    assert torch.equal(hard, masks([0.0, 0.0, 1.0, 1.0]))


def test_a_solid_mask_has_the_size_and_value_asked() -> None:
    (mask,) = solid_mask.function(value=0.25, width=3, height=2)

    assert torch.equal(mask, torch.full((1, 2, 3), 0.25))


def test_a_mask_shown_as_an_image_is_gray_with_white_for_one() -> None:
    (image,) = mask_to_image.function(mask=masks([0.0, 0.5, 1.0]))

    assert image.shape == (1, 1, 3, 3)
    assert torch.equal(image[0, 0], torch.tensor([[0.0] * 3, [0.5] * 3, [1.0] * 3]))


@pytest.mark.parametrize(("channel", "expected"), [("red", 0.1), ("green", 0.2), ("blue", 0.3)])
def test_converting_an_image_to_a_mask_takes_the_chosen_channel(channel: str, expected: float) -> None:
    image = torch.tensor([0.1, 0.2, 0.3]).expand(2, 2, 3, 3)

    (mask,) = image_to_mask.function(image=image, channel=channel)

    assert torch.equal(mask, torch.full((2, 2, 3), expected))


def test_a_mask_survives_the_trip_through_an_image_and_back() -> None:
    mask = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(1))

    (image,) = mask_to_image.function(mask=mask)
    (back,) = image_to_mask.function(image=image, channel="green")

    assert torch.equal(back, mask)


# GrowMask


def dot(size: int = 5) -> torch.Tensor:
    """A mask with one selected pixel in the middle."""
    mask = torch.zeros(1, size, size)
    mask[0, size // 2, size // 2] = 1.0
    return mask


def grow(mask: torch.Tensor, expand: int, tapered_corners: bool = True) -> torch.Tensor:
    """Run GrowMask and return its one output."""
    return grow_mask.function(mask=mask, expand=expand, tapered_corners=tapered_corners)[0]


def test_growing_a_pixel_by_one_with_tapered_corners_gives_a_cross() -> None:
    expected = masks(
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
    )

    assert torch.equal(grow(dot(), 1, tapered_corners=True), expected)


def test_growing_a_pixel_by_one_without_tapered_corners_gives_a_square() -> None:
    expected = masks(
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    )

    assert torch.equal(grow(dot(), 1, tapered_corners=False), expected)


def test_growing_a_pixel_by_two_with_tapered_corners_gives_a_diamond() -> None:
    expected = masks(
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    )

    assert torch.equal(grow(dot(), 2), expected)


@pytest.mark.parametrize("tapered_corners", [True, False])
def test_shrinking_by_one_removes_a_one_pixel_line_and_thins_a_wider_band(tapered_corners: bool) -> None:
    lines = torch.zeros(1, 5, 6)
    lines[0, 1, :3] = 1.0  # a row one pixel tall
    lines[0, :, 4] = 1.0  # a column one pixel wide (not crossing the row: a crossing would stay)
    band = torch.zeros(1, 7, 6)
    band[0, 2:5] = 1.0  # three pixels tall

    assert not grow(lines, -1, tapered_corners).any()
    assert torch.equal(grow(band, -1, tapered_corners)[0].sum(dim=1), torch.tensor([0, 0, 0, 6, 0, 0, 0.0]))


def test_shrinking_a_mask_that_covers_everything_leaves_it_whole() -> None:
    assert torch.equal(grow(torch.ones(1, 4, 4), -2), torch.ones(1, 4, 4))


def test_growing_a_soft_mask_spreads_each_grey_level_to_its_neighbours() -> None:
    mask = masks([0.0, 0.3, 0.0, 0.0, 0.8, 0.0])

    assert torch.equal(grow(mask, 1), masks([0.3, 0.3, 0.3, 0.8, 0.8, 0.8]))
    assert torch.equal(grow(mask, -1), masks([0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(grow(masks([0.5, 0.7, 0.9]), -1), masks([0.5, 0.5, 0.7]))


def repeated_3x3(mask: torch.Tensor, expand: int, tapered_corners: bool) -> torch.Tensor:
    """ComfyUI's definition: |expand| 3×3 maximum (or minimum) filters, one after another."""
    sign = 1.0 if expand > 0 else -1.0
    planes = mask[:, None] * sign
    for _ in range(abs(expand)):
        if tapered_corners:
            across = F.max_pool2d(planes, (1, 3), stride=1, padding=(0, 1))
            planes = torch.maximum(across, F.max_pool2d(planes, (3, 1), stride=1, padding=(1, 0)))
        else:
            planes = F.max_pool2d(planes, 3, stride=1, padding=1)
    return planes[:, 0] * sign


@pytest.mark.parametrize("tapered_corners", [True, False])
@pytest.mark.parametrize("expand", [-9, -4, -3, 2, 5, 8, 13])
def test_growing_by_many_pixels_equals_growing_one_pixel_at_a_time(
    tapered_corners: bool, expand: int
) -> None:
    generator = torch.Generator().manual_seed(expand + 20)
    soft = torch.rand(2, 11, 17, generator=generator)
    sparse = (torch.rand(1, 23, 9, generator=generator) > 0.9).float()

    for mask in (soft, sparse):
        expected = repeated_3x3(mask, expand, tapered_corners)
        assert torch.equal(grow(mask, expand, tapered_corners), expected)


# FeatherMask


def feather(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Run FeatherMask and return its one output."""
    return feather_mask.function(mask=mask, radius=radius)[0]


def test_feathering_keeps_a_constant_mask_constant() -> None:
    torch.testing.assert_close(feather(torch.full((2, 6, 7), 0.4), 3), torch.full((2, 6, 7), 0.4))


def test_feathering_turns_a_hard_edge_into_a_ramp_symmetrical_around_it() -> None:
    step = torch.zeros(1, 3, 12)
    step[..., 6:] = 1.0  # the edge lies between columns 5 and 6

    soft = feather(step, 2)[0, 1]

    # sigma 1, kernel over offsets -2..2: the pixel beside the edge gets the weights on its far side.
    weights = [math.exp(-(offset**2) / 2) for offset in range(-2, 3)]
    beside = (weights[3] + weights[4]) / sum(weights)
    torch.testing.assert_close(soft[5], torch.tensor(beside))
    torch.testing.assert_close(soft[5:7].mean(), torch.tensor(0.5))  # 0.5 at the edge
    torch.testing.assert_close(soft[:6] + soft[6:].flip(0), torch.ones(6))  # symmetrical
    assert torch.all(soft[1:] >= soft[:-1])  # a ramp: never going down
    assert soft[3] == 0.0 and soft[8] == 1.0  # beyond the radius nothing changes
    assert torch.equal(feather(step, 2)[0, 0], soft)  # every row alike


def test_a_pixel_at_half_between_the_two_sides_stays_at_half() -> None:
    soft = feather(masks([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0]), 3)

    torch.testing.assert_close(soft[0, 0, 3], torch.tensor(0.5))


def test_feathering_with_radius_zero_changes_nothing() -> None:
    mask = dot()

    assert torch.equal(feather(mask, 0), mask)


# MaskComposite


def combine(
    destination: torch.Tensor,
    source: torch.Tensor,
    operation: str,
    context: NodeContext,
    x: int = 0,
    y: int = 0,
) -> torch.Tensor:
    """Run MaskComposite and return its one output."""
    return mask_composite.function(
        destination=destination, source=source, x=x, y=y, operation=operation, context=context
    )[0]


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("multiply", [0.1, 0.3, 0.0]),
        ("add", [0.7, 1.0, 1.0]),  # 1.1 is clamped
        ("subtract", [0.0, 0.1, 1.0]),  # the difference: -0.3 is clamped
        ("and", [0.2, 0.5, 0.0]),  # the intersection: the smaller value
        ("or", [0.5, 0.6, 1.0]),  # the union: the larger value
        ("xor", [0.3, 0.1, 1.0]),
    ],
)
def test_each_operation_combines_soft_masks(
    operation: str, expected: list[float], context: NodeContext
) -> None:
    destination = masks([0.2, 0.6, 1.0])
    source = masks([0.5, 0.5, 0.0])

    torch.testing.assert_close(combine(destination, source, operation, context), masks(expected))


def test_the_operations_offered_are_comfyuis() -> None:
    assert tuple(MASK_OPERATIONS) == ("multiply", "add", "subtract", "and", "or", "xor")


def test_a_source_placed_at_an_offset_is_cut_off_at_the_destination_edge(context: NodeContext) -> None:
    destination = torch.zeros(1, 3, 4)
    source = masks([1.0, 0.5], [0.25, 0.75])

    combined = combine(destination, source, "add", context, x=3, y=1)

    expected = masks([0, 0, 0, 0], [0, 0, 0, 1.0], [0, 0, 0, 0.25])
    assert torch.equal(combined, expected)
    assert not destination.any()  # the input is left as it was


def test_a_source_batch_of_one_combines_into_every_destination(context: NodeContext) -> None:
    destination = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])

    combined = combine(destination, torch.full((1, 2, 2), 0.5), "or", context)

    assert torch.equal(combined, torch.stack([torch.full((2, 2), 0.5), torch.ones(2, 2)]))


def test_masks_with_different_batches_are_refused_with_what_to_give(context: NodeContext) -> None:
    with pytest.raises(
        ValueError, match=r"destination has a batch of 2 but source has 3; give one destination"
    ):
        combine(torch.zeros(2, 2, 2), torch.zeros(3, 2, 2), "add", context)


def test_a_source_placed_outside_the_destination_changes_nothing_and_warns(
    context: NodeContext, warnings: list[str]
) -> None:
    destination = masks([0.2, 0.4])

    combined = combine(destination, masks([1.0]), "add", context, x=2)

    assert torch.equal(combined, destination)
    assert len(warnings) == 1 and "use an x below the width and a y below the height" in warnings[0]


# ImageCompositeMasked


def paste(
    destination: torch.Tensor,
    source: torch.Tensor,
    context: NodeContext,
    mask: torch.Tensor | None = None,
    x: int = 0,
    y: int = 0,
    resize_source: bool = False,
) -> torch.Tensor:
    """Run ImageCompositeMasked and return its one output."""
    return image_composite_masked.function(
        destination=destination,
        source=source,
        x=x,
        y=y,
        resize_source=resize_source,
        mask=mask,
        context=context,
    )[0]


def test_pasting_through_a_mask_keeps_the_destination_exactly_where_the_mask_is_zero(
    context: NodeContext,
) -> None:
    generator = torch.Generator().manual_seed(3)
    original = torch.rand(1, 2, 3, 3, generator=generator)
    inpainted = torch.rand(1, 2, 3, 3, generator=generator)
    mask = masks([0.0, 1.0, 0.5], [0.0, 0.0, 1.0])

    pasted = paste(original, inpainted, context, mask)

    keep = mask[0] == 0.0
    assert torch.equal(pasted[0][keep], original[0][keep])
    take = mask[0] == 1.0
    assert torch.equal(pasted[0][take], inpainted[0][take])
    torch.testing.assert_close(pasted[0, 0, 2], (original[0, 0, 2] + inpainted[0, 0, 2]) / 2)


def test_pasting_without_a_mask_covers_the_destination_at_the_offset_clipped(context: NodeContext) -> None:
    destination = torch.zeros(1, 3, 4, 3)
    source = torch.ones(1, 2, 2, 3)

    pasted = paste(destination, source, context, x=3, y=2)

    covered = torch.zeros(3, 4)
    covered[2, 3] = 1.0
    assert torch.equal(pasted[0], covered[..., None].expand(3, 4, 3))
    assert not destination.any()  # the input is left as it was


def test_resize_source_stretches_the_source_over_the_whole_destination(context: NodeContext) -> None:
    source = torch.tensor([0.2, 0.4, 0.6]).expand(1, 2, 2, 3)

    pasted = paste(torch.zeros(1, 4, 6, 3), source, context, resize_source=True)

    torch.testing.assert_close(pasted, torch.tensor([0.2, 0.4, 0.6]).expand(1, 4, 6, 3))


def test_a_smaller_mask_of_the_same_shape_is_resized_to_the_source(context: NodeContext) -> None:
    mask = torch.ones(1, 2, 2)

    pasted = paste(torch.zeros(1, 4, 4, 3), torch.ones(1, 4, 4, 3), context, mask)

    assert torch.equal(pasted, torch.ones(1, 4, 4, 3))


def test_a_mask_of_another_shape_is_refused_with_the_fix(context: NodeContext) -> None:
    with pytest.raises(
        ValueError,
        match=r"the mask is 3×2 but the source image is 4×4; make the mask from the same image as the "
        r"source, or pass it through the same Size Image for Model node",
    ):
        paste(torch.zeros(1, 4, 4, 3), torch.ones(1, 4, 4, 3), context, torch.ones(1, 2, 3))


def test_one_destination_takes_each_source_of_a_batch(context: NodeContext) -> None:
    sources = torch.stack([torch.full((2, 2, 3), 0.25), torch.full((2, 2, 3), 0.75)])

    pasted = paste(torch.zeros(1, 2, 2, 3), sources, context, torch.ones(1, 2, 2))

    assert torch.equal(pasted, sources)


def test_images_and_mask_with_different_batches_are_refused(context: NodeContext) -> None:
    with pytest.raises(
        ValueError, match=r"mask has a batch of 2 but destination has 3; give one mask for all"
    ):
        paste(torch.zeros(3, 2, 2, 3), torch.ones(1, 2, 2, 3), context, torch.ones(2, 2, 2))

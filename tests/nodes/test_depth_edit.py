"""Depth editing nodes: what a user gets from normalising, inverting, levelling, clamping, blurring,
resizing, blending and curving depth maps, and from selecting a depth range as a mask."""

from __future__ import annotations

import math

import pytest
import torch
from depthgraph.engine.core.context import NodeContext
from depthgraph.engine.core.files import FileStore
from depthgraph.nodes.depth import depth_as_image
from depthgraph.nodes.depth_edit import (
    depth_blend,
    depth_blur,
    depth_clamp,
    depth_curve,
    depth_invert,
    depth_levels,
    depth_match_image,
    depth_normalize,
    depth_range_mask,
)
from depthgraph.nodes.depth_ops import apply_curve, median_blur, parse_curve


@pytest.fixture
def context(files: FileStore, warnings: list[str]) -> NodeContext:
    return NodeContext(
        prompt_id="p1", node_id="4", class_type="DepthEdit", files=files, warned=warnings.append
    )


def row(*values: float) -> torch.Tensor:
    """A depth map [1, 1, 1, N] of one row."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def ramp() -> torch.Tensor:
    """Depth 0..4 in one row: it normalises to 0, 0.25, 0.5, 0.75, 1."""
    return row(0.0, 1.0, 2.0, 3.0, 4.0)


def step_edge() -> torch.Tensor:
    """Five rows that are far on the left half and near on the right half."""
    return torch.tensor([0.0] * 4 + [1.0] * 4).expand(1, 1, 5, 8).contiguous()


def normalize(
    depth: torch.Tensor, context: NodeContext, method: str = "min-max", low: float = 2.0, high: float = 98.0
) -> torch.Tensor:
    return depth_normalize.function(
        depth=depth, method=method, low_percentile=low, high_percentile=high, context=context
    )[0]


def levels(
    depth: torch.Tensor,
    in_black: float = 0.0,
    in_white: float = 1.0,
    gamma: float = 1.0,
    out_black: float = 0.0,
    out_white: float = 1.0,
) -> torch.Tensor:
    return depth_levels.function(
        depth=depth,
        in_black=in_black,
        in_white=in_white,
        gamma=gamma,
        out_black=out_black,
        out_white=out_white,
    )[0]


def blur(depth: torch.Tensor, method: str, radius: int) -> torch.Tensor:
    return depth_blur.function(depth=depth, method=method, radius=radius)[0]


def match(depth: torch.Tensor, height: int, width: int, method: str, batch: int = 1) -> torch.Tensor:
    image = torch.zeros(batch, height, width, 3)
    return depth_match_image.function(depth=depth, image=image, method=method)[0]


def blend(
    depth_a: torch.Tensor,
    depth_b: torch.Tensor,
    mode: str,
    context: NodeContext,
    factor: float = 0.5,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    return depth_blend.function(
        depth_a=depth_a,
        depth_b=depth_b,
        mode=mode,
        factor=factor,
        normalize=normalize,
        context=context,
        mask=mask,
    )[0]


def curve(depth: torch.Tensor, points: str) -> torch.Tensor:
    return depth_curve.function(depth=depth, points=points)[0]


def range_mask(
    depth: torch.Tensor,
    context: NodeContext,
    far: float = 0.5,
    near: float = 1.0,
    softness: float = 0.0,
    mode: str = "inside",
) -> torch.Tensor:
    return depth_range_mask.function(
        depth=depth, far=far, near=near, softness=softness, mode=mode, context=context
    )[0]


# DepthNormalize


def test_min_max_normalising_makes_the_farthest_value_0_and_the_nearest_1(context: NodeContext) -> None:
    depth = torch.cat([row(2.0, 4.0, 6.0), row(-1.0, 0.0, 3.0)])

    normalized = normalize(depth, context)

    torch.testing.assert_close(normalized, torch.cat([row(0.0, 0.5, 1.0), row(0.0, 0.25, 1.0)]))
    assert normalized.dtype == torch.float32


def test_percentile_normalising_ignores_a_far_outlier(context: NodeContext) -> None:
    depth = torch.arange(101, dtype=torch.float32)
    depth[-1] = 1000.0  # one stray value far beyond the rest
    depth = depth.view(1, 1, 1, -1)

    normalized = normalize(depth, context, "percentile", low=10.0, high=90.0)

    # The 10th and 90th percentiles are 10 and 90: 30 sits a quarter of the way between them.
    assert normalized[0, 0, 0, [0, 10, 30, 50, 90, 100]].tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]


def test_percentile_normalising_interpolates_between_values(context: NodeContext) -> None:
    normalized = normalize(row(0.0, 10.0, 20.0, 40.0), context, "percentile", low=25.0, high=75.0)

    # The 25th percentile lies 3/4 of the way from 0 to 10, the 75th a quarter of the way from 20 to 40.
    torch.testing.assert_close(normalized, row(0.0, 2.5 / 17.5, 12.5 / 17.5, 1.0))


@pytest.mark.parametrize(("low", "high"), [(50.0, 50.0), (30.0, 20.0)])
def test_a_low_percentile_not_below_the_high_one_is_refused(
    context: NodeContext, low: float, high: float
) -> None:
    with pytest.raises(ValueError, match="lower low_percentile or raise high_percentile"):
        normalize(ramp(), context, "percentile", low=low, high=high)


def test_percentiles_that_meet_on_a_varied_map_warn_that_it_became_flat(
    context: NodeContext, warnings: list[str]
) -> None:
    depth = torch.tensor([0.0] + [5.0] * 98 + [9.0]).view(1, 1, 1, -1)

    normalized = normalize(depth, context, "percentile")

    assert not normalized.any()
    assert len(warnings) == 1 and "move the percentiles apart or use min-max" in warnings[0]


def test_depth_as_image_shows_the_min_max_normalised_map_white_near(context: NodeContext) -> None:
    depth = row(1.0, 3.0, 5.0)

    (image,) = depth_as_image.function(depth=depth)

    assert image.shape == (1, 1, 3, 3) and image.dtype == torch.float32
    torch.testing.assert_close(image[..., 0], normalize(depth, context)[:, 0])
    torch.testing.assert_close(image[0, 0, :, 2], torch.tensor([0.0, 0.5, 1.0]))


# DepthInvert


def test_inverting_swaps_near_and_far_within_each_maps_own_range() -> None:
    depth = torch.cat([row(1.0, 3.0, 5.0), row(10.0, 10.5, 20.0)])

    (inverted,) = depth_invert.function(depth=depth)

    torch.testing.assert_close(inverted, torch.cat([row(5.0, 3.0, 1.0), row(20.0, 19.5, 10.0)]))


# DepthLevels


def test_levels_stretch_the_chosen_input_range_to_the_output_range() -> None:
    leveled = levels(ramp(), in_black=0.25, in_white=0.75, out_black=0.2, out_white=0.8)

    torch.testing.assert_close(leveled, row(0.2, 0.2, 0.5, 0.8, 0.8))


def test_levels_with_gamma_two_brings_the_middle_depths_nearer() -> None:
    leveled = levels(ramp(), gamma=2.0)

    torch.testing.assert_close(leveled, row(0.0, 0.5, math.sqrt(0.5), math.sqrt(0.75), 1.0))


def test_levels_with_out_black_above_out_white_invert_the_map() -> None:
    leveled = levels(ramp(), out_black=1.0, out_white=0.0)

    torch.testing.assert_close(leveled, row(1.0, 0.75, 0.5, 0.25, 0.0))


@pytest.mark.parametrize("in_white", [0.5, 0.4])
def test_levels_with_in_white_not_above_in_black_are_refused(in_white: float) -> None:
    with pytest.raises(ValueError, match="raise in_white or lower in_black"):
        levels(ramp(), in_black=0.5, in_white=in_white)


# DepthClamp


def test_clamping_flattens_depths_beyond_the_near_and_far_planes() -> None:
    (clamped,) = depth_clamp.function(depth=ramp(), near=0.75, far=0.25)

    torch.testing.assert_close(clamped, row(0.25, 0.25, 0.5, 0.75, 0.75))


def test_clamping_with_far_nearer_than_near_is_refused_naming_both() -> None:
    with pytest.raises(
        ValueError, match=r"far \(0\.8\) is nearer than near \(0\.3\).*lower far or raise near"
    ):
        depth_clamp.function(depth=ramp(), near=0.3, far=0.8)


# DepthBlur


def test_a_median_blur_keeps_a_step_edge_sharp() -> None:
    depth = step_edge()

    torch.testing.assert_close(blur(depth, "median", 2), depth)


def test_a_gaussian_blur_spreads_a_step_edge() -> None:
    blurred = blur(step_edge(), "gaussian", 1)

    # Radius 1 has sigma 0.5: the neighbours weigh e^-2 each against 1 for the centre.
    side = math.exp(-2.0) / (1.0 + 2.0 * math.exp(-2.0))
    expected = torch.tensor([0.0, 0.0, 0.0, side, 1.0 - side, 1.0, 1.0, 1.0]).expand(1, 1, 5, 8)
    torch.testing.assert_close(blurred, expected)


def test_a_median_blur_removes_a_single_spike() -> None:
    depth = torch.full((1, 1, 5, 5), 2.0)
    depth[0, 0, 2, 2] = 50.0

    torch.testing.assert_close(blur(depth, "median", 1), torch.full((1, 1, 5, 5), 2.0))


def test_a_median_blur_takes_the_middle_of_each_window_with_reflected_edges() -> None:
    depth = torch.tensor([[1.0, 5.0, 2.0], [8.0, 3.0, 9.0], [4.0, 7.0, 6.0]]).view(1, 1, 3, 3)

    # Reflected, the top-left window is 3 8 3 / 5 1 5 / 3 8 3 (median 3); the centre one holds 1..9.
    expected = torch.tensor([[3.0, 5.0, 3.0], [5.0, 5.0, 5.0], [4.0, 7.0, 6.0]]).view(1, 1, 3, 3)
    torch.testing.assert_close(blur(depth, "median", 1), expected)


def test_a_median_blur_in_small_bands_of_rows_equals_one_in_a_single_band() -> None:
    depth = torch.rand(2, 1, 13, 11, generator=torch.Generator().manual_seed(3))

    in_bands = median_blur(depth, 3, chunk_values=2 * 11 * 49)  # one row per band

    torch.testing.assert_close(in_bands, median_blur(depth, 3, chunk_values=1 << 30))


def test_a_radius_wider_than_a_tiny_map_repeats_its_edge() -> None:
    depth = row(1.0, 3.0)

    # Repeating the edge, the left window holds five 1s and four 3s in each row, the right one four
    # and five: the median keeps both values, the Gaussian pulls them together symmetrically.
    torch.testing.assert_close(blur(depth, "median", 4), depth)
    blurred = blur(depth, "gaussian", 4)
    assert 1.0 < blurred[0, 0, 0, 0] < 2.0
    torch.testing.assert_close(blurred.sum(), torch.tensor(4.0))


@pytest.mark.parametrize("method", ["gaussian", "median"])
def test_a_blur_radius_of_zero_leaves_the_map_unchanged(method: str) -> None:
    depth = torch.rand(1, 1, 4, 6, generator=torch.Generator().manual_seed(1))

    assert torch.equal(blur(depth, method, 0), depth)


# DepthMatchImage


def test_stretching_gives_the_images_size_whatever_its_aspect() -> None:
    assert match(torch.rand(1, 1, 6, 6), 4, 10, "stretch").shape == (1, 1, 4, 10)


def test_cropping_a_wide_map_to_a_square_image_keeps_the_middle() -> None:
    depth = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]).view(1, 1, 2, 4)

    torch.testing.assert_close(
        match(depth, 2, 2, "crop"), torch.tensor([[2.0, 3.0], [6.0, 7.0]]).view(1, 1, 2, 2)
    )


def test_cropping_scales_the_map_to_cover_the_image() -> None:
    depth = torch.full((1, 1, 3, 6), 7.0)

    torch.testing.assert_close(match(depth, 12, 12, "crop"), torch.full((1, 1, 12, 12), 7.0))


def test_padding_a_square_map_to_a_wide_image_repeats_its_edges() -> None:
    depth = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)

    expected = torch.tensor([[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]).view(1, 1, 2, 4)
    torch.testing.assert_close(match(depth, 2, 4, "pad"), expected)


def test_padding_scales_the_map_to_fit_inside_the_image() -> None:
    depth = torch.full((1, 1, 3, 6), 7.0)

    torch.testing.assert_close(match(depth, 12, 8, "pad"), torch.full((1, 1, 12, 8), 7.0))


def test_one_depth_map_is_repeated_for_every_image_of_a_batch() -> None:
    depth = torch.rand(1, 1, 3, 3)

    matched = match(depth, 3, 3, "stretch", batch=4)

    assert matched.shape == (4, 1, 3, 3) and torch.equal(matched[3], depth[0])


def test_two_depth_maps_for_three_images_are_refused() -> None:
    with pytest.raises(ValueError, match="depth has a batch of 2 but image has 3; give one depth for all"):
        match(torch.rand(2, 1, 3, 3), 3, 3, "stretch", batch=3)


# DepthBlend


def blend_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """a normalises to 0, 0.5, 1 and b to 1, 0, 0.5 (their raw scales differ)."""
    return row(0.0, 2.0, 4.0), row(10.0, 0.0, 5.0)


def test_mixing_averages_the_normalised_maps_by_the_factor(context: NodeContext) -> None:
    a, b = blend_pair()

    torch.testing.assert_close(blend(a, b, "mix", context, factor=0.25), row(0.25, 0.375, 0.875))


def test_min_keeps_the_farther_and_max_the_nearer_of_the_two(context: NodeContext) -> None:
    a, b = blend_pair()

    torch.testing.assert_close(blend(a, b, "min", context), row(0.0, 0.0, 0.5))
    torch.testing.assert_close(blend(a, b, "max", context), row(1.0, 0.5, 1.0))


def test_masked_blending_shows_b_where_the_mask_is_one_scaled_by_the_factor(context: NodeContext) -> None:
    a, b = blend_pair()
    mask = torch.tensor([[[1.0, 0.0, 0.5]]])

    torch.testing.assert_close(blend(a, b, "masked", context, factor=1.0, mask=mask), row(1.0, 0.5, 0.75))
    torch.testing.assert_close(blend(a, b, "masked", context, factor=0.5, mask=mask), row(0.5, 0.5, 0.875))


def test_a_mask_of_another_size_is_stretched_to_the_depth_map(context: NodeContext) -> None:
    a = torch.zeros(1, 1, 4, 4)
    a[:, :, 3] = 1.0  # the bottom row is near: a normalises to 0 and b to 1 in the rows above it
    left_half = torch.tensor([[[1.0, 0.0]]])

    blended = blend(a, 1.0 - a, "masked", context, factor=1.0, mask=left_half)

    torch.testing.assert_close(blended[0, 0, :3], torch.tensor([1.0, 0.75, 0.25, 0.0]).expand(3, 4))


def test_depth_b_is_stretched_to_depth_as_size(context: NodeContext) -> None:
    blended = blend(torch.rand(1, 1, 6, 8), torch.rand(1, 1, 3, 3), "mix", context)

    assert blended.shape == (1, 1, 6, 8)


def test_masked_blending_without_a_mask_asks_to_link_one(context: NodeContext) -> None:
    a, b = blend_pair()

    with pytest.raises(ValueError, match="link a MASK to the mask input"):
        blend(a, b, "masked", context)


def test_a_mask_linked_to_another_mode_warns_that_it_is_ignored(
    context: NodeContext, warnings: list[str]
) -> None:
    a, b = blend_pair()

    blended = blend(a, b, "mix", context, mask=torch.ones(1, 1, 3))

    torch.testing.assert_close(blended, row(0.5, 0.25, 0.75))
    assert warnings == ["the mask is only used by mode 'masked'; mode 'mix' ignores it"]


def test_blending_depth_batches_of_two_and_three_is_refused(context: NodeContext) -> None:
    with pytest.raises(ValueError, match="give one depth_a for all, or one per image"):
        blend(torch.rand(2, 1, 3, 3), torch.rand(3, 1, 3, 3), "mix", context)


def test_one_depth_map_blends_with_each_of_a_batch(context: NodeContext) -> None:
    a, b = blend_pair()

    blended = blend(a, torch.cat([b, a]), "min", context)

    torch.testing.assert_close(blended, torch.cat([row(0.0, 0.0, 0.5), row(0.0, 0.5, 1.0)]))


# DepthCurve


def test_the_identity_curve_gives_the_normalised_map() -> None:
    torch.testing.assert_close(curve(ramp(), "0:0, 0.5:0.5, 1:1"), row(0.0, 0.25, 0.5, 0.75, 1.0))


def test_a_curve_eases_smoothly_into_a_flat_stretch() -> None:
    # On 0..0.5 the cubic has slope 3 at 0 and 0 at 0.5 (PCHIP), so at 0.25 it is 3/16 + 1/2.
    torch.testing.assert_close(curve(ramp(), "0:0, 0.5:1, 1:1"), row(0.0, 0.6875, 1.0, 1.0, 1.0))


def test_points_may_come_in_any_order() -> None:
    torch.testing.assert_close(curve(ramp(), "1:1, 0:0, 0.5:1"), curve(ramp(), "0:0, 0.5:1, 1:1"))


def test_a_falling_curve_inverts_the_map() -> None:
    torch.testing.assert_close(curve(ramp(), "0:1, 1:0"), row(1.0, 0.75, 0.5, 0.25, 0.0))


def test_the_curve_is_flat_beyond_its_first_and_last_point() -> None:
    torch.testing.assert_close(curve(ramp(), "0.25:0.3, 0.75:0.9"), row(0.3, 0.3, 0.6, 0.9, 0.9))


@pytest.mark.parametrize("points", ["0:0, 0.3:0.8, 0.6:0.85, 0.8:0.86, 1:1", "0:0.2, 0.5:0.3, 1:1"])
def test_the_curve_passes_through_each_point_and_never_turns_back_between_them(points: str) -> None:
    xs, ys = parse_curve(points)
    positions = torch.linspace(0.0, 1.0, 1001).view(1, 1, 1, -1)

    curved = apply_curve(positions, xs, ys)[0, 0, 0]

    for x, y in zip(xs, ys, strict=True):
        assert curved[round(x * 1000)].item() == pytest.approx(y, abs=1e-6)
    assert (curved[1:] - curved[:-1] >= 0).all()


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("0:0, 0.5:0.8, 1:0.3", "rises from 0:0 to 0.5:0.8 then falls from 0.5:0.8 to 1:0.3"),
        ("0:1, 0.2:1, 0.4:0.5, 0.7:0.6", "falls from 0.2:1 to 0.4:0.5 then rises from 0.4:0.5 to 0.7:0.6"),
    ],
)
def test_a_curve_that_goes_up_and_down_is_refused_naming_the_points(points: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"{message}; a depth curve must only rise or only fall"):
        curve(ramp(), points)


def test_a_curve_with_a_repeated_x_is_refused() -> None:
    with pytest.raises(ValueError, match=r"the curve's x values repeat \(0\.5\); give each x once"):
        curve(ramp(), "0:0, 0.5:0.2, 0.5:0.6, 1:1")


@pytest.mark.parametrize("points", ["0:0, 1", "0:0; 1:1", "a:b, 1:1", "0:0:0, 1:1"])
def test_unreadable_curve_text_is_refused_with_an_example(points: str) -> None:
    with pytest.raises(ValueError, match=r"write x:y pairs separated by commas, e\.g\. 0:0, 0\.5:0\.7, 1:1"):
        curve(ramp(), points)


@pytest.mark.parametrize("points", ["0.5:0.5", "", " , "])
def test_a_curve_of_fewer_than_two_points_is_refused(points: str) -> None:
    with pytest.raises(ValueError, match="give at least two x:y pairs"):
        curve(ramp(), points)


@pytest.mark.parametrize("points", ["0:0, 1.5:1", "0:-0.1, 1:1", "0:0, nan:1"])
def test_a_curve_point_outside_0_to_1_is_refused(points: str) -> None:
    with pytest.raises(
        ValueError, match=r"is outside 0\.\.1; x and y are positions on the normalised depth map"
    ):
        curve(ramp(), points)


# DepthRangeMask


def test_a_hard_range_selects_exactly_the_depths_between_far_and_near(context: NodeContext) -> None:
    mask = range_mask(ramp(), context, far=0.5, near=0.75)

    assert mask.shape == (1, 1, 5) and mask.dtype == torch.float32
    torch.testing.assert_close(mask, torch.tensor([[[0.0, 0.0, 1.0, 1.0, 0.0]]]))


def test_outside_selects_the_rest_of_the_scene(context: NodeContext) -> None:
    mask = range_mask(ramp(), context, far=0.5, near=0.75, mode="outside")

    torch.testing.assert_close(mask, torch.tensor([[[1.0, 1.0, 0.0, 0.0, 1.0]]]))


def test_softness_fades_the_far_bound_with_a_smoothstep_centred_on_it(context: NodeContext) -> None:
    depth = torch.arange(17, dtype=torch.float32).view(1, 1, 1, -1)  # normalises to steps of 1/16

    mask = range_mask(depth, context, far=0.5, near=1.0, softness=0.25)

    # The ramp runs from 0.375 to 0.625; a quarter of the way up, smoothstep gives 0.25² · 2.5.
    ramp_values = [0.0, 0.15625, 0.5, 0.84375, 1.0]
    torch.testing.assert_close(mask[0, 0], torch.tensor([0.0] * 6 + ramp_values + [1.0] * 6))


def test_softness_fades_a_near_bound_inside_the_map(context: NodeContext) -> None:
    depth = torch.arange(17, dtype=torch.float32).view(1, 1, 1, -1)

    mask = range_mask(depth, context, far=0.0, near=0.5, softness=0.25)

    ramp_values = [1.0, 0.84375, 0.5, 0.15625, 0.0]
    torch.testing.assert_close(mask[0, 0], torch.tensor([1.0] * 6 + ramp_values + [0.0] * 6))


def test_a_range_mask_has_the_depth_maps_resolution_and_batch(context: NodeContext) -> None:
    mask = range_mask(torch.rand(2, 1, 6, 7), context, softness=0.1)

    assert mask.shape == (2, 6, 7)


def test_a_range_with_far_nearer_than_near_is_refused(context: NodeContext) -> None:
    with pytest.raises(
        ValueError, match=r"far \(0\.9\) is nearer than near \(0\.6\).*lower far or raise near"
    ):
        range_mask(ramp(), context, far=0.9, near=0.6)


def test_a_range_that_holds_no_depth_warns_to_widen_it(context: NodeContext, warnings: list[str]) -> None:
    mask = range_mask(row(0.0, 1.0, 1.0, 9.0), context, far=0.3, near=0.6)

    assert not mask.any()
    assert len(warnings) == 1
    assert "all zeros" in warnings[0] and "move or widen the range" in warnings[0]


def test_a_range_that_holds_every_depth_warns_to_narrow_it(context: NodeContext, warnings: list[str]) -> None:
    mask = range_mask(ramp(), context, far=0.0, near=1.0, mode="outside")

    assert not mask.any()
    assert len(warnings) == 1
    assert "all zeros" in warnings[0] and "narrow the range" in warnings[0]


def test_a_range_that_selects_part_of_the_map_does_not_warn(
    context: NodeContext, warnings: list[str]
) -> None:
    range_mask(ramp(), context, softness=0.05)

    assert warnings == []


# Every node


def test_a_constant_map_never_gives_nan_through_any_node(context: NodeContext) -> None:
    flat = torch.full((1, 1, 4, 4), 5.0)
    outputs = [
        normalize(flat, context),
        normalize(flat, context, "percentile"),
        depth_invert.function(depth=flat)[0],
        levels(flat, gamma=0.5),
        depth_clamp.function(depth=flat, near=0.8, far=0.2)[0],
        blur(flat, "gaussian", 2),
        blur(flat, "median", 2),
        match(flat, 6, 3, "pad"),
        blend(flat, flat, "mix", context),
        blend(flat, flat, "masked", context, mask=torch.ones(1, 4, 4)),
        curve(flat, "0:0.2, 1:0.9"),
        range_mask(flat, context),
        range_mask(flat, context, far=0.0, near=0.5, softness=0.2),
    ]

    for output in outputs:
        assert torch.isfinite(output).all() and output.dtype == torch.float32
    assert not outputs[0].any()  # it normalises to all zeros: the farthest value
    torch.testing.assert_close(outputs[2], flat)


def test_a_blend_without_normalising_keeps_the_ranges_an_edit_gave_the_maps(context: NodeContext) -> None:
    pushed = torch.tensor([[[[0.0, 0.25]]]])  # a background squeezed into the far quarter
    subject = torch.tensor([[[[0.5, 1.0]]]])
    mask = torch.tensor([[[0.0, 1.0]]])
    kept = blend(pushed, subject, "masked", context, factor=1.0, mask=mask, normalize=False)
    assert torch.equal(kept, torch.tensor([[[[0.0, 1.0]]]]))
    stretched = blend(pushed, subject, "mix", context, factor=0.0, normalize=True)
    assert torch.equal(stretched, torch.tensor([[[[0.0, 1.0]]]]))  # 0..0.25 stretched back to 0..1
    squeezed = blend(pushed, subject, "mix", context, factor=0.0, normalize=False)
    assert torch.equal(squeezed, pushed)

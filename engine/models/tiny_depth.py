"""The built-in tiny depth estimators: one per family, the real transformers classes with tiny
configs, built in code with fixed seeds. No files, no downloads — and their depth maps are noise.

They exist so every depth graph runs anywhere and the tests exercise the real code paths (the real
model classes, image processors and post-processing). `tiny-dpt-hybrid` is the very estimator that
`tiny-random` (CheckpointLoader's built-in model) carries, weights and all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .depth_families import DEPTH_ANYTHING, DEPTH_PRO, DPT_HYBRID, DPT_LARGE, ZOEDEPTH, Family
from .tiny import seeded, tiny_depth_estimator

TINY_DESCRIPTION = "built-in test estimator with random weights: its depth maps are noise"


def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    """The module `build()` makes with torch's generator seeded (tiny.py's `seeded`), in eval mode."""
    return seeded(seed, build).eval()


def tiny_dpt_hybrid() -> Any:

    return tiny_depth_estimator()


def tiny_dpt_large() -> Any:
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        image_size=384,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
    )
    return _seeded(11, lambda: DPTForDepthEstimation(config))


def tiny_depth_anything() -> Any:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    taps: dict[str, Any] = {"out_indices": [1, 2, 3, 4]}  # (a backbone setting its typing does not list)
    backbone = Dinov2Config(
        **taps,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=518,
        patch_size=14,
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    return _seeded(12, lambda: DepthAnythingForDepthEstimation(config))


def tiny_zoedepth() -> Any:
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation

    taps: dict[str, Any] = {"out_indices": [1, 2, 3, 4]}
    backbone = BeitConfig(
        **taps,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=384,
        patch_size=16,
        use_relative_position_bias=True,
        reshape_hidden_states=False,
        drop_path_rate=0.0,
    )
    config = ZoeDepthConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        bottleneck_features=16,
        num_relative_features=8,
        bin_embedding_dim=8,
        num_attractors=[4, 2, 2, 1],
        bin_configurations=[{"n_bins": 16, "min_depth": 1e-3, "max_depth": 10.0}],
    )
    return _seeded(13, lambda: ZoeDepthForDepthEstimation(config))


TINY_DEPTH_PRO_SIZE = 256  # its patch size (64) over the smallest scale (0.25), as 384 / 0.25 = 1536


def tiny_depth_pro() -> Any:
    from transformers import DepthProConfig, DepthProForDepthEstimation, Dinov2Config

    def encoder() -> Any:
        return Dinov2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=64, patch_size=16
        )

    config = DepthProConfig(
        patch_size=64,
        fusion_hidden_size=16,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.25, 0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
        scaled_images_feature_dims=[16, 16, 8],
        use_fov_model=True,  # the field of view is what makes its depth metric
        image_model_config=encoder(),
        patch_model_config=encoder(),
        fov_model_config=encoder(),
    )
    return _seeded(14, lambda: DepthProForDepthEstimation(config))


# name -> (family, model builder, preprocessing settings: the published ones, smaller for Depth Pro)
TINY_ESTIMATORS: dict[str, tuple[Family, Callable[[], Any], dict[str, Any]]] = {
    "tiny-dpt-hybrid": (DPT_HYBRID, tiny_dpt_hybrid, dict(DPT_HYBRID.processor)),
    "tiny-dpt-large": (DPT_LARGE, tiny_dpt_large, dict(DPT_LARGE.processor)),
    "tiny-depth-anything-v2": (DEPTH_ANYTHING, tiny_depth_anything, dict(DEPTH_ANYTHING.processor)),
    "tiny-zoedepth": (ZOEDEPTH, tiny_zoedepth, dict(ZOEDEPTH.processor)),
    "tiny-depth-pro": (
        DEPTH_PRO,
        tiny_depth_pro,
        {**DEPTH_PRO.processor, "size": {"height": TINY_DEPTH_PRO_SIZE, "width": TINY_DEPTH_PRO_SIZE}},
    ),
}


def build_tiny_estimator(name: str) -> Any:
    """The tiny estimator `name`, built fresh (same weights every time)."""
    return TINY_ESTIMATORS[name][1]()


def build_tiny_processor(name: str) -> Any:
    from .depth_processing import build_processor

    family, _, settings = TINY_ESTIMATORS[name]
    return build_processor(family, settings)

"""The depth estimator families `DepthModelLoader` offers: what each is, the transformers class that
runs it, how its images are prepared, and what its prediction means.

- `dpt-hybrid`: DPTForDepthEstimation (BiT + ViT), Intel/dpt-hybrid-midas (MiDaS v3.0, the one
  bundled with SD2-depth); relative inverse depth.
- `dpt`: DPTForDepthEstimation (ViT), Intel/dpt-large (MiDaS v3.0); relative inverse depth.
- `depth-anything`: DepthAnythingForDepthEstimation, depth-anything/Depth-Anything-V2-{Small,Base,
  Large}-hf; relative inverse depth (its metric fine-tunes: metres).
- `zoedepth`: ZoeDepthForDepthEstimation, Intel/zoedepth-nyu-kitti, -nyu, -kitti; metres.
- `depth-pro`: DepthProForDepthEstimation, apple/DepthPro-hf; metres (from its field of view).

The preprocessing settings here are those the published checkpoints were converted with
(transformers' conversion scripts; a folder's own preprocessor_config.json wins); they serve the
built-in tiny estimators and single files, which carry no preprocessor config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .common import ModelError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
BICUBIC, BILINEAR = 3, 2  # Pillow's resampling numbers, as preprocessor_config.json writes them

# SD2-depth's DPT processor (engine.models.sd2_depth.depth_image_processor): 384×384, mean/std 0.5.
MIDAS_PROCESSOR: Mapping[str, Any] = {
    "do_resize": True,
    "size": {"height": 384, "width": 384},
    "keep_aspect_ratio": False,
    "ensure_multiple_of": 1,
    "resample": BICUBIC,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
# convert_depth_anything_to_hf.py: 518 on the side scaled least, multiples of 14, ImageNet statistics.
DEPTH_ANYTHING_PROCESSOR: Mapping[str, Any] = {
    **MIDAS_PROCESSOR,
    "size": {"height": 518, "width": 518},
    "keep_aspect_ratio": True,
    "ensure_multiple_of": 14,
    "image_mean": IMAGENET_MEAN,
    "image_std": IMAGENET_STD,
}
# convert_zoedepth_to_hf.py uses ZoeDepthImageProcessor's defaults: reflection padding, then 384×512
# keeping the aspect ratio (multiples of 32), bilinear, mean/std 0.5.
ZOEDEPTH_PROCESSOR: Mapping[str, Any] = {
    "do_pad": True,
    "do_resize": True,
    "size": {"height": 384, "width": 512},
    "keep_aspect_ratio": True,
    "ensure_multiple_of": 32,
    "resample": BILINEAR,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
# DepthProImageProcessor's defaults: normalised first, then bilinear to 1536×1536.
DEPTH_PRO_PROCESSOR: Mapping[str, Any] = {
    "do_resize": True,
    "size": {"height": 1536, "width": 1536},
    "resample": BILINEAR,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


@dataclass(frozen=True)
class Family:
    """One kind of depth estimator."""

    key: str
    title: str
    model_class: str  # in transformers
    metric: bool  # predicts metres (DepthEstimate gives 1/m), else relative inverse depth
    processor: Mapping[str, Any] = field(repr=False)
    published: tuple[str, ...] = ()

    def model_type(self) -> Any:
        """The transformers class (imported only when asked for)."""
        import transformers

        return getattr(transformers, self.model_class)


DPT_HYBRID = Family(
    "dpt-hybrid",
    "DPT-hybrid (MiDaS v3.0, the estimator bundled with SD2-depth)",
    "DPTForDepthEstimation",
    False,
    MIDAS_PROCESSOR,
    ("Intel/dpt-hybrid-midas",),
)
DPT_LARGE = Family(
    "dpt", "DPT-large (MiDaS v3.0)", "DPTForDepthEstimation", False, MIDAS_PROCESSOR, ("Intel/dpt-large",)
)
DEPTH_ANYTHING = Family(
    "depth-anything",
    "Depth Anything V2",
    "DepthAnythingForDepthEstimation",
    False,
    DEPTH_ANYTHING_PROCESSOR,
    tuple(f"depth-anything/Depth-Anything-V2-{size}-hf" for size in ("Small", "Base", "Large")),
)
ZOEDEPTH = Family(
    "zoedepth",
    "ZoeDepth (metric)",
    "ZoeDepthForDepthEstimation",
    True,
    ZOEDEPTH_PROCESSOR,
    ("Intel/zoedepth-nyu-kitti", "Intel/zoedepth-nyu", "Intel/zoedepth-kitti"),
)
DEPTH_PRO = Family(
    "depth-pro",
    "Depth Pro (metric)",
    "DepthProForDepthEstimation",
    True,
    DEPTH_PRO_PROCESSOR,
    ("apple/DepthPro-hf",),
)
FAMILIES = {family.key: family for family in (DPT_HYBRID, DPT_LARGE, DEPTH_ANYTHING, ZOEDEPTH, DEPTH_PRO)}
MODEL_TYPES = {
    "dpt": DPT_LARGE,
    "depth_anything": DEPTH_ANYTHING,
    "zoedepth": ZOEDEPTH,
    "depth_pro": DEPTH_PRO,
}


def family_of_config(config: Mapping[str, Any], where: str) -> Family:
    """The family a config.json describes, or a ModelError naming what is supported."""
    model_type = config.get("model_type")
    family = MODEL_TYPES.get(str(model_type))
    if family is None:
        known = ", ".join(sorted(MODEL_TYPES))
        raise ModelError(
            f"{where} describes a {model_type!r} model, not a depth estimator depthgraph runs "
            f"(config.json model_type one of {known})"
        )
    if family is DPT_LARGE and config.get("is_hybrid"):
        return DPT_HYBRID
    return family


def predicts_metres(family: Family, config: Any) -> bool:
    """Whether this model's prediction is metric depth: ZoeDepth and Depth Pro always, Depth Anything
    when fine-tuned for metric depth (its config says `depth_estimation_type: metric`)."""
    return family.metric or getattr(config, "depth_estimation_type", None) == "metric"

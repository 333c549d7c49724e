"""Images into a depth estimator and its prediction back out, per family.

transformers' own image processors do the work where they run without torchvision: DPT's and
Depth Anything's (`DPTImageProcessorPil`) and ZoeDepth's preprocessing (`ZoeDepthImageProcessorPil`).
Two steps in transformers need torchvision, which has no build on PyPI for a CPU-only torch: Depth
Pro's image processor and ZoeDepth's padding removal. They are done here in torch, step for step as
transformers does them (`DepthProProcessor`, `ZoeDepthProcessor`), with torchvision's float resize
being `torch.nn.functional.interpolate` with `align_corners=False` and no antialiasing.

`predict` gives what transformers' `pipeline("depth-estimation")` calls `predicted_depth`, in the
family's own unit (relative inverse depth, or metres); `to_inverse_depth` turns it into DEPTH.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)

from .common import ModelError
from .depth_families import BILINEAR, DEPTH_PRO, ZOEDEPTH, Family

# MiDaS-style models predict inverse depth already; metric ones give metres, whose inverse (1/m) is
# taken with this floor (Depth Pro's own clamp), so a zero never becomes infinity.
METRIC_FLOOR_METRES = 1e-4
STABILITY_OPTIONS = {"keep_aspect_ratio": True, "ensure_multiple_of": 32}


class DepthProProcessor:
    """transformers' DepthProImageProcessor without torchvision: rescale to 0..1 and normalise first,
    then resize (bilinear, no antialiasing) to its square size; `post_process_depth_estimation` turns
    the canonical inverse depth into metres with the predicted field of view, as transformers' does."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        size = settings.get("size", {"height": 1536, "width": 1536})
        self.size = (int(size["height"]), int(size["width"]))
        self.do_resize = bool(settings.get("do_resize", True))
        self.rescale_factor = (
            float(settings.get("rescale_factor", 1 / 255)) if settings.get("do_rescale", True) else 1.0
        )
        self.do_normalize = bool(settings.get("do_normalize", True))
        self.image_mean = torch.tensor(settings.get("image_mean", [0.5, 0.5, 0.5]), dtype=torch.float32)
        self.image_std = torch.tensor(settings.get("image_std", [0.5, 0.5, 0.5]), dtype=torch.float32)
        resample = int(settings.get("resample", BILINEAR))
        self.mode = {BILINEAR: "bilinear", 3: "bicubic", 0: "nearest"}.get(resample, "bilinear")

    def __call__(self, images: Sequence[Any], return_tensors: str = "pt", **_: Any) -> Any:
        from transformers import BatchFeature

        pictures: Sequence[Any] = images if isinstance(images, (list, tuple)) else [images]
        prepared = []
        for picture in pictures:
            array = np.asarray(picture.convert("RGB"), dtype=np.float32)
            pixels = torch.from_numpy(array).permute(2, 0, 1)[None] * self.rescale_factor
            if self.do_normalize:
                pixels = (pixels - self.image_mean[:, None, None]) / self.image_std[:, None, None]
            if self.do_resize and tuple(pixels.shape[-2:]) != self.size:
                pixels = F.interpolate(pixels, size=self.size, mode=self.mode, align_corners=False)
            prepared.append(pixels)
        return BatchFeature({"pixel_values": torch.cat(prepared)}, tensor_type=return_tensors)

    def post_process_depth_estimation(
        self, outputs: Any, target_sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[dict[str, Any]]:
        results = []
        fields = (
            outputs.field_of_view
            if outputs.field_of_view is not None
            else [None] * len(outputs.predicted_depth)
        )
        targets = list(target_sizes) if target_sizes is not None else [None] * len(outputs.predicted_depth)
        for depth, fov, target in zip(outputs.predicted_depth, fields, targets, strict=True):
            focal = None
            if target is not None:
                if fov is not None:
                    focal = 0.5 * target[1] / torch.tan(0.5 * torch.deg2rad(fov))
                    depth = depth * target[1] / focal
                depth = F.interpolate(depth[None, None], size=tuple(target), mode=self.mode).squeeze()
            depth = 1.0 / torch.clamp(depth, min=1e-4, max=1e4)
            results.append({"predicted_depth": depth, "field_of_view": fov, "focal_length": focal})
        return results


def _zoedepth_processor_class() -> type:
    from transformers import ZoeDepthImageProcessorPil

    class ZoeDepthProcessor(ZoeDepthImageProcessorPil):
        """ZoeDepth's Pillow image processor, its padding removal in torch (see the module doc)."""

        def post_process_depth_estimation(  # type: ignore[override]
            self,
            outputs: Any,
            source_sizes: Sequence[tuple[int, int]] | None = None,
            target_sizes: Sequence[tuple[int, int]] | None = None,
        ) -> list[dict[str, Any]]:
            results = []
            count = len(outputs.predicted_depth)
            sources = list(source_sizes) if source_sizes is not None else [None] * count
            targets = list(target_sizes) if target_sizes is not None else [None] * count
            for depth, source, target in zip(outputs.predicted_depth, sources, targets, strict=True):
                depth = depth[None, None]
                if source is not None:
                    # The processor padded each side by int(sqrt(side / 2) * 3) before resizing.
                    pad_h = int(np.sqrt(source[0] / 2) * 3) if self.do_pad else 0
                    pad_w = int(np.sqrt(source[1] / 2) * 3) if self.do_pad else 0
                    depth = _resize(depth, (source[0] + 2 * pad_h, source[1] + 2 * pad_w))
                    depth = depth[..., pad_h : depth.shape[-2] - pad_h, pad_w : depth.shape[-1] - pad_w]
                if target is not None:
                    depth = _resize(depth, tuple(target))
                results.append({"predicted_depth": depth[0, 0]})
            return results

    return ZoeDepthProcessor


def _resize(depth: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """torchvision's bicubic resize of a float tensor (no antialiasing; the same size is left alone)."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth, size=size, mode="bicubic", align_corners=False)


def build_processor(family: Family, settings: Mapping[str, Any] | None = None) -> Any:
    """The image processor of `family` with these preprocessor_config.json settings (else the
    published checkpoints')."""
    settings = dict(family.processor if settings is None else settings)
    if family is DEPTH_PRO:
        return DepthProProcessor(settings)
    if family is ZOEDEPTH:
        return _zoedepth_processor_class()(**_known(settings, ZOEDEPTH_KEYS))
    from .sd2_depth import depth_image_processor

    return depth_image_processor(**_known(settings, DPT_KEYS))


DPT_KEYS = frozenset(
    {"do_resize", "size", "keep_aspect_ratio", "ensure_multiple_of", "resample", "do_rescale"}
    | {"rescale_factor", "do_normalize", "image_mean", "image_std", "do_pad", "size_divisor"}
)
ZOEDEPTH_KEYS = DPT_KEYS - {"size_divisor"}


def _known(settings: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key in keys}


def processor_from_folder(folder: Path, family: Family) -> Any:
    """The image processor a Hugging Face folder's preprocessor_config.json describes."""
    path = folder / "preprocessor_config.json"
    try:
        settings = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{folder} has no preprocessor_config.json; a depth estimator folder holds config.json, "
            "its weights (model.safetensors) and preprocessor_config.json, as the Hugging Face "
            f"repository ({', '.join(family.published)}) has them"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} cannot be read: {error}") from None
    if not isinstance(settings, dict):
        raise ModelError(f"{path} is not a JSON object of image processor settings")
    return build_processor(family, settings)


def predict(
    family: Family,
    model: Any,
    processor: Any,
    pictures: Sequence[Any],
    *,
    keep_aspect_ratio: bool = False,
    target_sizes: Sequence[tuple[int, int]] | None = None,
    autocast_dtype: Any = None,
) -> torch.Tensor:
    """The model's depth [B, h, w] for Pillow images, post-processed as transformers does, in the
    family's unit: at `target_sizes` if given, else at the model's resolution (ZoeDepth: the images'
    own size, which its padding removal resizes to). `keep_aspect_ratio` is the "stability"
    preprocessing of the MiDaS models (sides multiples of 32); other families keep their own."""
    options: dict[str, Any] = {}
    if keep_aspect_ratio and family.model_class == "DPTForDepthEstimation":
        options = dict(STABILITY_OPTIONS)
    pixels = processor(images=list(pictures), return_tensors="pt", **options).pixel_values
    device = next(model.parameters()).device
    pixels = pixels.to(device=device, dtype=torch.float32)
    # On CUDA the weights are half precision and autocast keeps the norms in float32 (as diffusers).
    autocast = torch.autocast("cuda", dtype=autocast_dtype, enabled=device.type == "cuda")
    with torch.inference_mode(), autocast:
        if family.model_class == "DPTForDepthEstimation":
            outputs = _DepthOutput(dpt_forward(model, pixels))
        else:
            outputs = model(pixel_values=pixels)
        if family is ZOEDEPTH:
            sources = [(picture.height, picture.width) for picture in pictures]
            results = processor.post_process_depth_estimation(outputs, sources, target_sizes)
        elif family is DEPTH_PRO:  # metres need a width: the model's own when no target is asked
            size = tuple(pixels.shape[-2:])
            results = processor.post_process_depth_estimation(outputs, target_sizes or [size] * len(pictures))
        elif target_sizes is not None:
            results = processor.post_process_depth_estimation(outputs, target_sizes)
        else:
            return outputs.predicted_depth.float()
    return torch.stack([result["predicted_depth"].float() for result in results])


class _DepthOutput:
    """What post-processing reads of a DPT output (its own forward is not used for all shapes)."""

    def __init__(self, predicted_depth: torch.Tensor) -> None:
        self.predicted_depth = predicted_depth


def dpt_forward(estimator: Any, pixels: torch.Tensor) -> torch.Tensor:
    """DPT's predicted depth [B, h, w] for pixels of any size that is a multiple of the patch size.

    transformers' DPT (ViT and hybrid) only takes square inputs through its own forward: the hybrid's
    embeddings check the configured size, and both necks assume a square grid, although the position
    embeddings are resized to any grid. Square inputs (and backbone-based DPTs, which pass the grid)
    use the model's own forward; others (Stability's aspect-keeping preprocessing) run the same
    stages with the real grid.
    """
    height, width = pixels.shape[-2:]
    if height == width or estimator.backbone is not None:
        predicted: torch.Tensor = estimator(pixels).predicted_depth
        return predicted
    config = estimator.config
    embeddings = estimator.dpt.embeddings
    configured = getattr(embeddings, "image_size", None)
    if config.is_hybrid:
        embeddings.image_size = (height, width)
    try:
        outputs = estimator.dpt(pixels, output_hidden_states=True)
    finally:
        if config.is_hybrid:
            embeddings.image_size = configured
    layers = outputs.hidden_states[1:]
    if config.is_hybrid:  # the BiT stages, then the chosen ViT layers
        features = list(outputs.intermediate_activations)
        features.extend(
            state for index, state in enumerate(layers) if index in config.backbone_out_indices[2:]
        )
    else:
        features = [state for index, state in enumerate(layers) if index in config.backbone_out_indices]
    patch = config.patch_size
    predicted = estimator.head(estimator.neck(features, height // patch, width // patch))
    return predicted


def to_inverse_depth(predicted: torch.Tensor, metric: bool) -> torch.Tensor:
    """DEPTH [B, 1, h, w] float32, larger = nearer: relative inverse depth as predicted, or for a
    metric model the inverse of its metres (1/m)."""
    depth = predicted.float().unsqueeze(1)
    if metric:
        depth = 1.0 / depth.clamp(min=METRIC_FLOOR_METRES)
    return depth

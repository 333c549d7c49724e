"""Loading one component from a diffusers-layout folder (`model_index.json` and one folder per part,
as a hub download or `models convert` writes it), with errors that name the folder and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import DEPTH_UNET_CHANNELS, ModelError


def check_depth_model(path: Path) -> None:
    """Refuse a folder whose UNet is not the 5-channel depth UNet, before loading any weights."""
    config_path = path / "unet" / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path} has no unet/config.json; is it a complete diffusers model folder?"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{config_path} cannot be read: {error}") from None
    channels = config.get("in_channels")
    if channels != DEPTH_UNET_CHANNELS:
        raise ModelError(
            f"{path} is not a depth model: its UNet takes {channels} channels, the depth model takes "
            f"{DEPTH_UNET_CHANNELS} (4 latent + 1 depth). Use stable-diffusion-2-depth."
        )


def load_diffusers_component(path: Path, component: str, dtype: Any) -> Any:
    """Load one component from a diffusers-layout folder, with a clear error for a bad file."""
    folder = path / component
    if not folder.is_dir():
        raise ModelError(f"{path} has no {component}/ folder; the model needs one")
    try:
        return _from_pretrained(path, component, dtype)
    except ModelError:
        raise
    except Exception as error:  # corrupt, truncated or mismatched files
        files = ", ".join(sorted(item.name for item in folder.iterdir())) or "no files"
        raise ModelError(
            f"cannot load {component} from {folder} ({files}): {type(error).__name__}: {error}. "
            "The files may be truncated or corrupt, or belong to another architecture; "
            "download them again (`depthgraph models fetch`)."
        ) from error


def scheduler_class(config: dict[str, Any]) -> Any:
    """The diffusers scheduler class a config names (`_class_name`), PNDM if it names none we know.
    The sampler builds the scheduler the user picks from its config; the class keeps every setting."""
    import diffusers

    from .sd2_depth import SCHEDULER

    kind = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(kind, type) and issubclass(kind, diffusers.SchedulerMixin)):
        kind = getattr(diffusers, SCHEDULER["_class_name"])
    return kind


def _from_pretrained(path: Path, component: str, dtype: Any) -> Any:
    import torch

    if component == "unet":
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
    if component == "vae":
        from diffusers import AutoencoderKL

        return AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
    if component == "text_encoder":
        from transformers import CLIPTextModel

        return CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype)
    if component == "text_encoder_2":  # SDXL's OpenCLIP ViT-bigG, whose projected output is pooled
        from transformers import CLIPTextModelWithProjection

        return CLIPTextModelWithProjection.from_pretrained(
            path, subfolder="text_encoder_2", torch_dtype=dtype
        )
    if component in ("tokenizer", "tokenizer_2"):
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(path, subfolder=component)
    if component == "scheduler":
        config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        return scheduler_class(config).from_pretrained(path, subfolder="scheduler")
    if component == "depth_estimator":
        from transformers import DPTForDepthEstimation

        return DPTForDepthEstimation.from_pretrained(
            path, subfolder="depth_estimator", torch_dtype=torch.float32
        )
    from .sd2_depth import depth_image_processor

    settings = json.loads((path / "feature_extractor" / "preprocessor_config.json").read_text())
    known = {"do_resize", "size", "keep_aspect_ratio", "ensure_multiple_of", "resample", "do_rescale"}
    known |= {"rescale_factor", "do_normalize", "image_mean", "image_std"}
    return depth_image_processor(**{key: value for key, value in settings.items() if key in known})

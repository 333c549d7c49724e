"""The model families depthgraph runs, and telling which one a model is before loading any weights.

| family      | UNet                                | text encoder(s)                         | sampler      |
|-------------|-------------------------------------|-----------------------------------------|--------------|
| `sd1`       | 4 channels, context 768             | CLIP ViT-L/14, last layer               | Sampler      |
| `sd2`       | 4 channels, context 1024            | OpenCLIP ViT-H/14, penultimate layer    | Sampler      |
| `sdxl`      | 4 channels, context 2048, size emb. | CLIP ViT-L + OpenCLIP ViT-bigG (pooled) | Sampler      |
| `sd2-depth` | 5 channels (4 latent + depth)       | OpenCLIP ViT-H/14, penultimate layer    | DepthSampler |

SD 2.x comes with epsilon prediction (512 base) or v-prediction (768); only SD2-depth files carry a depth
estimator (MiDaS DPT-hybrid). What is told here is what validation says about a model before a node runs
(`ModelInfo`): the family, the prediction type and whether it bundles an estimator.

A diffusers folder is told by its `unet/config.json` (`in_channels` 5 = depth, 4 = plain;
`addition_embed_type: text_time` = SDXL; `cross_attention_dim` 768 = SD 1.x, 1024 = SD 2.x; for other
widths, as the built-in tiny models have, a linear transformer projection = SD 2.x) and its
`scheduler/scheduler_config.json` (`prediction_type`). A single file is told by its tensor names and
shapes, with the keys diffusers' single-file loader reads for the same decisions (`CHECKPOINT_KEYS`, the
entries of diffusers' `CHECKPOINT_KEY_NAMES`): which text encoder it carries (CLIP ViT-L under
`cond_stage_model.transformer.`, OpenCLIP under `cond_stage_model.model.`, SDXL's two under
`conditioner.embedders.`), the UNet's input channels, and for SD 2.x diffusers' own width rule. Its
prediction type: a `v_pred` key (ComfyUI marks v-prediction files so) means v; for SD 2.x without one,
diffusers' rule (epsilon only for the 512-base file's `global_step` 875000); a yaml beside the file, read
by `ldm_config`, decides before either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import DEPTH_UNET_CHANNELS, ModelError


@dataclass(frozen=True)
class Family:
    """One kind of Stable Diffusion model: what its parts are and what conditioning its UNet reads."""

    key: str
    title: str
    # The text encoders (components) it encodes prompts with, and the tokenizers beside them.
    text_encoders: tuple[str, ...]
    # Which text embeddings the UNet reads: conditioning encoded by one family fits every family with the
    # same text space (SD 2.x and SD2-depth share OpenCLIP ViT-H).
    text_space: str
    takes_depth: bool = False
    native_size: int = 512

    @property
    def tokenizers(self) -> tuple[str, ...]:
        return tuple(name.replace("text_encoder", "tokenizer") for name in self.text_encoders)


SD1 = Family("sd1", "Stable Diffusion 1.x", ("text_encoder",), "CLIP ViT-L/14")
SD2 = Family("sd2", "Stable Diffusion 2.x", ("text_encoder",), "OpenCLIP ViT-H/14", native_size=768)
SDXL = Family(
    "sdxl",
    "Stable Diffusion XL",
    ("text_encoder", "text_encoder_2"),
    "CLIP ViT-L/14 + OpenCLIP ViT-bigG/14",
    native_size=1024,
)
SD2_DEPTH = Family("sd2-depth", "Stable Diffusion 2 depth", ("text_encoder",), "OpenCLIP ViT-H/14", True)
FAMILIES = {family.key: family for family in (SD1, SD2, SDXL, SD2_DEPTH)}
PREDICTIONS = ("epsilon", "v_prediction")
COMMON_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DEPTH_COMPONENTS = ("depth_estimator", "feature_extractor")


@dataclass(frozen=True)
class ModelInfo:
    """What is known of a model before its weights load: family, prediction type, bundled estimator."""

    family: Family
    prediction_type: str = "epsilon"
    depth_estimator: bool = False  # carries its own depth estimator (SD2-depth's MiDaS DPT-hybrid)
    told_by: str = ""  # where the family was read from, for `models list`

    def components(self) -> tuple[str, ...]:
        """The components this model has (what `ModelManager.load` can give for it)."""
        parts = [*COMMON_COMPONENTS]
        parts += [name for name in (*self.family.text_encoders, *self.family.tokenizers) if name not in parts]
        if self.depth_estimator:
            parts += DEPTH_COMPONENTS
        return tuple(parts)

    def abilities(self) -> list[str]:
        """What it can do, in the words `models list` and the README use."""
        if self.family.takes_depth:
            found = ["depth-to-image and inpainting (DepthSampler)"]
        else:
            found = ["image-to-image and inpainting (Sampler)"]
        if self.depth_estimator:
            found.append("depth estimation (its own MiDaS DPT-hybrid, DEPTH_MODEL)")
        return found

    def summary(self) -> str:
        """`Stable Diffusion 2.x, v-prediction: image-to-image and inpainting (Sampler)`."""
        prediction = "v-prediction" if self.prediction_type == "v_prediction" else "epsilon"
        return f"{self.family.title}, {prediction}: {'; '.join(self.abilities())}"


class UnsupportedModelError(ModelError):
    """A model that was read and is of a kind depthgraph does not run (an inpainting UNet, a refiner)."""


# --- diffusers folders -----------------------------------------------------------------------------


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{path} is missing; is {path.parent.parent} a complete diffusers model folder?"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} cannot be read: {error}") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object")
    return value


def _refuse_channels(channels: Any, where: str) -> None:
    kinds = {
        9: "an inpainting model (9 channels: latents, mask, masked image)",
        8: "an InstructPix2Pix model",
    }
    if channels in (4, DEPTH_UNET_CHANNELS):
        return
    what = kinds.get(channels, f"a UNet with {channels} input channels")
    raise UnsupportedModelError(
        f"{where} is {what}: depthgraph runs 4-channel Stable Diffusion 1.x/2.x/XL models and the "
        "5-channel SD2-depth model (inpaint with any of them through SetLatentNoiseMask)"
    )


def folder_info(path: Path) -> ModelInfo:
    """The family of a diffusers-layout folder, from its UNet and scheduler configs."""
    unet = _json(path / "unet" / "config.json")
    channels = unet.get("in_channels")
    _refuse_channels(channels, str(path))
    scheduler_path = path / "scheduler" / "scheduler_config.json"
    scheduler = _json(scheduler_path) if scheduler_path.is_file() else {}
    prediction = str(scheduler.get("prediction_type") or "epsilon")
    told = "unet/config.json"
    if channels == DEPTH_UNET_CHANNELS:
        return ModelInfo(SD2_DEPTH, prediction, (path / "depth_estimator").is_dir(), told)
    if unet.get("addition_embed_type") == "text_time" or (path / "text_encoder_2").is_dir():
        if not (path / "text_encoder").is_dir() and (path / "text_encoder_2").is_dir():
            raise UnsupportedModelError(
                f"{path} is an SDXL refiner (one OpenCLIP text encoder, aesthetic-score conditioning); "
                "depthgraph runs the SDXL base model"
            )
        return ModelInfo(SDXL, prediction, False, told)
    width = unet.get("cross_attention_dim")
    if width == 768 or (width != 1024 and not unet.get("use_linear_projection")):
        return ModelInfo(SD1, prediction, False, told)
    return ModelInfo(SD2, prediction, False, told)


# --- single files ----------------------------------------------------------------------------------
# The entries of diffusers' `single_file_utils.CHECKPOINT_KEY_NAMES` these rules read (a test holds them
# equal to diffusers' own).
CHECKPOINT_KEYS = {
    "inpainting": "model.diffusion_model.input_blocks.0.0.weight",  # [320, channels, 3, 3]
    "v2": "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
    "clip": "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    "open_clip": "cond_stage_model.model.token_embedding.weight",
    "clip_sdxl": "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
    "open_clip_sdxl": "conditioner.embedders.1.model.positional_embedding",
    "xl_base": "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias",
    "open_clip_sdxl_refiner": "conditioner.embedders.0.model.text_projection",
    "xl_refiner": "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias",
}
DEPTH_MODEL_PREFIX = "depth_model."
V_PREDICTION_MARKER = "v_pred"  # ComfyUI's save nodes write it into v-prediction files
SD2_BASE_GLOBAL_STEP = 875000  # diffusers: the one SD 2 file it reads as epsilon (512-base-ema)


def checkpoint_info(shapes: Mapping[str, tuple[int, ...]], global_step: Any, path: Path) -> ModelInfo:
    """The family of a single file from its tensors' names and shapes (and its `global_step`)."""
    keys = CHECKPOINT_KEYS
    first = shapes.get(keys["inpainting"])
    if first is None or len(first) < 2:
        raise ModelError(f"{path} has no Stable Diffusion UNet ({keys['inpainting']} is missing)")
    channels = int(first[1])
    _refuse_channels(channels, str(path))
    if keys["xl_refiner"] in shapes or keys["open_clip_sdxl_refiner"] in shapes:
        raise UnsupportedModelError(
            f"{path} is an SDXL refiner (conditioner.embedders.0 is OpenCLIP); depthgraph runs the SDXL "
            "base model"
        )
    marked_v = V_PREDICTION_MARKER in shapes
    told = "its tensor names"
    if channels == DEPTH_UNET_CHANNELS:
        estimator = any(key.startswith(DEPTH_MODEL_PREFIX) for key in shapes)
        return ModelInfo(SD2_DEPTH, "v_prediction" if marked_v else "epsilon", estimator, told)
    if any(keys[name] in shapes for name in ("xl_base", "open_clip_sdxl", "clip_sdxl")):
        return ModelInfo(SDXL, "v_prediction" if marked_v else "epsilon", False, told)
    width = shapes.get(keys["v2"], (0,))[-1]
    if keys["open_clip"] in shapes or width == 1024:
        if marked_v:
            return ModelInfo(SD2, "v_prediction", False, "its tensor names and its v_pred key")
        base = global_step == SD2_BASE_GLOBAL_STEP
        rule = f"diffusers' rule: global_step {global_step} is {'' if base else 'not '}{SD2_BASE_GLOBAL_STEP}"
        return ModelInfo(SD2, "epsilon" if base else "v_prediction", False, f"its tensor names; {rule}")
    if keys["clip"] in shapes:
        return ModelInfo(SD1, "v_prediction" if marked_v else "epsilon", False, told)
    raise ModelError(
        f"{path} carries no text encoder (neither {keys['clip']} nor {keys['open_clip']} nor SDXL's "
        "conditioner.embedders): it was pruned to its UNet; use the complete checkpoint"
    )

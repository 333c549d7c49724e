"""The built-in tiny models of each family as a diffusers folder and as a single file in the LDM layout
A1111 and ComfyUI users keep (written by `ldm_export`), for the single-file tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from depthgraph.engine.models.single_file import ModelConfigs
from depthgraph.engine.models.tiny_families import TINY_INFOS, tiny_family_builders
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

from tests.models.ldm_export import text_to_clip, text_to_open_clip, unet_to_ldm, vae_to_ldm

WEIGHTED = ("unet", "vae", "text_encoder", "text_encoder_2")


def tiny_parts(name: str) -> dict[str, Any]:
    return {part: build() for part, build in tiny_family_builders(name).items()}


def pipeline_of(parts: dict[str, Any]) -> Any:
    """The diffusers img2img pipeline of a family's parts (SDXL's when it has a second text encoder)."""
    if "text_encoder_2" in parts:
        return StableDiffusionXLImg2ImgPipeline(
            **parts, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True, add_watermarker=False
        )
    return StableDiffusionImg2ImgPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def save_folder(name: str, folder: Path) -> Path:
    pipeline_of(tiny_parts(name)).save_pretrained(folder)
    return folder


def configs_of(parts: dict[str, Any]) -> ModelConfigs:
    second = parts.get("text_encoder_2")
    return ModelConfigs(
        unet=dict(parts["unet"].config),
        vae=dict(parts["vae"].config),
        text_encoder=parts["text_encoder"].config.to_dict(),
        text_encoder_2=None if second is None else second.config.to_dict(),
    )


def single_file_state(name: str, parts: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tiny model `name` as its family's single files lay it out."""
    family = TINY_INFOS[name].family.key
    state: dict[str, torch.Tensor] = {}
    state.update(unet_to_ldm(parts["unet"].state_dict(), parts["unet"].config))
    state.update(vae_to_ldm(parts["vae"].state_dict(), parts["vae"].config))
    text = parts["text_encoder"].state_dict()
    if family == "sd1":
        state.update(text_to_clip(text, "cond_stage_model.transformer."))
    elif family == "sd2":
        state.update(text_to_open_clip(text))  # 24 blocks in the file; SD 2 runs 23
    else:
        state.update(text_to_clip(text, "conditioner.embedders.0.transformer."))
        second = parts["text_encoder_2"].state_dict()
        projection = second["text_projection.weight"]
        tower = {key.removeprefix("text_model."): value for key, value in second.items()}
        state.update(text_to_open_clip(tower, 0, "conditioner.embedders.1.model.", projection=projection))
    state["alphas_cumprod"] = torch.linspace(0.99, 0.01, 1000)  # one of LDM's schedule buffers
    return {key: value.contiguous().clone() for key, value in state.items()}

"""The architectures single files of each family are read into, offline.

A single-file checkpoint carries weights but no configs; diffusers' `from_single_file` would fetch them
from the hub (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1-base and -2-1,
stabilityai/stable-diffusion-xl-base-1.0). These are those repositories' configs, written here so
nothing is fetched: the UNet, VAE and text encoder(s) in diffusers/transformers form, and the training
noise schedule. SD2-depth's own are in `sd2_depth`; a yaml beside a file (`ldm_config`) overrides them.
"""

from __future__ import annotations

from typing import Any

from .sd2_depth import SCHEDULER as SD2_SCHEDULER
from .sd2_depth import TEXT_ENCODER as OPEN_CLIP_H
from .sd2_depth import UNET as SD2_DEPTH_UNET
from .sd2_depth import VAE as SD_VAE
from .single_file import ModelConfigs

CLIP_L: dict[str, Any] = {  # openai/clip-vit-large-patch14's text tower: SD 1.x, and SDXL's first encoder
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
OPEN_CLIP_BIG_G: dict[str, Any] = {  # laion's OpenCLIP ViT-bigG/14 text tower with its projection: SDXL
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 1280,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD1_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "sample_size": 64,
}
SD2_UNET: dict[str, Any] = {**SD2_DEPTH_UNET, "in_channels": 4, "upcast_attention": False}
# The 768 v-prediction model: 96×96 latents, attention in float32 (it overflows in float16 otherwise).
SD2_V_UNET: dict[str, Any] = {**SD2_UNET, "sample_size": 96, "upcast_attention": True}
SDXL_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "projection_class_embeddings_input_dim": 2816,  # 6 size numbers × 256 + the pooled 1280
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
}
SD1_VAE: dict[str, Any] = {**SD_VAE, "sample_size": 512}
# SDXL's VAE: the same architecture, retrained; its latents scale by 0.13025 and it overflows in float16.
SDXL_VAE: dict[str, Any] = {**SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}

SD1_SCHEDULER: dict[str, Any] = {**SD2_SCHEDULER}  # PNDM, scaled-linear 0.00085-0.012, steps_offset 1
SD2_V_SCHEDULER: dict[str, Any] = {
    **SD2_SCHEDULER,
    "_class_name": "DDIMScheduler",
    "prediction_type": "v_prediction",
}
SDXL_SCHEDULER: dict[str, Any] = {
    "_class_name": "EulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}

SD1_CONFIGS = ModelConfigs(unet=SD1_UNET, vae=SD1_VAE, text_encoder=CLIP_L)
SD2_CONFIGS = ModelConfigs(unet=SD2_UNET, vae=SD_VAE, text_encoder=OPEN_CLIP_H)
SD2_V_CONFIGS = ModelConfigs(unet=SD2_V_UNET, vae=SD_VAE, text_encoder=OPEN_CLIP_H)
SDXL_CONFIGS = ModelConfigs(unet=SDXL_UNET, vae=SDXL_VAE, text_encoder=CLIP_L, text_encoder_2=OPEN_CLIP_BIG_G)


def default_configs(family: str, prediction_type: str) -> tuple[ModelConfigs, dict[str, Any]]:
    """The architecture and training schedule a single file of `family` is read with, without a yaml."""
    from .sd2_depth import SCHEDULER, SD2_DEPTH

    if family == "sd1":
        return SD1_CONFIGS, {**SD1_SCHEDULER, "prediction_type": prediction_type}
    if family == "sd2":
        if prediction_type == "v_prediction":
            return SD2_V_CONFIGS, dict(SD2_V_SCHEDULER)
        return SD2_CONFIGS, {**SD2_SCHEDULER, "prediction_type": prediction_type}
    if family == "sdxl":
        return SDXL_CONFIGS, {**SDXL_SCHEDULER, "prediction_type": prediction_type}
    return SD2_DEPTH, {**SCHEDULER, "prediction_type": prediction_type}
